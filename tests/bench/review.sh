#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/bench/review.sh - the review-loop benchmark: accord over HTTP against
# pgbench running the same claim -> score cycle as plain SQL, on one database.
#
#   make all build/bench/loadgen && tests/bench/review.sh
#
# Creates a throwaway PostgreSQL cluster (default durability: fsync on,
# synchronous_commit on), migrates it, pre-fills the queue
# (tests/bench/prefill.sql), starts `accord serve` on 127.0.0.1:<free port>,
# and for each client count runs
#   pgbench  -f tests/bench/pgbench_cycle.sql   (one transaction = one cycle)
#   loadgen  (virtual assessors: claim -> score over HTTP; see loadgen.c)
# then prints a table and saves it to build/bench/review.txt. Everything it
# started is stopped, and the cluster removed, on exit.
#
# Settings (environment):
#   BENCH_CLIENTS   client counts              (default "1 16 64")
#   BENCH_SECONDS   measured seconds per side and client count (default 10)
#   BENCH_ROUNDS    alternating slices those seconds are split into (default 2)
#   BENCH_WARMUP    loadgen warm-up seconds    (default 2)
#   BENCH_PREFILL   queued submissions         (default 220000: >= 100k left at every run)
#   BENCH_MIN_QUEUED  refuse to run below this (default 100000)
#   BENCH_LOADGEN_THREADS  loadgen event loops (default 1)
#   BENCH_KEEP=1    keep the cluster directory (and print where it is)
#   BENCH_SERVER_PGOPTIONS  libpq PGOPTIONS for the server's connections only,
#                   e.g. "-c plan_cache_mode=force_generic_plan" (pgbench is not affected)
#   BENCH_PROFILE=1 track_functions=all; after each accord run, print the SQL
#                   functions by time per call (adds timing overhead)
#   ACCORD_*        passed to the server as usual (ACCORD_THREADS, ACCORD_DB_POOL, ...)
set -euo pipefail

cd "$(dirname "$0")/../.."
root=$(pwd)

clients_list=${BENCH_CLIENTS:-"1 16 64"}
seconds=${BENCH_SECONDS:-10}
warmup=${BENCH_WARMUP:-2}
prefill=${BENCH_PREFILL:-220000}
min_queued=${BENCH_MIN_QUEUED:-100000}
rounds=${BENCH_ROUNDS:-2}
lg_threads=${BENCH_LOADGEN_THREADS:-1}
accord=$root/build/accord
loadgen=$root/build/bench/loadgen
bindir=${PG_BINDIR:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}
pgbench=$bindir/pgbench
psql=$bindir/psql
out=$root/build/bench/review.txt

for f in "$accord" "$loadgen"; do
    [ -x "$f" ] || { echo "review.sh: $f is missing: run 'make all build/bench/loadgen'" >&2; exit 1; }
done
for f in "$pgbench" "$psql"; do
    [ -x "$f" ] || { echo "review.sh: $f is missing (install postgresql-contrib)" >&2; exit 1; }
done

dir=$(mktemp -d "${TMPDIR:-/tmp}/accord-bench.XXXXXX")
server_pid=
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    db/cluster.sh stop "$dir" >/dev/null 2>&1 || true
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        echo "review.sh: kept $dir" >&2
    else
        rm -rf "$dir"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[review %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

log "cluster in $dir (durable settings: fsync on, synchronous_commit on)"
url=$(db/cluster.sh start "$dir" | tail -1)
export DATABASE_URL=$url
q() { "$psql" "$url" -X -v ON_ERROR_STOP=1 -Atqc "$1"; }

"$accord" migrate >"$dir/migrate.log" 2>&1 || { cat "$dir/migrate.log" >&2; exit 1; }

log "pre-filling $prefill submissions"
t0=$(date +%s)
"$psql" "$url" -X -q -v ON_ERROR_STOP=1 -v n="$prefill" -f tests/bench/prefill.sql \
    >"$dir/prefill.log" 2>&1 || { cat "$dir/prefill.log" >&2; exit 1; }
cred=$(q "select id from credentials where title = 'Bench credential'")
log "pre-filled in $(( $(date +%s) - t0 ))s; credential $cred"

mkdir -p "$dir/art"
mkdir -m 700 "$dir/keys" # badge signing keys: the server refuses a key dir others can read
PGOPTIONS=${BENCH_SERVER_PGOPTIONS:-${PGOPTIONS:-}} \
    "$accord" serve --listen 127.0.0.1:0 --data-dir "$dir/art" --key-dir "$dir/keys" --no-migrate \
    >"$dir/serve.out" 2>"$dir/serve.err" &
server_pid=$!
port=
for _ in $(seq 1 100); do
    port=$(sed -n 's/^accord: listening on http:\/\/127\.0\.0\.1:\([0-9]*\) .*/\1/p' \
        "$dir/serve.out" | head -1)
    [ -n "$port" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
[ -n "$port" ] || { echo "review.sh: the server did not start:" >&2; cat "$dir/serve.err" >&2; exit 1; }
log "$(head -1 "$dir/serve.out")"

if [ "${BENCH_PROFILE:-0}" = 1 ]; then
    q "alter system set track_functions = 'all'" >/dev/null
    q "select pg_reload_conf()" >/dev/null
fi

# Every run starts from the same state: dead queue entries vacuumed away and a
# fresh checkpoint (so neither side pays more full-page writes than the other).
settle() {
    q "vacuum (analyze) submissions, reviews, review_scores, audit_log, awards" >/dev/null
    q "checkpoint" >/dev/null
    local n
    n=$(q "select count(*) from submissions where status = 'queued'")
    if [ "$n" -lt "$min_queued" ]; then
        echo "review.sh: only $n submissions queued (< $min_queued): raise BENCH_PREFILL" >&2
        exit 1
    fi
    echo "$n"
}

# Each side runs BENCH_ROUNDS slices of seconds/rounds, alternating
# (pgbench, accord, pgbench, accord, ...), so that a change in the machine's
# background load during the run hits both sides alike.
slice=$(awk -v s="$seconds" -v r="$rounds" 'BEGIN { printf "%.0f", (s / r < 1 ? 1 : s / r) }')
pct() { # pct FILE P: nearest-rank percentile of sorted microseconds, in ms
    awk -v p="$2" '{ v[NR] = $1 } END {
        if (NR == 0) { print "0"; exit }
        k = int(p / 100 * NR + 0.999999); if (k < 1) k = 1; if (k > NR) k = NR
        printf "%.2f", v[k] / 1000 }' "$1"
}
load0=$(cut -d' ' -f1-3 /proc/loadavg)
rows=()
for c in $clients_list; do
    j=$(( c < 2 ? c : 2 ))
    pg_sum=0 pg_fail=0 ac_cycles=0 ac_secs=0 errs=0
    : >"$dir/lat-$c.txt"
    for r in $(seq 1 "$rounds"); do
        queued=$(settle)
        log "pgbench  -c $c round $r/$rounds: $queued queued"
        "$pgbench" -n -M prepared -c "$c" -j "$j" -T "$slice" -f tests/bench/pgbench_cycle.sql \
            "$url" >"$dir/pgbench-$c-$r.log" 2>&1 || { cat "$dir/pgbench-$c-$r.log" >&2; exit 1; }
        rate=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$dir/pgbench-$c-$r.log" | head -1)
        fail=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$dir/pgbench-$c-$r.log")
        pg_sum=$(awk -v a="$pg_sum" -v b="$rate" 'BEGIN { print a + b }')
        pg_fail=$(( pg_fail + ${fail:-0} ))
        log "pgbench  -c $c round $r/$rounds: $rate cycles/s"

        queued=$(settle)
        if [ "${BENCH_PROFILE:-0}" = 1 ]; then q "select pg_stat_reset()" >/dev/null; fi
        log "loadgen  -c $c round $r/$rounds: $queued queued"
        "$loadgen" --port "$port" --credential "$cred" --clients "$c" --threads "$lg_threads" \
            --warmup "$warmup" --duration "$slice" --latencies "$dir/lat-$c-$r.txt" \
            >"$dir/loadgen-$c-$r.log" 2>&1 || { cat "$dir/loadgen-$c-$r.log" >&2; exit 1; }
        if [ "${BENCH_PROFILE:-0}" = 1 ]; then
            sleep 0.6 # stats reach the collector at most every 500 ms
            q "select format('    %-28s %7s calls %8s ms/call %8s self', funcname, calls,
                             round((total_time / calls)::numeric, 3),
                             round((self_time / calls)::numeric, 3))
                 from pg_stat_user_functions where calls > 0
                order by total_time desc limit 8" >&2
        fi
        line=$(grep '^loadgen clients=' "$dir/loadgen-$c-$r.log")
        field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
        ac_cycles=$(( ac_cycles + $(field cycles) ))
        ac_secs=$(awk -v a="$ac_secs" -v b="$(field seconds)" 'BEGIN { print a + b }')
        errs=$(( errs + $(field errors) ))
        cat "$dir/lat-$c-$r.txt" >>"$dir/lat-$c.txt"
        log "loadgen  -c $c round $r/$rounds: $(field rate) reviews/s, p50 $(field p50_ms) ms," \
            "p99 $(field p99_ms) ms, $(field errors) errors"
        sed -n '2,$p' "$dir/loadgen-$c-$r.log" | sed 's/^/    /' >&2
    done
    pg_rate=$(awk -v s="$pg_sum" -v r="$rounds" 'BEGIN { printf "%.1f", s / r }')
    ac_rate=$(awk -v n="$ac_cycles" -v s="$ac_secs" 'BEGIN { printf "%.1f", (s > 0 ? n / s : 0) }')
    sort -n -o "$dir/lat-$c.txt" "$dir/lat-$c.txt"
    p50=$(pct "$dir/lat-$c.txt" 50)
    p99=$(pct "$dir/lat-$c.txt" 99)
    ratio=$(awk -v a="$ac_rate" -v p="$pg_rate" 'BEGIN { printf "%.2f", (p > 0 ? a / p : 0) }')
    [ "$pg_fail" = 0 ] || log "pgbench -c $c: $pg_fail failed transactions"
    rows+=("$c|$pg_rate|$ac_rate|$ratio|$p50|$p99|$errs")
done

server_conf=$(sed -n 's/^accord: listening on [^ ]* (\(.*\))$/\1/p' "$dir/serve.out" | head -1)
{
    echo "review loop (claim -> score), $(nproc) cores, durable PostgreSQL $(q 'show server_version'),"
    echo "load average before the run: $load0"
    echo "$prefill pre-filled; ${seconds}s per side in $rounds alternating rounds; accord: ${server_conf:-?}," \
        "ACCORD_DB_POOL=${ACCORD_DB_POOL:-default}${BENCH_SERVER_PGOPTIONS:+, server PGOPTIONS=$BENCH_SERVER_PGOPTIONS}"
    echo
    printf '%7s | %16s | %16s | %6s | %8s | %8s | %6s\n' clients "pgbench cycles/s" \
        "accord reviews/s" ratio "p50 ms" "p99 ms" errors
    printf '%7s-+-%16s-+-%16s-+-%6s-+-%8s-+-%8s-+-%6s\n' ------- ---------------- \
        ---------------- ------ -------- -------- ------
    for r in "${rows[@]}"; do
        IFS='|' read -r c pg ac ratio p50 p99 errs <<<"$r"
        printf '%7s | %16.1f | %16.1f | %6s | %8s | %8s | %6s\n' "$c" "$pg" "$ac" "$ratio" \
            "$p50" "$p99" "$errs"
    done
} >"$dir/table.txt"
mkdir -p "$(dirname "$out")"
cp "$dir/table.txt" "$out"
echo
cat "$out"

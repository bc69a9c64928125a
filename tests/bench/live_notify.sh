#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/bench/live_notify.sh - what live updates cost the review loop: 16
# virtual assessors (loadgen: claim -> score over HTTP) against `accord serve`
# on a durable throwaway cluster (fsync on, synchronous_commit on), while
#   0 streams     nobody watches (the anchor)
#   1 stream      one GET /v1/events stream open (an assessor of the same
#                 credential: every claim and score changes its queue count)
#   1000 streams  a thousand such streams open
#   before        one stream, with 014's design re-created for comparison: a
#                 pg_notify in the writer's transaction for every change, so
#                 every commit waits for the cluster's notify lock
# Modes alternate over LIVE_BENCH_ROUNDS rounds; each prints cycles/s and the
# ratio to the anchor. Since 022_notify2.sql no commit NOTIFYs: each server
# announces at most every 50 ms and catches up with one query.
#
#   make all build/bench/loadgen && tests/bench/live_notify.sh
#   (LIVE_BENCH_SECONDS per slice, LIVE_BENCH_ROUNDS, LIVE_BENCH_PREFILL)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
seconds=${LIVE_BENCH_SECONDS:-5}
rounds=${LIVE_BENCH_ROUNDS:-2}
prefill=${LIVE_BENCH_PREFILL:-40000}
bindir=${PG_BINDIR:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}
accord=$root/build/accord
loadgen=$root/build/bench/loadgen
[ -x "$loadgen" ] || make -s build/bench/loadgen >/dev/null
dir=$(mktemp -d "${TMPDIR:-/tmp}/accord-bench-notify.XXXXXX")
server_pid=
streams_pid=
cleanup() {
    [ -n "$streams_pid" ] && kill "$streams_pid" 2>/dev/null || true
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    db/cluster.sh stop "$dir" >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT
url=$(db/cluster.sh start "$dir" | tail -1)
export DATABASE_URL=$url
"$accord" migrate >"$dir/migrate.log" 2>&1 || { cat "$dir/migrate.log"; exit 1; }
"$bindir/psql" "$url" -X -q -v ON_ERROR_STOP=1 -v n="$prefill" -f tests/bench/prefill.sql >/dev/null
q() { "$bindir/psql" "$url" -X -v ON_ERROR_STOP=1 -Atqc "$1"; }
cred=$(q "select id from credentials where title = 'Bench credential'")
# 014's per-change NOTIFY, re-created (disabled unless the mode is `before`)
q "create function bench_legacy_notify() returns trigger language plpgsql as \$\$
   begin perform pg_notify('accord_live', format('s %s %s', new.live_seq, new.id)); return null; end \$\$;
   create trigger bench_legacy_notify after update on submissions for each row
     when (new.live_seq is distinct from old.live_seq) execute function bench_legacy_notify();
   alter table submissions disable trigger bench_legacy_notify"

mkdir -p "$dir/art"
mkdir -m 700 "$dir/keys"
ACCORD_LIVE_STREAMS_PER_USER=1000 ACCORD_LOG=warn \
    "$accord" serve --listen 127.0.0.1:0 --data-dir "$dir/art" --key-dir "$dir/keys" --no-migrate \
    >"$dir/serve.out" 2>"$dir/serve.err" &
server_pid=$!
port=
for _ in $(seq 1 100); do
    port=$(sed -n 's/^accord: listening on http:\/\/127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$dir/serve.out" | head -1)
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { cat "$dir/serve.err"; exit 1; }
watcher=$(printf 'acc_%064d' 64) # an assessor of the bench credential who does not claim

open_streams() { # open_streams N: holds N streams open (background) until close_streams
    mkfifo "$dir/streams.in"
    python3 tests/bench/live_streams.py --port "$port" --token "$watcher" --n "$1" \
        <"$dir/streams.in" >"$dir/streams.out" 2>&1 &
    streams_pid=$!
    exec 7>"$dir/streams.in"
    for _ in $(seq 1 600); do
        grep -q '^open' "$dir/streams.out" 2>/dev/null && return 0
        kill -0 "$streams_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "live_notify.sh: $1 streams did not open:" >&2
    cat "$dir/streams.out" >&2
    exit 1
}
close_streams() {
    exec 7>&-
    wait "$streams_pid" || true
    streams_pid=
    rm -f "$dir/streams.in"
    got_events=$(sed -n 's/^events \([0-9]*\)/\1/p' "$dir/streams.out")
}

declare -A cycles secs events
modes="0 1 1000 before"
for round in $(seq 1 "$rounds"); do
    for mode in $modes; do
        q "vacuum analyze submissions, reviews" >/dev/null
        q "checkpoint" >/dev/null
        case $mode in
        0) ;;
        before) q "alter table submissions enable trigger bench_legacy_notify"; open_streams 1 ;;
        *) open_streams "$mode" ;;
        esac
        "$loadgen" --port "$port" --credential "$cred" --clients 16 --warmup 1 \
            --duration "$seconds" >"$dir/loadgen.log" 2>&1 || { cat "$dir/loadgen.log"; exit 1; }
        line=$(grep '^loadgen clients=' "$dir/loadgen.log")
        field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
        cycles[$mode]=$(( ${cycles[$mode]:-0} + $(field cycles) ))
        secs[$mode]=$(awk -v a="${secs[$mode]:-0}" -v b="$(field seconds)" 'BEGIN { print a + b }')
        if [ "$mode" != 0 ]; then
            close_streams
            events[$mode]=$(( ${events[$mode]:-0} + ${got_events:-0} ))
        fi
        [ "$mode" = before ] && q "alter table submissions disable trigger bench_legacy_notify"
    done
done
echo "== live updates and the review loop (16 loadgen clients claim -> score, durable commits," \
    "${rounds} x ${seconds} s per mode)"
anchor=$(awk -v c="${cycles[0]}" -v s="${secs[0]}" 'BEGIN { print c / s }')
for mode in $modes; do
    label=$mode
    case $mode in
    0) label="0 streams (anchor)" ;;
    1) label="1 stream" ;;
    1000) label="1000 streams" ;;
    before) label="1 stream, NOTIFY per commit (014, before)" ;;
    esac
    awk -v m="$label" -v c="${cycles[$mode]}" -v s="${secs[$mode]}" -v a="$anchor" \
        -v e="${events[$mode]:-0}" 'BEGIN { r = c / s;
        printf "   %-42s %8.1f cycles/s  ratio %.2f", m, r, r / a
        if (e > 0) printf "  (%d events received)", e
        printf "\n" }'
done

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/bench/live_notify.sh - what the live triggers (db/migrations/014_live.sql)
# cost the claim -> score cycle: pgbench (tests/bench/pgbench_cycle.sql, 16
# clients) on a durable throwaway cluster (fsync on, synchronous_commit on),
# three ways, alternating, each printed as a ratio to the first (the anchor):
#   off        the live triggers disabled
#   unwatched  enabled, no server has a stream open: rows stamped, no NOTIFY
#   watched    enabled, a server has a stream open: every change NOTIFYs, and
#              PostgreSQL serialises notifying commits (fsync included)
#
#   make all && tests/bench/live_notify.sh      (LIVE_BENCH_SECONDS, LIVE_BENCH_PREFILL)
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${LIVE_BENCH_SECONDS:-8}
prefill=${LIVE_BENCH_PREFILL:-30000}
bindir=${PG_BINDIR:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}
dir=$(mktemp -d "${TMPDIR:-/tmp}/accord-bench-notify.XXXXXX")
trap 'db/cluster.sh stop "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
url=$(db/cluster.sh start "$dir" | tail -1)
DATABASE_URL=$url build/accord migrate >"$dir/migrate.log" 2>&1 || { cat "$dir/migrate.log"; exit 1; }
"$bindir/psql" "$url" -X -q -v ON_ERROR_STOP=1 -v n="$prefill" -f tests/bench/prefill.sql >/dev/null
q() { "$bindir/psql" "$url" -X -v ON_ERROR_STOP=1 -Atqc "$1"; }
declare -A sum
for round in 1 2; do
    for mode in off unwatched watched; do
        q "alter table submissions enable trigger submissions_live_notify;
           alter table submissions enable trigger submissions_live_stamp; delete from live_servers"
        case $mode in
        off) q "alter table submissions disable trigger submissions_live_notify;
                alter table submissions disable trigger submissions_live_stamp" ;;
        watched) q "insert into live_servers values (gen_random_uuid(), 1, now() + interval '1 hour')" ;;
        esac
        q "vacuum analyze submissions, reviews" >/dev/null
        q "checkpoint" >/dev/null
        tps=$("$bindir/pgbench" -n -M prepared -c 16 -j 2 -T "$seconds" -f tests/bench/pgbench_cycle.sql \
            "$url" 2>&1 | sed -n 's/^tps = \([0-9.]*\) .*/\1/p')
        sum[$mode]=$(awk -v a="${sum[$mode]:-0}" -v b="$tps" 'BEGIN { print a + b }')
    done
done
echo "== live triggers and the claim -> score cycle (pgbench, 16 clients, durable commits)"
for mode in off unwatched watched; do
    awk -v m="$mode" -v s="${sum[$mode]}" -v a="${sum[off]}" \
        'BEGIN { printf "   %-10s %8.1f cycles/s  ratio %.2f\n", m, s / 2, s / a }'
done

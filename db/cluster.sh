#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# cluster.sh - a private PostgreSQL cluster in a directory, for `make run`,
# the tests and the benchmarks.
#
#   db/cluster.sh start DIR [--fast]   initdb on first use, start, create the
#                                      "accord" database; prints DATABASE_URL
#   db/cluster.sh stop DIR             fast shutdown (no-op if not running)
#   db/cluster.sh url DIR              prints DATABASE_URL
#
# The server listens only on a unix socket inside DIR, so clusters never clash
# on a port and nothing is reachable from the network. initdb refuses to run
# as root, so as root the cluster belongs to the "postgres" user. --fast turns
# off fsync for throwaway test clusters (a crash of the *server* under test is
# still exercised fully; only a crash of the machine would lose data).
set -euo pipefail

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|url DIR [--fast]" >&2; exit 2; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
bindir=${PG_BINDIR:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}
[ -x "$bindir/initdb" ] || { echo "cluster.sh: no initdb in $bindir (install postgresql)" >&2; exit 1; }

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

url() { echo "host=$dir port=5432 dbname=accord user=postgres"; }

case "$cmd" in
start)
    if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
            --locale=C >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
        {
            echo "listen_addresses = ''"
            echo "unix_socket_directories = '$dir'"
            echo "max_connections = 200"
            echo "shared_buffers = 256MB"
            echo "log_min_messages = warning"
        } >>"$dir/data/postgresql.conf"
        if [ "${3:-}" = "--fast" ]; then
            printf "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n" \
                >>"$dir/data/postgresql.conf"
        fi
    fi
    if ! as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start \
            >/dev/null || { tail -20 "$dir/postgres.log" >&2; exit 1; }
    fi
    if ! "$bindir/psql" -h "$dir" -U postgres -d postgres -Atqc \
        "select 1 from pg_database where datname = 'accord'" | grep -q 1; then
        "$bindir/createdb" -h "$dir" -U postgres accord
    fi
    url
    ;;
stop)
    if [ -f "$dir/data/PG_VERSION" ]; then
        as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    ;;
url) url ;;
*) echo "usage: $0 start|stop|url DIR [--fast]" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# standby.sh - a streaming standby of a db/cluster.sh cluster, for the read
# replica tests (issue 13 item 4).
#
#   tests/replica/standby.sh start PRIMARY_DIR DIR   pg_basebackup -R from the
#                                                    primary's socket, start it,
#                                                    print its conninfo
#   tests/replica/standby.sh stop DIR                fast shutdown (no-op if down)
#
# Like the primary it listens only on a unix socket inside its own directory.
set -euo pipefail

cmd=${1:-}
bindir=${PG_BINDIR:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}
as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
start)
    primary=${2:?usage: $0 start PRIMARY_DIR DIR}
    dir=${3:?usage: $0 start PRIMARY_DIR DIR}
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        # -c fast: do not wait for a spread checkpoint; -X stream: WAL alongside;
        # -R: standby.signal + primary_conninfo
        as_owner "$bindir/pg_basebackup" -h "$primary" -p 5432 -U postgres -D "$dir/data" \
            -R -X stream -c fast >"$dir/basebackup.log" 2>&1 ||
            { cat "$dir/basebackup.log" >&2; exit 1; }
        # the copied postgresql.conf names the primary's socket directory
        echo "unix_socket_directories = '$dir'" >>"$dir/data/postgresql.auto.conf"
    fi
    if ! as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start \
            >/dev/null || { tail -20 "$dir/postgres.log" >&2; exit 1; }
    fi
    echo "host=$dir port=5432 dbname=accord user=postgres"
    ;;
stop)
    dir=${2:?usage: $0 stop DIR}
    if [ -f "$dir/data/PG_VERSION" ]; then
        as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    ;;
*) echo "usage: $0 start PRIMARY_DIR DIR | stop DIR" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# run-embedded.sh - `make run`: serve accord on an embedded PostgreSQL.
#
# With DATABASE_URL set, just serves against it. Otherwise keeps a private
# cluster under var/pg (initdb on first run), starts it, applies migrations,
# makes sure an admin exists, serves, and stops the cluster when the server
# exits (Ctrl-C or SIGTERM).
set -euo pipefail
bin=${1:?usage: run-embedded.sh PATH_TO_ACCORD [serve options]}
shift
cd "$(dirname "$0")/.."

if [ -n "${DATABASE_URL:-}" ]; then
    exec "$bin" serve "$@"
fi

mkdir -p var
export DATABASE_URL
DATABASE_URL=$(db/cluster.sh start var/pg)
trap 'db/cluster.sh stop var/pg' EXIT
"$bin" migrate >/dev/null

admin=${ACCORD_ADMIN_EMAIL:-admin@localhost}
if "$bin" user add --email "$admin" --name Administrator --roles admin >/dev/null 2>&1; then
    token=$("$bin" token create --email "$admin")
    echo "accord: created the administrator $admin; its API token (shown once):"
    echo
    echo "    export TOKEN=$token"
    echo
else
    echo "accord: administrator $admin exists; for a new token run:"
    echo "    DATABASE_URL='$DATABASE_URL' $bin token create --email $admin"
fi
echo "accord: database at var/pg ($DATABASE_URL)"
# badges name themselves under the public URL; on a laptop that is the local address
export ACCORD_PUBLIC_URL=${ACCORD_PUBLIC_URL:-http://127.0.0.1:8080}
"$bin" serve --data-dir "${ACCORD_DATA_DIR:-var/artifacts}" "$@" &
server=$!
trap 'kill -TERM $server 2>/dev/null || true; wait $server || true; db/cluster.sh stop var/pg' EXIT INT TERM
wait $server

# SPDX-License-Identifier: Apache-2.0
# tests/sql/lib.sh - the harness shared by the SQL suites (sourced, not run).
#
#   suite=NAME; . tests/sql/lib.sh
#
# Starts a throwaway cluster unless DATABASE_URL is set (then that database
# must be EMPTY), opens one psql session, and defines the checks:
#   q SQL                          run SQL, print its output and errors
#   check NAME SQL                 the SQL must print exactly "t"
#   err NAME SQLSTATE CODE SQL     the SQL must fail with that SQLSTATE and code
#   run NAME SQL                   the SQL must succeed
#   apply_migrations               db/migrations/*.sql in order, one transaction each
# and counts them in $pass / $fail. The suite ends with
#   echo "$suite: $pass passed, $fail failed"
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

own_cluster=
if [ -z "${DATABASE_URL:-}" ]; then
    dir=$(mktemp -d "/tmp/accord-$suite.XXXXXX")
    own_cluster=$dir
    DATABASE_URL=$(db/cluster.sh start "$dir" --fast) || { echo "$suite: cannot start cluster"; exit 1; }
    trap 'db/cluster.sh stop "$own_cluster"; rm -rf "$own_cluster"' EXIT
fi

pass=0
fail=0
PSQL=(psql "$DATABASE_URL" -X -Atq -v VERBOSITY=verbose)

# One psql session for all checks (fast): each statement is followed by an
# \echo marker; output and errors (VERBOSITY verbose) come back on one pipe.
coproc PSQLP { stdbuf -oL -eL "${PSQL[@]}" -f - 2>&1; }
exec 7>&"${PSQLP[1]}" 8<&"${PSQLP[0]}"
q() {
    printf '%s;\n\\echo __accord_sql_end__\n' "$1" >&7
    local line out=
    while IFS= read -r line <&8; do
        [ "$line" = __accord_sql_end__ ] && break
        out+="$line"$'\n'
    done
    printf '%s' "${out%$'\n'}"
}

ok() { pass=$((pass + 1)); }
ko() { fail=$((fail + 1)); printf 'FAIL: %s\n%s\n' "$1" "$2" | head -20; }

# check NAME SQL: the SQL must print exactly "t"
check() {
    local out
    out=$(q "$2")
    if [ "$out" = t ]; then ok; else ko "$1" "$out"; fi
}

# err NAME SQLSTATE CODE SQL: the SQL must fail with that SQLSTATE and DETAIL code
err() {
    local out
    out=$(q "$4")
    if grep -q "ERROR:  $2:" <<<"$out" && grep -q "^DETAIL:  $3\$" <<<"$out"; then
        ok
    else
        ko "$1 (want $2 $3)" "$out"
    fi
}

# run SQL that must succeed (setup steps count as checks too). psql prefixes
# errors read from -f - with "psql:<stdin>:N: ", so the match is unanchored.
run() {
    local out
    out=$(q "$2")
    if grep -q 'ERROR:' <<<"$out"; then ko "$1" "$out"; else ok; fi
}

apply_migrations() {
    local f out
    for f in db/migrations/*.sql; do
        out=$(psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -1 -f "$f" 2>&1) || {
            ko "migration $f" "$out"
            echo "$suite: $pass passed, $fail failed"
            exit 1
        }
    done
    ok
}

# Test scaffolding both suites use: tk(name) = token hash of bearer token
# name; put/g = a key-value scratch table for ids between statements.
create_scaffolding() {
    q "CREATE TABLE t_ctx (k text PRIMARY KEY, v text);
   CREATE FUNCTION tk(n text) RETURNS text LANGUAGE sql AS
     \$\$ SELECT encode(sha256(convert_to(n, 'UTF8')), 'hex') \$\$;
   CREATE FUNCTION put(k text, v text) RETURNS text LANGUAGE sql AS
     \$\$ INSERT INTO t_ctx VALUES (k, v) ON CONFLICT (k) DO UPDATE SET v = excluded.v RETURNING v \$\$;
   CREATE FUNCTION g(k text) RETURNS uuid LANGUAGE sql AS
     \$\$ SELECT v::uuid FROM t_ctx WHERE t_ctx.k = g.k \$\$;" >/dev/null
}

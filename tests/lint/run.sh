#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/lint/run.sh - server/openapi.json through Redocly CLI (its recommended
# rules) and Spectral (spectral:oas): any error or warning fails. The linters
# are the pinned npm packages of package-lock.json (make lint-deps).
# Prints "lint: N passed, N failed" last.
set -uo pipefail
cd "$(dirname "$0")"
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_UPDATE_NOTIFIER=1
doc=../../server/openapi.json
passed=0 failed=0
[ -x node_modules/.bin/redocly ] && [ -x node_modules/.bin/spectral ] ||
    { echo "lint: the linters are not installed (make lint-deps)"; echo "lint: 0 passed, 2 failed"; exit 1; }

out=$(node_modules/.bin/redocly lint --config redocly.yaml --format stylish "$doc" 2>&1)
rc=$?
if [ $rc -eq 0 ] && ! grep -qiE "[0-9]+:[0-9]+ +(error|warning)|You have [0-9]+ warning" <<<"$out"; then
    passed=$((passed + 1)); echo "PASS redocly lint (recommended)$(grep -o ' [0-9]* problems\? .*ignored' <<<"$out")"
else
    failed=$((failed + 1)); echo "FAIL redocly lint (recommended), exit $rc:"; sed 's/^/    /' <<<"$out"
fi

out=$(node_modules/.bin/spectral lint --ruleset .spectral.yaml --fail-severity=hint "$doc" 2>&1)
rc=$?
if [ $rc -eq 0 ] && grep -q "No results" <<<"$out"; then
    passed=$((passed + 1)); echo "PASS spectral lint (spectral:oas)"
else
    failed=$((failed + 1)); echo "FAIL spectral lint (spectral:oas), exit $rc:"; sed 's/^/    /' <<<"$out"
fi
echo "lint: $passed passed, $failed failed"
[ $failed -eq 0 ]

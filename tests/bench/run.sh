#!/usr/bin/env bash
# tests/bench/run.sh - every benchmark (`make bench`): the review loop against
# pgbench, then the reliability statistics benchmark when it exists.
set -euo pipefail
cd "$(dirname "$0")/../.."

rc=0
tests/bench/review.sh || rc=1
if [ -x tests/bench/irr.sh ]; then
    tests/bench/irr.sh || rc=1
fi
exit $rc

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/bench/run.sh - every benchmark (`make bench`): the review loop against
# pgbench, the reliability statistics against independent implementations, what
# a badge costs to serve (first signed read vs stored), what clients can make
# the server hold (memory.py: peak RSS against the README's bounds), the memory
# of 1,000 open live update streams (live.py) and what the live triggers cost
# the review loop (live_notify.sh), the full calibration simulation
# (40 assessors, 2,000 submissions) with its timings, the scaling part
# (scaling.py: claims with many grants and ineligible heads against one grant
# and a clean queue, issue 15), a 1 GiB file through each storage backend
# beside curl (storage.py, issue 13), and how fast the outbox delivers webhooks
# (outbox.py, issue 14).
set -euo pipefail
cd "$(dirname "$0")/../.."

rc=0
tests/bench/review.sh || rc=1
tests/bench/irr.sh || rc=1
python3 tests/bench/badges.py --bin build/accord || rc=1
python3 tests/bench/memory.py --bin build/accord || rc=1
python3 tests/bench/scaling.py --bin build/accord || rc=1
python3 tests/bench/live.py --bin build/accord || rc=1
python3 tests/bench/storage.py --bin build/accord || rc=1
python3 tests/bench/outbox.py --bin build/accord || rc=1
tests/bench/live_notify.sh || rc=1
echo "== calibration simulation: 40 assessors, 2000 submissions (non-sanitizer build)"
python3 tests/http/sim.py --bin build/accord --assessors 40 --submissions 2000 || rc=1
exit $rc

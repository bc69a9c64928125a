# SPDX-License-Identifier: Apache-2.0
"""Issue 4's simulation, small: a synthetic assessor population (accurate, lenient,
harsh, drifting peers; accurate experts) works through ~300 submissions of a low- and a
high-stakes credential over HTTP. The model, the phases and every margin with its
justification are in sim.py's docstring; `make bench` runs the large version
(python3 tests/http/sim.py --assessors 40 --submissions 2000)."""

import sys

import sim
from harness import Failure, test


@test
def calibration_simulation(env):
    # 14 assessors: 10 peers (1 lenient, 1 harsh, 1 drifter, 7 accurate), 4 experts;
    # 24 anchors, set_size 8, window 10, min_items 5, validity_rate 0.3, min_pairs 10,
    # drift after 6 reviews. The seed fixes the simulation's own draws (truths, noise); the
    # server's draws (validity items, second scores) differ in every run because their keys
    # are new object ids, so every assertion has a margin that holds for all of them
    # (sim.py, MARGINS: the smallest is p > 0.9996 per run; severity after issue 7 > 0.9999).
    p = sim.Params(assessors=14, submissions=300, seed=20240604, anchors=24, set_size=8,
                   window=10, min_items=5, validity_rate=0.3, min_pairs=10, drift_after=6,
                   chunk=30)
    s = sim.Sim(env, p, log=lambda m: None)
    try:
        s.run()
    except Failure as e:
        raise Failure("%s\n(after %d requests; notes: %s; earlier failures: %s)"
                      % (e, s.requests, s.notes, s.failures))
    sys.stdout.write("  simulation: %s\n" % p.describe())
    for l in s.timing_lines():
        sys.stdout.write("  " + l + "\n")
    for n in s.notes:
        sys.stdout.write("  note: %s\n" % n)
    if s.failures:
        raise Failure("simulation assertions failed:\n" + "\n".join(s.failures))

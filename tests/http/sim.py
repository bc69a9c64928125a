#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""sim.py - a synthetic assessor population driving a real accord server over HTTP
(issue 4, calibration). Standard library only.

    python3 tests/http/sim.py --bin build/accord --assessors 40 --submissions 2000

The model
---------
Each submission (and each anchor) has a hidden true level per criterion (1-4): a latent
ability theta ~ U(1, 4.5) per submission, level = clamp(round(theta + N(0, 0.6))). That
gives levels 1..4 with shares about .16/.26/.28/.29 and ~39% passing (every criterion >= 3).
Anchors' master scores are the true levels. An assessor scores
clamp(round(true + bias + N(0, noise))):
    accurate  bias 0,  noise 0.15 (P(|N| > 0.5) = 0.09%: ~99.9% exact)
    lenient   bias +1, noise 0.15
    harsh     bias -1, noise 0.15
    drifter   accurate until its review number `drift_after`, then bias +1.5
    experts   accurate (the lead adjudicates with the true levels)
    "unreliable" (phase C): every score uniform on 1..4, independent of the truth.

Phases
------
A  qualification: everyone takes calibration sessions (set_size 8); accurate ones retry
   up to 3 times, lenient and harsh take 2 sessions and must fail both.
B  live work on a low- and a high-stakes credential (validity_rate 0.3; the low one's
   min_pairs out of reach until phase C, which sets it to 10).
   After the first chunk the lead overrides the lenient and harsh assessors' failed
   qualification (manual qualification with a reason), so blind validity items must catch
   them. The drifter drifts after `drift_after` reviews. Chunks of submissions are added
   until the drifter, the lenient and the harsh assessor are all flagged.
C  the peer pool turns unreliable. Individual flags are switched off for this phase by
   raising the rubric's window/min_items (else each peer's window would flag it before
   the credential-level reliability estimate has pairs: this isolates the pool-level
   mechanism). Low-stakes chunks until the routing report shows peer review paused.
D  peers are accurate again, take new calibration sessions, and work low-stakes chunks
   until the routing report shows peer review active again.

Margins (Monte Carlo of this exact model, 20,000 trials each, seed 7; see MARGINS)
---------------------------------------------------------------------------------
Issue 7 (make test must not fail by chance): the margins below were first computed with
noise 0.2 and anchors drawn like submissions; with those, an accurate assessor was falsely
flagged in phase B with p = 0.0005 each, ~0.5% of runs over 11 accurate assessors, and a
run failed on it. Anchors now have two criteria at an inner level (anchor_levels) and the
accurate noise is 0.15: re-run with 40,000 trials (seed 7), an accurate assessor is
falsely flagged within 16 validity items in none (p < 7.5e-5 each, 95% bound), passes a
session in all, lenient and harsh pass none and are flagged at the 5th item in all, and
the drifter is flagged within 10 items after the drift in all (median 2). The numbers
that follow are the original noise-0.2 ones; each only got safer.
- Qualification (8 anchors, exact >= .70, adjacent >= .95, verdict >= .80): an accurate
  assessor passes a session with p = 0.9997 (3 tries: failure < 1e-10); a lenient one
  passes with p = 0.0012, a harsh one with p < 5e-5 (two sessions: < 0.3%).
- Window 10, min_items 5. The drifter's window holds only accurate items when it drifts;
  drifted items are ~26% exact and ~25% of their scores are 2 levels off (true 1 -> 2.5+N
  rounds to 3 half of the time), so the adjacent share drops under .95 fast: flagged
  within <= 10 validity items after the drift starts with p = 0.9996 (median 3). Live
  pairs with experts also enter the window and only make it faster (they are drifted too).
- Lenient and harsh, overridden with an empty window, are flagged at the min_items-th
  (5th) item with p = 0.98 (lenient) / 0.9995 (harsh) and within <= 10 validity items
  with p > 0.9998 (exact share ~.27 < .70 and verdicts flip on true-2 / true-3 items).
- An accurate assessor is falsely flagged within 50 items with p = 0.0005.
- Pause: unreliable pairs have quadratic kappa ~0 (uniform vs truth: E[d^2] = chance);
  with G earlier good pairs (kappa ~.95), the pooled kappa is ~.95 G/(G+B) after B bad
  pairs, so its lower bound is under 0.60 once B >~ 0.6 G; bound asserted: B <= G + 20.
- Resume: only pairs since the pause count; accurate pairs give kappa ~.95 with a lower
  bound > .80 at 10 pairs (40 units), so peer review resumes after min_pairs good pairs;
  bound asserted: <= 2*min_pairs + 10 pairs after the peers re-qualify (pairs whose first
  score came from an unreliable peer before the pause may still complete afterwards).
- Severity (checked at the end of phase B): lenient ~ +0.75 (clamped at 4), harsh ~ -0.85,
  accurate ~ 0 +- 0.05. It holds whatever the server draws (which anchors become whose
  validity items, which scores are doubled; issue 7 made them seedable, but the keys are
  object ids, new in every run): every anchor has at least two criteria at level 2 or 3
  (anchor_levels), where a lenient score is one level up unless its N(0, 0.15) noise
  passes -0.5 (p = 0.0004) and never lower, so each of its validity items adds >= 2/4
  with p > 0.9999; a harsh one mirrors that; an accurate peer's mean is under 0.5 unless
  half its scores are 2.5-sigma errors. With no validity item at all (flagged on double
  scores first: p ~ 0.01) the report falls back to severity vs experts, zero for the
  lenient peer only if every live submission it scored was all 4s (~0.15^5). The test
  failed before on an all-4 anchor set (severity 0 after 3 validity items).
"""

import argparse
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import harness  # noqa: E402
from harness import CRITERION_KEYS, Failure, expect, is_uuid, short  # noqa: E402

MARGINS = __doc__[__doc__.index("Margins"):]

ACCURATE_NOISE = 0.15
PASS_LEVEL = 3


def clamp(x):
    return max(1, min(4, x))


def rnd(x):
    return int(math.floor(x + 0.5))


def true_levels(rng):
    theta = rng.uniform(1.0, 4.5)
    return {k: clamp(rnd(theta + rng.gauss(0, 0.6))) for k in CRITERION_KEYS}


def anchor_levels(rng):
    """An anchor's master levels: the model's, redrawn until at least two criteria sit at
    an inner level (2 or 3), as a lead picks anchors that can show a bias: an all-4
    anchor cannot show leniency, an all-1 anchor no harshness (see Severity in MARGINS)."""
    while True:
        t = true_levels(rng)
        if sum(1 for v in t.values() if v in (2, 3)) >= 2:
            return t


def verdict(levels):
    return "pass" if all(v >= PASS_LEVEL for v in levels.values()) else "resubmit"


def discrepant(a, b):
    """The API's disagreement: different verdicts, or a criterion > 1 level apart."""
    return verdict(a) != verdict(b) or any(abs(a[k] - b[k]) > 1 for k in CRITERION_KEYS)


def at_pass_line(levels):
    """A resubmit where exactly one criterion is one level under the cut, others pass."""
    under = [v for v in levels.values() if v < PASS_LEVEL]
    return len(under) == 1 and under[0] == PASS_LEVEL - 1


class Profile:
    def __init__(self, kind, bias=0.0, noise=ACCURATE_NOISE, drift_after=None, drift_bias=1.5):
        self.kind = kind
        self.bias = bias
        self.noise = noise
        self.drift_after = drift_after
        self.drift_bias = drift_bias
        self.unreliable = False

    def drifting(self, n_done):
        return self.drift_after is not None and n_done >= self.drift_after

    def score(self, rng, truth, n_done):
        if self.unreliable:
            return {k: rng.randint(1, 4) for k in CRITERION_KEYS}
        b = self.bias + (self.drift_bias if self.drifting(n_done) else 0.0)
        return {k: clamp(rnd(truth[k] + b + rng.gauss(0, self.noise))) for k in CRITERION_KEYS}


class Assessor:
    def __init__(self, user, pool, profile, seed):
        self.user = user
        self.pool = pool            # "peer" | "expert"
        self.profile = profile
        self.rng = random.Random(seed)
        self.reviews = 0            # live + validity items scored
        self.validity = 0
        self.validity_after_drift = 0
        self.validity_since_override = None
        self.flagged_after = None   # validity items (after drift / override) when flagged
        self.flagged = False
        self.sessions = []          # (qualified, exact, adjacent, verdict_agreement)
        self.requal_sessions = []

    @property
    def name(self):
        return self.user.name


def score_body(levels, who):
    return {"scores": [{"criterion": k, "level": levels[k], "comment": "%s: %s" % (who, k)}
                       for k in CRITERION_KEYS],
            "feedback": "feedback from %s" % who}


def levels_of(scores):
    return {s["criterion"]: s["level"] for s in scores}


class Params:
    def __init__(self, assessors=14, submissions=300, seed=20240604, anchors=24, set_size=8,
                 window=10, min_items=5, validity_rate=0.3, min_pairs=10, drift_after=6,
                 chunk=30, high_share=1.0 / 3):
        self.assessors = assessors
        self.submissions = submissions
        self.seed = seed
        self.anchors = anchors
        self.set_size = set_size
        self.window = window
        self.min_items = min_items
        self.validity_rate = validity_rate
        self.min_pairs = min_pairs
        self.drift_after = drift_after
        self.chunk = chunk
        self.high_share = high_share

    def describe(self):
        return ", ".join("%s=%s" % kv for kv in sorted(vars(self).items()))


class Sim:
    def __init__(self, env, params, log=None):
        self.env = env
        self.p = params
        self.rng = random.Random(params.seed)
        self.log = log or (lambda msg: None)
        self.failures = []
        self.notes = []
        self.timings = []
        self.requests = 0
        self.truth_by_sub = {}       # submission id -> levels
        self.sub_cred = {}           # submission id -> "low" | "high"
        self.earner_of = {}          # submission id -> harness.User
        self.anchor_truth = {}       # frozenset(artifact ids) -> levels
        self.scores = {}             # submission id -> [(assessor name, pool, levels, review id)]
        self.adjudicated = {}        # submission id -> (levels, score_sets)
        self.validity_reviews = []
        self.watch_routing = False
        self.routing_log = []        # (phase, peer_review, reason) at each change seen
        self.created = 0

    # ---- bookkeeping -------------------------------------------------------
    def check(self, cond, msg):
        if not cond:
            self.failures.append(msg)
            self.log("FAIL: " + msg)
        return cond

    def note(self, msg):
        self.notes.append(msg)
        self.log(msg)

    def req(self, client, method, path, body=None, **kw):
        self.requests += 1
        return client.request(method, path, json_body=body, **kw)

    def phase(self, name):
        self.timings.append((name, time.monotonic(), self.requests))
        self.log("-- phase %s" % name)

    # ---- setup -------------------------------------------------------------
    def setup(self):
        env, p = self.env, self.p
        self.phase("setup")
        self.lead = env.user(["lead"], name="Sim Lead", org="Sim District")
        self.rubric = env.rubric(self.lead, "Sim rubric #%d" % env.uniq())
        rid = self.rubric["id"]
        expect(self.req(self.lead.c, "PUT", "/v1/rubrics/%s/calibration" % rid,
                        {"set_size": p.set_size, "window": p.window, "min_items": p.min_items}),
               200, what="sim: rubric calibration settings")
        self.add_anchors(p.anchors)
        policy = {"validity_rate": p.validity_rate, "second_score_rate": 0.3,
                  "second_score_floor": 0.1, "reliability_threshold": 0.6,
                  "min_pairs": p.min_pairs, "peer_wait_hours": 72}
        self.cred = {}
        for stakes in ("low", "high"):
            body = {"title": "Sim %s #%d" % (stakes, env.uniq()), "stakes": stakes,
                    "rubric_id": rid, "evidence": [{"kind": "video", "min": 1}],
                    "pass_rule": {"min_level_each": PASS_LEVEL}, "max_attempts": 3,
                    "review_policy": policy}
            self.cred[stakes] = expect(self.req(self.lead.c, "POST", "/v1/credentials", body),
                                       201, what="sim: credential %s" % stakes)
        # the population: ~30% experts (at least 3), one lenient, one harsh, one drifter
        n = max(8, p.assessors)
        n_exp = max(3, int(round(n * 0.3)))
        n_peer = n - n_exp
        self.assessors = []
        seed = p.seed * 1000
        for i in range(n_peer):
            if i == 0:
                prof = Profile("lenient", bias=1.0)
            elif i == 1:
                prof = Profile("harsh", bias=-1.0)
            elif i == 2:
                prof = Profile("drifter", drift_after=p.drift_after)
            else:
                prof = Profile("accurate")
            u = env.user(["assessor"], name="Peer %d (%s)" % (i, prof.kind), org="Peer org %d" % i)
            self.assessors.append(Assessor(u, "peer", prof, seed + i))
        for i in range(n_exp):
            u = env.user(["expert"], name="Expert %d" % i, org="Expert org %d" % i)
            self.assessors.append(Assessor(u, "expert", Profile("accurate"), seed + 500 + i))
        for a in self.assessors:
            creds = ["low"] if a.pool == "peer" else ["low", "high"]
            for st in creds:
                body = {"user_id": a.user.id, "pool": a.pool}
                if a.pool == "peer":
                    body["waive_award"] = True
                expect(self.req(self.lead.c, "POST", "/v1/credentials/%s/assessors"
                                % self.cred[st]["id"], body), 201, what="sim: grant")
        self.by_kind = {}
        for a in self.assessors:
            self.by_kind.setdefault(a.profile.kind if a.pool == "peer" else "expert", []).append(a)

    def add_anchors(self, n):
        """Anchors are known to the simulation by their bytes' sha256: validity items
        serve them under fresh artifact ids (issue 7)."""
        for _ in range(n):
            i = len(self.anchor_truth)
            t = anchor_levels(self.rng)
            a = self.env.upload(self.lead.c, "video", b"anchor %d " % i + os.urandom(48),
                                filename="anchor%d.mp4" % i)
            self.requests += 1
            body = {"rubric_id": self.rubric["id"], "artifact_ids": [a["id"]],
                    "master": {"scores": [{"criterion": k, "level": t[k],
                                           "rationale": "master %s" % k}
                                          for k in CRITERION_KEYS],
                               "feedback": "master feedback %d" % i}}
            expect(self.req(self.lead.c, "POST", "/v1/anchors", body), 201, what="sim: anchor")
            self.anchor_truth[frozenset([a["sha256"]])] = t

    # ---- qualification -----------------------------------------------------
    def session(self, a):
        """One calibration session scored with the assessor's model; returns the result.
        Issue 7: an anchor whose masters an assessor saw never qualifies them again, so
        when the pool is exhausted for them (422) the lead adds a set's worth of anchors,
        as the answer tells them to."""
        r = self.req(a.user.c, "POST", "/v1/calibration/sessions", {"rubric_id": self.rubric["id"]})
        if r.status == 422 and (r.json or {}).get("error", {}).get("code") == "anchor_pool_exhausted":
            self.anchors_added = getattr(self, "anchors_added", 0) + self.p.set_size
            self.add_anchors(self.p.set_size)
            r = self.req(a.user.c, "POST", "/v1/calibration/sessions",
                         {"rubric_id": self.rubric["id"]})
        s = expect(r, 201, what="sim: calibration session for %s" % a.name)
        result = None
        for item in s["items"]:
            t = self.anchor_truth.get(frozenset(x["sha256"] for x in item["artifacts"]))
            if t is None:
                raise Failure("sim: session item %s shows artifacts of no known anchor: %s"
                              % (item.get("id"), short(json.dumps(item))))
            lv = a.profile.score(a.rng, t, a.reviews)
            r = self.req(a.user.c, "POST", "/v1/calibration/sessions/%s/items/%s/scores"
                         % (s["id"], item["id"]), score_body(lv, a.name))
            j = expect(r, 200, what="sim: session item score")
            if j.get("status") == "completed":
                result = j["result"]
        if result is None:
            raise Failure("sim: session %s never completed" % s["id"])
        return result

    def qualify_all(self, who, attempts_for):
        for a in who:
            for _ in range(attempts_for(a)):
                res = self.session(a)
                a.sessions.append((res["qualified"], res["exact"], res["adjacent"],
                                   res["verdict_agreement"]))
                if res["qualified"]:
                    break

    def qualification(self):
        self.phase("A qualification")
        self.qualify_all(self.assessors, lambda a: 2 if a.profile.kind in ("lenient", "harsh")
                         else 3)
        for a in self.assessors:
            ok = any(s[0] for s in a.sessions)
            if a.profile.kind in ("lenient", "harsh"):
                self.check(not ok, "%s passed a calibration session: %s" % (a.name, a.sessions))
            else:
                self.check(ok, "%s (accurate) failed 3 calibration sessions: %s"
                           % (a.name, a.sessions))
        q = expect(self.req(self.by_kind["lenient"][0].user.c, "GET", "/v1/me/qualifications"), 200)
        st = [x.get("status") for x in q.get("qualifications", [])
              if x.get("rubric_id") == self.rubric["id"]]
        self.check(st in ([], ["needs_recalibration"]),
                   "lenient assessor's qualifications after failing: %r" % st)

    # ---- submissions -------------------------------------------------------
    def create_submissions(self, n, stakes=None):
        env = self.env
        for _ in range(n):
            st = stakes or ("high" if self.rng.random() < self.p.high_share else "low")
            t = true_levels(self.rng)
            earner = env.user(["earner"], name="Earner %d" % env.uniq(), org="Earner org")
            self.requests += 2
            a = env.upload(earner.c, "video", os.urandom(64), filename="meeting.mp4")
            self.requests += 1
            s = env.submit(earner.c, self.cred[st]["id"], [a["id"]])
            self.requests += 1
            self.truth_by_sub[s["id"]] = t
            self.sub_cred[s["id"]] = st
            self.earner_of[s["id"]] = earner
            self.created += 1

    # ---- the work loop -----------------------------------------------------
    def claim_and_score(self, a, stakes):
        r = self.req(a.user.c, "POST", "/v1/reviews/claim", {"credential_id": self.cred[stakes]["id"]})
        if r.status == 204:
            return None
        c = expect(r, 200, what="sim: claim by %s" % a.name)
        arts = frozenset(x["sha256"] for x in c["submission"]["artifacts"])
        sub = c["submission"]["id"]
        if "adjudication" in c:
            t = self.truth_by_sub.get(sub)
            lv = a.profile.score(a.rng, t, a.reviews)
            expect(self.req(a.user.c, "POST", "/v1/reviews/%s/scores" % c["id"],
                            score_body(lv, a.name)), 200, what="sim: adjudication score")
            self.adjudicated[sub] = (lv, c["adjudication"], a.name)
            return "adjudication"
        t = self.anchor_truth.get(arts)
        validity = t is not None and sub not in self.truth_by_sub
        if not validity:
            t = self.truth_by_sub.get(sub)
            if t is None:
                raise Failure("sim: %s claimed a submission the simulation did not create: %s"
                              % (a.name, short(r.text)))
        lv = a.profile.score(a.rng, t, a.reviews)
        a.reviews += 1
        expect(self.req(a.user.c, "POST", "/v1/reviews/%s/scores" % c["id"],
                        score_body(lv, a.name)), 200, what="sim: score by %s" % a.name)
        if validity:
            a.validity += 1
            self.validity_reviews.append(c["id"])
            if a.profile.drifting(a.reviews - 1):
                a.validity_after_drift += 1
            if a.validity_since_override is not None:
                a.validity_since_override += 1
        else:
            self.scores.setdefault(sub, []).append((a.name, a.pool, lv, c["id"]))
        if a.profile.kind in ("drifter", "lenient", "harsh") and not a.flagged:
            self.poll_flag(a)
        if self.watch_routing and stakes == "low" and not validity:
            self.routing()      # records every change of the low credential's routing state
        return "validity" if validity else "live"

    def poll_flag(self, a):
        q = expect(self.req(a.user.c, "GET", "/v1/me/qualifications"), 200)
        for x in q.get("qualifications", []):
            if x.get("rubric_id") == self.rubric["id"] and x.get("status") == "needs_recalibration":
                a.flagged = True
                a.flagged_after = (a.validity_after_drift if a.profile.kind == "drifter"
                                   else a.validity_since_override)
                a.flag_reason = x.get("reason")
                self.note("%s flagged after %s validity items (%d reviews): %s"
                          % (a.name, a.flagged_after, a.reviews, x.get("reason")))

    def lead_adjudicate(self):
        n = 0
        while True:
            r = self.req(self.lead.c, "POST", "/v1/reviews/claim", {})
            if r.status == 204 or r.status == 403:
                if r.status == 403 and not getattr(self, "_lead403", False):
                    self._lead403 = True
                    self.check(False, "lead's claim for adjudication: %s" % r.describe())
                return n
            c = expect(r, 200, what="sim: lead claims an adjudication")
            sub = c["submission"]["id"]
            if not self.check("adjudication" in c, "lead's claim has no adjudication: %s"
                              % short(r.text)):
                expect(self.req(self.lead.c, "POST", "/v1/reviews/%s/release" % c["id"]), 200)
                return n
            lv = dict(self.truth_by_sub[sub])
            expect(self.req(self.lead.c, "POST", "/v1/reviews/%s/scores" % c["id"],
                            score_body(lv, "Sim Lead")), 200, what="sim: lead adjudicates")
            self.adjudicated[sub] = (lv, c["adjudication"], "lead")
            self.adjudication_reviews.append(c["id"])
            n += 1

    def pending(self):
        subs = expect(self.req(self.lead.c, "GET", "/v1/submissions"), 200)["submissions"]
        return [s["id"] for s in subs if s["id"] in self.truth_by_sub
                and s["status"] in ("queued", "in_review")]

    def drain(self, stop=None, peers_first=True):
        """Rounds of claims until nothing of ours is pending (or stop() is true)."""
        idle_rounds = 0
        while True:
            live = 0
            order = list(self.assessors)
            self.rng.shuffle(order)
            if peers_first:
                order.sort(key=lambda a: a.pool != "peer")
            # one claim per assessor and credential per pass, so the work (and the blind
            # validity items) is shared evenly and the watched peers get enough of it
            for a in order:
                for st in (["low"] if a.pool == "peer" else ["high", "low"]):
                    what = self.claim_and_score(a, st)
                    if what not in (None, "validity"):
                        live += 1
                    elif what == "validity":
                        live += 0.001   # not idle: validity items are work too
            live += self.lead_adjudicate()
            if stop is not None and stop():
                return True
            if live == 0:
                if not self.pending():
                    return False
                idle_rounds += 1
                if idle_rounds >= 3:
                    self.note("drain: %d submissions pending and nobody can claim them"
                              % len(self.pending()))
                    return False
            else:
                idle_rounds = 0

    def routing(self):
        rep = expect(self.req(self.lead.c, "GET", "/v1/reports/routing"), 200)
        rows = rep.get("credentials", rep) if isinstance(rep, dict) else rep
        if isinstance(rows, dict):
            rows = next((v for v in rows.values() if isinstance(v, list)), [])
        for row in rows:
            if isinstance(row, dict) and row.get("credential_id") == self.cred["low"]["id"]:
                key = (row.get("peer_review"), row.get("reason"))
                if not self.routing_log or self.routing_log[-1][1:] != key:
                    self.routing_log.append((self.timings[-1][0][:1], row.get("peer_review"),
                                             row.get("reason")))
                return row
        raise Failure("routing report does not list the low-stakes credential: %s"
                      % short(json.dumps(rep)))

    def pairs_low(self):
        return sum(1 for s, l in self.scores.items()
                   if self.sub_cred[s] == "low" and len(l) >= 2
                   and {x[1] for x in l[:2]} == {"peer", "expert"})

    # ---- phases ------------------------------------------------------------
    def phase_b(self):
        self.phase("B live work, drift, overrides")
        p = self.p
        watched = self.by_kind["drifter"] + self.by_kind["lenient"] + self.by_kind["harsh"]
        # The pool-level pause is phase C's subject: in phase B the lenient, harsh and
        # drifting peers' pairs (kappa ~.7 each) could pause peer review early, so the
        # low credential's min_pairs is out of reach until phase C sets it to p.min_pairs.
        for mp in (100000, 10000, 1000):
            if self.req(self.lead.c, "PUT", "/v1/credentials/%s/policy" % self.cred["low"]["id"],
                        {"min_pairs": mp}).status == 200:
                break
        # most of the run's submissions go here; phases C and D add what they need
        min_b, budget = int(p.submissions * 0.6), max(2 * p.chunk, int(p.submissions * 0.8))
        made = 0
        overridden = False
        while True:
            self.create_submissions(p.chunk)
            made += p.chunk
            self.drain()
            if not overridden:
                for a in self.by_kind["lenient"] + self.by_kind["harsh"]:
                    expect(self.req(self.lead.c, "POST", "/v1/assessors/%s/qualifications" % a.user.id,
                                    {"rubric_id": self.rubric["id"], "status": "qualified",
                                     "reason": "simulation: lead overrides a failed session"}),
                           201, what="sim: override %s" % a.name)
                    a.validity_since_override = 0
                overridden = True
                continue
            # A watched assessor can also be flagged by an expert's second score of
            # their work (the pair enters their window): that happens during the
            # expert's call and stops their claims, so look at their status here too.
            for a in watched:
                if not a.flagged:
                    self.poll_flag(a)
            if (all(a.flagged for a in watched) and made >= min_b) or made >= budget:
                break
        d = self.by_kind["drifter"][0]
        self.check(d.reviews > p.drift_after, "the drifter did only %d reviews (drift after %d)"
                   % (d.reviews, p.drift_after))
        # margin: <= 10 validity items after the drift starts (p = 0.9996, see MARGINS)
        self.check(d.flagged and d.flagged_after is not None and d.flagged_after <= 10,
                   "drifter: flagged=%s after %s validity items since the drift started "
                   "(bound 10); %d reviews, %d validity items"
                   % (d.flagged, d.validity_after_drift, d.reviews, d.validity))
        for a in self.by_kind["lenient"] + self.by_kind["harsh"]:
            # margin: flagged within <= 10 validity items after the override (p > 0.9998)
            self.check(a.flagged and a.flagged_after is not None and a.flagged_after <= 10,
                       "%s: flagged=%s after %s validity items since the override (bound 10)"
                       % (a.name, a.flagged, a.validity_since_override))
        acc = [a for a in self.assessors if a.profile.kind == "accurate"]
        wrong = []
        for a in acc:
            q = expect(self.req(a.user.c, "GET", "/v1/me/qualifications"), 200)
            for x in q.get("qualifications", []):
                if x.get("rubric_id") == self.rubric["id"] and x.get("status") != "qualified":
                    wrong.append((a.name, x.get("reason")))
        # margin: an accurate assessor is falsely flagged within 16 items with p < 7.5e-5
        # (noise 0.15, anchor_levels; MARGINS)
        self.check(not wrong, "accurate assessors flagged in phase B: %s" % wrong)
        self.pairs_before_c = self.pairs_low()
        self.note("phase B counts: " + "; ".join(
            "%s %d reviews/%d validity%s" % (a.name, a.reviews, a.validity,
                                             " FLAGGED" if a.flagged else "")
            for a in self.assessors))
        self.note("phase B: %d submissions, %d low-stakes peer/expert pairs" % (made,
                                                                                   self.pairs_before_c))
        self.check_severity()

    def check_severity(self):
        """Severity ranks the biases. Checked at the end of phase B, while every peer
        still scores with its own profile (phase C makes accurate peers unreliable)."""
        rep = expect(self.req(self.lead.c, "GET", "/v1/reports/assessors?rubric_id=%s"
                              % self.rubric["id"]), 200)
        sev = {}
        for row in rep.get("assessors", []):
            s = row.get("severity") or {}
            v = s.get("vs_master")
            if v is None:
                v = s.get("vs_experts")
            sev[row.get("user_id")] = v
        def sv(a):
            return sev.get(a.user.id)
        len_, harsh = self.by_kind["lenient"][0], self.by_kind["harsh"][0]
        acc = [a for a in self.assessors if a.pool == "peer" and a.profile.kind == "accurate"]
        accv = [sv(a) for a in acc if sv(a) is not None]
        self.severity = {a.name: sv(a) for a in self.assessors}
        ok = (sv(len_) is not None and sv(harsh) is not None and accv
              and sv(len_) > max(accv) and min(accv) > sv(harsh))
        self.check(ok, "severity should rank lenient > every accurate peer > harsh: %s"
                   % {k: v for k, v in self.severity.items()})

    def set_window(self, window, min_items):
        r = self.req(self.lead.c, "PUT", "/v1/rubrics/%s/calibration" % self.rubric["id"],
                     {"window": window, "min_items": min_items})
        return r.status == 200

    def phase_c(self):
        self.phase("C unreliable peers -> pause")
        p = self.p
        for w in (1000, 500, 200, 100, 50):
            if self.set_window(w, w):
                self.note("phase C: individual flags off (window = min_items = %d)" % w)
                break
        else:
            self.note("phase C: could not raise window/min_items; individual flags stay on")
        expect(self.req(self.lead.c, "PUT", "/v1/credentials/%s/policy" % self.cred["low"]["id"],
                        {"min_pairs": p.min_pairs}), 200, what="sim: min_pairs for phase C")
        row = self.routing()
        self.check(row.get("peer_review") == "active", "peer review before phase C: %s"
                   % short(json.dumps(row)))
        peers = [a for a in self.assessors if a.pool == "peer" and a.profile.kind == "accurate"]
        for a in peers:
            a.profile.unreliable = True
        g = self.pairs_before_c
        limit = g + 20          # bad pairs allowed before the pause (see MARGINS)
        paused = False
        made = 0
        while not paused:
            self.create_submissions(10, "low")
            made += 10
            self.drain(stop=lambda: self.routing().get("peer_review") == "paused")
            row = self.routing()
            paused = row.get("peer_review") == "paused"
            bad = self.pairs_low() - g
            if paused or bad > limit + 10 or made > 4 * (limit + 20):
                break
        bad = self.pairs_low() - g
        self.bad_pairs = bad
        self.check(paused, "peer review not paused after %d unreliable pairs (G = %d earlier "
                   "pairs): %s" % (bad, g, short(json.dumps(row))))
        if paused:
            self.check(bad <= limit, "paused only after %d unreliable pairs (bound G + 20 = %d)"
                       % (bad, limit))
            self.check("kappa" in str(row.get("reason", "")).lower(),
                       "routing report's reason should name kappa: %r" % row.get("reason"))
            self.note("paused after %d unreliable pairs (G = %d): %s" % (bad, g, row.get("reason")))
            for a in peers[:3]:
                q = expect(self.req(a.user.c, "GET", "/v1/me/qualifications"), 200)
                st = [x.get("status") for x in q.get("qualifications", [])
                      if x.get("rubric_id") == self.rubric["id"]]
                self.check(st == ["needs_recalibration"],
                           "%s after the pause: qualifications %r" % (a.name, st))
        self.paused = paused

    def phase_d(self):
        self.phase("D recalibration -> resume")
        self.watch_routing = True
        peers = [a for a in self.assessors if a.pool == "peer" and a.profile.kind == "accurate"]
        for a in peers:
            a.profile.unreliable = False
        for a in peers:
            for _ in range(3):
                res = self.session(a)
                a.requal_sessions.append(res["qualified"])
                if res["qualified"]:
                    break
            self.check(any(a.requal_sessions), "%s failed to re-qualify: %s"
                       % (a.name, a.requal_sessions))
        start_pairs = self.pairs_low()
        before = {a.name: (a.reviews, a.validity) for a in peers}
        self.requal_marker = set(self.scores)
        limit = 2 * self.p.min_pairs + 10
        active = False
        made = 0
        while True:
            self.create_submissions(10, "low")
            made += 10
            self.drain(stop=lambda: self.routing().get("peer_review") == "active")
            row = self.routing()
            active = row.get("peer_review") == "active"
            if active or self.pairs_low() - start_pairs > limit + 10 or made > 6 * limit:
                break
        good = self.pairs_low() - start_pairs
        self.good_pairs = good
        self.note("phase D: %d submissions; peers' reviews/validity items since re-qualifying: %s"
                  % (made, "; ".join("%s %d/%d" % (a.name, a.reviews - before[a.name][0],
                                                   a.validity - before[a.name][1]) for a in peers)))
        if not active:
            st = []
            for a in peers:
                q = expect(self.req(a.user.c, "GET", "/v1/me/qualifications"), 200)
                st += ["%s: %s" % (a.name, (x.get("status"), x.get("reason")))
                       for x in q.get("qualifications", [])
                       if x.get("rubric_id") == self.rubric["id"]]
            self.note("phase D without resume; peers now: %s" % "; ".join(st))
            later = [(s_, l) for s_, l in self.scores.items() if s_ not in self.requal_marker
                     and l[0][1] == "peer"]
            for s_, l in later[:2]:
                for x in l:
                    rv = expect(self.req(self.lead.c, "GET", "/v1/reviews/%s" % x[3]), 200)
                    self.note("phase D review by %s of %s: routing %s" % (x[0], s_,
                                                                          rv.get("routing")))
        self.check(active, "peer review did not resume after %d pairs of re-qualified peers: %s"
                   % (good, short(json.dumps(row))))
        if active:
            self.check(good <= limit, "resumed only after %d pairs (bound %d)" % (good, limit))
            # API: resumes when the pairs since the pause reach min_pairs; every pair since
            # re-qualification is counted in `good`, so fewer than min_pairs is a violation
            self.check(good >= self.p.min_pairs,
                       "peer review resumed after %d pairs since the pause, fewer than "
                       "min_pairs %d: %s" % (good, self.p.min_pairs, row.get("reason")))
            self.note("resumed after %d good pairs since re-qualification" % good)
        # while paused, every first score of a re-qualified peer was double-scored
        single = [s for s, l in self.scores.items() if s not in self.requal_marker
                  and self.sub_cred[s] == "low" and l and l[0][1] == "peer" and len(l) == 1
                  and s in self.final_ids()]
        self.check(not single or active, "first peer scores during the pause not double-scored: %d"
                   % len(single))

    def final_ids(self):
        if not hasattr(self, "_final"):
            subs = expect(self.req(self.lead.c, "GET", "/v1/submissions"), 200)["submissions"]
            self._final = {s["id"] for s in subs if s["status"] in ("returned", "passed")}
        return self._final

    # ---- final checks ------------------------------------------------------
    def checks(self):
        self.phase("checks")
        self.drain()
        # discrepant double scores went to adjudication, and only those
        disc, agree = [], []
        for s, l in self.scores.items():
            if len(l) >= 2:
                (disc if discrepant(l[0][2], l[1][2]) else agree).append(s)
        missing = [s for s in disc if s not in self.adjudicated]
        extra = [s for s in agree if s in self.adjudicated]
        self.check(not missing, "%d of %d discrepant double scores never reached adjudication "
                   "(e.g. %s)" % (len(missing), len(disc), missing[:3]))
        self.check(not extra, "%d agreeing double scores went to adjudication (e.g. %s)"
                   % (len(extra), extra[:3]))
        self.check(len(disc) > 0, "no discrepant double scores at all: the run proves nothing")
        self.note("double-scored: %d, discrepant: %d, adjudicated: %d"
                  % (len(disc) + len(agree), len(disc), len(self.adjudicated)))
        # adjudication claims: both score sets, no identities
        for s, (lv, adj, who) in list(self.adjudicated.items())[:20]:
            sets = adj.get("score_sets") if isinstance(adj, dict) else None
            self.check(isinstance(sets, list) and len(sets) == 2,
                       "adjudication of %s: score_sets %s" % (s, short(json.dumps(adj))))
            txt = json.dumps(adj)
            for a in self.assessors:
                if a.user.id in txt or a.user.email in txt:
                    self.check(False, "adjudication of %s shows %s's identity" % (s, a.name))
        # pass-line first scores were always second-scored
        pl = [s for s, l in self.scores.items() if at_pass_line(l[0][2]) and len(l) < 2
              and s not in self.adjudicated]
        self.check(not pl, "%d first scores at the pass line were not second-scored (e.g. %s)"
                   % (len(pl), pl[:3]))
        # the final result each earner sees (a sample)
        sample = sorted(self.scores)[:: max(1, len(self.scores) // 40)]
        for s in sample:
            l = self.scores[s]
            if s in self.adjudicated:
                want = self.adjudicated[s][0]
            elif len(l) >= 2:
                want = l[1][2] if self.sub_cred[s] == "low" else l[0][2]
            else:
                want = l[0][2]
            v = expect(self.req(self.earner_of[s].c, "GET", "/v1/submissions/%s" % s), 200)
            res = v.get("result")
            if not self.check(res is not None, "submission %s has no result" % s):
                continue
            self.check(levels_of(res["scores"]) == want,
                       "submission %s (%s, %d scores%s): final %s, expected %s"
                       % (s, self.sub_cred[s], len(l), ", adjudicated" if s in self.adjudicated
                          else "", levels_of(res["scores"]), want))
        # routing recorded on reviews
        for rid in self.validity_reviews[:3]:
            rv = expect(self.req(self.lead.c, "GET", "/v1/reviews/%s" % rid), 200)
            self.check((rv.get("routing") or {}).get("rule") == "validity_item",
                       "validity review %s routing %r" % (rid, rv.get("routing")))
        row = self.routing()
        seen = [x[0] + x[1] for x in self.routing_log]
        if "Dactive" in seen:
            self.check("paused" not in [x[1] for x in self.routing_log[seen.index("Dactive"):]],
                       "peer review paused again after resuming, with accurate peers (flapping): "
                       "%s" % [x[2] for x in self.routing_log[seen.index("Dactive"):]])
        self.note("routing changes seen (low): %s" % " | ".join("%s %s: %s" % x
                                                                for x in self.routing_log))

    def run(self):
        t0 = time.monotonic()
        self.adjudication_reviews = []
        self.setup()
        self.qualification()
        self.phase_b()
        self.phase_c()
        if self.paused:
            self.phase_d()
        if self.created < self.p.submissions:
            # the rest of the run's submissions, worked through like phase B
            self.phase("E remaining submissions")
            self.create_submissions(self.p.submissions - self.created)
        self.checks()
        self.phase("end")
        self.total = time.monotonic() - t0
        return self.failures

    def timing_lines(self):
        out = []
        for (n, t, q), (_, t2, q2) in zip(self.timings, self.timings[1:]):
            out.append("  %-32s %7.1f s %7d requests %7.0f req/s"
                       % (n, t2 - t, q2 - q, (q2 - q) / max(t2 - t, 1e-9)))
        out.append("  %-32s %7.1f s %7d requests; %d submissions"
                   % ("total", self.total, self.requests, self.created))
        return out


def run_in_env(env, params, log=None):
    sim = Sim(env, params, log)
    sim.run()
    return sim


# ---------------------------------------------------------------------------
# standalone (make bench): own cluster and server


def standalone(binary, params, keep=False):
    root = ROOT
    workdir = tempfile.mkdtemp(prefix="accord-sim-")
    os.chmod(workdir, 0o755)
    cluster = harness.Cluster(root, os.path.join(workdir, "pg"))
    base_env = dict(os.environ)
    env = harness.Env(root, binary, workdir, cluster, base_env)
    try:
        base_env["DATABASE_URL"] = cluster.start()
        rc, out, err = harness.run_cli(binary, ["migrate"], base_env, timeout=120)
        if rc != 0:
            raise RuntimeError("migrate: %s%s" % (out, err))
        rc, out, err = harness.run_cli(binary, ["user", "add", "--email", "admin@example.org",
                                                "--name", "Admin", "--roles", "admin"], base_env)
        if rc != 0:
            raise RuntimeError("user add: %s%s" % (out, err))
        rc, out, err = harness.run_cli(binary, ["token", "create", "--email",
                                                "admin@example.org"], base_env)
        token = harness.last_line(out)
        env.server = env.start_server("sim")
        me = harness.Client(env.server, token).get("/v1/me").json
        env.admin = harness.User(env, me, token)
        sim = Sim(env, params, log=lambda m: print("sim: " + m, flush=True))
        try:
            sim.run()
        except Failure as e:
            sim.failures.append("aborted: %s" % e)
            sim.total = time.monotonic() - sim.timings[0][1]
            sim.phase("aborted")
        return sim
    finally:
        for s in env.servers:
            msg = s.stop()
            if msg:
                print("sim: " + msg)
        try:
            cluster.stop()
        except Exception as e:  # noqa: BLE001
            print("cluster stop failed: %s" % e)
        if keep:
            print("sim: kept %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description="accord calibration simulation")
    ap.add_argument("--bin", required=True)
    ap.add_argument("--assessors", type=int, default=40)
    ap.add_argument("--submissions", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=20240604)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    binary = os.path.abspath(args.bin) if os.path.exists(args.bin) else os.path.join(ROOT, args.bin)
    p = Params(assessors=args.assessors, submissions=args.submissions, seed=args.seed,
               anchors=max(24, args.assessors), chunk=max(30, args.submissions // 20))
    print("sim: %s" % p.describe())
    sim = standalone(binary, p, args.keep)
    print("sim: timings")
    for l in sim.timing_lines():
        print(l)
    for n in sim.notes:
        print("sim: note: " + n)
    for f in sim.failures:
        print("sim: FAIL: " + f)
    print("sim: %d assertions failed" % len(sim.failures))
    return 1 if sim.failures else 0


if __name__ == "__main__":
    sys.exit(main())

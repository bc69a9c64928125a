# SPDX-License-Identifier: Apache-2.0
"""Concurrent claims, release, lease expiry."""

import datetime
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from harness import check, eq, expect, fail, short, test

N_CLAIMERS = 16
N_SUBMISSIONS = 32


def parallel(fn, items, workers=8):
    with ThreadPoolExecutor(max_workers=workers) as ex:
        return list(ex.map(fn, items, timeout=180))


@test
def concurrency_claims_are_exclusive(env):
    lead = env.user(["lead"])
    rubric = env.rubric(lead)
    cred = env.credential(lead, rubric["id"])

    def make_submission(i):
        e = env.user(["earner"], org="Race Elementary")
        ev = env.evidence(e.c, video_size=512)
        return env.submit(e.c, cred["id"], [a["id"] for a, _ in ev])["id"]

    subs = parallel(make_submission, range(N_SUBMISSIONS))
    # half the claimers talk to a second server on the same database
    s2 = env.start_server("race2")
    assessors = parallel(lambda i: env.user(["assessor"], org="Race Assessors %d" % i,
                                            server=s2 if i % 2 else None),
                         range(N_CLAIMERS))
    for a in assessors:
        env.grant(lead, cred["id"], a)

    barrier = threading.Barrier(N_CLAIMERS)
    claims = [[] for _ in range(N_CLAIMERS)]
    errors = []

    def claimer(i):
        try:
            barrier.wait(timeout=60)
            while True:
                r = assessors[i].c.post("/v1/reviews/claim", {"credential_id": cred["id"]})
                if r.status == 204:
                    return
                if r.status != 200 or not isinstance(r.json, dict):
                    errors.append("claimer %d: %s" % (i, r.describe()))
                    return
                claims[i].append((r.json["id"], r.json["submission"]["id"]))
                if len(claims[i]) > N_SUBMISSIONS:
                    errors.append("claimer %d got more claims than there are submissions" % i)
                    return
        except Exception as e:  # noqa: BLE001
            errors.append("claimer %d: %s: %s" % (i, type(e).__name__, e))

    threads = [threading.Thread(target=claimer, args=(i,), daemon=True)
               for i in range(N_CLAIMERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    check(not any(t.is_alive() for t in threads), "claimer threads still running after 120 s")
    check(not errors, "claim errors:\n" + "\n".join(errors[:10]))
    seen = {}
    for i, lst in enumerate(claims):
        for rid, sid in lst:
            if sid in seen:
                fail("submission %s was claimed twice while its lease was live: by claimer %d "
                     "(review %s) and claimer %d (review %s)" % (sid, seen[sid][0], seen[sid][1],
                                                               i, rid))
            seen[sid] = (i, rid)
    eq(sorted(seen), sorted(subs), "the set of claimed submissions (each exactly once)")
    rids = [rid for lst in claims for rid, _ in lst]
    eq(len(set(rids)), len(rids), "distinct review ids")
    busy = sum(1 for lst in claims if lst)
    check(busy >= 2, "only %d of %d claimers got work" % (busy, N_CLAIMERS))
    for a in assessors[:4]:
        expect(a.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 204,
               what="claim when every submission is leased")

    # release: the submission is claimable again at once, by someone else
    holder = next(i for i, lst in enumerate(claims) if lst)
    rid, sid = claims[holder][0]
    r = expect(assessors[holder].c.post("/v1/reviews/%s/release" % rid), 200)
    eq((r["id"], r["status"]), (rid, "released"), "release answer")
    other = (holder + 1) % N_CLAIMERS
    cl = expect(assessors[other].c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200,
                what="claim right after a release")
    eq(cl["submission"]["id"], sid, "the released submission is the one claimable")
    check(cl["id"] != rid, "a new claim should be a new review, got the released review's id")
    expect(assessors[holder].c.post("/v1/reviews/%s/scores" % rid,
                                    {"scores": env.scores({}), "feedback": "late"}),
           409, "not_active", "scoring a released review")
    claims[holder] = claims[holder][1:]
    claims[other].append((cl["id"], sid))

    # everyone scores everything at once
    def score_all(i):
        out = []
        for rid, sid in claims[i]:
            r = assessors[i].c.post("/v1/reviews/%s/scores" % rid,
                                    {"scores": env.scores({}), "feedback": "Meets."})
            out.append((sid, r))
        return out

    results = parallel(score_all, range(N_CLAIMERS), workers=N_CLAIMERS)
    for lst in results:
        for sid, r in lst:
            j = expect(r, 200, what="concurrent scoring of %s" % sid)
            eq(j["verdict"], "pass", "verdict of %s" % sid)
    lst = expect(lead.c.get("/v1/submissions"), 200)
    statuses = {s["id"]: s["status"] for s in lst["submissions"] if s["id"] in set(subs)}
    eq(statuses, {s: "passed" for s in subs}, "statuses after concurrent scoring")
    msg = s2.stop()
    check(msg is None, msg)


def parse_ts(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


@test
def concurrency_lease_expiry(env):
    s2 = env.start_server("lease2s", {"ACCORD_LEASE_SECONDS": "2"})
    lead = env.user(["lead"])
    rubric = env.rubric(lead)
    cred = env.credential(lead, rubric["id"])
    earner = env.user(["earner"], org="Lease Elementary")
    a = env.user(["assessor"], org="Lease A", server=s2)
    b = env.user(["assessor"], org="Lease B", server=s2)
    env.grant(lead, cred["id"], a)
    env.grant(lead, cred["id"], b)
    sub = env.submit(earner.c, cred["id"], [x["id"] for x, _ in env.evidence(earner.c)])
    t0 = time.monotonic()
    cl_a = expect(a.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200)
    eq(cl_a["submission"]["id"], sub["id"], "A's claim")
    left = (parse_ts(cl_a["lease_expires_at"])
            - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    check(left < 120, "with ACCORD_LEASE_SECONDS=2 the lease should end within seconds, "
          "lease_expires_at=%s (%.0f s from now)" % (cl_a["lease_expires_at"], left))
    r = b.c.post("/v1/reviews/claim", {"credential_id": cred["id"]})
    if time.monotonic() - t0 < 1.5:
        expect(r, 204, what="B's claim while A's lease is live")
    # after the lease, B gets it
    cl_b = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        r = b.c.post("/v1/reviews/claim", {"credential_id": cred["id"]})
        if r.status == 200:
            cl_b = r.json
            break
        expect(r, 204, what="B's claim")
        time.sleep(0.3)
    check(cl_b is not None, "the submission was not claimable 20 s after a 2 s lease expired")
    eq(cl_b["submission"]["id"], sub["id"], "B's claim after A's lease expired")
    check(cl_b["id"] != cl_a["id"], "B's claim must be a new review")
    # A's late score is refused; B's goes through
    expect(a.c.post("/v1/reviews/%s/scores" % cl_a["id"],
                    {"scores": env.scores({}), "feedback": "late"}), 409, "lease_lost",
           "A's late score after B took over")
    res = expect(b.c.post("/v1/reviews/%s/scores" % cl_b["id"],
                          {"scores": env.scores({"student-voice": 2}), "feedback": "B's."}), 200,
                 what="B's score")
    eq(res["verdict"], "resubmit", "B's verdict")
    view = expect(earner.c.get("/v1/submissions/" + sub["id"]), 200)
    eq(view["status"], "returned", "status after B's score")
    levels = {s["criterion"]: s["level"] for s in view["result"]["scores"]}
    eq(levels.get("student-voice"), 2, "the stored score is B's (%s)" % short(str(levels)))
    msg = s2.stop()
    check(msg is None, msg)


@test
def concurrency_duplicate_requests(env):
    """Racing duplicates: one earner submitting 8 times at once, one assessor
    scoring the same review 8 times at once, 8 resubmits of one attempt."""
    lead = env.user(["lead"])
    rubric = env.rubric(lead)
    cred = env.credential(lead, rubric["id"])
    earner = env.user(["earner"], org="Dup Elementary")
    a = env.user(["assessor"], org="Dup Assessors A")
    b = env.user(["assessor"], org="Dup Assessors B")
    env.grant(lead, cred["id"], a)
    env.grant(lead, cred["id"], b)
    ev = [x["id"] for x, _ in env.evidence(earner.c)]

    def race(fn, n=8):
        barrier = threading.Barrier(n)

        def one(_):
            barrier.wait(timeout=30)
            return fn()
        return parallel(one, range(n), workers=n)

    rs = race(lambda: earner.c.post("/v1/submissions", {"credential_id": cred["id"],
                                                        "artifact_ids": ev}))
    ok = [r for r in rs if r.status == 201]
    eq(len(ok), 1, "201s among 8 simultaneous submissions (%s)" % sorted(r.status for r in rs))
    for r in rs:
        if r.status != 201:
            expect(r, 409, "already_submitted", "a losing simultaneous submission")
    sub = ok[0].json
    cl = expect(a.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200)
    body = {"scores": env.scores({"reflection": 2}), "feedback": "Race."}
    rs = race(lambda: a.c.post("/v1/reviews/%s/scores" % cl["id"], body))
    eq(sorted(r.status for r in rs), [200] + [409] * 7, "statuses of 8 simultaneous scorings")
    for r in rs:
        if r.status == 409:
            expect(r, 409, "already_scored", "a losing simultaneous scoring")
    rs = race(lambda: earner.c.post("/v1/submissions/%s/resubmit" % sub["id"],
                                    {"artifact_ids": ev}))
    eq(sorted(r.status for r in rs), [201] + [409] * 7, "statuses of 8 simultaneous resubmits")
    lst = expect(earner.c.get("/v1/submissions"), 200)
    mine = sorted((s["attempt"], s["status"]) for s in lst["submissions"]
                  if s["credential_id"] == cred["id"])
    eq(mine, [(1, "returned"), (2, "queued")], "the earner's submissions after the races")

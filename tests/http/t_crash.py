# SPDX-License-Identifier: Apache-2.0
"""kill -9: everything the server acknowledged survives a crash."""

import os
import threading
import time

from harness import Failure, check, eq, expect, sha256, test


@test
def crash_kill9_keeps_acknowledged_work(env):
    s = env.start_server("crash1")
    lead = env.user(["lead"], server=s)
    rubric = env.rubric(lead)
    cred = env.credential(lead, rubric["id"])
    assessor = env.user(["assessor"], org="Crash Assessors", server=s)
    env.grant(lead, cred["id"], assessor)
    earners = [env.user(["earner"], org="Crash Elementary", server=s) for _ in range(3)]
    evidence = {}
    subs = []
    for e in earners:
        ev = env.evidence(e.c, video_size=64 * 1024 + 7)
        sub = env.submit(e.c, cred["id"], [a["id"] for a, _ in ev])
        subs.append(sub["id"])
        evidence[sub["id"]] = (e, ev)
    # scored (returned), claimed (in_review), untouched (queued)
    cl1 = expect(assessor.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200)
    eq(cl1["submission"]["id"], subs[0], "first claim (oldest first)")
    scores = env.scores({"reflection": 2}, "crash")
    expect(assessor.c.post("/v1/reviews/%s/scores" % cl1["id"],
                           {"scores": scores, "feedback": "Before the crash."}), 200)
    cl2 = expect(assessor.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200)
    eq(cl2["submission"]["id"], subs[1], "second claim")

    # uploads in flight while the server is killed: the acknowledged ones must survive
    acked = []
    stop = threading.Event()
    uploader = earners[2]

    def upload_loop():
        i = 0
        while not stop.is_set() and i < 200:
            data = os.urandom(32 * 1024 + i)
            try:
                r = uploader.c.request("POST", "/v1/artifacts", data=data, timeout=10, headers={
                    "Content-Type": "video/mp4", "X-Artifact-Kind": "video"})
            except Failure:
                return
            if r.status == 201 and isinstance(r.json, dict):
                acked.append((r.json["id"], data))
            i += 1

    t = threading.Thread(target=upload_loop, daemon=True)
    t.start()
    deadline = time.monotonic() + 20
    while len(acked) < 5 and time.monotonic() < deadline and t.is_alive():
        time.sleep(0.05)
    s.kill()               # SIGKILL, mid-upload
    stop.set()
    t.join(30)
    check(len(acked) >= 1, "no upload was acknowledged before the kill")

    s2 = env.start_server("crash2")
    for c in (lead, assessor, *earners):
        c.c = c.on(s2)
    for i, want in enumerate(("returned", "in_review", "queued")):
        e, ev = evidence[subs[i]]
        view = expect(e.c.get("/v1/submissions/" + subs[i]), 200, what="after restart")
        eq(view["status"], want, "status of submission %d after kill -9" % i)
        eq(sorted(a["id"] for a in view["artifacts"]), sorted(a["id"] for a, _ in ev),
           "artifacts of submission %d" % i)
        for a, data in ev:
            r = e.c.get("/v1/artifacts/%s/content" % a["id"])
            expect(r, 200, what="content after kill -9")
            check(r.body == data, "artifact %s: %d bytes sha256 %s after kill -9, expected %d %s"
                  % (a["id"], len(r.body), sha256(r.body), len(data), sha256(data)))
    view = expect(evidence[subs[0]][0].c.get("/v1/submissions/" + subs[0]), 200)
    eq({s["criterion"]: s["level"] for s in view["result"]["scores"]},
       {s["criterion"]: s["level"] for s in scores}, "scores after kill -9")
    eq(view["result"]["feedback"], "Before the crash.", "feedback after kill -9")
    rv = expect(assessor.c.get("/v1/reviews/" + cl2["id"]), 200, what="the active review")
    eq(rv["status"], "active", "the claimed review after kill -9")
    for aid, data in acked:
        r = uploader.c.get("/v1/artifacts/%s/content" % aid)
        expect(r, 200, what="acknowledged in-flight upload %s" % aid)
        check(r.body == data, "acknowledged upload %s came back different" % aid)
    # and the work continues
    res = expect(assessor.c.post("/v1/reviews/%s/scores" % cl2["id"],
                                 {"scores": env.scores({}), "feedback": "After the crash."}), 200)
    eq(res["verdict"], "pass", "scoring the review claimed before the crash")
    msg = s2.stop()
    check(msg is None, msg)

# SPDX-License-Identifier: Apache-2.0
"""Webhooks (issue 14 items 1 and 4): signed deliveries from the transactional
outbox to a real HTTP receiver on loopback, retries after 500, the dead-letter
state and its retry, the delivery log, the address check, and kill -9 between
commit and delivery (and during one) with every event processed once per
idempotency key at the receiver.

The servers here run one delivery thread each (the harness's other servers run
none: ACCORD_OUTBOX_THREADS=0 in run.py), may reach loopback
(ACCORD_WEBHOOK_ALLOW_PRIVATE=1) except where the refusal is the point, and
retry after 100 ms doubling with jitter drawn from ACCORD_RANDOM_SEED: the
assertions hold for any draw (they wait for outcomes, never for times).
"""

import json
import os
import re
import time

from harness import Client, check, eq, expect, is_uuid, sql, test
from t_notify_receiver import Receiver

EVENTS = ["submission.queued", "review.claimed", "submission.result", "award.issued"]


def readme_verify():
    """The README's verification example, as written."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "README.md"), encoding="utf-8") as f:
        m = re.search(r"```python\n(import base64, hashlib, hmac, time\ndef verify.*?)```",
                      f.read(), re.S)
    check(m, "README.md: the webhook verification example is missing")
    ns = {}
    exec(m.group(1), ns)
    return ns["verify"]


def delivering(env, name, **extra):
    e = {"ACCORD_OUTBOX_THREADS": "1", "ACCORD_WEBHOOK_ALLOW_PRIVATE": "1",
         "ACCORD_OUTBOX_RETRY_MS": "100", "ACCORD_OUTBOX_RETRY_MAX": "1",
         "ACCORD_WEBHOOK_TIMEOUT_MS": "3000", "ACCORD_RANDOM_SEED": "14"}
    e.update({k: str(v) for k, v in extra.items()})
    return env.start_server(name, e)


def register(admin_c, url, events, status=201, code=None):
    return expect(admin_c.post("/v1/webhooks", {"url": url, "events": events,
                                                "description": "district HR system"}),
                  status, code, what="register webhook %s" % url)


def metrics(server):
    """/metrics as {series with labels: value}."""
    r = Client(server).get("/metrics")
    expect(r, 200)
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r"(?m)^([a-z_]+(?:\{[^}]*\})?) ([0-9.eE+-]+)$", r.text)}


def flag(lead, user, rubric_id, status):
    return expect(lead.c.post("/v1/assessors/%s/qualifications" % user.id,
                              {"rubric_id": rubric_id, "status": status,
                               "reason": "set by the notification tests"}), 201)


@test
def notify_webhook_signed_retried_logged(env):
    s = delivering(env, "notify-webhooks")
    admin = env.admin.on(s)
    # the first attempt of every message fails with 500; the receiver wants the retry
    rx = Receiver(mode=lambda msg_id, n: 500 if n == 1 else 200)
    hook = None
    try:
        lead = env.user(["lead"], server=s)
        earner = env.user(["earner"], server=s)
        assessor = env.user(["assessor"], server=s)
        # who may register, and what
        expect(lead.c.post("/v1/webhooks", {"url": rx.url(), "events": EVENTS}), 403, "forbidden")
        register(admin, "ftp://example.org/x", EVENTS, 400, "invalid_url")
        register(admin, "https://user:pw@example.org/x", EVENTS, 400, "invalid_url")
        register(admin, rx.url(), ["nonsense.event"], 400, "invalid_events")
        expect(admin.post("/v1/webhooks", {"url": rx.url(), "events": EVENTS,
                                           "secret": "not-a-secret"}), 400, "invalid_secret")
        hook = register(admin, rx.url(), EVENTS)
        check(is_uuid(hook["id"]), "webhook id %r" % hook.get("id"))
        check(hook["secret"].startswith("whsec_") and len(hook["secret"]) >= 40,
              "a secret is made: %r" % hook["secret"])
        rx.secret = hook["secret"]
        listed = expect(admin.get("/v1/webhooks"), 200)["webhooks"]
        mine = [w for w in listed if w["id"] == hook["id"]]
        eq(len(mine), 1, "the webhook is listed")
        check("secret" not in mine[0] and "secret" not in json.dumps(listed),
              "the secret is shown once, never listed")

        # the story: submitted, claimed, scored pass, awarded
        rubric = env.rubric(lead)
        cred = env.credential(lead, rubric["id"], title="Morning Meeting for SEL (webhooks %d)"
                              % env.uniq())
        env.grant(lead, cred["id"], assessor)
        ev = env.evidence(earner.c, video_size=256)
        sub = env.submit(earner.c, cred["id"], [a["id"] for a, _ in ev])
        cl = expect(assessor.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200)
        secret_feedback = "Private feedback %d that no webhook may carry" % env.uniq()
        expect(assessor.c.post("/v1/reviews/%s/scores" % cl["id"],
                               {"scores": env.scores({}, "webhook-score-comment"),
                                "feedback": secret_feedback}), 200)

        def all_types():
            return all(any(b.get("type") == t and b["data"].get("submission_id") == sub["id"]
                           for b in rx.processed.values()) for t in EVENTS)
        rx.wait(all_types, 60, "every event type of the story processed")
        with rx.lock:
            attempts = list(rx.attempts)
            processed = dict(rx.processed)
        for a in attempts:
            check(a["sig_ok"], "every delivery carries a valid signature: %r" % a)
            eq(a["ctype"], "application/json", "content type")
            eq(a["path"], "/hook", "delivered to the registered path")
            check(abs(int(a["timestamp"]) - a["at"]) < 300, "webhook-timestamp is now")
        for msg_id, body in processed.items():
            tries = [a for a in attempts if a["id"] == msg_id]
            check(len(tries) >= 2 and tries[0]["status"] == 500 and tries[-1]["status"] == 200,
                  "%s: answered 500 first, then retried with the same webhook-id: %s"
                  % (msg_id, [(a["nth"], a["status"]) for a in tries]))
            check(is_uuid(msg_id), "webhook-id is the event's id: %r" % msg_id)
            check(set(body) == {"type", "timestamp", "data"}, "body shape %s" % body)
        # the README's example accepts every delivery, and no tampered one
        verify = readme_verify()
        for a in attempts:
            h = {"webhook-id": a["id"], "webhook-timestamp": a["timestamp"],
                 "webhook-signature": a["sig"]}
            check(verify(hook["secret"], h, a["body"]), "README verify() refuses %r" % a["id"])
            check(not verify(hook["secret"], h, a["body"] + b" "), "README verify(): tampering")
        bodies = json.dumps(list(processed.values()))
        for leak in (secret_feedback, "webhook-score-comment", earner.email, earner.name,
                     assessor.email):
            check(leak not in bodies, "webhook bodies must not carry %r" % leak)
        result = [b for b in processed.values() if b["type"] == "submission.result"
                  and b["data"]["submission_id"] == sub["id"]][0]
        eq(result["data"]["verdict"], "pass", "submission.result verdict")
        award = [b for b in processed.values() if b["type"] == "award.issued"
                 and b["data"]["submission_id"] == sub["id"]][0]
        eq(award["data"]["earner_id"], earner.id, "award.issued names the earner's id")

        # the delivery log: both attempts of each message, newest first. A
        # thread records its batch's outcomes together, up to 500 ms after
        # the receiver saw them (outbox.c), so the log may trail the receiver
        # for a moment: poll it (bounded) rather than read it once.
        deadline = time.monotonic() + 30
        while True:
            log = expect(admin.get("/v1/webhooks/%s/deliveries" % hook["id"]), 200)
            statuses = [d["status"] for d in log["deliveries"]]
            if (500 in statuses and 200 in statuses) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        check(500 in statuses and 200 in statuses, "the log shows the 500s and the 200s: %s"
              % statuses)
        check(all(d["delivery_status"] in ("done", "pending") for d in log["deliveries"]),
              "log rows: %s" % log["deliveries"][:3])
        expect(lead.c.get("/v1/webhooks/%s/deliveries" % hook["id"]), 403, "forbidden")
        expect(admin.get("/v1/webhooks/%s/deliveries?bogus=1" % hook["id"]), 400)
    finally:
        if hook:
            expect(admin.delete("/v1/webhooks/%s" % hook["id"]), 204)
            expect(admin.get("/v1/webhooks/%s" % hook["id"]), 404, "not_found")
        rx.close()
        s.stop()


@test
def notify_dead_letters_listed_and_retried(env):
    s = delivering(env, "notify-dead", ACCORD_OUTBOX_ATTEMPTS=2)
    admin = env.admin.on(s)
    healthy = {"on": False}
    rx = Receiver(mode=lambda msg_id, n: 200 if healthy["on"] else 500)
    hook = None
    try:
        lead = env.user(["lead"], server=s)
        assessor = env.user(["assessor"], server=s)
        earner = env.user(["earner"], server=s)
        rubric = env.rubric(lead)
        hook = register(admin, rx.url(), ["assessor.recalibration_needed"])
        rx.secret = hook["secret"]
        m0 = metrics(s)
        for series in ('accord_outbox_delivered_total{channel="webhook"}',
                       'accord_outbox_delivered_total{channel="email"}',
                       'accord_outbox_failed_attempts_total{channel="webhook"}',
                       'accord_outbox_failed_attempts_total{channel="email"}'):
            eq(m0.get(series), 0.0, "/metrics %s of a server that delivered nothing" % series)
        for series in ('accord_outbox_pending{channel="webhook"}',
                       'accord_outbox_pending{channel="email"}',
                       'accord_outbox_dead{channel="webhook"}',
                       'accord_outbox_dead{channel="email"}',
                       "accord_outbox_oldest_pending_age_seconds"):
            check(series in m0, "/metrics has %s: %s" % (series, sorted(m0)[:5]))
        flag(lead, assessor, rubric["id"], "needs_recalibration")
        # two attempts, both 500: dead
        dead = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and dead is None:
            rows = expect(lead.c.get("/v1/outbox/dead"), 200)["deliveries"]
            dead = next((d for d in rows if d["webhook_id"] == hook["id"]), None)
            if dead is None:
                time.sleep(0.1)
        check(dead is not None, "the delivery is dead-lettered after 2 attempts")
        eq(dead["attempts"], 2, "dead after ACCORD_OUTBOX_ATTEMPTS attempts")
        eq(dead["last_status"], 500, "the last answer")
        eq(dead["type"], "assessor.recalibration_needed", "type")
        check("payload" not in dead, "a dead letter does not show its payload")
        eq(sum(1 for a in rx.attempts if a["id"] == dead["event_id"]), 2, "two attempts")
        m1 = metrics(s)
        eq(m1['accord_outbox_failed_attempts_total{channel="webhook"}'], 2.0,
           "/metrics: two failed attempts")
        eq(m1['accord_outbox_delivered_total{channel="webhook"}'], 0.0, "/metrics: none delivered")
        eq(m1['accord_outbox_dead{channel="webhook"}'],
           m0['accord_outbox_dead{channel="webhook"}'] + 1, "/metrics: one more dead delivery")
        expect(earner.c.get("/v1/outbox/dead"), 403, "forbidden")
        expect(lead.c.post("/v1/outbox/retry", {}), 400)
        expect(lead.c.post("/v1/outbox/retry", {"ids": [7]}), 400)
        expect(earner.c.post("/v1/outbox/retry", {"ids": [dead["id"]]}), 403, "forbidden")
        # the receiver is fixed; the lead retries it
        healthy["on"] = True
        eq(expect(lead.c.post("/v1/outbox/retry", {"ids": [dead["id"]]}), 200)["retried"], 1,
           "one dead delivery retried")
        rx.wait(lambda: dead["event_id"] in rx.processed, 30, "the retried delivery")
        deadline = time.monotonic() + 30
        while True:   # the receiver answered before the server recorded it
            m2 = metrics(s)
            if m2['accord_outbox_delivered_total{channel="webhook"}'] >= 1 or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.05)
        eq(m2['accord_outbox_delivered_total{channel="webhook"}'], 1.0, "/metrics: one delivered")
        eq(m2['accord_outbox_dead{channel="webhook"}'], m0['accord_outbox_dead{channel="webhook"}'],
           "/metrics: the retried delivery is no longer dead")
        rows = expect(lead.c.get("/v1/outbox/dead"), 200)["deliveries"]
        check(all(d["id"] != dead["id"] for d in rows), "no longer dead")
        eq(expect(lead.c.post("/v1/outbox/retry", {"ids": [dead["id"]]}), 200)["retried"], 0,
           "a delivered one is not retried again")
    finally:
        if hook:
            expect(admin.delete("/v1/webhooks/%s" % hook["id"]), 204)
        rx.close()
        s.stop()


@test
def notify_webhook_refuses_private_addresses(env):
    """Without ACCORD_WEBHOOK_ALLOW_PRIVATE a loopback URL is refused when it is
    registered, and a name that resolves to loopback is refused when the
    delivery connects (the address actually connected is checked)."""
    strict = delivering(env, "notify-strict", ACCORD_WEBHOOK_ALLOW_PRIVATE=0)
    lax = env.start_server("notify-lax", {"ACCORD_OUTBOX_THREADS": "0",
                                          "ACCORD_WEBHOOK_ALLOW_PRIVATE": "1"})
    rx = Receiver()
    hook = None
    try:
        admin = env.admin.on(strict)
        for url in (rx.url(), "http://localhost:%d/hook" % rx.port, "http://[::1]:9/x",
                    "http://169.254.169.254/latest/meta-data", "http://10.0.0.7/x",
                    "http://192.168.1.1/x", "http://[::ffff:127.0.0.1]:9/x"):
            register(admin, url, ["assessor.recalibration_needed"], 400, "invalid_url")
        # registered where it is allowed, by a name (not an address)
        hook = register(env.admin.on(lax), "http://localhost:%d/hook" % rx.port,
                        ["assessor.recalibration_needed"])
        rx.secret = hook["secret"]
        lead = env.user(["lead"], server=strict)
        assessor = env.user(["assessor"], server=strict)
        rubric = env.rubric(lead)
        flag(lead, assessor, rubric["id"], "needs_recalibration")
        log = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not log:
            log = expect(admin.get("/v1/webhooks/%s/deliveries" % hook["id"]), 200)["deliveries"]
            if not log:
                time.sleep(0.1)
        check(log, "the strict server attempted the delivery")
        check("refused to connect to 127.0.0.1" in (log[-1]["error"] or "")
              or "refused to connect to ::1" in (log[-1]["error"] or ""),
              "the delivery was refused at connect: %s" % log[-1])
        eq(log[-1]["status"], None, "no answer: nothing was sent")
        eq(rx.attempts, [], "the receiver saw nothing")
    finally:
        if hook:
            expect(env.admin.on(lax).delete("/v1/webhooks/%s" % hook["id"]), 204)
        rx.close()
        strict.stop()
        lax.stop()


@test
def notify_kill9_delivers_once_per_key(env):
    """kill -9 between commit and delivery: two servers then share the
    deliveries (SKIP LOCKED: each sent once); kill -9 in the middle of a
    delivery: it is sent again with its id, and every event is processed once
    per webhook-id."""
    held = {"id": None, "release": False, "armed": False}

    def mode(msg_id, n):
        if held["armed"] and held["id"] is None:
            held["id"] = msg_id  # hold the first delivery of the second round
        if held["armed"] and msg_id == held["id"] and n == 1:
            deadline = time.monotonic() + 10
            while not held["release"] and time.monotonic() < deadline:
                time.sleep(0.02)
        return 200

    rx = Receiver(mode=mode)
    quiet = env.start_server("notify-quiet", {"ACCORD_OUTBOX_THREADS": "0",
                                              "ACCORD_WEBHOOK_ALLOW_PRIVATE": "1"})
    hook = None
    servers = [quiet]
    n = 5
    try:
        admin = env.admin.on(quiet)
        hook = register(admin, rx.url(), ["assessor.recalibration_needed",
                                          "assessor.qualification_regained"])
        rx.secret = hook["secret"]
        lead = env.user(["lead"], server=quiet)
        assessors = [env.user(["assessor"], server=quiet) for _ in range(n)]
        rubric = env.rubric(lead)
        # 1: committed, not delivered (no delivery thread), then kill -9
        for a in assessors:
            flag(lead, a, rubric["id"], "needs_recalibration")
        quiet.kill()
        s1 = delivering(env, "notify-after-kill")
        s1b = delivering(env, "notify-after-kill-b")
        servers += [s1, s1b]
        rx.wait(lambda: len(rx.processed) >= n, 30, "the events committed before the kill")
        with rx.lock:
            first = list(rx.processed)
            attempts = [a["id"] for a in rx.attempts]
        for msg_id in first:
            eq(attempts.count(msg_id), 1, "two servers, no failures: %s sent once" % msg_id)
        msg = s1b.stop()
        check(msg is None, msg)
        # 2: kill -9 while a delivery is in flight (the receiver holds it)
        held["armed"] = True
        lead2 = env.user(["lead"], server=s1)
        for a in assessors:
            flag(lead2, a, rubric["id"], "qualified")
        rx.wait(lambda: held["id"] is not None, 30, "the held delivery")
        s1.kill()
        held["release"] = True
        s2 = delivering(env, "notify-after-kill2")
        servers.append(s2)
        rx.wait(lambda: len(rx.processed) >= 2 * n, 60, "every event after the second kill")
        # the cut delivery's lease ends; the next server sends it again, same id
        rx.wait(lambda: sum(1 for a in rx.attempts if a["id"] == held["id"]) >= 2, 60,
                "the cut delivery sent again")
        with rx.lock:
            processed = dict(rx.processed)
        eq(len(processed), 2 * n, "every event, each processed once (by its webhook-id)")
        types = sorted(b["type"] for b in processed.values())
        eq(types, ["assessor.qualification_regained"] * n + ["assessor.recalibration_needed"] * n,
           "the events")
        check(held["id"] in rx.duplicates, "the receiver saw the cut delivery's id again")
    finally:
        held["release"] = True
        if hook:
            live = [x for x in servers if x.alive()]
            expect(env.admin.on(live[-1] if live else env.server).delete(
                "/v1/webhooks/%s" % hook["id"]), 204)
        rx.close()
        for srv in servers:
            if srv.alive() and not srv.finished:
                srv.stop()


@test
def notify_webhook_adjudication_lease_overdue(env):
    """The events of double scoring and of time: a disagreement waits for
    adjudication; a claim's lease nears its end (--lease-warn longer than the
    lease: at once); a submission outgrows the turnaround target (its age moved
    back by SQL, the only way to move time). The last two come from the scan
    every server runs; each is sent once however many scans see it."""
    s = delivering(env, "notify-scan", ACCORD_LEASE_WARN=86400, ACCORD_TURNAROUND_HOURS=1)
    admin = env.admin.on(s)
    rx = Receiver()
    hook = None
    try:
        hook = register(admin, rx.url(), ["adjudication.waiting", "review.lease_expiring",
                                          "submission.overdue"])
        rx.secret = hook["secret"]
        lead = env.user(["lead"], server=s)
        peer = env.user(["assessor"], server=s)
        expert = env.user(["expert"], server=s)
        earner = env.user(["earner"], server=s)
        rubric = env.rubric(lead)
        cred = env.credential(lead, rubric["id"], review_policy={
            "validity_rate": 0, "second_score_rate": 1.0, "second_score_floor": 1.0})
        env.grant(lead, cred["id"], peer)
        env.grant(lead, cred["id"], expert, pool="expert", waive_award=None)
        ev = env.evidence(earner.c, video_size=128)
        sub = env.submit(earner.c, cred["id"], [a["id"] for a, _ in ev])
        c1 = expect(peer.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200)
        rx.wait(lambda: any(b["type"] == "review.lease_expiring"
                            and b["data"]["review_id"] == c1["id"] for b in rx.processed.values()),
                30, "review.lease_expiring for the claim")
        expect(peer.c.post("/v1/reviews/%s/scores" % c1["id"],
                           {"scores": env.scores({}, "a"), "feedback": "A"}), 200)
        c2 = expect(expert.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200)
        expect(expert.c.post("/v1/reviews/%s/scores" % c2["id"],
                             {"scores": env.scores({"meeting-structure": 1,
                                                    "sel-connection": 1}, "b"),
                              "feedback": "B"}), 200)
        rx.wait(lambda: any(b["type"] == "adjudication.waiting"
                            and b["data"]["submission_id"] == sub["id"]
                            for b in rx.processed.values()), 30, "adjudication.waiting")
        sql(env, "UPDATE submissions SET created_at = created_at - interval '2 hours' "
                 "WHERE id = '%s'" % sub["id"])
        rx.wait(lambda: any(b["type"] == "submission.overdue"
                            and b["data"]["submission_id"] == sub["id"]
                            for b in rx.processed.values()), 30, "submission.overdue")
        time.sleep(6)  # more scans (every 5 s): none sends either again
        with rx.lock:
            kinds = [(b["type"], b["data"].get("submission_id")) for b in rx.processed.values()]
        eq(kinds.count(("submission.overdue", sub["id"])), 1, "overdue, once")
        eq(sum(1 for b in rx.processed.values() if b["type"] == "review.lease_expiring"
               and b["data"]["review_id"] == c1["id"]), 1, "lease warning, once")
        # the lead adjudicates: no open adjudication is left for later tests' leads
        adj = expect(lead.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200)
        eq(adj["submission"]["id"], sub["id"], "the lead claims the adjudication")
        expect(lead.c.post("/v1/reviews/%s/scores" % adj["id"],
                           {"scores": env.scores({}, "adj"), "feedback": "Adjudicated."}), 200)
    finally:
        if hook:
            expect(admin.delete("/v1/webhooks/%s" % hook["id"]), 204)
        rx.close()
        msg = s.stop()
    check(msg is None, msg)


@test
def notify_overdue_per_credential_target(env):
    """Each credential may promise its own turnaround (review_policy.
    turnaround_hours; programmes promise 5 or 14 business days): leads hear of
    a submission waiting longer than its credential's target, else the
    server's --turnaround-hours."""
    s = delivering(env, "notify-turnaround", ACCORD_TURNAROUND_HOURS=1000)
    admin = env.admin.on(s)
    rx = Receiver()
    hook = None
    try:
        hook = register(admin, rx.url(), ["submission.overdue"])
        rx.secret = hook["secret"]
        lead = env.user(["lead"], server=s)
        earner = env.user(["earner"], server=s)
        rubric = env.rubric(lead)
        fast = env.credential(lead, rubric["id"], videos=1, title="Turnaround: two days",
                              review_policy={"turnaround_hours": 48})
        eq(fast["review_policy"]["turnaround_hours"], 48, "the target, as created")
        slow = env.credential(lead, rubric["id"], videos=1, title="Turnaround: server default")
        eq(slow["review_policy"]["turnaround_hours"], None, "no target: the server's")
        # out of range: 422 as every policy field; not an integer: 400
        for bad, status, code in ((0, 422, "invalid_policy"), (8761, 422, "invalid_policy"),
                                  (1.5, 400, None), ("48", 400, None)):
            expect(lead.c.request("PUT", "/v1/credentials/%s/policy" % slow["id"],
                                  {"turnaround_hours": bad}), status, code,
                   what="turnaround_hours %r" % (bad,))
        eq(expect(lead.c.request("PUT", "/v1/credentials/%s/policy" % fast["id"],
                             {"turnaround_hours": 1}), 200)["turnaround_hours"], 1,
           "the target, changed")
        subs = []
        for cred in (fast, slow):
            ev = env.evidence(earner.c, video_size=128, videos=1)
            subs.append(env.submit(earner.c, cred["id"], [a["id"] for a, _ in ev])["id"])
        # both two hours old in one statement: the scan that finds one sees both
        sql(env, "UPDATE submissions SET created_at = created_at - interval '2 hours' "
                 "WHERE id IN ('%s', '%s')" % tuple(subs))
        rx.wait(lambda: any(b["type"] == "submission.overdue"
                            and b["data"]["submission_id"] == subs[0]
                            for b in rx.processed.values()), 30,
                "submission.overdue past the credential's own target")
        with rx.lock:
            overdue = [b["data"] for b in rx.processed.values()
                       if b["type"] == "submission.overdue" and b["data"]["submission_id"] in subs]
        eq([d["submission_id"] for d in overdue], [subs[0]],
           "only the submission past its credential's target (the other's is the server's 1000 h)")
        eq(overdue[0]["turnaround_hours"], 1, "the target in the event")
    finally:
        if hook:
            expect(admin.delete("/v1/webhooks/%s" % hook["id"]), 204)
        rx.close()
        s.stop()

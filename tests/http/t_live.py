# SPDX-License-Identifier: Apache-2.0
"""Live updates (issue 14 item 3): GET /v1/events, a Server-Sent Events stream
per signed-in user, fed by LISTEN/NOTIFY.

Every wait below is bounded (WAIT seconds) and asserts that an event arrives,
never how fast: a stream that never gets its event fails; a slow machine does
not. Clients are plain sockets on loopback, reading the chunked text/event-stream
as a browser's EventSource would (id, event, data lines; Last-Event-ID)."""

import json
import os
import re
import selectors
import signal
import socket
import subprocess
import threading
import time

from harness import HOST, Client, Failure, check, eq, expect, short, sql, test

WAIT = 15.0   # bound on every wait for an event (seconds)


class Stream:
    """One SSE client on its own socket and reader thread."""

    def __init__(self, server, token=None, session=None, last_id=None, expect_status=200):
        self.events = []          # (id, name, data as JSON)
        self.comments = 0         # comment lines (heartbeats)
        self.cond = threading.Condition()
        self.closed = False
        self.status = None
        self.head = b""
        self.sock = socket.create_connection((HOST, server.port), timeout=WAIT)
        hdrs = ["GET /v1/events HTTP/1.1", "Host: %s:%d" % (HOST, server.port),
                "Accept: text/event-stream"]
        if token:
            hdrs.append("Authorization: Bearer %s" % token)
        if session:
            hdrs.append("Cookie: accord_session=%s" % session)
        if last_id is not None:
            hdrs.append("Last-Event-ID: %s" % last_id)
        self.sock.sendall(("\r\n".join(hdrs) + "\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            buf += chunk
        self.head, _, rest = buf.partition(b"\r\n\r\n")
        m = re.match(rb"HTTP/1\.1 (\d{3})", self.head)
        self.status = int(m.group(1)) if m else None
        if self.status != expect_status:
            self.sock.close()
            raise Failure("GET /v1/events: expected %d, got %r: %s"
                          % (expect_status, self.status, short((self.head + b"\n" + rest)
                                                              .decode("utf-8", "replace"))))
        self.body = rest
        if self.status != 200:
            self.sock.close()
            self.closed = True
            return
        check(b"text/event-stream" in self.head.lower(),
              "GET /v1/events: Content-Type should be text/event-stream: %r" % self.head)
        self.thread = threading.Thread(target=self._read, args=(rest,), daemon=True)
        self.thread.start()

    def header(self, name):
        m = re.search(rb"(?im)^" + re.escape(name.encode()) + rb":\s*(.*?)\r?$", self.head)
        return m.group(1).decode() if m else None

    def _read(self, rest):
        raw = rest            # chunked transfer coding, undone here
        text = b""
        try:
            while True:
                while True:
                    m = re.match(rb"([0-9a-fA-F]+)\r\n", raw)
                    if not m:
                        break
                    n = int(m.group(1), 16)
                    if len(raw) < m.end() + n + 2:
                        break
                    if n == 0:
                        raise EOFError
                    text += raw[m.end():m.end() + n]
                    raw = raw[m.end() + n + 2:]
                    self._parse(text)
                    text = text[text.rfind(b"\n\n") + 2:] if b"\n\n" in text else text
                self.sock.settimeout(None)
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                raw += chunk
        except (OSError, EOFError):
            pass
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def _parse(self, text):
        # complete blocks only; the caller then keeps just the incomplete tail
        for block in text.split(b"\n\n")[:-1]:
            ev = {"id": None, "event": "message", "data": []}
            comment = True
            for line in block.decode("utf-8").split("\n"):
                if line.startswith(":"):
                    with self.cond:
                        self.comments += 1
                        self.cond.notify_all()
                if line.startswith(":") or not line:
                    continue
                comment = False
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "data":
                    ev["data"].append(value)
                elif field in ("id", "event", "retry"):
                    ev[field] = value
            if comment or not ev["data"]:
                continue
            with self.cond:
                self.events.append((ev["id"], ev["event"], json.loads("\n".join(ev["data"]))))
                self.cond.notify_all()

    def wait(self, pred, what, timeout=WAIT):
        """The first event (id, name, data) for which pred holds; fails after timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for ev in self.events:
                    if pred(*ev):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    raise Failure("%s: not seen within %.0f s%s; events: %s"
                                  % (what, timeout, " (stream closed)" if self.closed else "",
                                     short(repr(self.events), 1500)))
                self.cond.wait(min(left, 0.5))

    def wait_comments(self, n, what, timeout=WAIT):
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.comments < n:
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    raise Failure("%s: %d comment lines within %.0f s, wanted %d"
                                  % (what, self.comments, timeout, n))
                self.cond.wait(min(left, 0.5))

    def wait_closed(self, what, timeout=WAIT):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not self.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Failure("%s: the stream stayed open for %.0f s" % (what, timeout))
                self.cond.wait(min(left, 0.5))

    def names(self):
        with self.cond:
            return [e[1] for e in self.events]

    def all(self):
        with self.cond:
            return list(self.events)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def is_ready(i, n, d):
    return n == "ready"


def queue_of(cred_id, waiting=None):
    return lambda i, n, d: (n == "queue" and d.get("credential_id") == cred_id
                            and (waiting is None or d.get("waiting") == waiting))


def setup_cred(env, lead, pool="peer", policy=None, title=None):
    rubric = env.rubric(lead)
    cred = env.credential(lead, rubric["id"], videos=1, review_policy=policy, title=title)
    return cred


def evidence_ids(env, earner):
    return [a["id"] for a, _ in env.evidence(earner.c, video_size=256, videos=1)]


@test
def live_queue_and_own_submissions(env):
    """An assessor's stream shows the queue count of their grant rise when an
    earner submits; the earner's own stream shows the submission's status; a
    second earner's stream never shows the first earner's submission."""
    lead = env.user(["lead"])
    assessor = env.user(["assessor"])
    earner = env.user(["earner"])
    other = env.user(["earner"])
    cred = setup_cred(env, lead, title="Live queue #%d" % env.uniq())
    env.grant(lead, cred["id"], assessor)
    a = Stream(env.server, token=assessor.token)
    e = Stream(env.server, token=earner.token)
    o = Stream(env.server, token=other.token)
    try:
        for s, who in ((a, "assessor"), (e, "earner"), (o, "other earner")):
            s.wait(is_ready, "%s's stream: ready" % who)
        eq(a.header("Cache-Control"), "no-store", "GET /v1/events Cache-Control")
        _, _, q0 = a.wait(queue_of(cred["id"]), "assessor: the grant's queue count on opening")
        eq(q0["waiting"], 0, "queue count before any submission")
        eq(q0["pool"], "peer", "queue event's pool")
        eq(q0["title"], cred["title"], "queue event's title")
        sub = env.submit(earner.c, cred["id"], evidence_ids(env, earner))
        _, _, q1 = a.wait(queue_of(cred["id"], 1), "assessor: queue count 1 after a submission")
        eq(q1["stages"], {"first": 1, "second": 0, "adjudication": 0}, "queue stages")
        _, _, mine = e.wait(lambda i, n, d: n == "submission" and d["id"] == sub["id"],
                            "earner: own submission's status")
        eq(mine["status"], "queued", "submission event status")
        eq(mine["credential_id"], cred["id"], "submission event credential")
        check("earner_id" not in mine and "result" not in mine,
              "a submission event carries its state only: %r" % mine)
        # the other earner's own submission is the barrier: after it, nothing of the first
        osub = env.submit(other.c, cred["id"], evidence_ids(env, other))
        o.wait(lambda i, n, d: n == "submission" and d["id"] == osub["id"],
               "other earner: own submission")
        a.wait(queue_of(cred["id"], 2), "assessor: queue count 2")
        # the assessor claims: the earner sees in_review, the count falls
        claim = expect(assessor.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200)
        claimed = claim["submission"]["id"]
        target = e if claimed == sub["id"] else o
        target.wait(lambda i, n, d: n == "submission" and d["id"] == claimed
                    and d["status"] == "in_review", "earner: in_review after the claim")
        a.wait(queue_of(cred["id"], 1), "assessor: queue count back to 1 after the claim")
        for ev in o.all():
            check(sub["id"] not in json.dumps(ev[2]),
                  "another earner's stream shows the first earner's submission: %r" % (ev,))
        for ev in e.all():
            check(osub["id"] not in json.dumps(ev[2]),
                  "an earner's stream shows another earner's submission: %r" % (ev,))
        check("queue" not in e.names() and "routing" not in e.names(),
              "an earner without grants gets no queue or routing events: %r" % e.names())
        check("submission" not in a.names(),
              "an assessor sees no earner's submission events: %r" % a.names())
    finally:
        for s in (a, e, o):
            s.close()


@test
def live_resume_with_last_event_id(env):
    """A client that comes back with Last-Event-ID gets what changed for it
    meanwhile: here, its submission returned with feedback."""
    lead = env.user(["lead"])
    assessor = env.user(["assessor"])
    earner = env.user(["earner"])
    cred = setup_cred(env, lead)
    env.grant(lead, cred["id"], assessor)
    sub = env.submit(earner.c, cred["id"], evidence_ids(env, earner))
    s = Stream(env.server, token=earner.token)
    try:
        last, _, ready = s.wait(is_ready, "earner: ready")
        eq(ready["resumed"], False, "a fresh stream's ready.resumed")
        check(last is not None and last.isdigit(), "events carry a numeric id: %r" % last)
    finally:
        s.close()
    claim = expect(assessor.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200)
    eq(claim["submission"]["id"], sub["id"], "the claimed submission")
    expect(assessor.c.post("/v1/reviews/%s/scores" % claim["id"],
                           {"scores": env.scores({"reflection": 1}), "feedback": "Not yet."}), 200)
    s = Stream(env.server, token=earner.token, last_id=last)
    try:
        _, _, got = s.wait(lambda i, n, d: n == "submission" and d["id"] == sub["id"]
                           and d["status"] == "returned", "resumed: the submission returned")
        _, _, ready = s.wait(is_ready, "resumed: ready")
        eq(ready["resumed"], True, "a resumed stream's ready.resumed")
        ids = [int(i) for i, _, _ in s.all() if i is not None]
        check(ids == sorted(ids) and ids[0] >= int(last), "ids only grow: %r (from %s)"
              % (ids, last))
    finally:
        s.close()
    # a malformed Last-Event-ID is no id: a fresh stream
    s = Stream(env.server, token=earner.token, last_id="not-a-number")
    try:
        _, _, ready = s.wait(is_ready, "bad Last-Event-ID: ready")
        eq(ready["resumed"], False, "a malformed Last-Event-ID starts afresh")
    finally:
        s.close()


@test
def live_auth_and_end(env):
    """No credential: 401 in the API's error shape. Sign-out and token
    revocation end the stream with `end`; the user's other streams go on."""
    r = env.admin.c.anon().get("/v1/events")
    expect(r, 401, "unauthorized")
    earner = env.user(["earner"], session=True)
    token_stream = Stream(env.server, token=earner.token)
    cookie_stream = Stream(env.server, session=earner.c.session)
    try:
        cookie_stream.wait(is_ready, "cookie stream: ready")
        token_stream.wait(is_ready, "token stream: ready")
        expect(earner.c.delete("/v1/sessions/current"), 204)
        _, _, end = cookie_stream.wait(lambda i, n, d: n == "end", "cookie stream: end at sign-out")
        eq(end["reason"], "signed_out", "end reason")
        cookie_stream.wait_closed("cookie stream after end")
        check(not token_stream.closed, "the token's stream must outlive the cookie session")
        # revoking the token ends its stream
        mine = expect(Client(env.server, earner.token).get("/v1/me/tokens"), 200)
        toks = mine["tokens"] if isinstance(mine, dict) else mine
        check(len(toks) >= 1, "the earner's tokens are listed: %r" % mine)
        for t in toks:
            expect(env.admin.c.delete("/v1/tokens/%s" % t["id"]), 204)
        _, _, end = token_stream.wait(lambda i, n, d: n == "end", "token stream: end at revocation")
        eq(end["reason"], "signed_out", "end reason after revocation")
    finally:
        token_stream.close()
        cookie_stream.close()
    # a disabled user's stream ends too
    assessor = env.user(["assessor"])
    s = Stream(env.server, token=assessor.token)
    try:
        s.wait(is_ready, "assessor: ready")
        expect(env.admin.c.patch("/v1/users/%s" % assessor.id, {"disabled": True}), 200)
        s.wait(lambda i, n, d: n == "end", "stream of a disabled user: end")
    finally:
        s.close()


@test
def live_lead_routing(env):
    """A lead's stream: adjudication waiting (a peer and an expert disagree on
    a double-scored submission), and peer review paused for a credential."""
    lead = env.user(["lead"])
    peer = env.user(["assessor"])
    expert = env.user(["expert"])
    earner = env.user(["earner"])
    cred = setup_cred(env, lead, policy={"validity_rate": 0, "second_score_rate": 1})
    env.grant(lead, cred["id"], peer, pool="peer")
    env.grant(lead, cred["id"], expert, pool="expert")
    ls = Stream(env.server, token=lead.token)
    xs = Stream(env.server, token=expert.token)
    try:
        ls.wait(is_ready, "lead: ready")
        xs.wait(is_ready, "expert: ready")
        env.submit(earner.c, cred["id"], evidence_ids(env, earner))
        c1 = expect(peer.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200)
        expect(peer.c.post("/v1/reviews/%s/scores" % c1["id"],
                           {"scores": env.scores({}, "fine"), "feedback": "Meets."}), 200)
        _, _, q = xs.wait(lambda i, n, d: n == "queue" and d["credential_id"] == cred["id"]
                          and d["stages"]["second"] == 1, "expert: a second score waiting")
        eq(q["pool"], "expert", "expert's queue pool")
        eq(q["waiting"], 1, "an expert's waiting counts the second score")
        c2 = expect(expert.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200)
        expect(expert.c.post("/v1/reviews/%s/scores" % c2["id"],
                             {"scores": env.scores({k: 1 for k in ("reflection", "student-voice")},
                                                   "weak"), "feedback": "Not yet."}), 200)
        _, _, r = ls.wait(lambda i, n, d: n == "routing" and d["credential_id"] == cred["id"]
                          and d["adjudication_waiting"] == 1, "lead: adjudication waiting")
        eq(r["peer_review"], "active", "routing peer_review")
        # peer review paused (as routing_update() does when reliability falls)
        sql(env, "UPDATE credentials SET peer_paused_at = now() WHERE id = '%s'" % cred["id"])
        ls.wait(lambda i, n, d: n == "routing" and d["credential_id"] == cred["id"]
                and d["peer_review"] == "paused", "lead: peer review paused")
        xs.wait(lambda i, n, d: n == "queue" and d["credential_id"] == cred["id"]
                and d["peer_review"] == "paused", "expert: the queue shows peer review paused")
        sql(env, "UPDATE credentials SET peer_paused_at = NULL WHERE id = '%s'" % cred["id"])
        ls.wait(lambda i, n, d: n == "routing" and d["credential_id"] == cred["id"]
                and d["peer_review"] == "active" and d["adjudication_waiting"] == 1
                and i is not None, "lead: peer review resumed")
        check("routing" not in xs.names(), "an expert (not a lead) gets no routing events")
        # the lead adjudicates (and leaves no open adjudication to the tests after this one)
        adj = expect(lead.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200,
                     what="the lead claims the adjudication")
        check("adjudication" in adj, "the lead's claim should be the adjudication: %s"
              % short(json.dumps(adj)))
        expect(lead.c.post("/v1/reviews/%s/scores" % adj["id"],
                           {"scores": env.scores({}, "adjudicated"), "feedback": "Meets."}), 200)
        ls.wait(lambda i, n, d: n == "routing" and d["credential_id"] == cred["id"]
                and d["adjudication_waiting"] == 0, "lead: no adjudication waiting any more")
        # a new grant shows up on an open stream
        cred2 = setup_cred(env, lead)
        env.grant(lead, cred2["id"], expert, pool="expert")
        xs.wait(queue_of(cred2["id"], 0), "expert: a new grant's queue on the open stream")
    finally:
        ls.close()
        xs.close()


def metric_value(server, name):
    r = Client(server).get("/metrics")
    expect(r, 200)
    m = re.search(r"(?m)^%s (\d+)" % re.escape(name), r.text)
    return int(m.group(1)) if m else None


def wait_metric(server, name, pred, what):
    deadline = time.monotonic() + WAIT
    while True:
        v = metric_value(server, name)
        if v is not None and pred(v):
            return v
        if time.monotonic() > deadline:
            raise Failure("%s: %s stayed %r for %.0f s" % (what, name, v, WAIT))
        time.sleep(0.05)


@test
def live_stream_limits(env):
    """--live-streams-per-user refuses a person's next stream with 429
    too_many_streams, --live-streams the server's next with 503; a stream the
    client closes is given back."""
    srv = env.start_server("live-limits", {"ACCORD_LIVE_STREAMS_PER_USER": "2",
                                           "ACCORD_LIVE_STREAMS": "3",
                                           "ACCORD_LIVE_HEARTBEAT": "1"})
    a, b, c = (env.user(["earner"]) for _ in range(3))
    opened = []
    try:
        opened += [Stream(srv, token=a.token), Stream(srv, token=a.token)]
        for s in opened:
            s.wait(is_ready, "a stream within the bounds: ready")
        r = Client(srv, a.token).get("/v1/events")
        expect(r, 429, "too_many_streams", what="a third stream of one person")
        opened.append(Stream(srv, token=b.token))
        opened[-1].wait(is_ready, "another person's stream: ready")
        r = Client(srv, c.token).get("/v1/events")
        expect(r, 503, "busy", what="a stream past the server's bound")
        check(r.header("retry-after") is not None, "503 should say Retry-After")
        eq(metric_value(srv, "accord_live_streams"), 3, "accord_live_streams")
        opened.pop(0).close()
        wait_metric(srv, "accord_live_streams", lambda v: v == 2,
                    "a stream the client closed is given back")
        opened.append(Stream(srv, token=c.token))
        opened[-1].wait(is_ready, "a stream after one closed: ready")
        # --live-heartbeat 1: comment lines keep a quiet stream alive
        opened[-1].wait_comments(2, "heartbeats on a quiet stream")
    finally:
        for s in opened:
            s.close()
    check(srv.stop() is None, "the limits server should stop cleanly")


@test
def live_every_server_sees_every_change(env):
    """A stream on a second server shows a submission made through the first:
    the change travels through the database (NOTIFY), not the server's memory."""
    srv2 = env.start_server("live-second")
    lead = env.user(["lead"])
    assessor = env.user(["assessor"])
    earner = env.user(["earner"])
    cred = setup_cred(env, lead)
    env.grant(lead, cred["id"], assessor)
    s2 = Stream(srv2, token=assessor.token)
    e2 = Stream(srv2, token=earner.token)
    try:
        s2.wait(queue_of(cred["id"], 0), "second server: the queue on opening")
        e2.wait(is_ready, "second server: the earner's stream ready")
        sub = env.submit(earner.c, cred["id"], evidence_ids(env, earner))   # the main server
        s2.wait(queue_of(cred["id"], 1), "second server: the count after a submission made "
                "through the first")
        e2.wait(lambda i, n, d: n == "submission" and d["id"] == sub["id"],
                "second server: the earner's own submission")
    finally:
        s2.close()
        e2.close()
    check(srv2.stop() is None, "the second server should stop cleanly")


@test
def live_commits_do_not_notify(env):
    """A NOTIFY inside a writer's transaction makes every notifying commit of
    the cluster wait for the others (db/migrations/022_notify2.sql): no
    trigger sends one, and of all SQL functions only rare administrative
    ones (sign-out and revocation, a dead delivery retried, an invitation)
    do. Changes are announced by each server after its own requests, and read
    by a catch-up query."""
    triggers = sql(env, "SELECT coalesce(string_agg(DISTINCT p.proname, ','), '') "
                        "FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid "
                        "WHERE NOT t.tgisinternal AND p.prosrc LIKE '%pg_notify%'")
    eq(triggers, "", "trigger functions that NOTIFY")
    funcs = sql(env, "SELECT coalesce(string_agg(p.proname, ',' ORDER BY p.proname), '') "
                     "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                     "WHERE n.nspname = current_schema() AND p.prosrc LIKE '%pg_notify%'")
    eq(sorted(funcs.split(",")), ["_auth_changed", "api_invitation_create_mail", "api_outbox_retry",
                                  "auth_changed"], "SQL functions that NOTIFY")


@test
def live_sees_changes_nobody_announced(env):
    """A change made by another tool (here psql: nothing announces it) still
    reaches an open stream: every server also catches up once a second."""
    lead = env.user(["lead"])
    assessor = env.user(["assessor"])
    cred = setup_cred(env, lead)
    env.grant(lead, cred["id"], assessor)
    s = Stream(env.server, token=assessor.token)
    try:
        s.wait(queue_of(cred["id"], 0), "the queue on opening")
        sql(env, "UPDATE credentials SET peer_paused_at = now() WHERE id = '%s'" % cred["id"])
        s.wait(lambda i, n, d: queue_of(cred["id"])(i, n, d) and d["peer_review"] == "paused",
               "peer review paused by psql, seen on the stream")
    finally:
        s.close()


@test
def live_end_at_shutdown(env):
    """SIGTERM: every stream gets `end` {"reason": "shutdown"} and is closed;
    the server exits 0 (it does not wait out the grace period for them)."""
    srv = env.start_server("live-shutdown", {"ACCORD_SHUTDOWN_GRACE": "30"})
    u = env.user(["earner"])
    streams = [Stream(srv, token=u.token) for _ in range(3)]
    try:
        for s in streams:
            s.wait(is_ready, "stream before shutdown: ready")
        t0 = time.monotonic()
        err = srv.stop(timeout=20)
        check(err is None, "server with open streams, SIGTERM: %s" % err)
        check(time.monotonic() - t0 < 20, "the server waited out its grace period")
        for s in streams:
            _, _, end = s.wait(lambda i, n, d: n == "end", "stream at shutdown: end")
            eq(end["reason"], "shutdown", "end reason at SIGTERM")
            s.wait_closed("stream after shutdown")
    finally:
        for s in streams:
            s.close()


class ManyStreams:
    """N streams on plain non-blocking sockets, read by one selector."""

    def __init__(self, port, tokens):
        self.sel = selectors.DefaultSelector()
        self.bufs = {}
        for tok in tokens:
            s = socket.create_connection((HOST, port), timeout=WAIT)
            s.sendall(("GET /v1/events HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n"
                       "Authorization: Bearer %s\r\n\r\n" % (HOST, port, tok)).encode())
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ)
            self.bufs[s] = bytearray()

    def pump_until(self, rx, what, timeout=60.0):
        """Reads until every stream's bytes match rx; fails after timeout."""
        deadline = time.monotonic() + timeout
        rx = re.compile(rx)
        done = set()
        while len(done) < len(self.bufs):
            if time.monotonic() > deadline:
                bad = [bytes(b[-300:]) for s, b in self.bufs.items() if s not in done][:2]
                raise Failure("%s: %d of %d streams within %.0f s; e.g. %r"
                              % (what, len(done), len(self.bufs), timeout, bad))
            for key, _ in self.sel.select(0.2):
                try:
                    data = key.fileobj.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.sel.unregister(key.fileobj)
                    raise Failure("%s: a stream was closed by the server: %r"
                                  % (what, bytes(self.bufs[key.fileobj][-300:])))
                self.bufs[key.fileobj] += data
            for s, b in self.bufs.items():
                if s not in done and rx.search(b):
                    done.add(s)
        return len(done)

    def close(self):
        for s in self.bufs:
            try:
                s.close()
            except OSError:
                pass
        self.sel.close()


def thousand_streams(env, srv, n_users=10, per_user=100, before_open=None):
    """Opens n_users x per_user streams of assessors granted one credential,
    then submits once; every stream must show the new count. Returns
    (streams, batches to open them, batches for the fan-out, seconds from the
    submission's answer until the last stream showed it: printed by make bench,
    never asserted)."""
    lead = env.user(["lead"])
    earner = env.user(["earner"])
    cred = setup_cred(env, lead)
    users = [env.user(["assessor"]) for _ in range(n_users)]
    for u in users:
        env.grant(lead, cred["id"], u)
    if before_open:
        before_open()   # make bench: the memory anchor, everything but the streams set up
    b0 = metric_value(srv, "accord_live_batches_total")
    many = ManyStreams(srv.port, [u.token for u in users for _ in range(per_user)])
    try:
        many.pump_until(rb"event: ready\n", "every stream opened and ready")
        b1 = metric_value(srv, "accord_live_batches_total")
        eq(metric_value(srv, "accord_live_streams"), n_users * per_user, "accord_live_streams")
        ids = evidence_ids(env, earner)
        env.submit(earner.c, cred["id"], ids)
        t0 = time.monotonic()
        many.pump_until((r'event: queue\ndata: \{[^\n]*"credential_id":"%s"[^\n]*"waiting":1[,}]'
                         % cred["id"]).encode(), "every stream shows the new queue count")
        t1 = time.monotonic()
        b2 = metric_value(srv, "accord_live_batches_total")
        return many, b1 - b0, b2 - b1, t1 - t0
    except BaseException:
        many.close()
        raise


@test
def live_thousand_streams(env):
    """1,000 open streams on one server (ten assessors with a hundred tabs
    each): every one opens, and every one shows a new submission's count.
    Batched, not per stream: the fan-out costs a few queries per event loop
    (each batch answers every stream on its loop), not one per stream."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096 <= hard or soft < hard < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    srv = env.start_server("live-1000", {"ACCORD_LIVE_STREAMS_PER_USER": "100"})
    many, open_batches, fanout_batches, _ = thousand_streams(env, srv)
    try:
        # no database connection per stream: the whole cluster serves far fewer backends
        backends = int(sql(env, "SELECT count(*) FROM pg_stat_activity "
                                "WHERE backend_type = 'client backend'"))
        check(backends < 100, "%d database backends with 1,000 streams open" % backends)
        check(open_batches < 1000, "opening 1,000 streams took %d batched queries (one per "
              "stream would be 1,000)" % open_batches)
        # one submission: a handful of notifications, each at most one batch per loop
        check(fanout_batches <= 12, "one submission's fan-out to 1,000 streams took %d batched "
              "queries (expected a few per event loop)" % fanout_batches)
    finally:
        many.close()
    wait_metric(srv, "accord_live_streams", lambda v: v == 0,
                "1,000 streams closed by their clients are given back")
    check(srv.stop() is None, "the 1,000-stream server should stop cleanly")

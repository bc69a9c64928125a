# SPDX-License-Identifier: Apache-2.0
"""Logs an operator can search (issue 9, item 4): one access line per request
(method, route template, status, bytes, duration, user, request id), JSON lines
with ACCORD_LOG_FORMAT=json, X-Request-Id taken or generated and echoed, the
request id in every error body, and repeated warnings rate-limited."""

import json
import os
import re
import tempfile
import time
import uuid

from harness import Client, Cluster, check, eq, expect, fail, is_uuid, run_cli, short, test

ACCESS_TEXT = re.compile(r"^\S+Z info access (\S+) (\S+) (\d{3}) (\d+) ([0-9.]+)ms "
                         r"user=(\S+) rid=(\S+) w=(\d+)$")


def read_lines(path, start=0):
    with open(path, "rb") as f:
        f.seek(start)
        return f.read().decode("utf-8", "replace").splitlines()


def wait_for(pred, what, timeout=5.0):
    """Log lines are written as the answer is sent: poll briefly for them."""
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            fail("%s: not found within %.0f s" % (what, timeout))
        time.sleep(0.05)


@test
def log_request_id_taken_or_generated(env):
    anon = env.admin.c.anon()
    r = anon.get("/healthz")
    check(is_uuid(r.header("x-request-id")),
          "a request without X-Request-Id: the answer's X-Request-Id %r should be a new UUID"
          % r.header("x-request-id"))
    r2 = anon.get("/healthz")
    check(r2.header("x-request-id") != r.header("x-request-id"), "two requests, one request id")
    for good in ("abc-123", "req_1.2:3", "x" * 64, "Zm9vYmFy+/=", "svc@host"):
        r = anon.get("/healthz", headers={"X-Request-Id": good})
        eq(r.header("x-request-id"), good, "a well-formed X-Request-Id is echoed")
    for bad in ("x" * 65, "has space", "quote\"d", "semi;colon", "<script>", "\u00e9t\u00e9"):
        r = anon.get("/healthz", headers={"X-Request-Id": bad.encode("utf-8").decode("latin-1")})
        check(is_uuid(r.header("x-request-id")),
              "a malformed X-Request-Id %r must be replaced by a new UUID, got %r"
              % (bad, r.header("x-request-id")))
    # error bodies carry it: 401, 404, 400, 405, a database error (404 from SQL)
    u = env.user(["earner"], org="Request Id Org")
    for method, path, client, status in (
            ("GET", "/v1/me", anon, 401),
            ("GET", "/v1/nope", u.c, 404),
            ("GET", "/v1/submissions/not-a-uuid", u.c, 400),
            ("DELETE", "/v1/me", u.c, 405),
            ("GET", "/v1/submissions/%s" % uuid.uuid4(), u.c, 404)):
        rid = "test-%s-%d" % (method.lower(), status)
        r = client.request(method, path, headers={"X-Request-Id": rid})
        j = expect(r, status)
        eq(j["error"].get("request_id"), rid, "%s %s: error.request_id" % (method, path))


@test
def log_access_line_per_request(env):
    log = env.server.stderr_path
    start = os.path.getsize(log)
    u = env.user(["earner"], org="Access Log Org")
    rid = "access-%d" % env.uniq()
    r = u.c.get("/v1/me", headers={"X-Request-Id": rid})
    expect(r, 200)
    sub = str(uuid.uuid4())
    r404 = u.c.get("/v1/submissions/" + sub, headers={"X-Request-Id": rid + "-404"})
    expect(r404, 404)
    expect(u.c.get("/v1/none", headers={"X-Request-Id": rid + "-none"}), 404)

    def find(req_id):
        for line in read_lines(log, start):
            m = ACCESS_TEXT.match(line)
            if m and m.group(7) == req_id:
                return m
        return None

    m = wait_for(lambda: find(rid), "the access line of GET /v1/me (rid %s)" % rid)
    eq((m.group(1), m.group(2), int(m.group(3))), ("GET", "/v1/me", 200), "access line")
    eq(int(m.group(4)), len(r.body), "access line: bytes")
    check(float(m.group(5)) >= 0, "access line: duration")
    m = wait_for(lambda: find(rid + "-404"), "the access line of the 404")
    eq((m.group(2), int(m.group(3))), ("/v1/submissions/{id}", 404),
       "a 404 is logged with its route template, not the path (no ids in the log)")
    check(sub not in m.group(0), "the access line shows the submission id: %s" % m.group(0))
    m = wait_for(lambda: find(rid + "-none"), "the access line of an unknown path")
    eq(m.group(2), "-", "an unknown path has no route template")
    # the user, once the server knows who asked: the auth gate (server/authgate.h,
    # another track's) is what tells the C side; before it lands there is no user to log
    if not os.path.exists(os.path.join(env.root, "server", "authgate.h")):
        return
    wait_for(lambda: any(m and m.group(6) == u.id for m in
                         (ACCESS_TEXT.match(l) for l in read_lines(log, start))),
             "an access line naming user %s (GET /v1/me)" % u.id)


@test
def log_json_lines(env):
    s = env.start_server("jsonlog", {"ACCORD_LOG_FORMAT": "json"})
    c = Client(s)
    rid = "json-%d" % env.uniq()
    expect(c.get("/healthz", headers={"X-Request-Id": rid}), 200)
    expect(c.get("/v1/me", headers={"X-Request-Id": rid + "-401"}), 401)

    def records():
        out = []
        for line in read_lines(s.stderr_path):
            if not line.strip() or line.startswith("="):  # sanitizer banners are not ours
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                fail("ACCORD_LOG_FORMAT=json: a line is not JSON: %s" % short(line))
        return out

    def access(req_id):
        return next((j for j in records() if j.get("request_id") == req_id), None)

    a = wait_for(lambda: access(rid), "the JSON access record of GET /healthz")
    for key, want in (("level", "info"), ("msg", "access"), ("method", "GET"),
                      ("route", "/healthz"), ("status", 200)):
        eq(a.get(key), want, "JSON access record %s" % key)
    check(isinstance(a.get("bytes"), int) and a["bytes"] > 0, "JSON access bytes: %r" % a)
    check(isinstance(a.get("duration_ms"), (int, float)), "JSON access duration_ms: %r" % a)
    check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", a.get("ts", "")),
          "JSON access ts: %r" % a.get("ts"))
    a = wait_for(lambda: access(rid + "-401"), "the JSON access record of the 401")
    eq((a.get("status"), a.get("route")), (401, "/v1/me"), "401 access record")
    check("user_id" not in a or a["user_id"] is None, "no user on a 401: %r" % a)
    # every line of the file is JSON, the start-up lines included
    recs = records()
    check(any(j.get("msg", "").startswith("accord") or j.get("level") in ("info", "warn")
              for j in recs), "no records at all")
    for j in recs:
        check({"ts", "level", "msg"} <= set(j), "a JSON log record lacks ts/level/msg: %r" % j)


@test
def log_and_metrics_during_an_outage(env):
    """A server whose database goes away answers every API call 503 with a
    warning: 40 such calls write at most LOG_REPEAT_BURST (5) identical lines,
    the rest are counted; /metrics still answers, without the product gauges.
    (Its own cluster, stopped under it: the main cluster stays up.)"""
    from t_ops import promtool_check, samples
    work = tempfile.mkdtemp(prefix="outage-", dir=env.workdir)
    os.chmod(work, 0o755)                 # the cluster belongs to the postgres user
    cluster = Cluster(env.root, os.path.join(work, "pg"))
    url = cluster.start()
    stopped = False
    try:
        rc, out, err = run_cli(env.binary, ["migrate"], dict(env.base_env, DATABASE_URL=url))
        eq(rc, 0, "accord migrate: %s" % err)
        s = env.start_server("outage", {"DATABASE_URL": url,
                                        "ACCORD_DATA_DIR": os.path.join(work, "data"),
                                        "ACCORD_KEY_DIR": os.path.join(work, "keys")})
        c = Client(s, token="acc_" + "0" * 64)
        public = "/v1/auth/oidc/providers"   # public, and answered by the database
        expect(c.get(public, token=None), 200)
        cluster.stop()
        stopped = True
        wait_for(lambda: c.get(public, token=None).status == 503,
                 "503 from the API once the database is gone", timeout=20)
        for i in range(40):              # a token (the auth gate) and a public route (the pool)
            r = c.get("/v1/me") if i % 2 else c.get(public, token=None)
            expect(r, 503, "unavailable", "call %d with no database" % i)
        time.sleep(0.3)
        lines = [l for l in read_lines(s.stderr_path) if "database unavailable" in l]
        check(1 <= len(lines) <= 5,
              "40 identical warnings should be written at most 5 times, got %d:\n%s"
              % (len(lines), "\n".join(lines[:10])))
        m = Client(s).get("/metrics")
        expect(m, 200)
        promtool_check(m.text)
        got = samples(m.text)
        check(got.get("accord_log_suppressed_total", 0) >= 35,
              "accord_log_suppressed_total should count the suppressed lines: %r"
              % got.get("accord_log_suppressed_total"))
        eq(got.get("accord_product_metrics_up"), 0.0, "accord_product_metrics_up without a database")
        check("accord_queue_submissions{" not in m.text, "product gauges without a database")
        msg = s.stop()
        check(msg is None, msg)
    finally:
        if not stopped:
            cluster.stop()

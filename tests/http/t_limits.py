"""Hardening of the server itself (issue 7): the auth gate, body limits,
descriptors, quotas, artifact headers, disk and shutdown behaviour."""

import json
import os
import re
import subprocess
import threading
import time

from harness import HOST, Failure, check, eq, expect, raw_exchange, sha256, short, test

WAIT = 10.0  # bound on every poll below (seconds)


def metric(server, name):
    """The value of an unlabelled counter on /metrics (0 when absent)."""
    from harness import Client
    r = Client(server).get("/metrics")
    expect(r, 200)
    m = re.search(r"(?m)^%s (\d+)" % re.escape(name), r.text)
    return int(m.group(1)) if m else None


def wait_metric(server, name, at_least, what):
    deadline = time.monotonic() + WAIT
    while True:
        v = metric(server, name)
        if v is not None and v >= at_least:
            return v
        if time.monotonic() > deadline:
            raise Failure("%s: %s stayed %r (wanted >= %d) for %.0f s"
                          % (what, name, v, at_least, WAIT))
        time.sleep(0.05)


def psql(env, sql):
    p = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", env.cluster.url,
                        "-c", sql], capture_output=True, text=True, timeout=30)
    check(p.returncode == 0, "psql %r failed: %s" % (sql, p.stderr))
    return p.stdout


def unknown_token(n):
    return "acc_" + sha256(b"never issued %d" % n)


@test
def limits_auth_gate_before_body(env):
    """An unknown, malformed or missing credential is refused (401) before the
    body is parsed: a body that is not JSON at all must not turn it into 400."""
    anon = env.admin.c.anon()
    junk = b"{" * 4096 + b" this is not JSON"
    for what, token in (("garbage token", "garbage"), ("unknown token", unknown_token(1)),
                        ("no token", None)):
        r = anon.request("POST", "/v1/rubrics", data=junk, token=token,
                         headers={"Content-Type": "application/json"})
        expect(r, 401, "unauthorized", what=what)
        check("JSON" not in r.json["error"]["message"],
              "%s: the 401 talks about the body: %s" % (what, r.text))
    # a real user's bad JSON is still parsed and explained
    r = env.admin.c.request("POST", "/v1/rubrics", data=junk,
                            headers={"Content-Type": "application/json"})
    expect(r, 400, "invalid_json", what="admin with a broken body")


@test
def limits_auth_gate_cache_and_revocation(env):
    """A cached credential costs no lookup; revoking it empties every loop's
    cache at once (LISTEN/NOTIFY), so the next request is a lookup and a 401."""
    s = env.server
    wait_metric(s, "accord_auth_invalidations_total", 1, "the auth listener never connected")
    u = env.user(["earner"], org="Gate Org")
    for _ in range(4):
        expect(u.c.get("/v1/me"), 200)
    hits0 = metric(s, "accord_auth_cache_hits_total")
    for _ in range(8):
        expect(u.c.get("/v1/me"), 200)
    hits1 = metric(s, "accord_auth_cache_hits_total")
    # each loop looked the token up at most once in the first 4 requests (TTL 10 s)
    check(hits1 - hits0 >= 8 - 2,
          "8 requests with a warm token: cache hits went %d -> %d" % (hits0, hits1))
    inval0 = metric(s, "accord_auth_invalidations_total")
    lookups0 = metric(s, "accord_auth_lookups_total")
    psql(env, "UPDATE tokens SET revoked_at = now() WHERE token_hash = '%s'" % sha256(
        u.token.encode()))
    wait_metric(s, "accord_auth_invalidations_total", inval0 + 1,
                "revoking a token notified no server")
    r = u.c.get("/v1/me")
    expect(r, 401, "unauthorized", what="revoked token")
    check(metric(s, "accord_auth_lookups_total") > lookups0,
          "the revoked token was answered from a cache, not looked up again")


@test
def limits_auth_gate_unknown_flood(env):
    """Many distinct unknown tokens at once: each is refused (401, or 503 when
    too many lookups wait), none gets a body parsed, and a real user is served
    meanwhile."""
    s = env.server
    anon = env.admin.c.anon()
    results, errors = [], []
    body = json.dumps({"title": "x" * 60000}).encode()

    def flood(k):
        try:
            for i in range(20):
                r = anon.request("POST", "/v1/credentials", data=body,
                                 token=unknown_token(1000 * k + i),
                                 headers={"Content-Type": "application/json"})
                results.append(r.status)
        except Failure as e:
            errors.append(str(e))

    threads = [threading.Thread(target=flood, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for _ in range(10):
        expect(env.admin.c.get("/v1/me"), 200, what="a real user during the flood")
    for t in threads:
        t.join(120)
    check(not errors, "flood clients: %s" % errors[:3])
    bad = [st for st in results if st not in (401, 503)]
    check(not bad, "unknown tokens answered %s" % sorted(set(bad)))
    eq(len(results), 160, "answers to the flood")

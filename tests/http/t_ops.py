# SPDX-License-Identifier: Apache-2.0
"""Operations: health, readiness, metrics, SIGTERM, database outage (LAST)."""

import http.client
import json
import os
import re
import socket
import threading
import time

from harness import HOST, Failure, check, eq, expect, sha256, short, test

METRIC_LINE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? '
                         r"(-?[0-9.]+([eE][-+]?[0-9]+)?|NaN|[+-]Inf)( -?[0-9]+)?$")


@test
def ops_health_ready_metrics(env):
    anon = env.admin.c.anon()
    r = anon.get("/healthz")
    j = expect(r, 200)
    eq(j, {"status": "ok"}, "/healthz body")
    r = anon.get("/readyz")
    j = expect(r, 200)
    eq(j.get("status"), "ready", "/readyz status")
    r = anon.get("/metrics")
    expect(r, 200)
    check(r.header("content-type", "").startswith("text/plain"),
          "/metrics Content-Type %r, expected text/plain (Prometheus text format)"
          % r.header("content-type"))
    samples = [l for l in r.text.splitlines() if l and not l.startswith("#")]
    check(samples, "/metrics has no samples: %s" % short(r.text))
    bad = [l for l in samples if not METRIC_LINE.match(l)]
    check(not bad, "/metrics lines not in the Prometheus text format: %s" % bad[:5])
    check("# TYPE" in r.text, "/metrics has no # TYPE lines")


@test
def ops_sigterm_exits_zero(env):
    s = env.start_server("sigterm")
    u = env.user(["earner"], org="Sigterm Org", server=s)
    expect(u.c.get("/v1/me"), 200)
    # an idle keep-alive connection and a connection that sent half a request
    keep = http.client.HTTPConnection(HOST, s.port, timeout=10)
    keep.request("GET", "/healthz")
    keep.getresponse().read()
    half = socket.create_connection((HOST, s.port), timeout=10)
    half.sendall(b"GET /v1/me HTTP/1.1\r\nHost: x\r\n")
    stop = threading.Event()

    def load():
        while not stop.is_set():
            try:
                u.c.request("GET", "/v1/me", timeout=5)
            except Failure:
                time.sleep(0.05)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    time.sleep(0.3)
    try:
        msg = s.stop(timeout=10)
    finally:
        stop.set()
        t.join(10)
        keep.close()
        half.close()
    check(msg is None, msg)


@test
def ops_keepalive_connection(env):
    """One keep-alive connection carries many requests, errors included."""
    u = env.user(["earner"], org="Keepalive Org")
    conn = http.client.HTTPConnection(HOST, env.server.port, timeout=15)
    auth = {"Authorization": "Bearer " + u.token}
    try:
        for i in range(30):
            kind = i % 6
            if kind == 0:
                conn.request("GET", "/v1/me", headers=auth)
                want = 200
            elif kind == 1:
                conn.request("GET", "/v1/nope", headers=auth)
                want = 404
            elif kind == 2:
                conn.request("GET", "/v1/me")
                want = 401
            elif kind == 3:
                conn.request("POST", "/v1/submissions", body=b'{"x":', headers=dict(
                    auth, **{"Content-Type": "application/json"}))
                want = 400
            elif kind == 4:
                data = os.urandom(1000 + i)
                conn.request("POST", "/v1/artifacts", body=data, headers=dict(
                    auth, **{"Content-Type": "text/plain", "X-Artifact-Kind": "reflection"}))
                want = 201
            else:
                conn.request("GET", "/healthz")
                want = 200
            r = conn.getresponse()
            body = r.read()
            eq(r.status, want, "request %d (kind %d) on a keep-alive connection: %s"
               % (i, kind, short(body.decode("utf-8", "replace"))))
            if kind == 4:
                eq(json.loads(body)["sha256"], sha256(data), "upload %d sha256" % i)
            check(r.getheader("Connection", "").lower() != "close" or i == 29,
                  "request %d: the server closed a keep-alive connection after %d" % (i, r.status))
    finally:
        conn.close()


def promtool_check(text):
    """`promtool check metrics` (Debian's prometheus package): exit 0, no lint problems."""
    import shutil
    import subprocess
    tool = shutil.which("promtool")
    check(tool, "promtool is not installed (make deps-test installs Debian's prometheus)")
    p = subprocess.run([tool, "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=30)
    out = (p.stdout + p.stderr).decode("utf-8", "replace").strip()
    check(p.returncode == 0 and not out, "promtool check metrics (exit %d):\n%s"
          % (p.returncode, short(out, 2000)))


def samples(text):
    out = {}
    for l in text.splitlines():
        if l and not l.startswith("#"):
            name, _, value = l.rpartition(" ")
            out[name] = float(value)
    return out


@test
def ops_metrics_for_a_dashboard(env):
    """Issue 9, item 5: latency per route, database wait, pool gauges per loop,
    build info, process resources, product gauges; promtool finds no problem."""
    from harness import run_cli
    lead = env.user(["lead"])
    earner = env.user(["earner"], org="Metrics Org")
    rubric = env.rubric(lead)
    cred = env.credential(lead, rubric["id"])
    idle_cred = env.credential(lead, rubric["id"])
    ev = env.evidence(earner.c)
    env.submit(earner.c, cred["id"], [a["id"] for a, _ in ev])
    expect(earner.c.get("/v1/me"), 200)
    time.sleep(1.1)                      # the oldest submission is at least a second old
    r = env.admin.c.anon().get("/metrics")
    expect(r, 200)
    promtool_check(r.text)
    s = samples(r.text)
    rc, out, _ = run_cli(env.binary, ["--version"], env.base_env)
    version = out.split()[1]
    check('accord_build_info{version="%s"' % version in r.text,
          "accord_build_info with version %s: %s" % (version, short(r.text, 300)))
    key = 'accord_http_request_duration_seconds_count{method="GET",route="/v1/me"}'
    check(s.get(key, 0) >= 1, "%s: %r" % (key, s.get(key)))
    check('accord_http_request_duration_seconds_bucket{method="POST",route="/v1/artifacts",'
          'le="+Inf"}' in s, "no latency histogram for POST /v1/artifacts")
    loops = sorted({m for m in re.findall(r'^accord_db_pool_size\{loop="(\d+)"\}', r.text, re.M)})
    check(loops, "no accord_db_pool_size{loop=...}")
    for loop in loops:
        for fam in ("accord_db_connections_up", "accord_db_connections_busy",
                    "accord_db_queue_depth"):
            check('%s{loop="%s"}' % (fam, loop) in s, "%s for loop %s missing" % (fam, loop))
        check('accord_db_wait_seconds_bucket{loop="%s",le="+Inf"}' % loop in s,
              "accord_db_wait_seconds for loop %s missing" % loop)
    check(sum(v for k, v in s.items() if k.startswith("accord_db_wait_seconds_count")) >= 1,
          "no database wait observed")
    for fam in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                "process_open_fds", "process_max_fds", "process_start_time_seconds"):
        check(s.get(fam, 0) > 0, "%s = %r" % (fam, s.get(fam)))
    eq(s.get("accord_product_metrics_up"), 1.0, "accord_product_metrics_up")
    c = cred["id"]
    eq(s.get('accord_queue_submissions{credential_id="%s",stage="first"}' % c), 1.0,
       "queued first reviews of the credential")
    eq(s.get('accord_queue_submissions{credential_id="%s",stage="first"}' % idle_cred["id"]), 0.0,
       "queued first reviews of a credential with no submission")
    age = s.get('accord_queue_oldest_age_seconds{credential_id="%s"}' % c)
    check(age is not None and 1.0 <= age < 600, "oldest waiting age %r" % age)
    eq(s.get('accord_adjudications_open{credential_id="%s"}' % c), 0.0, "adjudications open")
    eq(s.get('accord_peer_review_paused{credential_id="%s"}' % c), 0.0, "peer review paused")


@test
def ops_metrics_token(env):
    """--metrics-token: /metrics wants that bearer token; without the setting it is open."""
    from harness import Client
    s = env.start_server("metricstoken", {"ACCORD_METRICS_TOKEN": "scrape-secret-1"})
    c = Client(s)
    expect(c.get("/metrics"), 401, "unauthorized")
    expect(c.get("/metrics", token="scrape-secret-2"), 401, "unauthorized")
    expect(c.get("/metrics", token=env.admin.token), 401, "unauthorized",
           what="an API token is not the metrics token")
    r = c.get("/metrics", token="scrape-secret-1")
    expect(r, 200)
    promtool_check(r.text)
    expect(c.get("/healthz"), 200, what="/healthz stays open")


@test
def ops_database_outage_LAST(env):
    """Stops the cluster: /readyz and the API answer 503 quickly; after the
    cluster is back the server reconnects by itself. Must stay the last test."""
    lead = env.user(["lead"])
    earner = env.user(["earner"], org="Outage Org")
    rubric = env.rubric(lead)
    cred = env.credential(lead, rubric["id"])
    ev = env.evidence(earner.c)
    sub = env.submit(earner.c, cred["id"], [a["id"] for a, _ in ev])
    anon = env.admin.c.anon()
    env.cluster.stop()
    restarted = False
    try:
        # readiness goes to 503 (polling briefly: the server may notice on first use)
        deadline = time.monotonic() + 15
        r = None
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            r = anon.get("/readyz", timeout=10)
            check(time.monotonic() - t0 < 9.5, "/readyz took %.1f s with the database down"
                  % (time.monotonic() - t0))
            if r.status == 503:
                break
            time.sleep(0.3)
        expect(r, 503, what="/readyz with the database down", shape=False)
        check(r.header("content-type", "").startswith("application/json"),
              "/readyz 503 Content-Type %r" % r.header("content-type"))
        eq(r.json.get("status"), "unavailable", "/readyz status with the database down")
        for method, path, body in (("GET", "/v1/me", None),
                                   ("GET", "/v1/submissions/" + sub["id"], None),
                                   ("POST", "/v1/submissions", {"credential_id": cred["id"],
                                                                "artifact_ids": []})):
            t0 = time.monotonic()
            r = earner.c.request(method, path, json_body=body, timeout=10)
            dt = time.monotonic() - t0
            expect(r, 503, "unavailable", "%s %s with the database down" % (method, path))
            check(dt < 8, "%s %s took %.1f s to fail with the database down" % (method, path, dt))
        expect(anon.get("/healthz"), 200, what="/healthz with the database down")
        # the database comes back; the server reconnects by itself
        env.cluster.start()
        restarted = True
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            r = anon.get("/readyz", timeout=10)
            if r.status == 200:
                break
            time.sleep(0.3)
        expect(r, 200, what="/readyz 20 s after the database came back")
        # ready means every loop is back, its credential check included (each reconnects
        # on its own backoff clock: a loop still waiting would answer 503)
        m = anon.get("/metrics")
        gates = re.findall(r'(?m)^accord_auth_gate_connected\{loop="\d+"\} (\d)$', m.text)
        pools = re.findall(r'(?m)^accord_db_connections_up\{loop="\d+"\} (\d+)$', m.text)
        check(gates and all(g == "1" for g in gates),
              "/readyz said ready while a loop's auth gate was down: %r" % gates)
        check(pools and all(int(n) > 0 for n in pools),
              "/readyz said ready while a loop's pool was down: %r" % pools)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            r = earner.c.get("/v1/submissions/" + sub["id"], timeout=10)
            if r.status == 200:
                break
            time.sleep(0.3)
        view = expect(r, 200, what="API call after the database came back")
        eq(view["status"], "queued", "the submission after the outage")
        # every connection of the pool works again (several calls, writes included)
        for i in range(12):
            expect(earner.c.get("/v1/me"), 200, what="call %d after the outage" % i)
        u = env.user(["earner"], org="After Outage")
        expect(u.c.get("/v1/me"), 200, what="a user created after the outage")
        r = earner.c.get("/v1/artifacts/%s/content" % ev[0][0]["id"])
        expect(r, 200)
        check(r.body == ev[0][1], "artifact bytes after the outage")
    finally:
        if not restarted:
            env.cluster.start()

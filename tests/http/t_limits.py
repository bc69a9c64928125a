# SPDX-License-Identifier: Apache-2.0
"""Hardening of the server itself (issue 7): the auth gate, body limits,
descriptors, quotas, artifact headers, disk and shutdown behaviour."""

import json
import os
import re
import signal
import socket
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
    junk = b"{" * 2048 + b" this is not JSON"
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
    """Many distinct unknown tokens at once: each is refused (413 for a body
    over the unauthenticated allowance, 401, or 503 when too many lookups
    wait), and a real user is served meanwhile."""
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
    bad = [st for st in results if st not in (401, 413, 503)]
    check(not bad, "unknown tokens answered %s" % sorted(set(bad)))
    eq(len(results), 160, "answers to the flood")


@test
def limits_json_routes_have_their_own_limit(env):
    """A JSON route takes --max-json-body (256 KiB by default), not the upload
    limit: a valid user's 300 KiB rubric is refused 413 without being parsed."""
    lead = env.user(["lead"])
    r = lead.c.request("POST", "/v1/rubrics", data=b"[" * (300 * 1024),
                       headers={"Content-Type": "application/json"})
    expect(r, 413, "body_too_large", what="a 300 KiB body on POST /v1/rubrics")
    check("262144" in r.json["error"]["message"], "the 413 should state the limit: %s" % r.text)
    # under the limit, it is read and judged as JSON
    r = lead.c.request("POST", "/v1/rubrics", data=b"[" * (200 * 1024),
                       headers={"Content-Type": "application/json"})
    expect(r, 400, "invalid_json", what="a 200 KiB non-object")


def wrapper(env, name, lines):
    path = os.path.join(env.workdir, name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n%s\nexec %s \"$@\"\n" % ("\n".join(lines), env.binary))
    os.chmod(path, 0o755)
    return path


@test
def limits_descriptors_exhausted(env):
    """300 idle connections against `ulimit -n 256`: the server pauses
    accepting when out of descriptors instead of spinning, keeps its log
    small (repeats are rate-limited), and serves again once clients leave."""
    from harness import Client, Server
    binary = wrapper(env, "accord-nofile256", ["ulimit -n 256"])
    s = Server(binary, env.workdir, env.data_dir, env.base_env, "nofile256")
    env.servers.append(s)
    s.start()
    expect(Client(s).get("/healthz"), 200)
    socks = []
    try:
        for _ in range(300):
            socks.append(socket.create_connection((HOST, s.port), timeout=10))
        time.sleep(2.0)
        size = os.path.getsize(s.stderr_path)
        check(size < 64 * 1024, "the log grew to %d bytes with 300 idle connections" % size)
        check(s.alive(), "the server died with 300 idle connections")
        for k in socks[:250]:
            k.close()
        socks = socks[250:]
        deadline = time.monotonic() + WAIT
        while True:
            try:
                r = Client(s).request("GET", "/healthz", timeout=5)
                if r.status == 200:
                    break
            except Failure:
                pass
            check(time.monotonic() < deadline, "/healthz not served after the clients left")
            time.sleep(0.1)
    finally:
        for k in socks:
            k.close()
    with open(s.stderr_path, "rb") as f:
        log = f.read().decode("utf-8", "replace")
    check("cannot accept" in log, "no word in the log about pausing accept: %s"
          % short(log[-2000:]))
    msg = s.stop()
    check(msg is None, msg)


def stored_file(env, data):
    h = sha256(data)
    return os.path.join(env.data_dir, h[:2], h)


@test
def limits_bad_header_leaves_no_file(env):
    """A filename that is not UTF-8 is refused (400) before a byte is stored,
    and no answer carries the database's own error text."""
    u = env.user(["earner"], org="Header Org")
    data = os.urandom(4096)
    r = u.c.request("POST", "/v1/artifacts", data=data,
                    headers={"Content-Type": "video/mp4", "X-Artifact-Kind": "video",
                             "X-Filename": b"\xe9.mp4"})
    expect(r, 400, "bad_request", what="X-Filename that is not UTF-8")
    check("UTF-8" in r.json["error"]["message"] and "byte sequence" not in r.text,
          "the 400 should explain the rule, not quote PostgreSQL: %s" % r.text)
    check(not os.path.exists(stored_file(env, data)),
          "the refused upload left its bytes in the store")
    # the same through tus metadata
    from t_uploads import create
    import base64
    meta = "kind %s,filename %s" % (base64.b64encode(b"video").decode(),
                                    base64.b64encode(b"\xe9.mp4").decode())
    expect(create(u.c, 100, meta=meta), 400, "bad_metadata", what="tus filename not UTF-8")


@test
def limits_artifact_bytes_headers(env):
    """Artifact bytes are never sniffed or run as a page: nosniff and a CSP
    sandbox always; inline only for media, PDF and plain text, a download
    otherwise; the filename encoded per RFC 6266."""
    u = env.user(["earner"], org="Headers Org")
    page = b"<html><script>alert(document.cookie)</script></html>"
    a = env.upload(u.c, "other", page, media_type="text/html", filename="notes.html")
    r = u.c.get("/v1/artifacts/%s/content" % a["id"])
    expect(r, 200)
    eq(r.header("x-content-type-options"), "nosniff", "X-Content-Type-Options")
    check("sandbox" in (r.header("content-security-policy") or ""),
          "Content-Security-Policy without sandbox: %r" % r.header("content-security-policy"))
    cd = r.header("content-disposition") or ""
    check(cd.startswith("attachment;") and 'filename="notes.html"' in cd,
          "text/html must be a download: Content-Disposition %r" % cd)
    v = env.upload(u.c, "video", os.urandom(2048), media_type="video/mp4",
                   filename="clé \"vidéo\".mp4".encode("utf-8"))
    r = u.c.get("/v1/artifacts/%s/content" % v["id"], headers={"Range": "bytes=0-99"})
    expect(r, 206)
    cd = r.header("content-disposition") or ""
    eq(cd, "inline; filename=\"cl_ _vid_o_.mp4\"; "
           "filename*=UTF-8''cl%C3%A9%20%22vid%C3%A9o%22.mp4", "Content-Disposition of a video")
    eq(r.header("x-content-type-options"), "nosniff", "nosniff on a range answer")
    svg = env.upload(u.c, "other", b"<svg xmlns='http://www.w3.org/2000/svg'><script/></svg>",
                     media_type="image/svg+xml")
    r = u.c.get("/v1/artifacts/%s/content" % svg["id"])
    check((r.header("content-disposition") or "").startswith("attachment;"),
          "SVG can carry scripts: it must be a download, got %r" % r.header("content-disposition"))


@test
def limits_disk_full(env):
    """When the artifact disk is under --storage-reserve, /readyz says
    storage_low and uploads are refused with 507 + Retry-After; a refused tus
    chunk leaves the file as HEAD describes it."""
    from harness import Client
    from t_uploads import new_upload, patch, head
    s = env.start_server("diskfull", {"ACCORD_STORAGE_RESERVE": str(1 << 61)})
    u = env.user(["earner"], org="Disk Org", server=s)
    r = Client(s).get("/readyz")
    eq(r.status, 503, "/readyz with the disk under the reserve (%s)" % r.text)
    eq((r.json or {}).get("error", {}).get("code"), "storage_low", "/readyz error code")
    data = os.urandom(8192)
    r = u.c.request("POST", "/v1/artifacts", data=data,
                    headers={"Content-Type": "video/mp4", "X-Artifact-Kind": "video"})
    expect(r, 507, "insufficient_storage", what="upload onto a full disk")
    check(r.header("retry-after"), "507 without Retry-After")
    check(not os.path.exists(stored_file(env, data)), "a refused upload left a file")
    uid = new_upload(u.c, len(data))
    r = patch(u.c, uid, 0, data)
    eq(r.status, 507, "tus PATCH onto a full disk (%s)" % r.text[:200])
    check(r.header("retry-after"), "tus 507 without Retry-After")
    eq(head(u.c, uid).header("upload-offset"), "0", "HEAD after the refused chunk")
    part = os.path.join(env.data_dir, "uploads", uid + ".part")
    check(not os.path.exists(part) or os.path.getsize(part) == 0,
          "the .part file holds bytes HEAD does not count")


@test
def limits_port_in_use(env):
    """A second server on a port another accord already serves refuses to start."""
    p = subprocess.run([env.binary, "serve", "--listen", "%s:%d" % (HOST, env.server.port),
                        "--data-dir", env.data_dir], env=env.base_env, capture_output=True,
                       text=True, timeout=30, stdin=subprocess.DEVNULL)
    check(p.returncode != 0, "the second server on port %d exited %d (it must refuse)"
          % (env.server.port, p.returncode))
    check("in use" in p.stderr, "no word about the address in use: %s" % short(p.stderr))


@test
def limits_quotas_and_termination(env):
    """Per-user quotas on stored bytes and on unfinished uploads (413
    quota_exceeded), and tus termination (DELETE) giving the room back."""
    from t_uploads import create, new_upload, patch, head
    s = env.start_server("quota", {"ACCORD_QUOTA_BYTES": "100000",
                                   "ACCORD_QUOTA_IN_FLIGHT": "60000"})
    u = env.user(["earner"], org="Quota Org", server=s)
    other = env.user(["earner"], org="Quota Org", server=s)
    env.upload(u.c, "video", os.urandom(50000))
    r = u.c.request("POST", "/v1/artifacts", data=os.urandom(60000),
                    headers={"Content-Type": "video/mp4", "X-Artifact-Kind": "video"})
    expect(r, 413, "quota_exceeded", what="an upload over the stored quota")
    check("100000" in r.json["error"]["message"], "the 413 should state the quota: %s" % r.text)
    expect(create(u.c, 8589934592), 413, "quota_exceeded", what="Upload-Length 8 GiB")
    uid = new_upload(u.c, 40000)
    expect(patch(u.c, uid, 0, os.urandom(1000)), 204, what="a first chunk")
    expect(create(u.c, 30000), 413, "quota_exceeded", what="unfinished uploads over the limit")
    new_upload(other.c, 30000)                       # someone else's quota is their own
    r = u.c.request("DELETE", "/v1/uploads/" + uid, headers={"Tus-Resumable": "1.0.0"})
    eq(r.status, 204, "DELETE an unfinished upload (%s)" % r.text)
    eq(head(u.c, uid).status, 404, "HEAD after DELETE")
    check(not os.path.exists(os.path.join(env.data_dir, "uploads", uid + ".part")),
          "the part file outlived DELETE")
    new_upload(u.c, 30000)                           # the room is back
    r = u.c.request("DELETE", "/v1/uploads/" + uid, headers={"Tus-Resumable": "1.0.0"})
    expect(r, 404, "not_found", what="DELETE twice")
    r = other.c.request("DELETE", "/v1/uploads/" + new_upload(u.c, 100),
                        headers={"Tus-Resumable": "1.0.0"})
    expect(r, 403, "forbidden", what="DELETE someone else's upload")


@test
def limits_tus_expiration(env):
    """Upload-Expires on every answer about an unfinished upload; an upload left
    alone past --upload-expiry is swept: HEAD says 404 and its part file is gone."""
    import email.utils
    from harness import Client
    from t_uploads import new_upload, patch, head
    s = env.start_server("expiry", {"ACCORD_UPLOAD_EXPIRY": "2"})
    r = Client(s).request("OPTIONS", "/v1/uploads")
    ext = (r.header("tus-extension") or "").split(",")
    check("termination" in ext and "expiration" in ext, "Tus-Extension %r" % ext)
    u = env.user(["earner"], org="Expiry Org", server=s)
    uid = new_upload(u.c, 5000)
    r = patch(u.c, uid, 0, os.urandom(1000))
    eq(r.status, 204, "PATCH (%s)" % r.text)
    exp = r.header("upload-expires")
    check(exp, "PATCH 204 without Upload-Expires")
    left = email.utils.parsedate_to_datetime(exp).timestamp() - time.time()
    check(-2 < left <= 3, "Upload-Expires %r is %.1f s away, expected about 2" % (exp, left))
    check(head(u.c, uid).header("upload-expires"), "HEAD without Upload-Expires")
    part = os.path.join(env.data_dir, "uploads", uid + ".part")
    check(os.path.exists(part), "no part file after a PATCH")
    deadline = time.monotonic() + 15
    while head(u.c, uid).status != 404:
        check(time.monotonic() < deadline, "the expired upload was not swept within 15 s")
        time.sleep(0.2)
    deadline = time.monotonic() + 5
    while os.path.exists(part):
        check(time.monotonic() < deadline, "the swept upload's part file stayed")
        time.sleep(0.1)


@test
def limits_refusals_leak_no_descriptors(env):
    """Malformed requests (400 from libevent), refused bodies (413) and answers
    that close their connection leave no descriptor or connection behind."""
    s = env.server
    fd_dir = "/proc/%d/fd" % s.proc.pid
    garbage = [b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
               b"GET /v1/me HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
               b"POST /v1/rubrics HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n",
               b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]
    for g in garbage:                                    # warm up
        raw_exchange(s.port, g, timeout=3, early_wait=0.1)
    time.sleep(0.5)
    before = len(os.listdir(fd_dir))
    for _ in range(20):
        for g in garbage:
            status, _ = raw_exchange(s.port, g, timeout=3, early_wait=0.1)
            check(status in (200, 400, 413), "%r answered %r" % (g[:30], status))
    deadline = time.monotonic() + WAIT
    while len(os.listdir(fd_dir)) > before + 2:
        check(time.monotonic() < deadline, "descriptors went from %d to %d after 100 refused "
              "requests" % (before, len(os.listdir(fd_dir))))
        time.sleep(0.1)
    with open(s.stderr_path, "rb") as f:
        check(b"too few references" not in f.read(), "libevent warned of a bufferevent freed twice")

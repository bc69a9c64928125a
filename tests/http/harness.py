# SPDX-License-Identifier: Apache-2.0
"""harness.py - the machinery behind tests/http/run.py (standard library only).

- Cluster: a throwaway PostgreSQL started with db/cluster.sh.
- Server:  one `accord serve` process (stdout/stderr kept in log files).
- Client:  a tiny HTTP client bound to a server and (optionally) a bearer token.
- Env:     what every test gets: the cluster, the main server, the admin, and
           helpers to create users, rubrics, credentials, artifacts, submissions.
- check helpers: expect(), eq(), check() raise Failure with a clear message.

Everything is bounded in time and only ever talks to 127.0.0.1.
"""

import hashlib
import http.client
import itertools
import json
import os
import re
import select
import signal
import socket
import subprocess
import threading
import time

import contract

HOST = "127.0.0.1"
# ACCORD_PUBLIC_URL of the servers that issue badges (tests/http/badges.py):
# badges, keys and the issuer are named under it; nothing ever connects to it.
PUBLIC_URL = "https://badges.accord.test"
REQUEST_TIMEOUT = 30.0
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00|\+00)$")
LISTEN_RE = re.compile(r"accord: listening on http://127\.0\.0\.1:(\d+)")
SANITIZER_RE = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
                          r"SUMMARY: (Address|Undefined|Leak)Sanitizer")


class Failure(AssertionError):
    """A test's assertion failed; the message says expected vs got."""


SOFT_FAILURES = []


class soft:
    """`with soft():` records a failed check and lets the test go on (for checks
    whose failure does not invalidate the steps after them); the test still
    fails at its end, listing every soft failure."""

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is not None and issubclass(et, Failure):
            SOFT_FAILURES.append(str(ev))
            return True
        return False


def fail(msg):
    raise Failure(msg)


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def eq(got, expected, what):
    if got != expected:
        raise Failure("%s: expected %r, got %r" % (what, expected, got))


def short(text, n=600):
    text = text if isinstance(text, str) else repr(text)
    return text if len(text) <= n else text[:n] + "...(%d chars)" % len(text)


def tail(path, lines=30):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)
    return "\n".join(data.splitlines()[-lines:])


def log_excerpt(path, lines=20):
    """The first sanitizer report (its header and stack) if there is one, else the tail."""
    try:
        with open(path, "rb") as f:
            data = f.read().decode("utf-8", "replace").splitlines()
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)
    for i, l in enumerate(data):
        if SANITIZER_RE.search(l):
            out = []
            for l2 in data[i:]:
                if "Shadow bytes around" in l2 or len(out) >= 40:
                    break
                out.append(l2)
            return "\n".join(out)
    return "\n".join(data[-lines:])


def is_uuid(s):
    return isinstance(s, str) and bool(UUID_RE.match(s))


def is_ts(s):
    return isinstance(s, str) and bool(TS_RE.match(s))


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------
# PostgreSQL cluster


class Cluster:
    def __init__(self, root, directory):
        self.root = root
        self.dir = directory
        self.script = os.path.join(root, "db", "cluster.sh")
        self.url = None

    def start(self, timeout=90):
        p = subprocess.run([self.script, "start", self.dir, "--fast"], cwd=self.root,
                           capture_output=True, text=True, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError("db/cluster.sh start failed (%d):\n%s%s"
                               % (p.returncode, p.stdout, p.stderr))
        lines = [l for l in p.stdout.splitlines() if l.strip()]
        if not lines:
            raise RuntimeError("db/cluster.sh start printed no conninfo")
        self.url = lines[-1].strip()
        return self.url

    def stop(self, timeout=60):
        subprocess.run([self.script, "stop", self.dir], cwd=self.root,
                       capture_output=True, text=True, timeout=timeout)


# --------------------------------------------------------------------------
# accord processes


def run_cli(binary, args, env, timeout=60):
    """Runs `accord ARGS`; returns (rc, stdout, stderr)."""
    p = subprocess.run([binary] + list(args), env=env, capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def last_line(text):
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    return lines[-1] if lines else ""


class Server:
    """One `accord serve` process."""

    _seq = itertools.count(1)

    def __init__(self, binary, workdir, data_dir, base_env, name=None, extra_env=None):
        self.binary = binary
        self.n = next(Server._seq)
        self.name = name or "server%d" % self.n
        self.data_dir = data_dir
        self.env = dict(base_env)
        self.env.update(extra_env or {})
        self.stderr_path = os.path.join(workdir, "%s.stderr.log" % self.name)
        self.stdout_path = os.path.join(workdir, "%s.stdout.log" % self.name)
        self.proc = None
        self.port = None
        self.finished = False   # stopped (or killed) on purpose, exit already judged
        self._scan_pos = 0

    def start(self, timeout=20.0, port=0):
        """port: 0 lets the kernel pick (the browser tests pass a free one they
        found, so ACCORD_PUBLIC_URL can name the origin before the start)."""
        os.makedirs(self.data_dir, exist_ok=True)
        err = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--listen", "%s:%d" % (HOST, port), "--data-dir",
             self.data_dir],
            env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
            start_new_session=True)
        err.close()
        found = threading.Event()
        port = []

        proc = self.proc

        def pump():
            with open(self.stdout_path, "ab") as out:
                for raw in iter(proc.stdout.readline, b""):
                    out.write(raw)
                    out.flush()
                    if not found.is_set():
                        m = LISTEN_RE.search(raw.decode("utf-8", "replace"))
                        if m:
                            port.append(int(m.group(1)))
                            found.set()
            proc.stdout.close()

        threading.Thread(target=pump, daemon=True, name="stdout-" + self.name).start()
        deadline = time.monotonic() + timeout
        while not found.wait(0.05):
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %d before listening; stderr:\n%s"
                                   % (self.name, self.proc.returncode, tail(self.stderr_path)))
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("%s printed no 'accord: listening on ...' line within %.0f s;"
                                   " stderr:\n%s" % (self.name, timeout, tail(self.stderr_path)))
        self.port = port[0]
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10.0):
        """SIGTERM; returns None when it exited 0 within timeout, else a message."""
        if self.proc is None or self.finished:
            return None
        self.finished = True
        if self.proc.poll() is not None:
            return ("%s had already exited with %d; stderr:\n%s"
                    % (self.name, self.proc.returncode, log_excerpt(self.stderr_path)))
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return ("%s did not exit within %.0f s of SIGTERM; stderr:\n%s"
                    % (self.name, timeout, tail(self.stderr_path)))
        if rc != 0:
            return ("%s exited with %d after SIGTERM (expected 0); stderr:\n%s"
                    % (self.name, rc, log_excerpt(self.stderr_path)))
        return None

    def kill(self):
        """SIGKILL (no judgement of the exit status)."""
        self.finished = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass

    def new_sanitizer_reports(self):
        """Sanitizer lines written to stderr since the last call."""
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(self._scan_pos)
                data = f.read()
                self._scan_pos = f.tell()
        except OSError:
            return []
        return [l for l in data.decode("utf-8", "replace").splitlines() if SANITIZER_RE.search(l)]


# --------------------------------------------------------------------------
# HTTP


class Response:
    def __init__(self, method, path, status, headers, body):
        self.method = method
        self.path = path
        self.status = status
        self.headers = headers            # dict, lower-case names
        self.body = body
        self._json = None
        self._json_done = False

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    @property
    def json(self):
        if not self._json_done:
            self._json_done = True
            try:
                self._json = json.loads(self.body.decode("utf-8")) if self.body else None
            except (ValueError, UnicodeDecodeError):
                self._json = None
        return self._json

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def describe(self):
        return "%s %s -> %d %s" % (self.method, self.path, self.status, short(self.text))


SESSION_COOKIE = "accord_session"
SET_COOKIE_RE = re.compile(r"^accord_session=([0-9a-f]{64});")


class Client:
    """A client with a bearer token, or (session=...) a browser's session
    cookie: then it sends the cookie, and on requests that change state the
    Origin a browser would send and the session's X-CSRF-Token."""

    def __init__(self, server, token=None, user=None, session=None, csrf=None, source=None):
        self.server = server
        self.token = token
        self.user = user
        self.session = session      # the cookie's value
        self.csrf = csrf
        self.source = source        # a loopback source address (127.0.0.x), or None

    def on(self, server):
        return Client(server, self.token, self.user, self.session, self.csrf, self.source)

    def anon(self):
        return Client(self.server, None, None, source=self.source)

    def origin(self):
        return "http://%s:%d" % (HOST, self.server.port)

    def request(self, method, path, json_body=None, data=None, headers=None,
                timeout=REQUEST_TIMEOUT, token=Ellipsis):
        hdrs = {}
        tok = self.token if token is Ellipsis else token
        if tok is not None:
            hdrs["Authorization"] = "Bearer " + tok
        if self.session is not None:
            hdrs["Cookie"] = "%s=%s" % (SESSION_COOKIE, self.session)
            if method not in ("GET", "HEAD", "OPTIONS"):
                hdrs["Origin"] = self.origin()
                if self.csrf is not None:
                    hdrs["X-CSRF-Token"] = self.csrf
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            hdrs["Content-Type"] = "application/json"
        elif data is not None:
            body = data
        if headers:
            hdrs.update(headers)
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""
        conn = http.client.HTTPConnection(HOST, self.server.port, timeout=timeout,
                                          source_address=(self.source, 0) if self.source
                                          else None)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            payload = r.read()
            headers_out = {k.lower(): v for k, v in r.getheaders()}
            cookies = [v for k, v in r.getheaders() if k.lower() == "set-cookie"]
            if cookies:
                headers_out["set-cookie"] = cookies[-1]
            contract.check(method, path, r.status, headers_out, payload, hdrs)
            return Response(method, path, r.status, headers_out, payload)
        except (OSError, http.client.HTTPException) as e:
            raise Failure("%s %s: no HTTP answer from %s (port %s): %s: %s"
                          % (method, path, self.server.name, self.server.port,
                             type(e).__name__, e))
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, json_body=body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def patch(self, path, body=None, **kw):
        return self.request("PATCH", path, json_body=body, **kw)

    def sign_in(self, email, password, status=201, what=None):
        """POST /v1/sessions as a browser on this client's address; returns
        (a cookie client, the answer) on 201, (None, the answer) otherwise."""
        r = Client(self.server, source=self.source, session=self.session).request(
            "POST", "/v1/sessions", json_body={"email": email, "password": password},
            headers={"Origin": self.origin()})
        body = expect(r, status, what=what or "sign in as %s" % email)
        if r.status != 201:
            return None, r
        return session_client(self.server, r, self.user, self.source), r


def session_client(server, r, user=None, source=None):
    """The cookie client for an answer that set a session cookie."""
    m = SET_COOKIE_RE.match(r.header("set-cookie", ""))
    check(m is not None, "%s: no session cookie in Set-Cookie %r" % (r.describe(),
                                                                     r.header("set-cookie")))
    return Client(server, None, user, session=m.group(1), csrf=r.json["csrf_token"],
                  source=source)


def check_error_shape(r):
    ct = r.header("content-type", "")
    check(ct.startswith("application/json"),
          "%s: error answer should have Content-Type application/json, got %r"
          % (r.describe(), ct))
    j = r.json
    check(isinstance(j, dict) and isinstance(j.get("error"), dict)
          and isinstance(j["error"].get("code"), str) and isinstance(j["error"].get("message"), str)
          and j["error"]["message"] != "",
          "%s: error body should be {\"error\":{\"code\":...,\"message\":...}}" % r.describe())
    # issue 9: every error names the request, as the X-Request-Id header does
    rid = j["error"].get("request_id")
    check(isinstance(rid, str) and rid and rid == r.header("x-request-id"),
          "%s: error.request_id %r should equal the X-Request-Id header %r"
          % (r.describe(), rid, r.header("x-request-id")))


def expect(r, status, code=None, what=None, shape=True):
    """Asserts the status (int or tuple) and, for errors, the JSON error shape and
    the code (str or tuple). Returns the parsed JSON body (or None)."""
    statuses = status if isinstance(status, tuple) else (status,)
    codes = code if isinstance(code, tuple) or code is None else (code,)
    prefix = (what + ": ") if what else ""
    if r.status not in statuses:
        fail("%s%s %s: expected %s%s, got %d %s"
             % (prefix, r.method, r.path, "/".join(map(str, statuses)),
                (" " + "/".join(codes)) if codes else "", r.status, short(r.text)))
    if r.status >= 400 and r.status != 416 and shape:
        check_error_shape(r)
        if codes and r.json["error"]["code"] not in codes:
            fail("%s%s %s: expected error code %s, got %r (%s)"
                 % (prefix, r.method, r.path, "/".join(codes), r.json["error"]["code"],
                    short(r.text)))
    elif 200 <= r.status < 300 and r.status != 204 and r.body and \
            r.header("content-type", "").startswith("application/json"):
        check(r.json is not None, "%s%s: answer is not valid JSON" % (prefix, r.describe()))
    return r.json


def raw_exchange(port, head, body=b"", timeout=10.0, early_wait=2.0):
    """Sends HEAD (bytes, request line + headers) then, unless the server has
    answered within early_wait seconds, BODY; returns (status, raw_response)."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    try:
        s.sendall(head)
        r, _, _ = select.select([s], [], [], early_wait)
        if not r and body:
            try:
                s.sendall(body)
            except OSError:
                pass
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([s], [], [], 0.2)
            if r:
                try:
                    chunk = s.recv(65536)
                except OSError:
                    break
                if not chunk:
                    break
                data += chunk
                if b"\r\n\r\n" in data:
                    hdr, _, rest = data.partition(b"\r\n\r\n")
                    m = re.search(rb"(?i)content-length:\s*(\d+)", hdr)
                    if m and len(rest) >= int(m.group(1)):
                        break
        m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
        return (int(m.group(1)) if m else None), data
    finally:
        s.close()


# --------------------------------------------------------------------------
# The environment tests run in


class User:
    def __init__(self, env, info, token):
        self.env = env
        self.info = info
        self.id = info["id"]
        self.email = info["email"]
        self.name = info["name"]
        self.org = info.get("org")
        self.roles = info.get("roles")
        self.token = token
        self.password = None
        self.c = Client(env.server, token, self)

    def on(self, server):
        c = self.c.on(server)
        c.user = self
        return c


LEVELS = [(1, "Not yet"), (2, "Approaching"), (3, "Meets"), (4, "Exceeds")]
CRITERIA = [
    ("meeting-structure", "Meeting structure",
     "Greeting, sharing, group activity and morning message run in a predictable order."),
    ("sel-connection", "Connection to SEL competencies",
     "The meeting explicitly builds named social-emotional competencies."),
    ("student-voice", "Student voice and peer feedback",
     "Students speak, listen and respond to each other, not only to the teacher."),
    ("reflection", "Reflection on practice",
     "The teacher analyses what worked and what to change, citing the evidence."),
]
CRITERION_KEYS = [c[0] for c in CRITERIA]


class Env:
    def __init__(self, root, binary, workdir, cluster, base_env):
        self.root = root
        self.binary = binary
        self.workdir = workdir
        self.cluster = cluster
        self.base_env = base_env
        self.data_dir = os.path.join(workdir, "artifacts")
        self.server = None
        self.servers = []
        self.admin = None
        self.seq = itertools.count(1)
        self.lock = threading.Lock()

    # servers -------------------------------------------------------------
    def start_server(self, name=None, extra_env=None):
        s = Server(self.binary, self.workdir, self.data_dir, self.base_env, name, extra_env)
        self.servers.append(s)
        s.start()
        return s

    def uniq(self):
        with self.lock:
            return next(self.seq)

    # users ---------------------------------------------------------------
    def org(self, name):
        """The id of the organisation `name`, created (as the admin) on first use."""
        with self.lock:
            orgs = self.__dict__.setdefault("_orgs", {})
            if name in orgs:
                return orgs[name]
        r = self.admin.c.post("/v1/organisations", {"name": name})
        if r.status == 409:
            found = [o for o in expect(self.admin.c.get("/v1/organisations"), 200,
                                       what="list organisations")["organisations"]
                     if o["name"].lower() == name.lower()]
            check(len(found) == 1, "organisation %r: 409 but not listed" % name)
            oid = found[0]["id"]
        else:
            oid = expect(r, 201, what="create organisation %s" % name)["id"]
        with self.lock:
            self._orgs[name] = oid
        return oid

    def user(self, roles, name=None, org=None, email=None, server=None, session=False):
        """org: an organisation name (created on first use); None gives earners,
        assessors and experts an organisation of their own (issue 7: submitting
        and review grants need one), "" leaves the user without one. A user
        has a token; with session=True they also get a password (through an
        invitation link, as a person would) and u.c is their browser session
        instead of the token."""
        n = self.uniq()
        email = email or "user%d@example.org" % n
        name = name or "User %d" % n
        body = {"email": email, "name": name, "roles": list(roles)}
        if org is None and set(roles) & {"earner", "assessor", "expert"}:
            org = "Own org of user %d" % n
        if org:
            body["org_id"] = self.org(org)
        r = self.admin.c.post("/v1/users", body)
        info = expect(r, 201, what="create user %s" % email)
        check(is_uuid(info.get("id")), "POST /v1/users: id %r is not a lower-case UUID"
              % info.get("id"))
        r = self.admin.c.post("/v1/users/%s/tokens" % info["id"])
        tok = expect(r, 201, what="create token for %s" % email)
        check(isinstance(tok.get("token"), str) and tok["token"],
              "POST /v1/users/{id}/tokens: no token in %s" % short(r.text))
        u = User(self, info, tok["token"])
        if session:
            u.password = "%s's own passphrase %d" % (name.split()[0], n)
            u.c = self.accept_invitation(self.invite(self.admin.c, email), u.password, u)
        if server is not None:
            u.c = u.on(server)
        return u

    def invite(self, client, email, name=None, roles=None, org=None, status=201):
        body = {"email": email}
        for k, v in (("name", name), ("roles", roles), ("org", org)):
            if v is not None:
                body[k] = v
        inv = expect(client.post("/v1/invitations", body), status, what="invite %s" % email)
        return inv

    def accept_invitation(self, inv, password, user=None, source=None):
        """Accepts an invitation (its url's secret) as a browser; returns the cookie client."""
        secret = inv["url"].rsplit("#", 1)[1]
        c = Client(self.server, source=source)
        r = c.request("POST", "/v1/invitations/accept",
                      json_body={"secret": secret, "password": password},
                      headers={"Origin": c.origin()})
        expect(r, 201, what="accept the invitation for %s" % inv["email"])
        return session_client(self.server, r, user, source)

    # rubric / credential -------------------------------------------------
    def rubric_body(self, title="Morning Meeting for SEL"):
        return {
            "title": title,
            "description": "Morning Meeting as a daily structure for social-emotional learning.",
            "criteria": [{"key": k, "title": t, "description": d,
                          "levels": [{"value": v, "label": l} for v, l in LEVELS]}
                         for k, t, d in CRITERIA],
        }

    def rubric(self, lead, title="Morning Meeting for SEL"):
        return expect(lead.c.post("/v1/rubrics", self.rubric_body(title)), 201,
                      what="create rubric")

    def credential(self, lead, rubric_id, stakes="low", videos=3, max_attempts=3,
                   title=None, min_level=3, review_policy=None):
        """review_policy defaults to single scoring without validity items, so the
        review story is deterministic (issue 4's sampling is tested in t_calibration)."""
        body = {
            "title": title or "Morning Meeting for SEL (%s stakes) #%d" % (stakes, self.uniq()),
            "description": "Show a Morning Meeting that builds SEL competencies.",
            "stakes": stakes,
            "rubric_id": rubric_id,
            "evidence": [{"kind": "video", "min": videos}, {"kind": "plan", "min": 1},
                         {"kind": "reflection", "min": 1}],
            "pass_rule": {"min_level_each": min_level},
            "max_attempts": max_attempts,
            "review_policy": review_policy if review_policy is not None
            else {"validity_rate": 0, "second_score_rate": 0},
        }
        return expect(lead.c.post("/v1/credentials", body), 201, what="create credential")

    def grant(self, lead, cred_id, user, pool="peer", waive_award=True, qualify=True):
        """Grants, and (issue 4: live claims need `qualified` on the rubric) qualifies
        the assessor on the credential's rubric by hand, as a lead."""
        body = {"user_id": user.id, "pool": pool}
        if waive_award is not None:
            body["waive_award"] = waive_award
        g = expect(lead.c.post("/v1/credentials/%s/assessors" % cred_id, body), 201,
                   what="grant %s %s" % (pool, user.email))
        if qualify:
            self.qualify(lead, cred_id, user)
        return g

    def qualify(self, lead, cred_id, user):
        cred = expect(lead.c.get("/v1/credentials/%s" % cred_id), 200,
                      what="read credential %s" % cred_id)
        return expect(lead.c.post("/v1/assessors/%s/qualifications" % user.id,
                                  {"rubric_id": cred["rubric_id"], "status": "qualified",
                                   "reason": "qualified by hand for the tests"}), 201,
                      what="qualify %s" % user.email)

    # artifacts / submissions --------------------------------------------
    def upload(self, client, kind, data, media_type=None, filename=None):
        media_type = media_type or {"video": "video/mp4", "plan": "application/pdf",
                                    "reflection": "text/plain"}.get(kind,
                                                                     "application/octet-stream")
        headers = {"Content-Type": media_type, "X-Artifact-Kind": kind}
        if filename:
            headers["X-Filename"] = filename
        r = client.request("POST", "/v1/artifacts", data=data, headers=headers, timeout=60)
        a = expect(r, 201, what="upload %s (%d bytes)" % (kind, len(data)))
        eq(a.get("bytes"), len(data), "uploaded %s: bytes" % kind)
        eq(a.get("sha256"), sha256(data), "uploaded %s: sha256" % kind)
        return a

    def evidence(self, client, video_size=2048, videos=3):
        """Uploads `videos` videos, a plan and a reflection; returns [(artifact, bytes)]."""
        out = []
        for i in range(videos):
            d = os.urandom(video_size)
            out.append((self.upload(client, "video", d, filename="clip%d.mp4" % i), d))
        d = b"%PDF-1.4 lesson plan " + os.urandom(512)
        out.append((self.upload(client, "plan", d, filename="plan.pdf"), d))
        d = ("Reflection %d: the share went long; next time a timer." % self.uniq()).encode()
        out.append((self.upload(client, "reflection", d, filename="reflection.txt"), d))
        return out

    def submit(self, client, cred_id, artifact_ids):
        r = client.post("/v1/submissions", {"credential_id": cred_id,
                                            "artifact_ids": list(artifact_ids)})
        return expect(r, 201, what="submit")

    def scores(self, levels, comment="ok"):
        """levels: dict criterion -> level (default 3 for each)."""
        return [{"criterion": k, "level": levels.get(k, 3), "comment": "%s (%s)" % (comment, k)}
                for k in CRITERION_KEYS]


def assert_not_in_text(text, needles, what):
    for label, needle in needles:
        if needle and needle in text:
            fail("%s leaks the %s (%r): %s" % (what, label, needle, short(text, 1200)))


# --------------------------------------------------------------------------
# Test registry: tests run in the order they are registered (module import
# order in run.py, then definition order).

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def sql(env, query):
    """Runs SQL on the test cluster (only to move time: expire a token or a
    session, which no API may do); returns psql's unaligned output."""
    p = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                        env.base_env["DATABASE_URL"], "-c", query],
                       capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, "psql %r: %s" % (query, p.stderr))
    return p.stdout.strip()

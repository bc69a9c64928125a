# SPDX-License-Identifier: Apache-2.0
"""badges.py - helpers for the badge tests (issue 12): a server that issues
badges, earning an award, fetching its VC-JWT, and verifying JWTs with the
independent verifier (tests/badge/verify.mjs: npm jose + ajv) against that
server's JWKS and revocation list, fetched over HTTP.

Badges are issued only under an explicit ACCORD_PUBLIC_URL; the main test
server derives its public URL from its port (what the sign-in tests need), so
badge tests run a second server on the same database with PUBLIC_URL."""

import base64
import json
import os
import subprocess
import tempfile

from harness import HOST, PUBLIC_URL, check, eq, expect, fail, short

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VERIFY = os.path.join(ROOT, "tests", "badge", "verify.mjs")


def badge_server(env):
    """A server with ACCORD_PUBLIC_URL set (started once per test: the runner
    stops the servers a test started when it ends)."""
    s = getattr(env, "badge_srv", None)
    if s is None or s.finished or not s.alive():
        s = env.start_server("badges%d" % env.uniq(), {"ACCORD_PUBLIC_URL": PUBLIC_URL})
        env.badge_srv = s
    return s


def b64url_decode(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_parts(jwt):
    h, p, s = jwt.split(".")
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(p)), s


def earn(env, lead, earner, cred, assessor, levels=None):
    """The earner submits evidence and the assessor passes it: the award id."""
    ev = [a["id"] for a, _ in env.evidence(earner.c)]
    sub = env.submit(earner.c, cred["id"], ev)
    claim = expect(assessor.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200,
                   what="claim")
    eq(claim["submission"]["id"], sub["id"], "claimed submission")
    res = expect(assessor.c.post("/v1/reviews/%s/scores" % claim["id"],
                                 {"scores": env.scores(levels or {}), "feedback": "Meets the bar."}),
                 200, what="score")
    eq(res["verdict"], "pass", "verdict")
    return res["award_id"], ev


def fetch_jwt(client, award_id):
    """The VC-JWT at the award's URL; client is on a badge server."""
    r = client.anon().get("/v1/awards/" + award_id, headers={"Accept": "application/vc+jwt"})
    expect(r, 200, what="the badge as a VC-JWT")
    eq(r.header("content-type"), "application/vc+jwt", "Content-Type of the VC-JWT")
    jwt = r.text.strip()
    check(jwt.count(".") == 2, "not a compact JWS: %s" % short(jwt))
    return jwt


def verify(env, jwts, server=None, offline=False, now=None):
    """Runs verify.mjs on the JWTs; returns one result dict per JWT
    ({ok, status, error, kid, id}). offline: the JWKS and the revocation list
    are fetched first and handed over as files (README "Verifying a badge")."""
    server = server or badge_server(env)
    if not os.path.isdir(os.path.join(ROOT, "tests", "badge", "node_modules")):
        fail("tests/badge/node_modules is missing: run `make badge-deps`")
    d = tempfile.mkdtemp(prefix="badges-", dir=env.workdir)
    files = []
    for i, jwt in enumerate(jwts):
        path = os.path.join(d, "badge%d.jwt" % i)
        with open(path, "w") as f:
            f.write(jwt)
        files.append(path)
    base = "http://%s:%d" % (HOST, server.port)
    jwks, status = base + "/.well-known/jwks.json", base + "/v1/issuer/revocations"
    if offline:
        from harness import Client
        for name, path in (("jwks.json", "/.well-known/jwks.json"),
                           ("revocations.json", "/v1/issuer/revocations")):
            r = Client(server).get(path)
            expect(r, 200, what="download " + path)
            with open(os.path.join(d, name), "wb") as f:
                f.write(r.body)
        jwks, status = os.path.join(d, "jwks.json"), os.path.join(d, "revocations.json")
    extra = ["--now", str(now)] if now is not None else []
    p = subprocess.run(["node", VERIFY, "--jwks", jwks, "--status", status] + extra + files,
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    out = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    if len(out) != len(jwts) or p.returncode not in (0, 1):
        fail("verify.mjs exited %d with %d results for %d badges:\n%s%s"
             % (p.returncode, len(out), len(jwts), p.stdout, p.stderr))
    return out


def verified(env, jwt, what):
    """Asserts the JWT verifies and is valid; returns its payload."""
    res = verify(env, [jwt])[0]
    check(res["ok"] and res["status"] == "valid",
          "%s: the independent verifier rejected it: %s" % (what, json.dumps(res)))
    _, payload, _ = jwt_parts(jwt)
    eq(payload["id"], PUBLIC_URL + "/v1/awards/" + payload["id"].rsplit("/", 1)[-1],
       "%s: credential id under the public URL" % what)
    return payload


def forge(env, pem_text, kid, payload):
    """A JWT signed with the given private key (tests/badge/sign.mjs)."""
    path = os.path.join(tempfile.mkdtemp(prefix="forge-", dir=env.workdir), "key.pem")
    with open(path, "w") as f:
        f.write(pem_text)
    os.chmod(path, 0o600)
    p = subprocess.run(["node", os.path.join(ROOT, "tests", "badge", "sign.mjs"), path, kid],
                       input=json.dumps(payload), capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        fail("sign.mjs exited %d: %s" % (p.returncode, p.stderr))
    return p.stdout.strip()


def psql(env, sql):
    """One value from the test cluster (for checks the API does not expose, e.g. the audit log)."""
    p = subprocess.run(["psql", env.base_env["DATABASE_URL"], "-XAtc", sql], capture_output=True,
                       text=True, timeout=30)
    if p.returncode != 0:
        fail("psql: %s" % p.stderr)
    return p.stdout.strip()

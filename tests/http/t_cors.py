# SPDX-License-Identifier: Apache-2.0
"""CORS for a browser front end hosted elsewhere (issue 9, item 7): an
allow-list setting (default: none), the tus and id headers exposed, and a
preflight answered for every route of the router."""

import re

from harness import Client, check, eq, expect, test
from t_openapi import router_routes

ALLOWED = "https://app.example.org"
OTHER = "https://evil.example.net"


def preflight(c, path, origin, method="POST", headers="authorization, content-type"):
    h = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        h["Access-Control-Request-Headers"] = headers
    return c.request("OPTIONS", path, headers=h)


def concrete(pattern):
    return pattern.replace("{id}", "00000000-0000-4000-8000-000000000000")


def split(v):
    return {x.strip().lower() for x in (v or "").split(",") if x.strip()}


@test
def cors_off_by_default(env):
    anon = env.admin.c.anon()
    r = anon.get("/healthz", headers={"Origin": ALLOWED})
    expect(r, 200)
    eq(r.header("access-control-allow-origin"), None, "no CORS header without --cors-origins")
    r = preflight(anon, "/v1/submissions", ALLOWED)
    expect(r, 403, "cors_origin_not_allowed", "a preflight with CORS off")
    eq(r.header("access-control-allow-origin"), None, "preflight with CORS off: no allow-origin")


@test
def cors_allow_list(env):
    s = env.start_server("cors", {"ACCORD_CORS_ORIGINS": ALLOWED + ",http://localhost:5173"})
    admin = env.admin.on(s)
    anon = Client(s)
    # a preflight for every route of the router, with its method
    for method, pattern, public, _ in router_routes():
        m = method.upper()
        r = preflight(anon, concrete(pattern), ALLOWED, m)
        expect(r, 204, what="preflight %s %s" % (m, pattern))
        eq(r.header("access-control-allow-origin"), ALLOWED, "preflight %s %s allow-origin"
           % (m, pattern))
        allowed = split(r.header("access-control-allow-methods"))
        check(m.lower() in allowed, "preflight %s %s: Allow-Methods %r lacks %s"
              % (m, pattern, r.header("access-control-allow-methods"), m))
        hdrs = split(r.header("access-control-allow-headers"))
        check({"authorization", "content-type", "x-request-id", "tus-resumable", "upload-offset",
               "upload-length", "upload-metadata", "x-artifact-kind", "range"} <= hdrs,
              "preflight %s: Allow-Headers %r" % (pattern, r.header("access-control-allow-headers")))
        check(re.match(r"^\d+$", r.header("access-control-max-age", "")),
              "preflight %s: Max-Age %r" % (pattern, r.header("access-control-max-age")))
        check("origin" in split(r.header("vary")), "preflight %s: Vary %r" % (pattern, r.header("vary")))
    # origins are compared exactly: another origin, a prefix, another port, another scheme
    for origin in (OTHER, "https://app.example.org.evil.net", "http://app.example.org",
                   "https://app.example.org:8443", "null"):
        r = preflight(anon, "/v1/submissions", origin)
        expect(r, 403, "cors_origin_not_allowed", "preflight from %s" % origin)
        eq(r.header("access-control-allow-origin"), None, "preflight from %s: allow-origin" % origin)
        r = admin.get("/v1/me", headers={"Origin": origin})
        expect(r, 200)
        eq(r.header("access-control-allow-origin"), None, "GET from %s: allow-origin" % origin)
    # an unknown path: 404, not a blanket yes
    expect(preflight(anon, "/v1/nope", ALLOWED), 404, "not_found")
    # actual requests from an allowed origin: the origin echoed, the headers a script reads exposed
    r = admin.get("/v1/me", headers={"Origin": "http://localhost:5173"})
    expect(r, 200)
    eq(r.header("access-control-allow-origin"), "http://localhost:5173", "GET allow-origin")
    exposed = split(r.header("access-control-expose-headers"))
    check({"location", "x-request-id", "upload-offset", "upload-length", "tus-resumable",
           "tus-version", "tus-max-size", "tus-extension", "content-range", "retry-after"} <= exposed,
          "Expose-Headers %r" % r.header("access-control-expose-headers"))
    eq(r.header("access-control-allow-credentials"), None,
       "bearer tokens need no credentials mode; cookies are never allowed cross-origin")
    # errors carry the headers too, so a script can read the JSON error
    r = anon.get("/v1/me", headers={"Origin": ALLOWED})
    expect(r, 401)
    eq(r.header("access-control-allow-origin"), ALLOWED, "401 allow-origin")
    # tus OPTIONS without a preflight header is still the tus capabilities answer
    r = anon.request("OPTIONS", "/v1/uploads", headers={"Origin": ALLOWED})
    expect(r, 204)
    check(r.header("tus-version"), "tus OPTIONS answer lost its Tus-Version: %s" % r.headers)


@test
def cors_setting_is_validated(env):
    from harness import run_cli
    for bad in ("app.example.org", "https://app.example.org/path", "https://a.org,  ftp//x",
                "https://a b.org"):
        e = dict(env.base_env, ACCORD_CORS_ORIGINS=bad)
        rc, out, err = run_cli(env.binary, ["serve", "--listen", "127.0.0.1:0"], e, timeout=30)
        eq(rc, 2, "ACCORD_CORS_ORIGINS=%r exit status (stderr %r)" % (bad, err))
        check("ACCORD_CORS_ORIGINS" in err, "ACCORD_CORS_ORIGINS=%r: %r" % (bad, err))

# SPDX-License-Identifier: Apache-2.0
"""Single sign-on with OpenID Connect (issue 10, item 4), against a real
OpenID Provider: npm oidc-provider (certified), run by tests/oidc/provider.mjs
on loopback. The same process serves a second, forging issuer (/forge) whose
token endpoint hands out deliberately bad id_tokens made with npm jose, so
every forgery goes through accord's real callback path: code exchange, JWKS,
signature and claim checks.

A "browser" here is urllib with a cookie jar that follows redirects by hand,
so each hop (accord -> provider -> accord) can be seen."""

import atexit
import http.cookiejar
import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from harness import HOST, Failure, check, eq, expect, fail, short, test
from t_openapi import conforms, load_doc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OIDC_DIR = os.path.join(ROOT, "tests", "oidc")
CLIENT_ID = "accord"
CLIENT_SECRET = "accord-test-secret"
READY_RE = re.compile(r"oidc-test-provider listening on (http://127\.0\.0\.1:\d+)")


class TestProvider:
    """tests/oidc/provider.mjs: started once, for the main server's callback URL."""

    _instance = None

    def __init__(self, env):
        self.redirect_uri = "http://%s:%d/v1/auth/oidc/callback" % (HOST, env.server.port)
        self.log_path = os.path.join(env.workdir, "oidc-provider.log")
        if not os.path.isdir(os.path.join(OIDC_DIR, "node_modules", "oidc-provider")):
            raise Failure("tests/oidc/node_modules is missing: run `make oidc-deps`")
        log = open(self.log_path, "ab")
        # stdin stays a pipe: the provider exits when it closes (with us)
        self.proc = subprocess.Popen(["node", "provider.mjs", "--redirect-uri", self.redirect_uri],
                                     cwd=OIDC_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=log, start_new_session=True)
        log.close()
        atexit.register(self.stop)
        found = []
        done = threading.Event()

        def pump():
            for raw in iter(self.proc.stdout.readline, b""):
                m = READY_RE.search(raw.decode("utf-8", "replace"))
                if m and not found:
                    found.append(m.group(1))
                    done.set()
            done.set()

        threading.Thread(target=pump, daemon=True).start()
        if not done.wait(60) or not found:
            self.stop()
            raise Failure("the OpenID test provider did not start; its log:\n%s"
                          % short(open(self.log_path, "rb").read().decode("utf-8", "replace"),
                                  3000))
        self.issuer = found[0]
        self.forge_issuer = self.issuer + "/forge"

    @classmethod
    def get(cls, env):
        if cls._instance is None or cls._instance.proc.poll() is not None:
            cls._instance = TestProvider(env)
        return cls._instance

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(5)
            except Exception:  # noqa: BLE001
                self.proc.kill()
                self.proc.wait(5)

    def control(self, path, body):
        req = urllib.request.Request(self.issuer + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            check(r.status == 204, "provider control %s answered %d" % (path, r.status))

    def next_login(self, sub, email=None, verified=True, name=None, **extra):
        claims = {"sub": sub}
        if email is not None:
            claims["email"] = email
            claims["email_verified"] = verified
        if name is not None:
            claims["name"] = name
        claims.update(extra)
        self.control("/test/next-login", claims)

    def forge_mode(self, mode):
        self.control("/test/forge-mode", {"mode": mode})


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Hop:
    def __init__(self, url, status, headers, body):
        self.url = url
        self.status = status
        self.headers = headers
        self.body = body
        try:
            self.json = json.loads(body.decode("utf-8")) if body else None
        except ValueError:
            self.json = None

    def describe(self):
        return "GET %s -> %d %s" % (self.url, self.status, short(self.body.decode("utf-8",
                                                                                  "replace")))


class Browser:
    """Cookies and redirects, like a browser, one hop at a time."""

    def __init__(self):
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar),
                                                  NoRedirect)

    def get(self, url):
        try:
            with self.opener.open(url, timeout=30) as r:
                return Hop(url, r.status, r.headers, r.read())
        except urllib.error.HTTPError as e:
            return Hop(url, e.code, e.headers, e.read())

    def follow(self, url, stop_at, max_hops=12):
        """Follows redirects from url until one leads to stop_at (a URL
        prefix): returns (hops, answer at stop_at)."""
        hops = []
        for _ in range(max_hops):
            h = self.get(url)
            hops.append(h)
            if url.startswith(stop_at) or h.status not in (301, 302, 303, 307, 308):
                return hops, h
            url = urllib.parse.urljoin(url, h.headers["Location"])
        raise Failure("more than %d redirects: %s" % (max_hops, [x.url for x in hops]))


def accord_url(env, path):
    return "http://%s:%d%s" % (HOST, env.server.port, path)


def make_provider(env, issuer, **fields):
    body = {"name": "District SSO %d" % env.uniq(), "issuer": issuer, "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET}
    body.update(fields)
    r = env.admin.c.post("/v1/identity-providers", body)
    return expect(r, 201, what="create identity provider")


def sign_in(env, provider_id, browser=None, return_to="/home", invitation=None):
    """Starts at accord, goes through the provider, stops at accord's callback answer."""
    b = browser or Browser()
    start = accord_url(env, "/v1/auth/oidc/%s/start?return_to=%s"
                       % (provider_id, urllib.parse.quote(return_to, safe="")))
    if invitation:
        start += "&invitation=" + invitation
    hops, last = b.follow(start, accord_url(env, "/v1/auth/oidc/callback"))
    check(hops[0].status == 302, "start: %s" % hops[0].describe())
    return b, hops, last


def expect_signed_in(last, what):
    """The callback signed the person in: 303 back into accord with a session
    cookie (server/signin.c), which GET /v1/me accepts; returns the user's id."""
    check(last.url.startswith("http://%s" % HOST) and "/v1/auth/oidc/callback" in last.url,
          "%s: the sign-in did not come back to accord's callback: %s" % (what, last.describe()))
    check(last.status == 303 and (last.headers.get("Location") or "").startswith("/"),
          "%s: expected 303 to the return_to path, got %s" % (what, last.describe()))
    cookies = [c for c in last.headers.get_all("Set-Cookie") or []
               if c.startswith("accord_session=") and "Max-Age=0" not in c]
    check(len(cookies) == 1 and "HttpOnly" in cookies[0] and "SameSite=Lax" in cookies[0],
          "%s: no session cookie in %s" % (what, last.headers.get_all("Set-Cookie")))
    base = last.url.split("/v1/", 1)[0]
    req = urllib.request.Request(base + "/v1/me",
                                 headers={"Cookie": cookies[0].split(";", 1)[0]})
    with urllib.request.urlopen(req, timeout=30) as r:
        me = json.loads(r.read().decode("utf-8"))
    check(me.get("auth", {}).get("signed_in_with") == "oidc",
          "%s: GET /v1/me with the new cookie: %s" % (what, me))
    return me["id"]


def expect_refused(last, status, code, what):
    check(last.status == status and (last.json or {}).get("error", {}).get("code") == code,
          "%s: expected %d %s, got %s" % (what, status, code, last.describe()))
    check("user_id" not in (last.json or {}), "%s: refused but answered a user" % what)


@test
def oidc_provider_admin(env):
    prov = TestProvider.get(env)
    admin = env.admin.c
    doc = load_doc()
    p = make_provider(env, prov.issuer, allowed_domains=["District.Example"],
                      default_roles=["assessor", "earner"], allow_signup=True)
    check(CLIENT_SECRET not in json.dumps(p), "the answer echoes the client secret: %s" % p)
    eq(p["client_secret_set"], True, "client_secret_set")
    eq(p["allowed_domains"], ["district.example"], "allowed_domains (lower-cased)")
    eq(p["default_roles"], ["assessor", "earner"], "default_roles")
    r = admin.get("/v1/identity-providers")
    j = conforms(doc, r, "/v1/identity-providers")
    check(any(x["id"] == p["id"] for x in j["providers"]), "list lacks the provider")
    check(CLIENT_SECRET not in r.text, "the list echoes the client secret")
    r = admin.get("/v1/identity-providers/%s" % p["id"])
    eq(conforms(doc, r, "/v1/identity-providers/{id}")["issuer"], prov.issuer, "GET issuer")
    r = admin.request("PATCH", "/v1/identity-providers/%s" % p["id"],
                      json_body={"name": "Renamed", "client_secret": "rotated-secret-value"})
    j = expect(r, 200)
    eq(j["name"], "Renamed", "PATCH name")
    check("rotated-secret-value" not in r.text, "PATCH echoes the new secret")
    # the public list: names and ids only
    r = admin.anon().get("/v1/auth/oidc/providers")
    j = conforms(doc, r, "/v1/auth/oidc/providers")
    mine = [x for x in j["providers"] if x["id"] == p["id"]]
    eq(mine, [{"id": p["id"], "name": "Renamed"}], "public provider entry")
    # who may administer: admins only
    lead = env.user(["lead"])
    expect(lead.c.post("/v1/identity-providers", {"name": "x", "issuer": prov.issuer,
                                                   "client_id": "x"}), 403)
    expect(lead.c.get("/v1/identity-providers"), 403)
    expect(lead.c.get("/v1/identity-providers/%s" % p["id"]), 403)
    expect(admin.anon().get("/v1/identity-providers"), 401)
    # validation
    bad = [
        ({"name": "x", "issuer": "http://idp.example.org", "client_id": "c"}, 422,
         "invalid_issuer"),
        ({"name": "x", "issuer": "https://idp.example.org?x=1", "client_id": "c"}, 422,
         "invalid_issuer"),
        ({"name": "x", "issuer": "https://idp.example.org", "client_id": "c",
          "default_roles": ["admin"]}, 422, "invalid_roles"),
        ({"name": "x", "issuer": "https://idp.example.org", "client_id": "c",
          "allow_signup": True}, 422, "signup_unrestricted"),
        ({"name": "x", "issuer": "https://idp.example.org", "client_id": "c",
          "allowed_domains": ["not a domain"]}, 422, "invalid_domain"),
        ({"name": "x", "issuer": "https://idp.example.org", "client_id": "c", "colour": 1}, 400,
         None),
        ({"name": "x", "issuer": "https://idp.example.org"}, 400, None),
        ({"name": "x", "issuer": "https://idp.example.org", "client_id": "c",
          "allowed_domains": "district.example"}, 400, None),
        ({"name": "x", "issuer": "https://idp.example.org", "client_id": "c",
          "client_secret": 5}, 400, None),
        ({"name": "x" * 101, "issuer": "https://idp.example.org", "client_id": "c"}, 400, None),
    ]
    for body, status, code in bad:
        expect(admin.post("/v1/identity-providers", body), status, code,
               what="create %s" % short(json.dumps(body), 120))
    # same issuer + client_id twice
    expect(admin.post("/v1/identity-providers", {"name": "dup", "issuer": prov.issuer,
                                                  "client_id": CLIENT_ID}), 409, "provider_exists")
    # delete
    q = make_provider(env, "https://idp.example.org/tenant-%d" % env.uniq())
    expect(admin.request("DELETE", "/v1/identity-providers/%s" % q["id"]), 204)
    expect(admin.get("/v1/identity-providers/%s" % q["id"]), 404)
    expect(admin.anon().get("/v1/auth/oidc/%s/start" % q["id"]), 404)
    # the secrets never reach the server's logs
    for path in (env.server.stderr_path, env.server.stdout_path):
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        check(CLIENT_SECRET not in text and "rotated-secret-value" not in text,
              "a client secret appears in %s" % path)


def provider_for_signin(env, prov, **fields):
    """The real provider, configured fresh: pending sign-ins and identities
    are per issuer, so each test uses its own email domain."""
    admin = env.admin.c
    fields.setdefault("tenant_ids", [])
    fields.setdefault("org_id", None)
    r = admin.get("/v1/identity-providers")
    for x in expect(r, 200)["providers"]:
        if x["issuer"] == prov.issuer and x["client_id"] == CLIENT_ID:
            return expect(admin.request("PATCH", "/v1/identity-providers/%s" % x["id"],
                                        json_body=dict(fields, client_secret=CLIENT_SECRET,
                                                       enabled=True)), 200)
    return make_provider(env, prov.issuer, **fields)


@test
def oidc_signin_new_user(env):
    prov = TestProvider.get(env)
    org = env.org("New District %d" % env.uniq())
    p = provider_for_signin(env, prov, allowed_domains=["new.district.example"],
                            default_roles=["earner"], allow_signup=True, org_id=org)
    eq(p["org_id"], org, "the provider's organisation")
    n = env.uniq()
    sub = "teacher-%d" % n
    prov.next_login(sub, "Teacher%d@new.district.example" % n, name="Ana Teacher")
    b, hops, last = sign_in(env, p["id"])
    # the authorization request: code flow, PKCE S256, state and nonce
    loc = urllib.parse.urlparse(hops[0].headers["Location"])
    q = urllib.parse.parse_qs(loc.query)
    eq(q.get("response_type"), ["code"], "response_type")
    eq(q.get("client_id"), [CLIENT_ID], "client_id")
    eq(q.get("code_challenge_method"), ["S256"], "code_challenge_method")
    check(len(q.get("state", [""])[0]) >= 43 and len(q.get("nonce", [""])[0]) >= 43 and
          len(q.get("code_challenge", [""])[0]) == 43, "state/nonce/challenge: %s" % q)
    check("code_verifier" not in q and "client_secret" not in loc.query,
          "the verifier or secret leaked into the authorization URL")
    cookie = hops[0].headers.get("Set-Cookie", "")
    check("HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=600" in cookie,
          "the browser-binding cookie: %r" % cookie)
    uid = expect_signed_in(last, "first sign-in")
    who = expect(env.admin.c.get("/v1/users/" + uid), 200)
    eq((who["email"], who["name"], who["roles"], who["org_id"]),
       ("teacher%d@new.district.example" % n, "Ana Teacher", ["earner"], org),
       "the new person (email lower-cased, the provider's roles and organisation)")
    cb = urllib.parse.parse_qs(urllib.parse.urlparse(last.url).query)
    eq(cb.get("iss"), [prov.issuer], "the provider's iss in the callback (RFC 9207)")
    # the same person again: the same user (matched by issuer and subject)
    prov.next_login(sub, "teacher%d@new.district.example" % n, name="Ana Teacher")
    _, _, last = sign_in(env, p["id"])
    eq(expect_signed_in(last, "second sign-in"), uid, "user on the second sign-in")
    # someone from another domain may not join
    prov.next_login("stranger-%d" % n, "someone%d@elsewhere.example" % n)
    _, _, last = sign_in(env, p["id"])
    expect_refused(last, 403, "not_invited", "a stranger from another domain")
    # nor someone whose email the provider does not vouch for
    prov.next_login("unverified-%d" % n, "u%d@new.district.example" % n, verified=False)
    _, _, last = sign_in(env, p["id"])
    expect_refused(last, 403, "email_not_verified", "an unverified email")
    # without allow_signup nobody new comes in
    expect(env.admin.c.request("PATCH", "/v1/identity-providers/%s" % p["id"],
                               json_body={"allow_signup": False}), 200)
    prov.next_login("late-%d" % n, "late%d@new.district.example" % n)
    _, _, last = sign_in(env, p["id"])
    expect_refused(last, 403, "not_invited", "signup closed")
    # but the known person still does
    prov.next_login(sub, "teacher%d@new.district.example" % n)
    _, _, last = sign_in(env, p["id"])
    eq(expect_signed_in(last, "known person, signup closed"), uid, "known person")


@test
def oidc_signin_invited_user(env):
    """An invited person signs in with the provider (no allowed domain, no
    sign-up): the invitation becomes their account, roles and all, and is used."""
    prov = TestProvider.get(env)
    p = provider_for_signin(env, prov, allowed_domains=[], allow_signup=False)
    n = env.uniq()
    email = "invited%d@anywhere.example" % n
    inv = env.invite(env.admin.c, email, name="Ivy Invited", roles=["assessor"])
    prov.next_login("invited-%d" % n, email.upper())
    b, _, last = sign_in(env, p["id"])
    uid = expect_signed_in(last, "invited person")
    who = expect(env.admin.c.get("/v1/users/" + uid), 200)
    eq((who["email"], who["name"], who["roles"]), (email, "Ivy Invited", ["assessor"]),
       "the account made from the invitation")
    eq([i["status"] for i in expect(env.admin.c.get("/v1/invitations?status=accepted"), 200)[
        "invitations"] if i["id"] == inv["id"]], ["accepted"], "the invitation is used")
    expect(env.admin.c.anon().post("/v1/invitations/open", {"secret": inv["url"].split("#")[1]}),
           404, "invitation_used")
    # a disabled person cannot sign in with the provider either
    expect(env.admin.c.patch("/v1/users/" + uid, {"disabled": True}), 200)
    prov.next_login("invited-%d" % n, email)
    _, _, last = sign_in(env, p["id"])
    expect_refused(last, 403, "user_disabled", "a disabled user")


@test
def oidc_signin_from_invitation_link(env):
    """From the invitation page: the link's holder takes the invitation with
    whatever account the provider knows them by (as they would by choosing a
    password), and the link is spent."""
    prov = TestProvider.get(env)
    p = provider_for_signin(env, prov, allowed_domains=[], allow_signup=False)
    n = env.uniq()
    inv = env.invite(env.admin.c, "home%d@home.example" % n, name="Jo Link", roles=["expert"])
    secret = inv["url"].rsplit("#", 1)[1]
    prov.next_login("link-%d" % n, "jo.work%d@school.example" % n, verified=False)
    _, hops, last = sign_in(env, p["id"], invitation=secret)
    check(hops[0].headers.get("Referrer-Policy") == "no-referrer",
          "start with an invitation: Referrer-Policy %r" % hops[0].headers.get("Referrer-Policy"))
    uid = expect_signed_in(last, "from the invitation link")
    who = expect(env.admin.c.get("/v1/users/" + uid), 200)
    eq((who["email"], who["name"], who["roles"]), (inv["email"], "Jo Link", ["expert"]),
       "the account made from the invitation")
    # the same person again needs no link; the link itself is spent
    prov.next_login("link-%d" % n, "jo.work%d@school.example" % n, verified=False)
    eq(expect_signed_in(sign_in(env, p["id"])[2], "again"), uid, "same user")
    anon = env.admin.c.anon()
    start = "/v1/auth/oidc/%s/start?invitation=" % p["id"]
    expect(anon.get(start + secret), 404, "invitation_used")
    expect(anon.get(start + "0" * 64), 404, "invitation_unknown")
    for bad in ("short", "G" * 64, "0" * 65):
        expect(anon.get(start + bad), 400, "invalid_invitation", what="invitation %r" % bad)


@test
def oidc_signin_links_existing_user_by_email(env):
    prov = TestProvider.get(env)
    p = provider_for_signin(env, prov, allowed_domains=["link.district.example"],
                            allow_signup=False)
    n = env.uniq()
    u = env.user(["assessor"], email="assessor%d@link.district.example" % n)
    prov.next_login("linked-%d" % n, u.email.upper().replace("@LINK", "@link"))
    _, _, last = sign_in(env, p["id"])
    eq(expect_signed_in(last, "existing user"), u.id, "the existing user")
    # an unverified email never links to an account
    v = env.user(["assessor"], email="other%d@link.district.example" % n)
    prov.next_login("linked-x-%d" % n, v.email, verified=False)
    _, _, last = sign_in(env, p["id"])
    expect_refused(last, 403, "email_not_verified", "unverified email of an existing user")


@test
def oidc_state_is_single_use_and_bound_to_the_browser(env):
    prov = TestProvider.get(env)
    p = provider_for_signin(env, prov, allowed_domains=["state.district.example"],
                            allow_signup=True)
    n = env.uniq()
    prov.next_login("state-%d" % n, "s%d@state.district.example" % n)
    b, hops, last = sign_in(env, p["id"])
    expect_signed_in(last, "sign-in")
    # the same callback URL again (a replayed code and state)
    again = b.get(last.url)
    expect_refused(again, 400, "state_used", "replayed callback")
    # a callback from a browser that did not start the sign-in (login CSRF)
    prov.next_login("state2-%d" % n, "s2%d@state.district.example" % n)
    b1 = Browser()
    start = accord_url(env, "/v1/auth/oidc/%s/start" % p["id"])
    hops, _ = b1.follow(start, accord_url(env, "/v1/auth/oidc/callback"), max_hops=12)
    cb_url = [h.url for h in hops if "/v1/auth/oidc/callback" in h.url]
    check(cb_url, "no callback hop: %s" % [h.url for h in hops])
    # (b1 followed it already: it is spent; start another and stop before the callback)
    prov.next_login("state3-%d" % n, "s3%d@state.district.example" % n)
    h = b1.get(start)
    url = h.headers["Location"]
    for _ in range(10):
        h = b1.get(url)
        url = urllib.parse.urljoin(url, h.headers.get("Location", ""))
        if "/v1/auth/oidc/callback" in url:
            break
    other = Browser()
    expect_refused(other.get(url), 400, "browser_mismatch", "callback in another browser")
    # bad requests
    anon = env.admin.c.anon()
    expect(anon.get("/v1/auth/oidc/callback"), 400, "bad_request")
    expect(anon.get("/v1/auth/oidc/callback?state=abc&code=xyz"), 400, "invalid_state")
    expect(anon.get("/v1/auth/oidc/callback?state=a&state=b&code=c"), 400, "bad_request")
    expect(anon.get("/v1/auth/oidc/callback?error=access_denied&state=x"), 401,
           "provider_refused")
    for rt in ("//evil.example/", "https://evil.example/", "/\\evil.example", "relative"):
        expect(anon.get("/v1/auth/oidc/%s/start?return_to=%s"
                        % (p["id"], urllib.parse.quote(rt, safe=""))), 400, "invalid_return_to",
               what="return_to %r" % rt)
    expect(anon.get("/v1/auth/oidc/00000000-0000-0000-0000-000000000000/start"), 404)
    expect(anon.get("/v1/auth/oidc/not-a-uuid/start"), 400, "invalid_uuid")



@test
def oidc_refusals_to_a_browser_go_back_to_the_sign_in_page(env):
    """A person's browser never lands on a JSON error page: a refusal on the
    sign-in routes to a client asking for HTML (a navigation) is a 303 to the
    web app's sign-in page naming only the code and the request id; a script
    (Accept: application/json, or none) still gets the JSON error."""
    prov = TestProvider.get(env)
    p = provider_for_signin(env, prov)
    anon = env.admin.c.anon()
    html = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    cases = [
        ("/v1/auth/oidc/callback?state=abc&code=xyz", "invalid_state", 400),
        ("/v1/auth/oidc/callback?error=access_denied&state=x", "provider_refused", 401),
        ("/v1/auth/oidc/00000000-0000-0000-0000-000000000000/start", "not_found", 404),
        ("/v1/auth/oidc/%s/start?return_to=%s" % (p["id"], urllib.parse.quote("//evil.example/")),
         "invalid_return_to", 400),
    ]
    for path, code, status in cases:
        rid = "browser-%d" % env.uniq()
        r = anon.request("GET", path, headers=dict(html, **{"X-Request-Id": rid}))
        eq(r.status, 303, "%s to a browser" % path)
        eq(r.header("Location"), "/#/sign-in?sso_error=%s&request_id=%s" % (code, rid),
           "%s: Location" % path)
        check(r.header("Cache-Control") == "no-store", "%s: cacheable refusal" % path)
        expect(anon.request("GET", path, headers={"Accept": "application/json"}), status, code)
        expect(anon.get(path), status, code)
    # the message (which may quote the provider) never travels in the link
    r = anon.request("GET", cases[1][0], headers=html)
    check("access_denied" not in r.header("Location", ""), r.header("Location"))
    # the way in still redirects to the provider, for a browser as for anyone
    r = anon.request("GET", "/v1/auth/oidc/%s/start" % p["id"], headers=html)
    eq(r.status, 302, "start to a browser")
    check(r.header("Location", "").startswith(prov.issuer), r.header("Location"))


def forge_provider(env, prov):
    """The forging issuer, configured once: sign-up for forge.district.example."""
    for x in expect(env.admin.c.get("/v1/identity-providers"), 200)["providers"]:
        if x["issuer"] == prov.forge_issuer:
            return x
    return make_provider(env, prov.forge_issuer, allowed_domains=["forge.district.example"],
                         allow_signup=True)


@test
def oidc_forged_id_tokens_refused(env):
    prov = TestProvider.get(env)
    p = forge_provider(env, prov)
    n = env.uniq()

    def attempt(mode, sub):
        prov.forge_mode(mode)
        prov.next_login(sub, "%s@forge.district.example" % sub)
        return sign_in(env, p["id"])[2]

    # the control: a good token from this provider signs in
    uid = expect_signed_in(attempt("good", "good-%d" % n), "a good token")
    for mode, why in [("wrong_key", "signature"), ("unknown_kid", "no key"),
                      ("wrong_aud", "not issued to this client"), ("expired", "expired"),
                      ("replay", "nonce"), ("wrong_iss", "issuer"), ("alg_none", "algorithm")]:
        last = attempt(mode, "%s-%d" % (mode, n))
        expect_refused(last, 401, "invalid_id_token", "forged id_token (%s)" % mode)
        check(why in last.json["error"]["message"],
              "forged id_token (%s): the message %r does not say %r"
              % (mode, last.json["error"]["message"], why))
    # a mix-up: the authorization response says another provider answered (RFC 9207)
    last = attempt("mixup", "mixup-%d" % n)
    expect_refused(last, 400, "issuer_mismatch", "mix-up")
    # key rotation: a token signed with a key the cache has not seen yet is
    # accepted once the JWKS is fetched again
    uid2 = expect_signed_in(attempt("rotate", "rotated-%d" % n), "a token after key rotation")
    check(uid2 != uid, "rotation signed in the wrong person")
    # the good person again, after rotation
    eq(expect_signed_in(attempt("good", "good-%d" % n), "good after rotation"), uid, "same user")


@test
def oidc_tenants(env):
    # tenant_ids gate every sign-in; a listed tenant lets new people join
    # whatever their email domain (Entra ID's tid claim)
    prov = TestProvider.get(env)
    p = provider_for_signin(env, prov, allowed_domains=[], tenant_ids=["tenant-a"],
                            allow_signup=True)
    n = env.uniq()
    prov.next_login("ta-%d" % n, "ta%d@school-a.example" % n, tid="tenant-a")
    _, _, last = sign_in(env, p["id"])
    uid = expect_signed_in(last, "someone of the allowed tenant")
    prov.next_login("tb-%d" % n, "tb%d@school-b.example" % n, tid="tenant-b")
    _, _, last = sign_in(env, p["id"])
    expect_refused(last, 403, "tenant_not_allowed", "another tenant")
    prov.next_login("tn-%d" % n, "tn%d@school-a.example" % n)
    _, _, last = sign_in(env, p["id"])
    expect_refused(last, 403, "tenant_not_allowed", "no tenant at all")
    # a known person whose organisation is no longer admitted is refused too
    expect(env.admin.c.request("PATCH", "/v1/identity-providers/%s" % p["id"],
                               json_body={"tenant_ids": ["tenant-c"], "allow_signup": False}),
           200)
    prov.next_login("ta-%d" % n, "ta%d@school-a.example" % n, tid="tenant-a")
    _, _, last = sign_in(env, p["id"])
    expect_refused(last, 403, "tenant_not_allowed", "known person, tenant removed")
    expect(env.admin.c.request("PATCH", "/v1/identity-providers/%s" % p["id"],
                               json_body={"tenant_ids": []}), 200)
    prov.next_login("ta-%d" % n, "ta%d@school-a.example" % n, tid="tenant-a")
    _, _, last = sign_in(env, p["id"])
    eq(expect_signed_in(last, "known person, no tenant gate"), uid, "same user")


@test
def oidc_hanging_provider_does_not_hold_the_server(env):
    # the token endpoint never answers: the sign-in fails with 502 once
    # accord's own timeout ends the wait (server/fetch.h), and meanwhile the
    # event loops serve everyone else (the wait is on an offload thread)
    prov = TestProvider.get(env)
    p = forge_provider(env, prov)
    n = env.uniq()
    prov.forge_mode("hang")
    prov.next_login("hang-%d" % n, "hang%d@forge.district.example" % n)
    result = []
    t = threading.Thread(target=lambda: result.append(sign_in(env, p["id"])[2]))
    t.start()
    try:
        # wait (bounded) until accord's token request is held by the provider
        for _ in range(300):
            with urllib.request.urlopen(prov.issuer + "/test/hanging", timeout=10) as r:
                if json.loads(r.read())["hanging"] > 0:
                    break
            check(t.is_alive(), "the sign-in ended before reaching the token endpoint: %s"
                  % (result[0].describe() if result else "?"))
            time.sleep(0.1)
        else:
            fail("accord's token request never reached the provider")
        for _ in range(3):
            expect(env.admin.c.get("/v1/me"), 200)
            expect(env.admin.c.anon().get("/healthz"), 200)
    finally:
        t.join(60)
        prov.forge_mode("good")
    check(result, "the sign-in did not finish within 60 s")
    expect_refused(result[0], 502, "provider_unreachable", "hanging token endpoint")


@test
def oidc_unreachable_provider(env):
    # a loopback port nobody listens on: discovery fails fast, 502, no hang
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    p = make_provider(env, "http://127.0.0.1:%d/nobody-%d" % (port, env.uniq()))
    r = env.admin.c.anon().get("/v1/auth/oidc/%s/start" % p["id"])
    expect(r, 502, "provider_unreachable")

# SPDX-License-Identifier: Apache-2.0
"""People (issue 10): invitations, password sign-in and its throttle, cookie
sessions and CSRF, manageable tokens, user administration, the CLI.

Throttle tests use their own loopback source addresses (127.0.0.x: Linux
routes all of 127/8 to lo), so their counters never touch other tests'."""

import json
import re
import subprocess
import threading
import uuid

from harness import (Client, check, eq, expect, is_ts, is_uuid, run_cli, session_client, sql,
                     test)

GOOD = "a quiet river at dawn"


def secret_of(inv):
    return inv["url"].rsplit("#", 1)[1]


def cookie_attrs(r):
    return [a.strip() for a in r.header("set-cookie", "").split(";")]



def without_request_id(body):
    """An error body less its request id, which differs by design from call to call."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = dict(body, error={k: v for k, v in body["error"].items() if k != "request_id"})
    return body

@test
def people_invite_sign_in_sign_out(env):
    admin = env.admin.c
    n = env.uniq()
    email = "lead%d@people.example.org" % n
    env.org("People District")
    inv = env.invite(admin, email, name="Lena Lead", roles=["lead"], org="people  DISTRICT")
    check(is_uuid(inv["id"]) and is_ts(inv["expires_at"]) and inv["status"] == "pending",
          "invitation: %s" % inv)
    m = re.match(r"^http://127\.0\.0\.1:%d/invite#([0-9a-f]{64})$" % env.server.port, inv["url"])
    check(m is not None, "invitation url %r" % inv["url"])
    # the link's secret is stored hashed: the list never shows it
    lst = expect(admin.get("/v1/invitations"), 200)
    check(m.group(1) not in str(lst) and "url" not in lst["invitations"][0],
          "GET /v1/invitations shows the secret or the url")
    anon = admin.anon()
    view = expect(anon.post("/v1/invitations/open", {"secret": m.group(1)}), 200)
    eq((view["email"], view["name"], view["roles"], view["org"], view["existing_user"]),
       (email, "Lena Lead", ["lead"], "People District", False), "the invitation page")
    expect(anon.post("/v1/invitations/open", {"secret": "f" * 64}), 404, "invitation_unknown")
    expect(anon.post("/v1/invitations/open", {"secret": "not hex"}), 404, "invitation_unknown")
    expect(anon.post("/v1/invitations/open", {}), 400, "bad_request")
    origin = {"Origin": anon.origin()}
    for pw, why in [("short one", "under 12 characters"), ("password1234", "common + digits"),
                    ("iloveyou2024!", "common word + year"), ("aaaaaaaaaaaaaaaa", "repetitive"),
                    ("abcdefghijklmnop", "sequential"), ("lead%d2024!!" % n, "the email's name"),
                    ("passwordpassword", "a common one twice"), ("Accord-2026!!", "the service")]:
        r = anon.request("POST", "/v1/invitations/accept",
                         json_body={"secret": m.group(1), "password": pw}, headers=origin)
        expect(r, 422, "weak_password", "accept with a weak password (%s)" % why)
    # a cross-site page cannot accept for the person (it would sign them in)
    r = anon.request("POST", "/v1/invitations/accept",
                     json_body={"secret": m.group(1), "password": GOOD},
                     headers={"Origin": "https://evil.example.com"})
    expect(r, 403, "csrf_failed", "accept from another origin")
    # accept: signed in at once
    r = anon.request("POST", "/v1/invitations/accept",
                     json_body={"secret": m.group(1), "password": GOOD}, headers=origin)
    body = expect(r, 201, what="accept")
    attrs = cookie_attrs(r)
    for a in ("Path=/", "HttpOnly", "SameSite=Lax"):
        check(a in attrs, "Set-Cookie lacks %s: %r" % (a, r.header("set-cookie")))
    check("Secure" not in attrs, "Secure on an http public URL")
    eq((body["user"]["email"], body["user"]["roles"], body["session"]["method"]),
       (email, ["lead"], "invitation"), "signed in")
    lead = session_client(env.server, r)
    me = expect(lead.get("/v1/me"), 200)
    eq((me["email"], me["auth"]["method"], me["csrf_token"]),
       (email, "session", body["csrf_token"]), "GET /v1/me with the cookie")
    # single use
    r = anon.request("POST", "/v1/invitations/accept",
                     json_body={"secret": m.group(1), "password": GOOD + "!"}, headers=origin)
    expect(r, 404, "invitation_used", "accept twice")
    expect(anon.post("/v1/invitations/open", {"secret": m.group(1)}), 404, "invitation_used")
    eq(expect(admin.get("/v1/invitations?status=accepted"), 200)["invitations"][0]["id"],
       inv["id"], "the accepted invitation, newest first")
    # the lead works with the cookie: invites an earner, not an admin
    e_inv = env.invite(lead, "earner%d@people.example.org" % n, name="Eve Earner",
                       roles=["earner"])
    env.invite(lead, "boss%d@people.example.org" % n, name="Bo", roles=["admin"], status=403)
    env.invite(lead, "env-admin", status=(400, 403))
    env.invite(lead, "admin@example.org", status=403)   # a new link for the admin: no
    earner = env.accept_invitation(e_inv, "my garden grows tomatoes")
    eq(expect(earner.get("/v1/me"), 200)["roles"], ["earner"], "the invited earner")
    # sign out: 204, cookie cleared, the cookie no longer works
    r = lead.delete("/v1/sessions/current")
    expect(r, 204, what="sign out")
    check("Max-Age=0" in cookie_attrs(r), "sign-out does not clear the cookie: %r"
          % r.header("set-cookie"))
    expect(lead.get("/v1/me"), 401, "session_ended", "the cookie after signing out")
    expect(lead.delete("/v1/sessions/current"), 401, what="signing out twice")
    # sign in with the password: a new session
    lead2, r = admin.anon().sign_in(email, GOOD)
    check(lead2.session != lead.session, "sign-in reuses the old session id")
    eq(expect(lead2.get("/v1/me"), 200)["auth"]["signed_in_with"], "password", "signed in with")
    # signing in again with the cookie of a live session rotates it: the old id ends
    lead3, r = lead2.sign_in(email, GOOD)
    check(lead3.session != lead2.session, "the session id did not change at sign-in")
    expect(lead2.get("/v1/me"), 401, "session_ended", "the session before the new sign-in")
    expect(lead3.get("/v1/me"), 200, what="the new session")
    # a bearer token cannot "sign out"
    expect(env.admin.c.delete("/v1/sessions/current"), 409, "not_a_session")


@test
def people_wrong_password_throttled(env):
    admin = env.admin.c
    n = env.uniq()
    email = "throttle%d@people.example.org" % n
    env.accept_invitation(env.invite(admin, email, name="Tia", roles=["assessor"]), GOOD)
    a = Client(env.server, source="127.0.0.21")
    # unknown email and wrong password: the same answer
    _, r1 = a.sign_in(email, GOOD + "x", status=401)
    _, r2 = a.sign_in("nobody%d@people.example.org" % n, GOOD, status=401)
    eq((r1.status, without_request_id(r1.json)), (r2.status, without_request_id(r2.json)),
       "wrong password vs unknown email (all but the request id)")
    for i in range(4):
        a.sign_in(email, "wrong guess number %d" % i, status=401)
    # five failures from this address: the next attempt waits, even with the right password
    _, r = a.sign_in(email, GOOD, status=429)
    expect(r, 429, "too_many_attempts")
    wait = int(r.header("retry-after", "0"))
    # what is left of a 30 s back-off: seconds may pass between the fifth failure
    # and this attempt on a loaded machine (the ASan build), never more than 30
    check(15 <= wait <= 30, "Retry-After %r after 5 failures (the rest of 30 s expected)" % wait)
    # the person at another address is not locked out by this stranger
    b = Client(env.server, source="127.0.0.22")
    b.sign_in(email, GOOD)
    # the throttle blocks unknown emails the same way (no telling them apart)
    ghost = "ghost%d@people.example.org" % n
    for i in range(5):
        a.sign_in(ghost, "wrong guess number %d" % i, status=401)
    _, r = a.sign_in(ghost, GOOD, status=429)
    # per address: 30 attempts from one address, whatever the emails, block it
    c = Client(env.server, source="127.0.0.23")
    for i in range(30):
        c.sign_in("spray%d-%d@people.example.org" % (n, i), "password spray %d" % i, status=401)
    c.sign_in(email, GOOD, status=429, what="the 31st attempt from one address")
    # per email, from many addresses: blocked for new addresses, not for the
    # address the person signed in from before (127.0.0.22)
    for i in range(20):
        Client(env.server, source="127.0.1.%d" % (i + 1)).sign_in(email, "botnet %d" % i,
                                                                  status=401)
    Client(env.server, source="127.0.2.1").sign_in(email, GOOD, status=429,
                                                   what="a new address after 20 failures")
    b.sign_in(email, GOOD, what="the person's usual address after a distributed attack")
    # no permanent lock-out: the block ends (here: moved into the past)
    sql(env, "UPDATE sign_in_throttle SET blocked_until = now() WHERE key LIKE '%%%s%%'"
        % email.split("@")[0])
    a.sign_in(email, GOOD, what="after the wait")


@test
def people_disabled_user_stops_at_once(env):
    admin = env.admin.c
    u = env.user(["earner"], name="Dana Disabled", session=True)
    tok = Client(env.server, u.token)
    expect(u.c.get("/v1/me"), 200, what="the cookie before")
    expect(tok.get("/v1/me"), 200, what="the token before")
    p = expect(admin.patch("/v1/users/" + u.id, {"disabled": True}), 200)
    check(p["disabled"] and is_ts(p["disabled_at"]), "PATCH answer %s" % p)
    expect(u.c.get("/v1/me"), 401, what="the cookie of a disabled user")
    expect(tok.get("/v1/me"), 401, "unauthorized", "the token of a disabled user")
    expect(u.c.get("/v1/submissions"), 401, what="the cookie of a disabled user, another route")
    _, r = admin.anon().sign_in(u.email, u.password, status=403)
    expect(r, 403, "account_disabled")
    env.invite(admin, u.email, status=409)
    # enabling again does not bring back the old token or session
    p = expect(admin.patch("/v1/users/" + u.id, {"disabled": False}), 200)
    check(not p["disabled"], "enabled again")
    expect(tok.get("/v1/me"), 401, what="the old token after enabling")
    expect(u.c.get("/v1/me"), 401, what="the old cookie after enabling")
    c, _ = admin.anon().sign_in(u.email, u.password)
    expect(c.get("/v1/me"), 200, what="a new sign-in after enabling")


@test
def people_tokens_managed(env):
    u = env.user(["assessor"], name="Toby Tokens", session=True)
    other = env.user(["earner"])
    lst = expect(u.c.get("/v1/me/tokens"), 200)
    eq(len(lst["tokens"]), 1, "the admin-issued token is listed")
    t = expect(u.c.post("/v1/me/tokens", {"name": "grading script", "expires_in": 3600}), 201)
    check(t["token"].startswith("acc_") and is_uuid(t["id"]) and is_ts(t["expires_at"]),
          "created token %s" % t)
    check(t["token"] not in u.c.get("/v1/me/tokens").text, "the list shows a token")
    tc = Client(env.server, t["token"])
    me = expect(tc.get("/v1/me"), 200)
    eq((me["id"], me["auth"]["method"], me["auth"]["token_id"], me["auth"]["token_name"]),
       (u.id, "token", t["id"], "grading script"), "GET /v1/me with the new token")
    check("csrf_token" not in me, "a token caller gets a CSRF token")
    for body in ({}, {"name": ""}, {"name": "x" * 101}, {"name": "x", "expires_in": 59},
                 {"name": "x", "expires_in": "3600"}, {"name": "x", "expires_in": 63072001}):
        expect(u.c.post("/v1/me/tokens", body), 400, what="token body %s" % body)
    child = expect(tc.post("/v1/me/tokens", {"name": "child"}), 201)
    eq(child["expires_at"], t["expires_at"], "a token made with an expiring token expires with it")
    forever = expect(u.c.post("/v1/me/tokens", {"name": "no expiry"}), 201)
    eq(forever["expires_at"], None, "a token without expires_in")
    # expired: fails
    sql(env, "UPDATE tokens SET expires_at = now() - interval '1 second' WHERE id = '%s'"
        % t["id"])
    expect(tc.get("/v1/me"), 401, "unauthorized", "an expired token")
    lst = expect(u.c.get("/v1/me/tokens"), 200)["tokens"]
    eq([x["expired"] for x in lst if x["id"] == t["id"]], [True], "the expired token, marked")
    # revoked by its owner: fails; someone else's: 404
    fc = Client(env.server, forever["token"])
    expect(fc.get("/v1/me"), 200, what="before revoking")
    expect(other.c.delete("/v1/me/tokens/" + forever["id"]), 404, "not_found",
           "revoking someone else's token")
    expect(u.c.delete("/v1/me/tokens/" + forever["id"]), 204, what="revoke my token")
    expect(fc.get("/v1/me"), 401, "unauthorized", "a revoked token")
    expect(u.c.delete("/v1/me/tokens/" + forever["id"]), 404, what="revoke twice")
    check(forever["id"] not in u.c.get("/v1/me/tokens").text, "a revoked token is listed")
    # admins revoke anyone's; others may not
    t2 = expect(Client(env.server, u.token).post("/v1/me/tokens", {"name": "t2"}), 201)
    expect(other.c.delete("/v1/tokens/" + t2["id"]), 403, "forbidden", "an earner revokes")
    expect(env.admin.c.delete("/v1/tokens/" + t2["id"]), 204, what="the admin revokes")
    expect(Client(env.server, t2["token"]).get("/v1/me"), 401, what="revoked by the admin")
    # the admin route takes a name and an expiry now
    t3 = expect(env.admin.c.post("/v1/users/%s/tokens" % u.id, {"name": "from IT",
                                                                "expires_in": 600}), 201)
    eq((t3["user_id"], t3["name"]), (u.id, "from IT"), "admin-issued token")
    check(is_ts(t3["expires_at"]), "admin-issued expiry")
    # the command line: by id, and every token of a user
    rc, out, err = run_cli(env.binary, ["token", "revoke", "--id", t3["id"]], env.base_env)
    eq((rc, out.strip()), (0, "1"), "accord token revoke --id (%s)" % err)
    expect(Client(env.server, t3["token"]).get("/v1/me"), 401, what="revoked from the CLI")
    rc, out, err = run_cli(env.binary, ["token", "revoke", "--email", u.email], env.base_env)
    eq(rc, 0, "accord token revoke --email (%s)" % err)
    expect(Client(env.server, u.token).get("/v1/me"), 401, what="every token revoked by email")
    expect(u.c.get("/v1/me"), 200, what="the session is not a token")
    rc, out, err = run_cli(env.binary, ["token", "revoke", "--id", str(uuid.uuid4())],
                           env.base_env)
    eq(rc, 1, "accord token revoke of an unknown id")
    rc, out, err = run_cli(env.binary, ["token", "revoke"], env.base_env)
    eq(rc, 2, "accord token revoke without --id or --email")


@test
def people_session_csrf_and_expiry(env):
    u = env.user(["earner"], name="Cory Cookie", session=True)
    body = {"name": "csrf probe"}
    h = {"Cookie": "accord_session=" + u.c.session}
    raw = Client(env.server)
    good = dict(h, **{"Origin": raw.origin(), "X-CSRF-Token": u.c.csrf,
                      "Content-Type": "application/json"})
    for what, headers in [
            ("no CSRF token", dict(h, Origin=raw.origin())),
            ("a wrong CSRF token", dict(good, **{"X-CSRF-Token": "0" * 64})),
            ("another origin", dict(good, Origin="https://evil.example.com")),
            ("a cross-site fetch", dict(good, **{"Sec-Fetch-Site": "cross-site"})),
            ("a same-site (other subdomain) fetch", dict(good, **{"Sec-Fetch-Site": "same-site"})),
    ]:
        r = raw.request("POST", "/v1/me/tokens", json_body=body, headers=headers)
        expect(r, 403, "csrf_failed", "a cookie POST with %s" % what)
    r = raw.request("POST", "/v1/artifacts", data=b"x" * 10,
                    headers=dict(h, **{"Content-Type": "video/mp4", "X-Artifact-Kind": "video",
                                       "Origin": "https://evil.example.com"}))
    expect(r, 403, "csrf_failed", "a cross-origin upload with the cookie")
    r = raw.request("DELETE", "/v1/sessions/current", headers=h)
    expect(r, 403, "csrf_failed", "sign-out without the CSRF token (logout CSRF)")
    eq(expect(u.c.get("/v1/me/tokens"), 200)["tokens"][0]["name"], "issued by an administrator",
       "nothing was created by the refused requests")
    # the same request done right works; GETs need no token
    expect(raw.request("POST", "/v1/me/tokens", json_body=body, headers=good), 201,
           what="a same-origin cookie POST with the CSRF token")
    expect(raw.request("GET", "/v1/me", headers=dict(h, **{"Sec-Fetch-Site": "cross-site"})),
           200, what="a cookie GET (no state change)")
    # a bearer token needs no CSRF token, whatever the Origin
    expect(Client(env.server, u.token).post("/v1/me/tokens", body,
                                            headers={"Origin": "https://evil.example.com"}),
           201, what="a bearer POST from another origin")
    # signing in from another site is refused (login CSRF)
    r = raw.request("POST", "/v1/sessions", json_body={"email": u.email, "password": u.password},
                    headers={"Origin": "https://evil.example.com"})
    expect(r, 403, "csrf_failed", "sign-in from another origin")
    # a malformed cookie, or an unknown one, is no credential
    for cookie in ("accord_session=zz", "accord_session=" + "a" * 64, "other=1"):
        expect(raw.request("GET", "/v1/me", headers={"Cookie": cookie}), 401,
               what="GET /v1/me with Cookie: %s" % cookie[:30])
    # idle timeout and absolute lifetime
    c2, _ = Client(env.server).sign_in(u.email, u.password)
    expect(c2.get("/v1/me"), 200, what="a second session")
    sql(env, "UPDATE sessions SET last_seen_at = now() - make_interval(secs => idle_seconds + 1)"
        " WHERE user_id = '%s' AND method = 'password'" % u.id)
    expect(c2.get("/v1/me"), 401, "session_ended", "an idle session")
    expect(u.c.get("/v1/me"), 200, what="the other session is not idle")
    sql(env, "UPDATE sessions SET expires_at = now() WHERE user_id = '%s'" % u.id)
    expect(u.c.get("/v1/me"), 401, "session_ended", "a session past its lifetime")


@test
def people_video_and_download_with_cookie(env):
    lead = env.user(["lead"], session=True)
    earner = env.user(["earner"], session=True)
    stranger = env.user(["earner"], session=True)
    data = bytes(range(256)) * 40
    art = env.upload(earner.c, "video", data, filename="lesson.mp4")
    path = "/v1/artifacts/%s/content" % art["id"]
    for who, c in (("the earner", earner.c), ("a lead", lead.c)):
        r = c.get(path, headers={"Range": "bytes=100-199"})
        expect(r, 206, what="%s plays the video with the cookie" % who)
        eq(r.body, data[100:200], "%s: the range" % who)
    expect(stranger.c.get(path), 403, "forbidden", "another earner's cookie")
    expect(Client(env.server).get(path), 401, what="no cookie")


@test
def people_user_administration(env):
    admin = env.admin.c
    n = env.uniq()
    org = "Admin Org %d" % n
    lead = env.user(["lead"], name="Lou Lead %d" % n, org=org, session=True)
    users = [env.user(roles, name="%s Person %d" % (label, n), org=org)
             for label, roles in (("Ann", ["earner"]), ("Ben", ["assessor"]),
                                  ("Cat", ["expert"]), ("Dan", ["earner", "assessor"]))]
    got = expect(admin.get("/v1/users?org=%s" % org.replace(" ", "+")), 200)
    eq([u["name"] for u in got["users"]],
       sorted(["Lou Lead %d" % n] + ["%s Person %d" % (x, n) for x in "Ann Ben Cat Dan".split()]),
       "admin: users of the org, by name")
    check(all("has_password" in u and "disabled" in u for u in got["users"]), "person fields")
    eq(got["has_more"], False, "one page")
    got = expect(admin.get("/v1/users?q=person+%d&role=assessor" % n), 200)
    eq(sorted(u["name"] for u in got["users"]), ["Ben Person %d" % n, "Dan Person %d" % n],
       "admin: search by name and role")
    got = expect(admin.get("/v1/users?q=%s" % users[0].email.upper()), 200)
    eq([u["id"] for u in got["users"]], [users[0].id], "search by email, any case")
    # a lead sees earners and assessors only
    got = expect(lead.c.get("/v1/users?org=%s" % org.replace(" ", "+")), 200)
    eq(sorted(u["name"] for u in got["users"]),
       ["Ann Person %d" % n, "Ben Person %d" % n, "Dan Person %d" % n], "a lead's list")
    expect(lead.c.get("/v1/users/" + users[2].id), 404, "not_found", "a lead reads an expert")
    expect(lead.c.get("/v1/users/" + users[0].id), 200, what="a lead reads an earner")
    expect(users[0].c.get("/v1/users"), 403, "forbidden", "an earner lists users")
    expect(lead.c.patch("/v1/users/" + users[0].id, {"disabled": True}), 403, "forbidden",
           "a lead disables someone")
    for q in ("page=0", "page=x", "role=king", "disabled=maybe", "sort=name"):
        expect(admin.get("/v1/users?" + q), 400, what="GET /v1/users?" + q)
    # paging
    for i in range(3):
        env.user(["earner"], name="Pager %d-%d" % (n, i), org="Pager Org %d" % n)
    p1 = expect(admin.get("/v1/users?org=Pager+Org+%d&page=1" % n), 200)
    eq((len(p1["users"]), p1["page"], p1["per_page"], p1["has_more"]), (3, 1, 50, False), "page 1")
    eq(expect(admin.get("/v1/users?org=Pager+Org+%d&page=2" % n), 200)["users"], [], "page 2")
    # roles change: the user's next request sees them
    p = expect(admin.patch("/v1/users/" + users[0].id, {"roles": ["earner", "assessor"]}), 200)
    eq(p["roles"], ["assessor", "earner"], "roles after PATCH")
    eq(sorted(expect(users[0].c.get("/v1/me"), 200)["roles"]), ["assessor", "earner"],
       "the user's own view of their roles")
    for body, status in [({"roles": ["king"]}, 422), ({"roles": []}, 422), ({"roles": "lead"}, 400),
                         ({"disabled": "yes"}, 400), ({"email": "x@y.org"}, 400),
                         ({"name": ""}, 400)]:
        expect(admin.patch("/v1/users/" + users[1].id, body), status, what="PATCH %s" % body)
    expect(admin.patch("/v1/users/" + str(uuid.uuid4()), {"disabled": True}), 404, "not_found")
    # no admin locks themselves out
    expect(admin.patch("/v1/users/" + env.admin.id, {"disabled": True}), 409, "self_lockout")
    expect(admin.patch("/v1/users/" + env.admin.id, {"roles": ["lead"]}), 409, "self_lockout")
    expect(admin.get("/v1/me"), 200, what="the admin after the refused self-lockouts")


@test
def people_invitations_managed(env):
    admin = env.admin.c
    n = env.uniq()
    lead = env.user(["lead"], session=True)
    inv = env.invite(admin, "pending%d@people.example.org" % n, name="Pat", roles=["assessor"])
    # revoke: the link stops working
    expect(lead.c.delete("/v1/invitations/" + inv["id"]), 204, what="a lead revokes an assessor's")
    expect(admin.anon().post("/v1/invitations/open", {"secret": secret_of(inv)}), 404,
           "invitation_revoked")
    eq([i["status"] for i in expect(admin.get("/v1/invitations?status=revoked"), 200)[
        "invitations"] if i["id"] == inv["id"]], ["revoked"], "listed as revoked")
    # a new invitation to the same email supersedes the pending one
    a = env.invite(admin, "twice%d@people.example.org" % n, name="Tw", roles=["earner"])
    b = env.invite(lead.c, "twice%d@people.example.org" % n, name="Tw", roles=["earner"])
    expect(admin.anon().post("/v1/invitations/open", {"secret": secret_of(a)}), 404,
           "invitation_revoked")
    expect(admin.anon().post("/v1/invitations/open", {"secret": secret_of(b)}), 200)
    # leads do not see, or revoke, invitations of roles they do not manage
    boss = env.invite(admin, "boss%d@people.example.org" % n, name="Bo", roles=["admin"])
    check(boss["id"] not in lead.c.get("/v1/invitations").text, "a lead lists an admin invite")
    expect(lead.c.delete("/v1/invitations/" + boss["id"]), 404, "not_found")
    expect(env.user(["earner"]).c.get("/v1/invitations"), 403, "forbidden")
    # expired after 7 days
    check(inv["expires_at"] > inv["created_at"], "expires_at after created_at")
    sql(env, "UPDATE invitations SET expires_at = now() WHERE id = '%s'" % b["id"])
    expect(admin.anon().post("/v1/invitations/open", {"secret": secret_of(b)}), 404,
           "invitation_expired")
    # an accepted one cannot be revoked
    c = env.invite(admin, "used%d@people.example.org" % n, name="Us", roles=["earner"])
    env.accept_invitation(c, GOOD)
    expect(admin.delete("/v1/invitations/" + c["id"]), 409, "invitation_used")
    # bad bodies
    for body, status in [({}, 400), ({"email": "no-at-sign", "name": "x", "roles": ["earner"]}, 400),
                         ({"email": "n%d@x.org" % n, "roles": ["earner"]}, 400),
                         ({"email": "n%d@x.org" % n, "name": "N", "roles": ["king"]}, 422)]:
        expect(admin.post("/v1/invitations", body), status, what="invite %s" % body)
    for q in ("status=gone", "page=-1", "x=1"):
        expect(admin.get("/v1/invitations?" + q), 400, what="GET /v1/invitations?" + q)


@test
def people_lost_password_link(env):
    """A lost password is a new link: the old password and sessions stop."""
    admin = env.admin.c
    u = env.user(["assessor"], name="Lia Lost", session=True)
    old_cookie = u.c
    inv = env.invite(admin, u.email)            # no name or roles: an existing user
    eq((inv["user_id"], inv["roles"], inv["name"]), (u.id, ["assessor"], "Lia Lost"),
       "a new-password link")
    env.invite(admin, u.email, roles=["admin"], status=409)
    view = expect(admin.anon().post("/v1/invitations/open", {"secret": secret_of(inv)}), 200)
    eq(view["existing_user"], True, "the page knows it is a new password")
    c = env.accept_invitation(inv, "a brand new passphrase")
    eq(expect(c.get("/v1/me"), 200)["id"], u.id, "the same user")
    expect(old_cookie.get("/v1/me"), 401, what="a session from before the new password")
    Client(env.server).sign_in(u.email, u.password, status=401, what="the old password")
    Client(env.server).sign_in(u.email, "a brand new passphrase")


@test
def people_cli_password(env):
    n = env.uniq()
    email = "cli%d@people.example.org" % n
    rc, out, err = run_cli(env.binary, ["user", "add", "--email", email, "--roles", "lead"],
                           env.base_env)
    eq(rc, 0, "accord user add (%s)" % err)

    def password(pw, who=email):
        p = subprocess.run([env.binary, "user", "password", "--email", who], input=pw,
                           env=env.base_env, capture_output=True, text=True, timeout=60)
        return p.returncode, p.stderr

    eq(password("too short\n")[0], 2, "a short password")
    rc, err = password("password1234\n")
    eq(rc, 2, "a common password")
    check("common" in err, "the reason is given: %r" % err)
    eq(password("x" * 2000)[0], 2, "an over-long password")
    eq(password(GOOD + "\n", "nobody%d@people.example.org" % n)[0], 1, "an unknown email")
    rc, err = password(GOOD + "\n")
    eq(rc, 0, "accord user password (%s)" % err)
    c, _ = Client(env.server).sign_in(email, GOOD)
    eq(expect(c.get("/v1/me"), 200)["email"], email, "signed in with the CLI's password")
    # accord user invite prints a link that works
    rc, out, err = run_cli(env.binary, ["user", "invite", "--email", "first%d@people.example.org"
                                        % n, "--name", "First Lead", "--roles", "lead",
                                        "--public-url", "https://accord.example.org/"],
                           env.base_env)
    eq(rc, 0, "accord user invite (%s)" % err)
    m = re.match(r"^https://accord\.example\.org/invite#([0-9a-f]{64})$", out.strip())
    check(m is not None, "accord user invite printed %r" % out)
    view = expect(Client(env.server).post("/v1/invitations/open", {"secret": m.group(1)}), 200)
    eq((view["name"], view["roles"]), ("First Lead", ["lead"]), "the CLI's invitation")


@test
def people_answers_match_openapi(env):
    from t_openapi import conforms, load_doc
    doc = load_doc()
    admin = env.admin.c
    n = env.uniq()
    inv = conforms(doc, admin.post("/v1/invitations", {"email": "oa%d@people.example.org" % n,
                                                       "name": "Oa", "roles": ["earner"]}),
                   "/v1/invitations", "post")
    conforms(doc, admin.get("/v1/invitations"), "/v1/invitations")
    anon = admin.anon()
    conforms(doc, anon.post("/v1/invitations/open", {"secret": secret_of(inv)}),
             "/v1/invitations/open", "post")
    r = anon.request("POST", "/v1/invitations/accept",
                     json_body={"secret": secret_of(inv), "password": GOOD},
                     headers={"Origin": anon.origin()})
    conforms(doc, r, "/v1/invitations/accept", "post")
    c = session_client(env.server, r)
    conforms(doc, c.get("/v1/me"), "/v1/me")
    conforms(doc, c.get("/v1/me/tokens"), "/v1/me/tokens")
    conforms(doc, c.post("/v1/me/tokens", {"name": "oa"}), "/v1/me/tokens", "post")
    _, r = anon.sign_in(inv["email"], GOOD)
    conforms(doc, r, "/v1/sessions", "post")
    _, r = anon.sign_in(inv["email"], GOOD + "?", status=401)
    conforms(doc, r, "/v1/sessions", "post")
    conforms(doc, admin.get("/v1/users?q=oa%d" % n), "/v1/users")
    uid = r.json and expect(c.get("/v1/me"), 200)["id"]
    conforms(doc, admin.get("/v1/users/" + uid), "/v1/users/{id}")
    conforms(doc, admin.patch("/v1/users/" + uid, {"name": "Oa B"}), "/v1/users/{id}", "patch")
    conforms(doc, anon.post("/v1/invitations/open", {"secret": "0" * 64}),
             "/v1/invitations/open", "post")


@test
def people_parallel_guesses_counted(env):
    """Ten guesses at once from one address: the throttle counts each before
    the next is let through, so exactly five are checked and five refused."""
    admin = env.admin.c
    n = env.uniq()
    email = "parallel%d@people.example.org" % n
    env.accept_invitation(env.invite(admin, email, name="Pia", roles=["earner"]), GOOD)
    c = Client(env.server, source="127.0.0.31")
    statuses = []
    lock = threading.Lock()

    def guess(i):
        r = c.anon().request("POST", "/v1/sessions",
                             json_body={"email": email, "password": "parallel guess %d" % i},
                             headers={"Origin": c.origin()})
        with lock:
            statuses.append(r.status)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    eq(sorted(statuses), [401] * 5 + [429] * 5, "ten parallel wrong guesses")


@test
def people_bad_input(env):
    anon = env.admin.c.anon()
    o = {"Origin": anon.origin()}
    for body, what in [(None, "no body"), ([1], "an array"), ({"email": 1, "password": "x"},
                                                             "a numeric email"),
                       ({"email": "a@b.example"}, "no password"),
                       ({"email": "a@b.example", "password": "x" * 1025}, "a long password"),
                       ({"email": "x" * 321, "password": GOOD}, "a long email"),
                       ({"email": "a\u0000b@x.example", "password": GOOD}, "a NUL in the email")]:
        data = None if body is None else json.dumps(body).encode()
        r = anon.request("POST", "/v1/sessions", data=data,
                         headers=dict(o, **{"Content-Type": "application/json"}))
        expect(r, 400, ("bad_request", "invalid_json"), "sign in with %s" % what)
    r = anon.request("POST", "/v1/sessions", data=b"{not json", headers=o)
    expect(r, 400, "invalid_json", "sign in with broken JSON")
    for body, status in [({"secret": 5, "password": GOOD}, 400), ({"secret": "f" * 64}, 400),
                         ({"secret": "f" * 64, "password": GOOD}, 404),
                         ({"secret": "F" * 64, "password": GOOD}, 404)]:
        r = anon.request("POST", "/v1/invitations/accept", json_body=body, headers=o)
        expect(r, status, what="accept %s" % body)
    u = env.user(["earner"], session=True)
    r = u.c.request("POST", "/v1/me/tokens", data=b"[]",
                    headers={"Content-Type": "application/json"})
    expect(r, 400, "invalid_json", "a token body that is not an object")
    expect(u.c.delete("/v1/me/tokens/not-a-uuid"), 400, "invalid_uuid")
    expect(env.admin.c.patch("/v1/users/not-a-uuid", {"disabled": True}), 400, "invalid_uuid")
    expect(u.c.get("/v1/me"), 200, what="the session after all that")

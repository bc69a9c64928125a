# SPDX-License-Identifier: Apache-2.0
"""Verifiable badges (issue 12): Open Badges 3.0 credentials signed by accord,
checked by an independent implementation (tests/badge/verify.mjs: npm jose +
ajv) against the JWKS and revocation list fetched over HTTP from the server;
tampering, key rotation, revocation, the earner's privacy controls and
downloads, stacks, and the settings."""

import hashlib
import json
import os
import subprocess
import threading
import time
import uuid

from badges import (b64url, badge_server, earn, fetch_jwt, forge, jwt_parts, psql, verified,
                    verify)
from harness import (PUBLIC_URL, Client, check, eq, expect, last_line, run_cli, short, test)


def setup(env, n_creds=1, titles=None):
    """A lead, an assessor and credentials, all talking to a badge server."""
    bs = badge_server(env)
    lead = env.user(["lead"], server=bs)
    assessor = env.user(["assessor"], server=bs)
    rubric = env.rubric(lead)
    creds = []
    for i in range(n_creds):
        c = env.credential(lead, rubric["id"], title=(titles[i] if titles else None))
        env.grant(lead, c["id"], assessor)
        creds.append(c)
    return lead, assessor, creds


def key_id(kid_url):
    return kid_url.rsplit("/", 1)[1]


@test
def badge_signed_verified_and_tamper_proof(env):
    """A badge's VC-JWT verifies independently (signature, iss, jti, sub, nbf,
    OB 3.0 schema); it is signed once; a tampered payload is rejected; the page
    escapes everything and carries a strict CSP."""
    lead, assessor, (cred,) = setup(env)
    earner = env.user(["earner"], name='Ana <b>"Zed"</b> & Co', org="Badge Elementary",
                      server=badge_server(env))
    award_id, _ = earn(env, lead, earner, cred, assessor)
    anon = earner.c.anon()
    jwt = fetch_jwt(earner.c, award_id)
    eq(fetch_jwt(earner.c, award_id), jwt, "a second read serves the stored JWT")
    header, payload, sig = jwt_parts(jwt)
    eq((header["alg"], header["typ"]), ("RS256", "JWT"), "JOSE header")
    check(header["kid"].startswith(PUBLIC_URL + "/v1/keys/"), "kid %r is not a key URL" % header["kid"])
    jwk = expect(anon.get("/v1/keys/" + key_id(header["kid"])), 200)
    eq((jwk["kid"], jwk["kty"], jwk["alg"]), (header["kid"], "RSA", "RS256"), "the kid's JWK")
    check("d" not in jwk and "p" not in jwk, "the published JWK must hold no private part")
    jwks = expect(anon.get("/.well-known/jwks.json"), 200)
    check(header["kid"] in [k["kid"] for k in jwks["keys"]], "the JWKS lacks the signing key")
    issuer = expect(anon.get("/v1/issuer"), 200)
    eq(issuer["id"], payload["iss"], "the issuer Profile at its id URL")
    check("Profile" in issuer["type"], "issuer type")

    payload = verified(env, jwt, "the badge")
    res = verify(env, [jwt], offline=True)[0]
    check(res["ok"] and res["status"] == "valid", "verified offline from files: %s" % res)
    eq(payload["jti"], PUBLIC_URL + "/v1/awards/" + award_id, "jti")
    email_id = [i for i in payload["credentialSubject"]["identifier"]
                if i["identityType"] == "emailAddress"][0]
    expected = hashlib.sha256((earner.email.lower() + email_id["salt"]).encode()).hexdigest()
    eq((email_id["hashed"], email_id["identityHash"], payload["sub"]),
       (True, "sha256$" + expected, "sha256$" + expected), "the salted email hash and sub")
    check(earner.email not in jwt and earner.email not in json.dumps(payload),
          "the plain email is in the badge")
    eq(payload["credentialStatus"]["type"], "1EdTechRevocationList", "status method")
    ach = payload["credentialSubject"]["achievement"]
    eq(ach["id"], PUBLIC_URL + "/v1/achievements/" + cred["id"], "achievement id")
    got = expect(anon.get("/v1/achievements/" + cred["id"]), 200)
    eq({k: v for k, v in got.items() if k != "@context"}, ach, "the achievement at its id URL")
    expect(anon.get("/v1/achievements/" + str(uuid.uuid4())), 404, "not_found")

    h, p, s = jwt.split(".")
    forged = dict(payload, name="Forged Badge")
    res = verify(env, [h + "." + b64url(json.dumps(forged).encode()) + "." + s])[0]
    check(not res["ok"], "a tampered payload verified: %s" % res)
    other_sig = jwt_parts(fetch_jwt(earner.c, award_id))[2]
    check(other_sig == s, "the stored signature changed")

    page = anon.get("/v1/awards/" + award_id,
                    headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    expect(page, 200)
    check(page.header("content-type", "").startswith("text/html"), "page content type")
    csp = page.header("content-security-policy", "")
    check("default-src 'none'" in csp, "strict CSP missing: %r" % csp)
    check("&lt;b&gt;&quot;Zed&quot;&lt;/b&gt; &amp; Co" in page.text,
          "the earner's name is not escaped on the page: %s" % short(page.text, 2000))
    check("<b>" not in page.text and "<script" not in page.text.lower(), "raw markup on the page")
    check("valid" in page.text.lower() and "RS256" in page.text, "the page says how it was checked")
    j = expect(anon.get("/v1/awards/" + award_id, headers={"Accept": "application/json"}), 200)
    eq(j, {k: v for k, v in payload.items() if k not in ("iss", "jti", "sub", "nbf", "iat", "exp")},
       "Accept: application/json gives the signed credential")
    expect(anon.get("/v1/awards/" + str(uuid.uuid4())), 404, "not_found")


@test
def badge_key_rotation(env):
    """`accord keys rotate` keeps old badges verifiable; a signature made with
    the rotated-out key afterwards is rejected; --revoke-old (a compromised key)
    unpublishes the key and signs its badges again with the new one."""
    lead, assessor, (cred,) = setup(env)
    keydir = env.base_env["ACCORD_KEY_DIR"]
    e1 = env.user(["earner"], server=badge_server(env))
    a1, _ = earn(env, lead, e1, cred, assessor)
    jwt1 = fetch_jwt(e1.c, a1)
    kid1 = jwt_parts(jwt1)[0]["kid"]
    pem1_path = os.path.join(keydir, key_id(kid1) + ".pem")
    eq(os.stat(pem1_path).st_mode & 0o777, 0o600, "mode of the private key file")
    eq(os.stat(keydir).st_mode & 0o777, 0o700, "mode of the key directory")
    with open(pem1_path) as f:
        pem1 = f.read()
    check(pem1 not in open(env.server.stderr_path, errors="replace").read(), "a key was logged")

    rc, out, err = run_cli(env.binary, ["keys", "rotate"], env.base_env)
    eq(rc, 0, "accord keys rotate: %s" % err)
    kid2_id = last_line(out)
    check(not os.path.exists(pem1_path), "the rotated-out private key file is still there")
    jwks = expect(e1.c.anon().get("/.well-known/jwks.json"), 200)
    by = {k["kid"]: k for k in jwks["keys"]}
    check(kid1 in by and "accord_retired_at" in by[kid1], "the old key stays published, retired")
    verified(env, jwt1, "a badge signed before the rotation")

    e2 = env.user(["earner"], server=badge_server(env))
    a2, _ = earn(env, lead, e2, cred, assessor)
    jwt2 = fetch_jwt(e2.c, a2)
    h2, p2, _ = jwt_parts(jwt2)
    eq(key_id(h2["kid"]), kid2_id, "a new badge is signed with the new key")
    verified(env, jwt2, "a badge signed after the rotation")
    late = forge(env, pem1, kid1, dict(p2, iat=by[kid1]["accord_retired_at"] + 5))
    res = verify(env, [late])[0]
    check(not res["ok"] and "retired" in res.get("error", ""),
          "a badge signed with the rotated-out key after the rotation verified: %s" % res)

    rc, out, err = run_cli(env.binary, ["keys", "rotate", "--revoke-old"], env.base_env)
    eq(rc, 0, "accord keys rotate --revoke-old: %s" % err)
    kid3_id = last_line(out)
    jwks = expect(e1.c.anon().get("/.well-known/jwks.json"), 200)
    kids = [k["kid"] for k in jwks["keys"]]
    check(h2["kid"] not in kids and kid1 in kids, "revoked key still published: %s" % kids)
    expect(e1.c.anon().get("/v1/keys/" + kid2_id), 404, "not_found")
    res = verify(env, [jwt2])[0]
    check(not res["ok"], "a badge signed with the compromised key verified: %s" % res)
    jwt2b = fetch_jwt(e2.c, a2)
    eq(key_id(jwt_parts(jwt2b)[0]["kid"]), kid3_id, "the badge is signed again with the new key")
    verified(env, jwt2b, "the badge signed again")
    verified(env, jwt1, "the first badge, after both rotations")
    rc, out, err = run_cli(env.binary, ["keys", "spin"], env.base_env)
    eq(rc, 2, "accord keys with an unknown subcommand")


@test
def badge_revocation(env):
    """A lead revokes with a reason (audited); the status list, the page and the
    independent verifier say revoked at once; the earner is told why."""
    lead, assessor, (cred,) = setup(env)
    earner = env.user(["earner"], server=badge_server(env))
    award_id, _ = earn(env, lead, earner, cred, assessor)
    jwt = fetch_jwt(earner.c, award_id)
    path = "/v1/awards/%s/revoke" % award_id
    expect(earner.c.post(path, {"reason": "mine"}), 403, "forbidden", "an earner revokes")
    expect(assessor.c.post(path, {"reason": "no"}), 403, "forbidden", "an assessor revokes")
    expect(lead.c.post(path, {}), 400, what="no reason")
    expect(lead.c.post(path, {"reason": "   "}), 400, what="a blank reason")
    expect(lead.c.post(path, {"reason": "x" * 2001}), 400, what="a reason too long")
    expect(lead.c.post(path, {"reason": "ok", "extra": 1}), 400, what="an unknown field")
    expect(lead.c.post("/v1/awards/%s/revoke" % uuid.uuid4(), {"reason": "x"}), 404, "not_found")
    eq(verify(env, [jwt])[0]["status"], "valid", "status before the revocation")
    reason = "The videos were recorded in another teacher's classroom."
    r = expect(lead.c.post(path, {"reason": reason}), 200)
    eq((r["status"], r["reason"]), ("revoked", reason), "revocation answer")
    expect(lead.c.post(path, {"reason": "again"}), 409, "already_revoked", "revoking twice")
    eq(psql(env, "select count(*) from audit_log where action = 'badge.revoke' and object_id = '%s'"
            % award_id), "1", "audit rows of the revocation (the refused second one adds none)")
    res = verify(env, [jwt])[0]
    check(res["ok"] and res["status"] == "revoked", "the verifier should say revoked: %s" % res)
    lst = expect(earner.c.anon().get("/v1/issuer/revocations"), 200)
    check(PUBLIC_URL + "/v1/awards/" + award_id in [c["id"] for c in lst["revokedCredentials"]],
          "the revocation list lacks the award")
    check(reason not in json.dumps(lst), "the public list must not carry the reason")
    page = earner.c.anon().get("/v1/awards/" + award_id, headers={"Accept": "text/html"})
    check("REVOKED" in page.text, "the page does not say revoked")
    mine = expect(earner.c.get("/v1/me/awards"), 200)["awards"]
    a = [x for x in mine if x["id"] == award_id][0]
    eq((a["status"], a["revocation_reason"]), ("revoked", reason), "the earner is told why")


@test
def badge_privacy_and_downloads(env):
    """The earner's awards, downloads (.jwt and .json), share link, name display
    (full or initials), chosen public evidence, and private visibility."""
    lead, assessor, (cred,) = setup(env)
    earner = env.user(["earner"], name="Maria del Carmen", server=badge_server(env))
    other = env.user(["earner"], server=badge_server(env))
    award_id, ev = earn(env, lead, earner, cred, assessor)
    mine = expect(earner.c.get("/v1/me/awards"), 200)["awards"]
    eq(len(mine), 1, "the earner's awards")
    a = mine[0]
    eq((a["id"], a["kind"], a["status"], a["visibility"], a["name_display"], a["share_url"]),
       (award_id, "award", "valid", "link", "full", PUBLIC_URL + "/v1/awards/" + award_id),
       "the earner's award")
    eq(expect(other.c.get("/v1/me/awards"), 200)["awards"], [], "someone else's list")
    r = earner.c.get("/v1/me/awards/%s/badge.jwt" % award_id)
    expect(r, 200)
    check("attachment" in r.header("content-disposition", ""), "the .jwt is a download")
    jwt = r.text.strip()
    eq(jwt, fetch_jwt(earner.c, award_id), "the download is the badge")
    r = earner.c.get("/v1/me/awards/%s/badge.json" % award_id)
    expect(r, 200)
    eq(r.json, jwt_parts(jwt)[1], "the .json is the decoded payload")
    expect(other.c.get("/v1/me/awards/%s/badge.jwt" % award_id), 403, "forbidden")
    expect(lead.c.get("/v1/me/awards/%s/badge.jwt" % award_id), 200, what="a lead's download")
    eq(psql(env, "select count(*) from audit_log where action = 'badge.read' and object_id = '%s'"
            " and actor_id = '%s'" % (award_id, lead.id)), "1", "a lead's read is audited")
    path = "/v1/me/awards/" + award_id
    for bad, code in (({"visibility": "world"}, "bad_request"), ({"name_display": 3}, "bad_request"),
                      ({"colour": "red"}, "bad_request"),
                      ({"public_artifact_ids": ["nope"]}, "invalid_uuid"),
                      ({"public_artifact_ids": [ev[0], ev[0]]}, "duplicate_artifact")):
        expect(earner.c.request("PUT", path, json_body=bad), 400, code, "settings %r" % bad)
    foreign = env.upload(other.c, "video", b"another earner's video")["id"]
    expect(earner.c.request("PUT", path, json_body={"public_artifact_ids": [foreign]}), 422,
           "not_evidence")
    expect(other.c.request("PUT", path, json_body={"visibility": "private"}), 403, "forbidden")

    r = expect(earner.c.request("PUT", path, json_body={"name_display": "initials",
                                                        "public_artifact_ids": [ev[3]]}), 200)
    eq((r["name_display"], r["public_artifact_ids"]), ("initials", [ev[3]]), "settings answer")
    jwt2 = fetch_jwt(earner.c, award_id)
    check(jwt2 != jwt, "a new name display must be signed again")
    p2 = verified(env, jwt2, "the badge with initials")
    names = [i["identityHash"] for i in p2["credentialSubject"]["identifier"]
             if i["identityType"] == "name"]
    eq(names, ["M. D. C."], "initials on the badge")
    check("Maria" not in jwt_parts(jwt2)[1].__repr__(), "the full name is still in the badge")
    plan = [e for e in p2["evidence"] if e.get("genre") == "plan"]
    eq(len(plan), 1, "the chosen public evidence: %s" % p2["evidence"])
    check(all(e.get("genre") != "video" for e in p2["evidence"]), "a video is public unasked")

    listing = "/v1/earners/%s/badges" % earner.id
    eq(expect(earner.c.anon().get(listing), 200)["badges"], [], "not listed by default")
    expect(earner.c.request("PUT", path, json_body={"visibility": "public"}), 200)
    listed = expect(earner.c.anon().get(listing), 200)["badges"]
    eq([(b["id"], b["url"], b["status"]) for b in listed],
       [(award_id, PUBLIC_URL + "/v1/awards/" + award_id, "valid")], "listed when public")
    eq(expect(earner.c.anon().get("/v1/earners/%s/badges" % uuid.uuid4()), 200)["badges"], [],
       "an unknown earner: an empty list")
    expect(earner.c.request("PUT", path, json_body={"visibility": "private"}), 200)
    eq(expect(earner.c.anon().get(listing), 200)["badges"], [], "private: not listed")
    expect(earner.c.anon().get("/v1/awards/" + award_id), 404, "not_found", "a private badge")
    expect(earner.c.get("/v1/me/awards/%s/badge.jwt" % award_id), 200, what="own private badge")
    verified(env, jwt2, "a private badge still verifies from the JWT")
    expect(earner.c.request("PUT", path, json_body={"visibility": "link"}), 200)
    eq(fetch_jwt(earner.c, award_id), jwt2, "visibility alone does not change the signed badge")


@test
def badge_stack_of_five(env):
    """A lead's stack of five credentials: progress for the earner, the stack's
    own badge (evidence: the member badges) issued with the fifth award,
    completions in the report; bad stacks are refused whole."""
    titles = ["SEL Structures %d: %s" % (i + 1, t) for i, t in enumerate(
        ["Morning Meeting", "Closing Circle", "Class Agreements", "Calm Corner", "Peer Conferences"])]
    lead, assessor, creds = setup(env, 5, titles)
    ids = [c["id"] for c in creds]
    before = len(expect(lead.c.get("/v1/stacks"), 200)["stacks"])
    body = {"title": "Class Structures to Support SEL",
            "description": "Five micro-credentials that count as a five-credit course.",
            "credential_ids": ids}
    for bad, status, code in (
            (dict(body, credential_ids=ids[:4] + [ids[0]]), 422, "duplicate_credential"),
            (dict(body, credential_ids=ids[:4] + [str(uuid.uuid4())]), 422, "unknown_credential"),
            (dict(body, credential_ids=ids[:1]), 422, "too_few_credentials"),
            (dict(body, credential_ids=["x"]), 400, "invalid_uuid"),
            ({"credential_ids": ids}, 400, "bad_request"),
            (dict(body, title=""), 400, "bad_request")):
        expect(lead.c.post("/v1/stacks", bad), status, code, "stack %r" % bad)
    expect(assessor.c.post("/v1/stacks", body), 403, "forbidden", "an assessor defines a stack")
    eq(len(expect(lead.c.get("/v1/stacks"), 200)["stacks"]), before, "refused stacks left nothing")
    stack = expect(lead.c.post("/v1/stacks", body), 201)
    eq([c["id"] for c in stack["credentials"]], ids, "members in order")

    earner = env.user(["earner"], server=badge_server(env))
    awards = []
    for i, c in enumerate(creds):
        awards.append(earn(env, lead, earner, c, assessor)[0])
        st = expect(earner.c.get("/v1/stacks/" + stack["id"]), 200)
        eq((st["progress"]["held"], st["progress"]["total"]), (i + 1, 5), "progress")
        if i < 4:
            eq(st["progress"]["badge_id"], None, "no stack badge before the fifth")
    badge_id = st["progress"]["badge_id"]
    check(badge_id, "the stack badge was not issued with the fifth award")
    res = verify(env, [fetch_jwt(earner.c, a) for a in awards])
    check(all(r["ok"] and r["status"] == "valid" for r in res), "the member badges: %s" % res)
    mine = expect(earner.c.get("/v1/me/awards"), 200)["awards"]
    eq(sorted(a["kind"] for a in mine), ["award"] * 5 + ["stack"], "the earner's awards")
    jwt = fetch_jwt(earner.c, badge_id)
    p = verified(env, jwt, "the stack badge")
    eq(p["credentialSubject"]["achievement"]["name"], body["title"], "stack achievement")
    members = [e["id"] for e in p["evidence"] if "id" in e]
    eq(members, [PUBLIC_URL + "/v1/awards/" + a for a in awards], "evidence: the member badges")
    got = expect(earner.c.anon().get("/v1/achievements/" + stack["id"]), 200)
    eq(got["name"], body["title"], "the stack's achievement at its id URL")
    rep = expect(lead.c.get("/v1/reports/stacks"), 200)["stacks"]
    eq([s["completions"] for s in rep if s["id"] == stack["id"]], [1], "completions in the report")
    expect(earner.c.get("/v1/reports/stacks"), 403, "forbidden")
    # a member revoked: the stack badge goes with it, in the same request
    r = expect(lead.c.post("/v1/awards/%s/revoke" % awards[2], {"reason": "Not her classroom."}),
               200)
    eq(r["stack_badges_revoked"], [badge_id], "stack badges revoked with the member")
    res = verify(env, [jwt])[0]
    eq((res["ok"], res["status"]), (True, "revoked"), "the stack badge after a member's revocation")
    mine = expect(earner.c.get("/v1/me/awards"), 200)["awards"]
    why = [a["revocation_reason"] for a in mine if a["id"] == badge_id][0]
    check(titles[2] in why and "Not her classroom." in why, "the earner is told why: %r" % why)
    rep = expect(lead.c.get("/v1/reports/stacks"), 200)["stacks"]
    eq([(s["completions"], s["revoked"]) for s in rep if s["id"] == stack["id"]], [(0, 1)],
       "completions after the revocation")
    eq(expect(earner.c.get("/v1/stacks/" + stack["id"]), 200)["progress"]["held"], 4,
       "progress counts valid members only")
    # a stack defined later counts what the earner already holds
    st2 = expect(lead.c.post("/v1/stacks", {"title": "First two", "credential_ids": ids[:2]}), 201)
    st3 = expect(lead.c.post("/v1/stacks", {"title": "With the revoked one",
                                            "credential_ids": ids[1:3]}), 201)
    eq(expect(earner.c.get("/v1/stacks/" + st3["id"]), 200)["progress"]["badge_id"], None,
       "a revoked member does not count toward a new stack")
    st2 = expect(earner.c.get("/v1/stacks/" + st2["id"]), 200)
    check(st2["progress"]["badge_id"], "a stack completed before it existed gets its badge")


@test
def badge_stack_completed_by_concurrent_awards(env):
    """The last two members of a stack pass at the same moment: the stack badge
    is still issued. The interleaving that loses it without the issuing
    trigger's per-earner lock is forced, not hoped for: a test transaction
    holds a lock on badges until both scoring transactions have inserted their
    award and wait, so each reaches the stack check before the other commits."""
    lead, a1, creds = setup(env, 2)
    a2 = env.user(["assessor"], server=badge_server(env))
    env.grant(lead, creds[1]["id"], a2)
    stack = expect(lead.c.post("/v1/stacks", {"title": "Pair",
                                              "credential_ids": [c["id"] for c in creds]}), 201)
    earner = env.user(["earner"], server=badge_server(env))
    claims = []
    for c, assessor in ((creds[0], a1), (creds[1], a2)):
        ev = [a["id"] for a, _ in env.evidence(earner.c)]
        env.submit(earner.c, c["id"], ev)
        claims.append((assessor, expect(assessor.c.post("/v1/reviews/claim",
                                                        {"credential_id": c["id"]}), 200)))
    results = [None, None]

    def score(i):
        assessor, cl = claims[i]
        results[i] = assessor.c.post("/v1/reviews/%s/scores" % cl["id"],
                                     {"scores": env.scores({}), "feedback": "ok"})

    holder = subprocess.Popen(["psql", env.base_env["DATABASE_URL"], "-XAtq"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    threads = [threading.Thread(target=score, args=(i,)) for i in range(2)]
    try:
        holder.stdin.write("BEGIN; LOCK TABLE badges IN EXCLUSIVE MODE; SELECT 'locked';\n")
        holder.stdin.flush()
        eq(holder.stdout.readline().strip(), "locked", "the test's lock on badges")
        for t in threads:
            t.start()
        waiting = "0"
        for _ in range(600):          # bounded: both requests queue behind the lock
            waiting = psql(env, "select count(*) from pg_locks l join pg_class c "
                                "on c.oid = l.relation where c.relname = 'badges' "
                                "and not l.granted")
            if waiting == "2":
                break
            time.sleep(0.05)
        eq(waiting, "2", "both scoring transactions wait on badges")
    finally:
        holder.stdin.write("COMMIT;\n")
        holder.stdin.close()
        holder.wait(30)
        for t in threads:
            t.join(60)
    for r in results:
        eq(expect(r, 200)["verdict"], "pass", "verdict")
    st = expect(earner.c.get("/v1/stacks/" + stack["id"]), 200)
    check(st["progress"]["badge_id"], "no stack badge after both members passed at once")
    kinds = [a["kind"] for a in expect(earner.c.get("/v1/me/awards"), 200)["awards"]]
    eq(sorted(kinds), ["award", "award", "stack"], "the earner's badges")


@test
def badge_expiry(env):
    """A credential configured to expire: validUntil and exp on its badges; past
    it, the page, the earner's list and the verifier say expired."""
    lead, assessor, (cred,) = setup(env)
    path = "/v1/credentials/%s/badge" % cred["id"]
    expect(lead.c.request("PUT", path, json_body={"valid_days": 0}), 422, what="0 days")
    expect(lead.c.request("PUT", path, json_body={}), 400, what="no valid_days")
    expect(assessor.c.request("PUT", path, json_body={"valid_days": 30}), 403, "forbidden")
    eq(expect(lead.c.request("PUT", path, json_body={"valid_days": 30}), 200)["valid_days"], 30,
       "valid_days")
    earner = env.user(["earner"], server=badge_server(env))
    award_id, _ = earn(env, lead, earner, cred, assessor)
    payload = verified(env, fetch_jwt(earner.c, award_id), "a badge that expires")
    eq(payload["exp"] - payload["nbf"], 30 * 86400, "exp = nbf + 30 days")
    # 31 days later (the clock of the verifier; the database's expiry moved back)
    res = verify(env, [fetch_jwt(earner.c, award_id)], now=payload["nbf"] + 31 * 86400)[0]
    check(not res["ok"] or res["status"] == "expired", "31 days later it should be expired: %s" % res)
    psql(env, "update badges set valid_until = now() - interval '1 second' where id = '%s'"
         % award_id)
    mine = expect(earner.c.get("/v1/me/awards"), 200)["awards"]
    eq([a["status"] for a in mine if a["id"] == award_id], ["expired"], "the earner's list")
    page = earner.c.anon().get("/v1/awards/" + award_id, headers={"Accept": "text/html"})
    check("EXPIRED" in page.text, "the page should say expired")
    expect(lead.c.request("PUT", path, json_body={"valid_days": None}), 200, what="never expire")


@test
def badge_settings(env):
    """ACCORD_PUBLIC_URL: not https in production mode, or not http(s) at all, is
    refused at start with a message naming the setting; without it, badge
    routes answer 503 not_configured (the main test server derives its URL); a
    server whose key directory lost the active key serves on, signing nothing."""
    for extra, word in (({"ACCORD_PRODUCTION": "1", "ACCORD_PUBLIC_URL": "http://badges.example.org"},
                         "https"),
                        ({"ACCORD_PUBLIC_URL": "ftp://badges.example.org"}, "public URL"),
                        ({"ACCORD_PRODUCTION": "1", "ACCORD_PUBLIC_URL": ""}, "ACCORD_PUBLIC_URL"),
                        ({"ACCORD_ISSUER_EMAIL": "nobody"}, "ACCORD_ISSUER_EMAIL")):
        e = dict(env.base_env, **extra)
        rc, out, err = run_cli(env.binary, ["serve", "--listen", "127.0.0.1:0"], e, timeout=30)
        eq(rc, 2, "accord serve with %r: exit status (stderr %s)" % (extra, err))
        check(word in err, "the message should name %s: %r" % (word, err))
    # the key directory lost: the server still serves reviews and signed badges;
    # a badge not yet signed answers 503 until the key is back
    lead, assessor, (cred,) = setup(env)
    e1, e2 = (env.user(["earner"], server=badge_server(env)) for _ in range(2))
    a1, _ = earn(env, lead, e1, cred, assessor)
    jwt1 = fetch_jwt(e1.c, a1)
    a2, _ = earn(env, lead, e2, cred, assessor)
    lost = env.start_server("nokeys", {"ACCORD_PUBLIC_URL": PUBLIC_URL,
                                       "ACCORD_KEY_DIR": os.path.join(env.workdir, "empty-keys")})
    eq(fetch_jwt(e1.on(lost), a1), jwt1, "a signed badge without the key directory")
    r = e2.on(lost).anon().get("/v1/awards/" + a2, headers={"Accept": "application/vc+jwt"})
    expect(r, 503, "unavailable", "a badge to sign without its key")
    check("signing key" in r.json["error"]["message"], "the message says why: %s" % r.text)
    expect(e2.on(lost).get("/v1/me"), 200, what="the rest of the API")
    check("not in the key directory" in open(lost.stderr_path).read(), "the log says why")
    eq(verify(env, [fetch_jwt(e2.c, a2)])[0]["ok"], True, "signed where the key is")
    c = env.admin.c
    for path in ("/v1/awards/" + str(uuid.uuid4()), "/.well-known/jwks.json", "/v1/issuer"):
        expect(c.anon().get(path), 503, "not_configured", path)


@test
def badge_every_issued_jwt_verifies(env):
    """Every badge issued in this run (every test before this one, the story's
    included) verifies independently: those never read are signed now."""
    bs = badge_server(env)
    for i in psql(env, "select coalesce(string_agg(id::text, ' '), '') from badges "
                       "where jwt is null and visibility <> 'private'").split():
        fetch_jwt(Client(bs), i)
    jwts = psql(env, "select coalesce(string_agg(jwt, ' '), '') from badges "
                     "where jwt is not null").split()
    unsigned = psql(env, "select count(*) from badges where jwt is null")
    check(len(jwts) >= 15, "only %d signed badges in the run" % len(jwts))
    res = verify(env, jwts)
    bad = [r for r in res if not r["ok"] or r["status"] not in ("valid", "revoked")]
    check(not bad, "%d of %d issued badges do not verify: %s" % (len(bad), len(jwts), bad[:3]))
    eq(unsigned, psql(env, "select count(*) from badges where jwt is null and visibility = 'private'"),
       "only private badges nobody downloaded are unsigned")

# SPDX-License-Identifier: Apache-2.0
"""Authentication, roles, ownership, eligibility, blind review.

The role x object tests run twice: with bearer tokens and with browser
sessions (cookie + CSRF token), which must be authorized alike."""

import hashlib
import json
import uuid

from harness import (Client, assert_not_in_text, check, eq, expect, is_ts, is_uuid, raw_exchange,
                     test)


class World:
    """Two earners in different orgs with a queued submission each, one
    credential, assessors with and without grants. session=True: everyone
    acts through a browser session instead of a token."""

    def __init__(self, env, session=False):
        s = session
        self.lead = env.user(["lead"], org="Authz District", session=s)
        self.ea = env.user(["earner"], name="Alice Authz", org="Authz Org A", session=s)
        self.eb = env.user(["earner"], name="Bob Authz", org="Authz Org B", session=s)
        self.p = env.user(["assessor"], name="Pat Peer", org="Authz Org P", session=s)
        self.q = env.user(["assessor"], name="Quinn Peer", org="Authz Org Q", session=s)
        self.n = env.user(["assessor"], name="Noel Nogrant", org="Authz Org N", session=s)
        self.rubric = env.rubric(self.lead)
        self.cred = env.credential(self.lead, self.rubric["id"])
        env.grant(self.lead, self.cred["id"], self.p)
        env.grant(self.lead, self.cred["id"], self.q)
        self.ev_a = env.evidence(self.ea.c)
        self.ev_b = env.evidence(self.eb.c)
        self.sub_a = env.submit(self.ea.c, self.cred["id"], [a["id"] for a, _ in self.ev_a])
        self.sub_b = env.submit(self.eb.c, self.cred["id"], [a["id"] for a, _ in self.ev_b])


@test
def authz_unauthenticated(env):
    anon = env.admin.c.anon()
    bad = Client(env.server, "not-a-real-token-" + uuid.uuid4().hex)
    # a well-formed session cookie the server never issued (with its right CSRF token)
    fake = uuid.uuid4().hex * 2
    no_session = Client(env.server, session=fake,
                        csrf=hashlib.sha256(("accord-csrf:" + fake).encode()).hexdigest())
    paths = [("GET", "/v1/me", None), ("GET", "/v1/submissions", None),
             ("GET", "/v1/credentials", None),
             ("POST", "/v1/rubrics", env.rubric_body()),
             ("POST", "/v1/users", {"email": "x@example.org", "name": "X", "roles": ["earner"]}),
             ("POST", "/v1/submissions", {"credential_id": str(uuid.uuid4()), "artifact_ids": []}),
             ("POST", "/v1/reviews/claim", {}),
             ("GET", "/v1/submissions/%s" % uuid.uuid4(), None),
             ("GET", "/v1/artifacts/%s/content" % uuid.uuid4(), None)]
    for who, c in (("no token", anon), ("unknown token", bad), ("unknown session", no_session)):
        for method, path, body in paths:
            r = c.request(method, path, json_body=body)
            expect(r, 401, ("unauthorized", "session_ended"), "%s: %s %s" % (who, method, path))
    r = anon.request("POST", "/v1/artifacts", data=b"abc",
                     headers={"Content-Type": "video/mp4", "X-Artifact-Kind": "video"})
    expect(r, 401, "unauthorized", "upload without a token")
    for hdr in ("Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer ", "bearer%s" % env.admin.token,
                "Bearer %s" % env.admin.token[:-1]):
        r = anon.request("GET", "/v1/me", headers={"Authorization": hdr})
        expect(r, 401, "unauthorized", "Authorization: %r" % hdr[:30])


@test
def authz_wrong_role(env):
    wrong_role(env, False)


@test
def authz_wrong_role_cookie(env):
    wrong_role(env, True)


def wrong_role(env, session):
    w = World(env, session)
    admin = env.user(["admin"], session=True) if session else env.admin
    rb = env.rubric_body()
    # earners read the rubric of a credential (issue 11), not a lead's unused one
    unused = env.rubric(w.lead, title="Not used by any credential yet")
    cred_body = {"title": "x", "stakes": "low", "rubric_id": w.rubric["id"],
                 "evidence": [{"kind": "video", "min": 1}], "pass_rule": {"min_level_each": 3}}
    user_body = {"email": "new%d@example.org" % env.uniq(), "name": "New", "roles": ["earner"]}
    cases = [
        ("earner creates a rubric", w.ea, "POST", "/v1/rubrics", rb),
        ("assessor creates a rubric", w.p, "POST", "/v1/rubrics", rb),
        ("assessor creates a credential", w.p, "POST", "/v1/credentials", cred_body),
        ("earner creates a credential", w.ea, "POST", "/v1/credentials", cred_body),
        ("earner claims", w.ea, "POST", "/v1/reviews/claim", {"credential_id": w.cred["id"]}),
        # (a lead may claim: adjudications only, so that is no longer a 403)
        ("admin claims", admin, "POST", "/v1/reviews/claim", {}),
        ("lead creates a user", w.lead, "POST", "/v1/users", user_body),
        ("earner creates a user", w.ea, "POST", "/v1/users", user_body),
        ("lead issues a token", w.lead, "POST", "/v1/users/%s/tokens" % w.ea.id, None),
        ("earner issues herself a token", w.ea, "POST", "/v1/users/%s/tokens" % w.ea.id, None),
        ("earner grants", w.ea, "POST", "/v1/credentials/%s/assessors" % w.cred["id"],
         {"user_id": w.n.id, "pool": "peer", "waive_award": True}),
        ("assessor grants herself", w.n, "POST", "/v1/credentials/%s/assessors" % w.cred["id"],
         {"user_id": w.n.id, "pool": "peer", "waive_award": True}),
        ("assessor submits", w.p, "POST", "/v1/submissions",
         {"credential_id": w.cred["id"], "artifact_ids": [a["id"] for a, _ in w.ev_a]}),
        ("earner reads an unused rubric", w.ea, "GET", "/v1/rubrics/%s" % unused["id"], None),
    ]
    for what, u, method, path, body in cases:
        expect(u.c.request(method, path, json_body=body), 403, "forbidden", what)
    r = w.p.c.request("POST", "/v1/artifacts", data=b"x" * 10,
                      headers={"Content-Type": "video/mp4", "X-Artifact-Kind": "video"})
    expect(r, 403, "forbidden", "an assessor (not an earner) uploads")
    # nothing was created by the refused calls
    lst = expect(w.lead.c.get("/v1/submissions"), 200)
    eq(sorted(s["id"] for s in lst["submissions"] if s["credential_id"] == w.cred["id"]),
       sorted([w.sub_a["id"], w.sub_b["id"]]), "submissions for the credential after refusals")


@test
def authz_foreign_objects(env):
    foreign_objects(env, False)


@test
def authz_foreign_objects_cookie(env):
    foreign_objects(env, True)


def foreign_objects(env, session):
    w = World(env, session)
    a_art = w.ev_a[0][0]["id"]
    # another earner
    for method, path, body in [
            ("GET", "/v1/submissions/%s" % w.sub_a["id"], None),
            ("GET", "/v1/artifacts/%s" % a_art, None),
            ("GET", "/v1/artifacts/%s/content" % a_art, None),
    ]:
        expect(w.eb.c.request(method, path, json_body=body), (403, 404), what="earner B: %s %s"
               % (method, path))
    r = w.eb.c.post("/v1/submissions/%s/resubmit" % w.sub_a["id"],
                    {"artifact_ids": [a["id"] for a, _ in w.ev_b]})
    expect(r, (403, 404), what="earner B resubmits earner A's submission")
    lst = expect(w.eb.c.get("/v1/submissions"), 200)
    got = [s["id"] for s in lst["submissions"]]
    check(w.sub_b["id"] in got and w.sub_a["id"] not in got,
          "earner B's GET /v1/submissions must list B's own and not A's: %s" % got)
    # earner B submits A's artifacts (another credential so B has no open submission)
    cred2 = env.credential(w.lead, w.rubric["id"])
    r = w.eb.c.post("/v1/submissions", {"credential_id": cred2["id"],
                                        "artifact_ids": [a["id"] for a, _ in w.ev_a]})
    expect(r, 403, "forbidden", "earner B submits earner A's artifacts")
    # assessors who never reviewed: no artifact access; no submission access
    for u in (w.n, w.p, w.q):
        expect(u.c.get("/v1/artifacts/%s/content" % a_art), 403, "forbidden",
               "assessor %s reads an artifact of a submission never reviewed" % u.name)
        expect(u.c.get("/v1/artifacts/%s" % a_art), 403, "forbidden",
               "assessor %s reads artifact metadata of a submission never reviewed" % u.name)
    # P claims (oldest first: A's submission)
    cl = expect(w.p.c.post("/v1/reviews/claim", {"credential_id": w.cred["id"]}), 200)
    eq(cl["submission"]["id"], w.sub_a["id"], "oldest eligible submission first")
    r = w.p.c.get("/v1/artifacts/%s/content" % a_art)
    expect(r, 200, what="the holder reads the artifact")
    check(r.body == w.ev_a[0][1], "the holder got different bytes")
    expect(w.p.c.get("/v1/submissions/%s" % w.sub_a["id"]), (403, 404),
           what="an assessor reads the submission (earner_id would break blind review)")
    # Q: other assessor's review and its artifacts
    expect(w.q.c.get("/v1/reviews/%s" % cl["id"]), (403, 404), what="Q reads P's review")
    expect(w.q.c.post("/v1/reviews/%s/release" % cl["id"]), (403, 404),
           what="Q releases P's review")
    expect(w.q.c.post("/v1/reviews/%s/scores" % cl["id"],
                      {"scores": env.scores({}), "feedback": "x"}), (403, 404),
           what="Q scores P's review")
    expect(w.q.c.get("/v1/artifacts/%s/content" % a_art), 403, "forbidden",
           "Q reads an artifact of P's review")
    expect(w.ea.c.get("/v1/reviews/%s" % cl["id"]), (403, 404), what="the earner reads the review")
    # lead reads all
    expect(w.lead.c.get("/v1/submissions/%s" % w.sub_a["id"]), 200, what="lead reads a submission")
    expect(w.lead.c.get("/v1/artifacts/%s" % a_art), 200, what="lead reads artifact metadata")
    r = w.lead.c.get("/v1/artifacts/%s/content" % a_art)
    expect(r, 200, what="lead reads artifact content")
    check(r.body == w.ev_a[0][1], "the lead got different bytes")
    expect(w.lead.c.get("/v1/reviews/%s" % cl["id"]), 200, what="lead reads a review")
    lst = expect(w.lead.c.get("/v1/submissions"), 200)
    got = [s["id"] for s in lst["submissions"]]
    check(w.sub_a["id"] in got and w.sub_b["id"] in got,
          "the lead's GET /v1/submissions must list every earner's submissions")
    # P is still fine after all this
    expect(w.p.c.get("/v1/reviews/%s" % cl["id"]), 200, what="the holder reads the review")


@test
def authz_claim_eligibility(env):
    lead = env.user(["lead"])
    rubric = env.rubric(lead)
    cred = env.credential(lead, rubric["id"])
    earner = env.user(["earner"], org="Elig Org E")
    ev = [a["id"] for a, _ in env.evidence(earner.c)]
    sub = env.submit(earner.c, cred["id"], ev)
    # no grant at all
    nogrant = env.user(["assessor"], org="Elig Org X")
    expect(nogrant.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 204,
           what="assessor without a grant (credential_id given)")
    expect(nogrant.c.post("/v1/reviews/claim", {}), 204,
           what="assessor without any grant (no credential_id)")
    expect(nogrant.c.request("POST", "/v1/reviews/claim"), 204,
           what="assessor without any grant (no body at all)")
    expect(nogrant.c.post("/v1/reviews/claim", {"credential_id": "nope"}), 400,
           ("invalid_uuid", "bad_request"), "claim with a malformed credential_id")
    # same org as the earner
    colleague = env.user(["assessor"], org="Elig Org E")
    env.grant(lead, cred["id"], colleague)
    expect(colleague.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 204,
           what="assessor from the earner's organisation")
    # the earner, also an assessor, cannot claim her own submission
    dual = env.user(["earner", "assessor"], org="Elig Org D")
    cred_d = env.credential(lead, rubric["id"])
    env.grant(lead, cred_d["id"], dual)
    sub_d = env.submit(dual.c, cred_d["id"], [a["id"] for a, _ in env.evidence(dual.c)])
    expect(dual.c.post("/v1/reviews/claim", {"credential_id": cred_d["id"]}), 204,
           what="an earner+assessor claiming (only her own submission is queued)")
    expect(dual.c.post("/v1/reviews/claim", {}), 204,
           what="an earner+assessor claiming without credential_id")
    # an eligible assessor does get both (proves there was something to claim)
    other = env.user(["assessor"], org="Elig Org O")
    env.grant(lead, cred["id"], other)
    env.grant(lead, cred_d["id"], other)
    got = set()
    for _ in range(2):
        cl = expect(other.c.post("/v1/reviews/claim", {}), 200, what="eligible assessor claims")
        got.add(cl["submission"]["id"])
    eq(got, {sub["id"], sub_d["id"]}, "submissions claimed by the eligible assessor")
    # grants that must be refused
    high = env.credential(lead, rubric["id"], stakes="high")
    for body, what in [
            ({"user_id": other.id, "pool": "peer", "waive_award": True},
             "a peer grant on a high-stakes credential"),
            ({"user_id": nogrant.id, "pool": "peer"},
             "a peer grant without an award and without waive_award"),
            ({"user_id": nogrant.id, "pool": "peer", "waive_award": False},
             "a peer grant without an award, waive_award false"),
            ({"user_id": earner.id, "pool": "peer", "waive_award": True},
             "a peer grant to a user without the assessor role"),
            ({"user_id": other.id, "pool": "expert"},
             "an expert grant to a user without the expert role"),
    ]:
        c_id = high["id"] if "high-stakes" in what else cred["id"]
        expect(lead.c.post("/v1/credentials/%s/assessors" % c_id, body), 422, "invalid_grant",
               what)
    expert = env.user(["expert"], org="Elig Org Expert")
    g = env.grant(lead, high["id"], expert, "expert", None)
    eq((g["pool"], g["user_id"]), ("expert", expert.id), "expert grant on high stakes")
    sub_h = env.submit(earner.c, high["id"], ev)
    cl = expect(expert.c.post("/v1/reviews/claim", {"credential_id": high["id"]}), 200,
                what="expert claims high stakes")
    eq(cl["submission"]["id"], sub_h["id"], "expert's claim")
    eq(cl["credential"]["stakes"], "high", "claim.credential.stakes")


@test
def authz_blind_review(env):
    blind_review(env, False)


@test
def authz_blind_review_cookie(env):
    blind_review(env, True)


def blind_review(env, session):
    s, tag = session, ("-cookie" if session else "")
    lead = env.user(["lead"], session=s)
    earner = env.user(["earner"], name="Zelda Quixote-Blindtest", org="Blindtest Academy",
                      email="zelda.quixote%s@blindtest.example.org" % tag, session=s)
    assessor = env.user(["assessor"], name="Yannick Obscurus", org="Obscure Institute",
                        email="yannick.obscurus%s@obscure.example.org" % tag, session=s)
    rubric = env.rubric(lead)
    cred = env.credential(lead, rubric["id"])
    env.grant(lead, cred["id"], assessor)
    ev = env.evidence(earner.c)
    sub = env.submit(earner.c, cred["id"], [a["id"] for a, _ in ev])
    earner_id = [("earner's name", earner.name), ("earner's email", earner.email),
                 ("earner's id", earner.id), ("earner's org", earner.org)]
    assessor_id = [("assessor's id", assessor.id), ("assessor's name", assessor.name),
                   ("assessor's email", assessor.email)]
    r = assessor.c.post("/v1/reviews/claim", {"credential_id": cred["id"]})
    cl = expect(r, 200)
    assert_not_in_text(r.text, earner_id, "the claim answer")
    r = assessor.c.get("/v1/reviews/" + cl["id"])
    expect(r, 200)
    assert_not_in_text(r.text, earner_id, "GET /v1/reviews/{id}")
    for a, _ in ev:
        r = assessor.c.get("/v1/artifacts/" + a["id"])
        expect(r, 200)
        assert_not_in_text(r.text, earner_id, "artifact metadata for the assessor")
    res = expect(assessor.c.post("/v1/reviews/%s/scores" % cl["id"],
                                 {"scores": env.scores({"reflection": 2}, "blind"),
                                  "feedback": "Blind feedback."}), 200)
    eq(res["verdict"], "resubmit", "verdict")
    r = assessor.c.get("/v1/reviews/" + cl["id"])
    expect(r, 200)
    assert_not_in_text(r.text, earner_id, "the scored review")
    for path in ("/v1/submissions/" + sub["id"], "/v1/submissions"):
        r = earner.c.get(path)
        expect(r, 200)
        assert_not_in_text(r.text, assessor_id, "the earner's " + path)
    # the artifact access list is not exposed to the earner either
    for a, _ in ev:
        r = earner.c.get("/v1/artifacts/" + a["id"])
        expect(r, 200)
        assert_not_in_text(r.text, assessor_id, "the earner's artifact metadata")
    # the resubmission's reviewer sees the earlier feedback, not who anyone is
    sub2 = expect(earner.c.post("/v1/submissions/%s/resubmit" % sub["id"],
                                {"artifact_ids": [a["id"] for a, _ in ev]}), 201)
    second = env.user(["assessor"], name="Xavier Secondus", org="Second Institute", session=s)
    env.grant(lead, cred["id"], second)
    r = second.c.post("/v1/reviews/claim", {"credential_id": cred["id"]})
    cl2 = expect(r, 200)
    eq(cl2["submission"]["id"], sub2["id"], "claim of the resubmission")
    assert_not_in_text(r.text, earner_id + assessor_id, "the claim of the resubmission")
    check(json.loads(r.text)["submission"]["previous_result"] is not None,
          "previous_result of the resubmission claim is null")


@test
def authz_raw_http_without_token(env):
    """A hand-written request without headers beyond Host still gets a JSON 401."""
    status, data = raw_exchange(env.server.port,
                                b"GET /v1/me HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                b"Connection: close\r\n\r\n")
    eq(status, 401, "raw GET /v1/me without a token (%r)" % data[:200])
    check(b'"unauthorized"' in data, "the 401 body should carry the unauthorized code: %r"
          % data[:300])


@test
def authz_users_and_tokens(env):
    n = env.uniq()
    body = {"email": "multi%d@example.org" % n, "name": "Multi Role", "roles": ["earner", "assessor"]}
    r = env.admin.c.post("/v1/users", body)
    u = expect(r, 201)
    eq((u["email"], u["name"], sorted(u["roles"]), u["org"]),
       (body["email"], "Multi Role", ["assessor", "earner"], None), "created user (no org)")
    check(is_uuid(u["id"]) and is_ts(u.get("created_at")), "id/created_at of %s" % r.text)
    t1 = expect(env.admin.c.post("/v1/users/%s/tokens" % u["id"]), 201)
    t2 = expect(env.admin.c.post("/v1/users/%s/tokens" % u["id"]), 201)
    eq((t1["user_id"], t2["user_id"]), (u["id"], u["id"]), "token user_id")
    check(t1["token"] != t2["token"], "two tokens for one user must differ")
    for t in (t1["token"], t2["token"]):
        me = expect(Client(env.server, t).get("/v1/me"), 200)
        eq((me["id"], me["org"], sorted(me["roles"])), (u["id"], None, ["assessor", "earner"]),
           "GET /v1/me with each token")
    r = env.admin.c.get("/v1/users/%s/tokens" % u["id"])
    expect(r, 405, "method_not_allowed", "tokens cannot be listed")
    check(t1["token"] not in env.admin.c.get("/v1/me").text, "the admin's /v1/me shows a token")

# SPDX-License-Identifier: Apache-2.0
"""The API of the web app (issue 11), over real HTTP against the real server:
earners read the rubric they are scored on (level descriptions included);
results name criteria and levels as people do; review drafts saved on the
server (versioned, bounded, the holder's only, gone with the review); lease
extension within limits; "my reviews" and "my qualifications"; grants listed
and revoked; a lead's override of a final result; who scored what; the
adjudication queue. Every answer is also checked against server/openapi.json
(closed objects) by contract.py."""

import json
import uuid

from harness import (CRITERIA, Client, CRITERION_KEYS, LEVELS, assert_not_in_text, check, eq, expect,
                     short, sql, test)

TITLES = {k: t for k, t, _ in CRITERIA}
LABELS = dict(LEVELS)
VOICE = "student-voice"


def rubric_with_descriptions(env, lead, title="Morning Meeting (described levels)"):
    body = env.rubric_body(title)
    for c in body["criteria"]:
        for lv in c["levels"]:
            lv["description"] = "What %s looks like at '%s'." % (c["title"], lv["label"])
    return expect(lead.c.post("/v1/rubrics", body), 201, what="create a rubric with level descriptions")


def put_draft(client, review_id, draft, version):
    return client.request("PUT", "/v1/reviews/%s/draft" % review_id,
                          json_body={"draft": draft, "version": version})


def setup_review(env, stakes="low"):
    """A lead, a credential, a granted assessor and a submission waiting for review."""
    lead = env.user(["lead"])
    assessor = env.user(["assessor"])
    earner = env.user(["earner"])
    rubric = env.rubric(lead)
    cred = env.credential(lead, rubric["id"], stakes=stakes, videos=1)
    env.grant(lead, cred["id"], assessor, pool="peer")
    arts = [a["id"] for a, _ in env.evidence(earner.c, video_size=512, videos=1)]
    sub = env.submit(earner.c, cred["id"], arts)
    return lead, assessor, earner, rubric, cred, sub


def claim(assessor, cred_id):
    r = expect(assessor.c.post("/v1/reviews/claim", {"credential_id": cred_id}), 200,
               what="claim a review")
    check(r.get("status") == "active", "claim: %s" % short(json.dumps(r)))
    return r


# -- rubrics for earners --------------------------------------------------------------


@test
def web_earner_reads_rubric_with_level_descriptions(env):
    """An earner reads the full rubric of any credential (criteria, level labels and
    descriptions), directly and embedded in the credential; a lead's unused rubric
    stays the lead's; level descriptions are optional, typed and bounded."""
    lead = env.user(["lead"])
    earner = env.user(["earner"])
    rubric = rubric_with_descriptions(env, lead)
    lv = rubric["criteria"][2]["levels"][1]
    eq((lv["value"], lv["label"]), (2, "Approaching"), "levels keep value and label")
    eq(lv["description"], "What Student voice and peer feedback looks like at 'Approaching'.",
       "a level's description is kept")
    plain = env.rubric(lead, title="Without level descriptions")
    check(all("description" not in lv for c in plain["criteria"] for lv in c["levels"]),
          "a level without a description has none: %s" % short(json.dumps(plain)))

    # unused: a lead's draft, not for earners
    expect(earner.c.get("/v1/rubrics/" + rubric["id"]), 403, "forbidden")
    cred = env.credential(lead, rubric["id"])
    got = expect(earner.c.get("/v1/rubrics/" + rubric["id"]), 200, what="earner reads the rubric")
    eq(got, rubric, "the earner's rubric is the lead's")
    c = expect(earner.c.get("/v1/credentials/" + cred["id"]), 200, what="earner reads the credential")
    eq(c.get("rubric"), rubric, "the credential embeds its rubric")
    eq(c["evidence"], cred["evidence"], "evidence requirements")
    expect(earner.c.anon().get("/v1/rubrics/" + rubric["id"]), 401, "unauthorized")
    expect(earner.c.get("/v1/rubrics/" + str(uuid.uuid4())), 404, "not_found")
    expect(earner.c.get("/v1/credentials/" + str(uuid.uuid4())), 404, "not_found")

    # bad level descriptions
    body = env.rubric_body("Bad descriptions")
    body["criteria"][0]["levels"][0]["description"] = 7
    expect(lead.c.post("/v1/rubrics", body), 400, "bad_request")
    body["criteria"][0]["levels"][0]["description"] = "x" * 2001
    r = expect(lead.c.post("/v1/rubrics", body), 422, "invalid_rubric")
    check("description must be at most 2000" in r["error"]["message"], "says why: %s" % r)
    body["criteria"][0]["levels"][0]["description"] = None
    expect(lead.c.post("/v1/rubrics", body), 201, what="a null description is no description")


# -- results for people -----------------------------------------------------------------


@test
def web_results_name_criteria_and_levels(env):
    """A result carries each criterion's title and the label of the level reached,
    and the credential's title; the earner never sees who scored; the next
    assessor sees the previous attempt's result the same way."""
    lead, assessor, earner, rubric, cred, sub = setup_review(env)
    eq(sub.get("credential"), {"id": cred["id"], "title": cred["title"]}, "submission credential")
    rv = claim(assessor, cred["id"])
    scores = env.scores({VOICE: 2}, comment="Students answer the teacher only")
    expect(assessor.c.post("/v1/reviews/%s/scores" % rv["id"],
                           {"scores": scores, "feedback": "Let students respond to each other."}),
           200, what="score")
    r = earner.c.get("/v1/submissions/" + sub["id"])
    got = expect(r, 200, what="earner reads the result")
    eq(got["status"], "returned", "status")
    eq(got["credential"], {"id": cred["id"], "title": cred["title"]}, "credential title")
    res = got["result"]
    eq([(s["criterion"], s["criterion_title"], s["level"], s["level_label"]) for s in res["scores"]],
       [(k, TITLES[k], 2 if k == VOICE else 3, LABELS[2 if k == VOICE else 3])
        for k in CRITERION_KEYS], "criterion titles and level labels")
    assert_not_in_text(r.text, [("assessor id", assessor.id), ("assessor email", assessor.email),
                                ("assessor name", assessor.name)], "the earner's result")
    lst = expect(earner.c.get("/v1/submissions"), 200)["submissions"]
    eq([s["result"]["scores"][2]["level_label"] for s in lst if s["id"] == sub["id"]],
       ["Approaching"], "the list carries labels too")

    # the resubmission's assessor sees the previous result with labels, not the earner
    arts = [a["id"] for a in got["artifacts"]]
    expect(earner.c.post("/v1/submissions/%s/resubmit" % sub["id"], {"artifact_ids": arts}), 201)
    rv2 = claim(assessor, cred["id"])
    prev = rv2["submission"]["previous_result"]
    eq((prev["scores"][2]["criterion_title"], prev["scores"][2]["level_label"]),
       (TITLES[VOICE], "Approaching"), "previous result for the next assessor")
    assert_not_in_text(json.dumps(rv2), [("earner id", earner.id), ("earner email", earner.email),
                                         ("earner name", earner.name)], "the claim")


# -- drafts -------------------------------------------------------------------------------


@test
def web_review_drafts(env):
    """A draft saved on the server survives a reload and a second device; a stale
    save is refused (409) rather than overwriting; only the holder reads or writes
    it; bad shapes are 422, oversize 413; the draft ends with the review."""
    lead, assessor, earner, rubric, cred, sub = setup_review(env)
    rv = claim(assessor, cred["id"])
    path = "/v1/reviews/%s/draft" % rv["id"]
    d0 = expect(assessor.c.get(path), 200, what="empty draft")
    eq(d0, {"review_id": rv["id"], "draft": {"scores": [], "feedback": ""}, "version": 0,
            "updated_at": None}, "no draft yet")

    video = rv["submission"]["artifacts"][0]["id"]
    draft = {"scores": [{"criterion": VOICE, "level": 2, "comment": "Mostly teacher-led",
                         "evidence": [{"artifact_id": video, "start_s": 12.5, "end_s": 40,
                                       "note": "students answer only the teacher"}]},
                        {"criterion": "reflection", "level": None}],
             "feedback": "So far: "}
    w1 = expect(put_draft(assessor.c, rv["id"], draft, 0), 200, what="first save")
    eq((w1["review_id"], w1["version"]), (rv["id"], 1), "first save is version 1")
    # a reload (a fresh read) loses nothing
    g1 = expect(assessor.c.get(path), 200)
    eq((g1["draft"], g1["version"], g1["updated_at"]), (draft, 1, w1["updated_at"]), "read back")

    # a second device: another client of the same person continues from version 1
    device2 = assessor.c.on(env.server)
    draft2 = dict(draft, feedback="So far: good greeting.")
    w2 = expect(put_draft(device2, rv["id"], draft2, 1), 200, what="second device saves")
    eq(w2["version"], 2, "version 2")
    # the first device, still at version 1, is told instead of overwriting
    r = expect(put_draft(assessor.c, rv["id"], dict(draft, feedback="stale"), 1), 409,
               "draft_conflict")
    check("version 2" in r["error"]["message"], "the conflict names the current version: %s" % r)
    eq(expect(assessor.c.get(path), 200)["draft"]["feedback"], "So far: good greeting.",
       "the newer text stays")

    # only the holder
    other = env.user(["assessor"])
    for who, u in (("another assessor", other), ("a lead", lead), ("the earner", earner)):
        expect(u.c.get(path), 403, "forbidden", what="%s reads the draft" % who)
        expect(put_draft(u.c, rv["id"], draft, 2), 403, "forbidden", what="%s writes it" % who)
    expect(assessor.c.anon().get(path), 401, "unauthorized")
    expect(assessor.c.get("/v1/reviews/%s/draft" % uuid.uuid4()), 404, "not_found")
    expect(assessor.c.get("/v1/reviews/not-a-uuid/draft"), 400, "invalid_uuid")

    # shapes: 400 for the envelope, 422 invalid_draft for the draft, 413 oversize
    for body, status, code in [
            ({"draft": draft}, 400, "bad_request"),
            ({"draft": draft, "version": "2"}, 400, "bad_request"),
            ({"draft": draft, "version": -1}, 400, "bad_request"),
            ({"draft": draft, "version": 2, "extra": 1}, 400, "bad_request"),
            ({"version": 2}, 400, "bad_request"),
            ({"draft": [], "version": 2}, 422, "invalid_draft"),
            ({"draft": {"scores": {}, "feedback": ""}, "version": 2}, 422, "invalid_draft"),
            ({"draft": {"notes": "x"}, "version": 2}, 422, "invalid_draft"),
            ({"draft": {"scores": [{"criterion": VOICE, "level": "two"}]}, "version": 2}, 422,
             "invalid_draft"),
            ({"draft": {"scores": [{"criterion": VOICE, "level": 2.5}]}, "version": 2}, 422,
             "invalid_draft"),
            ({"draft": {"scores": [{"level": 2}]}, "version": 2}, 422, "invalid_draft"),
            ({"draft": {"scores": [{"criterion": VOICE, "evidence": [{"artifact_id": "x"}]}]},
              "version": 2}, 422, "invalid_draft"),
            ({"draft": {"scores": [{"criterion": VOICE, "evidence": [
                {"artifact_id": video, "start_s": "ten"}]}]}, "version": 2}, 422, "invalid_draft"),
            ({"draft": {"scores": [{"criterion": VOICE, "evidence": [
                {"artifact_id": video, "start_s": -1}]}]}, "version": 2}, 422, "invalid_draft"),
            ({"draft": {"feedback": "x" * 20001}, "version": 2}, 422, "invalid_draft"),
            ({"draft": {"scores": [{"criterion": "c%d" % i, "comment": "x" * 4900}
                                   for i in range(28)]}, "version": 2}, 413, "draft_too_large"),
    ]:
        r = assessor.c.request("PUT", path, json_body=body)
        expect(r, status, code, what="PUT draft %s" % short(json.dumps(body), 120))
    eq(expect(assessor.c.get(path), 200)["version"], 2, "refused saves change nothing")

    # scored: the draft is gone
    expect(assessor.c.post("/v1/reviews/%s/scores" % rv["id"],
                           {"scores": env.scores({}), "feedback": "Done."}), 200)
    expect(assessor.c.get(path), 409, "already_scored")
    expect(put_draft(assessor.c, rv["id"], draft, 2), 409, "already_scored")
    eq(sql(env, "select count(*) from review_drafts where review_id = '%s'" % rv["id"]), "0",
       "the draft row after scoring")

    # released: gone too
    arts = [a["id"] for a, _ in env.evidence(earner.c, video_size=256, videos=1)]
    cred2 = env.credential(lead, rubric["id"], videos=1)
    env.grant(lead, cred2["id"], assessor)
    env.submit(earner.c, cred2["id"], arts)
    rv2 = claim(assessor, cred2["id"])
    expect(put_draft(assessor.c, rv2["id"], draft, 0), 200)
    expect(assessor.c.post("/v1/reviews/%s/release" % rv2["id"]), 200)
    expect(assessor.c.get("/v1/reviews/%s/draft" % rv2["id"]), 409, "not_active")
    eq(sql(env, "select count(*) from review_drafts where review_id = '%s'" % rv2["id"]), "0",
       "the draft row after release")


@test
def web_draft_through_a_browser_session(env):
    """The same person's browser session (cookie + CSRF) and API token share one
    draft; a session write without the CSRF token is refused."""
    lead = env.user(["lead"])
    assessor = env.user(["assessor"], session=True)
    earner = env.user(["earner"])
    rubric = env.rubric(lead)
    cred = env.credential(lead, rubric["id"], videos=1)
    env.grant(lead, cred["id"], assessor)
    env.submit(earner.c, cred["id"],
               [a["id"] for a, _ in env.evidence(earner.c, video_size=256, videos=1)])
    rv = claim(assessor, cred["id"])
    draft = {"scores": [{"criterion": VOICE, "level": 3}], "feedback": "typed in the browser"}
    expect(put_draft(assessor.c, rv["id"], draft, 0), 200, what="save through the session")
    tok = Client(env.server, assessor.token, assessor)
    eq(expect(tok.get("/v1/reviews/%s/draft" % rv["id"]), 200)["draft"], draft,
       "the token sees the session's draft")
    no_csrf = Client(env.server, None, assessor, session=assessor.c.session, csrf=None)
    r = no_csrf.request("PUT", "/v1/reviews/%s/draft" % rv["id"],
                        json_body={"draft": draft, "version": 1})
    eq(r.status, 403, "a session write without the CSRF token")


# -- lease extension ---------------------------------------------------------------------


@test
def web_lease_extension(env):
    """The holder extends an active lease at most twice, each to now + the lease
    length; not someone else's, not an expired or ended one; audited."""
    lead, assessor, earner, rubric, cred, sub = setup_review(env)
    rv = claim(assessor, cred["id"])
    path = "/v1/reviews/%s/extend" % rv["id"]
    other = env.user(["assessor"])
    expect(other.c.post(path), 403, "forbidden")
    expect(lead.c.post(path), 403, "forbidden")
    e1 = expect(assessor.c.post(path), 200, what="first extension")
    eq((e1["id"], e1["status"], e1["extensions_left"]), (rv["id"], "active", 1), "first extension")
    check(e1["lease_expires_at"] >= rv["lease_expires_at"], "the lease does not shrink: %s" % e1)
    eq(sql(env, "select to_char(lease_expires_at at time zone 'UTC', "
                "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') from submissions where id = '%s'" % sub["id"]),
       e1["lease_expires_at"], "the submission's lease follows (the claim path reads it)")
    e2 = expect(assessor.c.post(path), 200, what="second extension")
    eq(e2["extensions_left"], 0, "no extension left")
    r = expect(assessor.c.post(path), 409, "extend_limit")
    check("2 times" in r["error"]["message"], "says the limit: %s" % r)
    eq(sql(env, "select count(*) from audit_log where action = 'review.extend' "
                "and object_id = '%s' and actor_id = '%s'" % (rv["id"], assessor.id)), "2",
       "each extension is audited")

    # an expired lease is not extended; a released review neither
    lead2, assessor2, earner2, rubric2, cred2, sub2 = setup_review(env)
    rv2 = claim(assessor2, cred2["id"])
    sql(env, "update reviews set lease_expires_at = now() - interval '1 second' where id = '%s'"
        % rv2["id"])
    expect(assessor2.c.post("/v1/reviews/%s/extend" % rv2["id"]), 409, "lease_expired")
    sql(env, "update reviews set lease_expires_at = now() + interval '1 hour' where id = '%s'"
        % rv2["id"])
    expect(assessor2.c.post("/v1/reviews/%s/release" % rv2["id"]), 200)
    expect(assessor2.c.post("/v1/reviews/%s/extend" % rv2["id"]), 409, "not_active")
    expect(assessor2.c.post("/v1/reviews/%s/extend" % uuid.uuid4()), 404, "not_found")

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
import time
import uuid

from harness import (CRITERIA, HOST, Client, CRITERION_KEYS, LEVELS, assert_not_in_text, check, eq, expect,
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

    # the list: everything for leads and assessors, a credential's rubrics for earners
    mine = [x for x in expect(lead.c.get("/v1/rubrics"), 200)["rubrics"]
            if x["id"] in (rubric["id"], plain["id"])]
    eq([(x["id"], x["title"], x["criteria_count"], x["credentials"]) for x in mine],
       [(plain["id"], plain["title"], 4, []),
        (rubric["id"], rubric["title"], 4, [{"id": cred["id"], "title": cred["title"]}])],
       "the lead's list, newest first, with the credentials using each")
    theirs = [x["id"] for x in expect(earner.c.get("/v1/rubrics"), 200)["rubrics"]]
    check(rubric["id"] in theirs and plain["id"] not in theirs,
          "an earner lists the credential's rubric, not the unused one")
    expect(earner.c.anon().get("/v1/rubrics"), 401, "unauthorized")

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


# -- my reviews, my qualifications ------------------------------------------------------


@test
def web_my_reviews_and_qualifications(env):
    """An assessor lists their own active and past reviews (credential title,
    attempt, lease, extensions left, whether a draft is saved; never the earner)
    and their qualifications with the numbers, the thresholds, and the rubrics
    still to calibrate on."""
    lead, assessor, earner, rubric, cred, sub = setup_review(env)
    eq(expect(assessor.c.get("/v1/me/reviews"), 200)["reviews"], [], "nothing held yet")
    rv = claim(assessor, cred["id"])
    r = assessor.c.get("/v1/me/reviews?status=active")
    mine = expect(r, 200)["reviews"]
    eq([(x["id"], x["status"], x["kind"], x["credential"], x["submission_id"], x["attempt"],
         x["extensions_left"], x["has_draft"], x["verdict"]) for x in mine],
       [(rv["id"], "active", "first", {"id": cred["id"], "title": cred["title"]}, sub["id"], 1,
         2, False, None)], "my active reviews")
    eq(mine[0]["lease_expires_at"], rv["lease_expires_at"], "the lease")
    assert_not_in_text(r.text, [("earner id", earner.id), ("earner email", earner.email),
                                ("earner name", earner.name)], "my reviews")
    expect(put_draft(assessor.c, rv["id"], {"scores": [], "feedback": "x"}, 0), 200)
    expect(assessor.c.post("/v1/reviews/%s/extend" % rv["id"]), 200)
    mine = expect(assessor.c.get("/v1/me/reviews"), 200)["reviews"]
    eq((mine[0]["has_draft"], mine[0]["extensions_left"]), (True, 1), "draft saved, one extension used")
    eq(expect(assessor.c.get("/v1/me/reviews?status=past"), 200)["reviews"], [], "no past yet")
    expect(assessor.c.post("/v1/reviews/%s/scores" % rv["id"],
                           {"scores": env.scores({VOICE: 2}), "feedback": "f"}), 200)
    eq(expect(assessor.c.get("/v1/me/reviews"), 200)["reviews"], [], "none active after scoring")
    past = expect(assessor.c.get("/v1/me/reviews?status=past&limit=5"), 200)["reviews"]
    eq([(x["id"], x["status"], x["verdict"], x["extensions_left"], x["has_draft"]) for x in past],
       [(rv["id"], "submitted", "resubmit", None, False)], "my past reviews")
    check(past[0]["scored_at"], "scored_at is set")
    for q in ("status=done", "limit=0", "limit=201", "limit=x", "colour=red"):
        expect(assessor.c.get("/v1/me/reviews?" + q), 400, "bad_request", what="?" + q)
    expect(earner.c.get("/v1/me/reviews"), 403, "forbidden")
    expect(earner.c.anon().get("/v1/me/reviews"), 401, "unauthorized")

    quals = expect(assessor.c.get("/v1/me/qualifications"), 200)
    row = [x for x in quals["qualifications"] if x["rubric_id"] == rubric["id"]]
    eq(len(row), 1, "one qualification on the rubric")
    row = row[0]
    eq((row["status"], row["rubric"]), ("qualified", {"id": rubric["id"], "title": rubric["title"]}),
       "status and rubric")
    eq(row["thresholds"], {"exact_min": 0.70, "adjacent_min": 0.95, "verdict_min": 0.80,
                           "window": 20, "min_items": 8}, "the thresholds (the rubric's defaults)")
    check(row["qualified_at"] and row["window"]["items"] == 0, "qualified_at and the window: %s" % row)
    eq(quals["uncalibrated"], [], "nothing to calibrate on yet")
    rubric2 = env.rubric(lead, title="A second rubric")
    cred2 = env.credential(lead, rubric2["id"], title="Second credential %d" % env.uniq())
    env.grant(lead, cred2["id"], assessor, qualify=False)
    quals = expect(assessor.c.get("/v1/me/qualifications"), 200)
    eq(quals["uncalibrated"], [{"rubric": {"id": rubric2["id"], "title": rubric2["title"]},
                                "credentials": [{"id": cred2["id"], "title": cred2["title"]}]}],
       "a granted rubric without a qualification")
    check(all(x["rubric_id"] != rubric2["id"] for x in quals["qualifications"]),
          "no qualification row is invented for it")


# -- grants ------------------------------------------------------------------------------


@test
def web_grants_list_and_revoke(env):
    """A lead lists a credential's grants and revokes one: the assessor's active
    lease ends at once (the submission is claimable again, the draft is gone, the
    review no longer theirs), and it is audited."""
    lead, assessor, earner, rubric, cred, sub = setup_review(env)
    other = env.user(["assessor"])
    env.grant(lead, cred["id"], other)
    rv = claim(assessor, cred["id"])
    expect(put_draft(assessor.c, rv["id"], {"scores": [], "feedback": "half done"}, 0), 200)
    lst = expect(lead.c.get("/v1/credentials/%s/assessors" % cred["id"]), 200)["assessors"]
    eq([(g["user_id"], g["name"], g["email"], g["pool"], g["waive_award"], g["qualification"],
         g["active_reviews"]) for g in lst],
       [(assessor.id, assessor.name, assessor.email, "peer", True, "qualified", 1),
        (other.id, other.name, other.email, "peer", True, "qualified", 0)], "the grants")
    for u in (assessor, earner):
        expect(u.c.get("/v1/credentials/%s/assessors" % cred["id"]), 403, "forbidden")
        expect(u.c.delete("/v1/credentials/%s/assessors/%s" % (cred["id"], other.id)), 403,
               "forbidden")
    expect(lead.c.get("/v1/credentials/%s/assessors" % uuid.uuid4()), 404, "not_found")

    r = lead.c.delete("/v1/credentials/%s/assessors/%s" % (cred["id"], assessor.id))
    eq(r.status, 204, "revoke: %s" % r.describe())
    lst = expect(lead.c.get("/v1/credentials/%s/assessors" % cred["id"]), 200)["assessors"]
    eq([g["user_id"] for g in lst], [other.id], "the grant is gone")
    expect(assessor.c.get("/v1/reviews/" + rv["id"]), 403, "forbidden")
    expect(assessor.c.post("/v1/reviews/%s/scores" % rv["id"],
                           {"scores": env.scores({}), "feedback": "late"}), 409, "not_active")
    expect(assessor.c.get("/v1/reviews/%s/draft" % rv["id"]), 409, "not_active")
    eq(sql(env, "select count(*) from review_drafts where review_id = '%s'" % rv["id"]), "0",
       "the draft ended with the grant")
    r = assessor.c.post("/v1/reviews/claim", {"credential_id": cred["id"]})
    eq(r.status, 204, "no grant, nothing to claim: %s" % r.describe())
    rv2 = claim(other, cred["id"])
    eq(rv2["submission"]["id"], sub["id"], "the submission went back to the queue at once")
    eq(sql(env, "select count(*) from audit_log where action = 'assessor.revoke' "
                "and object_id = '%s' and actor_id = '%s' and detail->>'user_id' = '%s' "
                "and object_ids = array['%s']::uuid[]" % (cred["id"], lead.id, assessor.id, rv["id"])),
       "1", "the revocation is audited with the ended review")
    eq(sql(env, "select count(*) from audit_log where action = 'review.release' "
                "and object_id = '%s' and detail->>'why' = 'grant_revoked'" % rv["id"]), "1",
       "the ended review is audited")
    eq(sql(env, "select count(*) from churn_events where review_id = '%s'" % rv["id"]), "0",
       "not counted as the assessor's churn")
    expect(lead.c.delete("/v1/credentials/%s/assessors/%s" % (cred["id"], assessor.id)), 404,
           "not_found")
    expect(lead.c.delete("/v1/credentials/%s/assessors/%s" % (uuid.uuid4(), assessor.id)), 404,
           "not_found")
    expect(lead.c.delete("/v1/credentials/%s/assessors/nope" % cred["id"]), 400, "invalid_uuid")


# -- override -------------------------------------------------------------------------------


@test
def web_lead_overrides_a_result(env):
    """A lead changes a final result with a reason: a pass issues the award and its
    badge, a resubmit revokes the badge and lets the earner resubmit; the earner
    sees the new verdict and the lead's feedback, never the lead or the reason;
    every step is audited; wrong states are 409, bad input 400."""
    lead, assessor, earner, rubric, cred, sub = setup_review(env)
    path = "/v1/submissions/%s/override" % sub["id"]
    body = {"verdict": "pass", "reason": "The cited clip shows peer feedback at 04:10.",
            "feedback": "On review, student voice meets the standard."}
    expect(lead.c.post(path, body), 409, "not_final", what="override while queued")
    rv = claim(assessor, cred["id"])
    expect(lead.c.post(path, body), 409, "not_final", what="override while in review")
    expect(assessor.c.post("/v1/reviews/%s/scores" % rv["id"],
                           {"scores": env.scores({VOICE: 2}), "feedback": "Not yet."}), 200)

    for bad in ({"verdict": "maybe", "reason": "x"}, {"verdict": "pass"},
                {"verdict": "pass", "reason": "   "}, {"verdict": "pass", "reason": 5},
                {"verdict": "pass", "reason": "x" * 2001}, dict(body, colour="red"),
                {"reason": "x"}):
        expect(lead.c.post(path, bad), 400, "bad_request", what="override %s" % short(json.dumps(bad), 80))
    for u in (assessor, earner):
        expect(u.c.post(path, body), 403, "forbidden")
    same_org = env.user(["lead"], org=sql(env, "select o.name from organisations o join users u "
                                               "on u.org_id = o.id where u.id = '%s'" % earner.id))
    expect(same_org.c.post(path, body), 403, "forbidden", what="a lead of the earner's organisation")
    expect(lead.c.post("/v1/submissions/%s/override" % uuid.uuid4(), body), 404, "not_found")
    expect(lead.c.post(path, dict(body, verdict="resubmit")), 409, "no_change")

    got = expect(lead.c.post(path, body), 200, what="override to pass")
    eq((got["status"], got["result"]["verdict"]), ("passed", "pass"), "the new verdict")
    check(got["award_id"], "an award is issued: %s" % got)
    eq({k: got["result"]["override"][k] for k in ("verdict", "previous_verdict", "feedback")},
       {"verdict": "pass", "previous_verdict": "resubmit", "feedback": body["feedback"]}, "override")
    eq(got["result"]["scores"][2]["level_label"], "Approaching", "the assessor's scores stay")
    r = earner.c.get("/v1/submissions/" + sub["id"])
    mine = expect(r, 200)
    eq((mine["status"], mine["award_id"], mine["result"]["verdict"]), ("passed", got["award_id"], "pass"),
       "the earner sees the pass")
    assert_not_in_text(r.text, [("lead id", lead.id), ("lead name", lead.name),
                                ("reason", body["reason"])], "the earner's result")
    eq(sql(env, "select count(*) from badges where award_id = '%s' and revoked_at is null"
           % got["award_id"]), "1", "the award has its badge")
    eq(sql(env, "select count(*) from audit_log where action = 'submission.override' "
                "and object_id = '%s' and actor_id = '%s' and detail->>'reason' = '%s'"
           % (sub["id"], lead.id, body["reason"])), "1", "the override is audited with its reason")
    eq(sql(env, "select count(*) from audit_log where action = 'award.issue' and object_id = '%s'"
           % got["award_id"]), "1", "the award is audited")

    back = expect(lead.c.post(path, {"verdict": "resubmit", "reason": "Wrong clip; the earlier call stands."}),
                  200, what="override back to resubmit")
    eq((back["status"], back["award_id"], back["result"]["verdict"]), ("returned", None, "resubmit"),
       "returned again")
    eq(back["result"]["override"]["feedback"], None, "no feedback given this time")
    eq(sql(env, "select count(*) from badges where award_id = '%s' and revoked_at is not null"
           % got["award_id"]), "1", "the badge is revoked")
    r = expect(lead.c.post(path, body), 409, "award_revoked")
    check("revoked" in r["error"]["message"], "says why: %s" % r)

    # the earner may resubmit; the old attempt can no longer be overridden
    arts = [a["id"] for a in mine["artifacts"]]
    expect(earner.c.post("/v1/submissions/%s/resubmit" % sub["id"], {"artifact_ids": arts}), 201)
    expect(lead.c.post(path, dict(body, verdict="pass")), 409, "not_latest")


# -- who scored what; adjudications ----------------------------------------------------------


@test
def web_who_scored_what_and_adjudications(env):
    """Leads see who scored what on a submission (audited); others may not. Scorers
    who disagree send it to the adjudication queue, which a lead sees with the
    disagreement and an eligible expert without it; the first scorers do not."""
    lead = env.user(["lead"])
    peer = env.user(["assessor"])
    expert = env.user(["expert"])
    expert2 = env.user(["expert"])
    earner = env.user(["earner"])
    rubric = env.rubric(lead)
    cred = env.credential(lead, rubric["id"], videos=1,
                          review_policy={"validity_rate": 0, "second_score_rate": 1})
    env.grant(lead, cred["id"], peer)
    env.grant(lead, cred["id"], expert, pool="expert")
    env.grant(lead, cred["id"], expert2, pool="expert")
    sub = env.submit(earner.c, cred["id"],
                     [a["id"] for a, _ in env.evidence(earner.c, video_size=256, videos=1)])
    rv1 = claim(peer, cred["id"])
    expect(peer.c.post("/v1/reviews/%s/scores" % rv1["id"],
                       {"scores": env.scores({k: 4 for k in CRITERION_KEYS}), "feedback": "great"}), 200)
    rv2 = claim(expert, cred["id"])
    eq(rv2["submission"]["id"], sub["id"], "the expert second-scores it")
    expect(expert.c.post("/v1/reviews/%s/scores" % rv2["id"],
                         {"scores": env.scores({k: 1 for k in CRITERION_KEYS}), "feedback": "no"}), 200)

    q = expect(lead.c.get("/v1/adjudications"), 200)["adjudications"]
    mine = [x for x in q if x["submission_id"] == sub["id"]]
    eq(len(mine), 1, "the lead sees the adjudication")
    a = mine[0]
    eq((a["credential"], a["attempt"], a["claimed"], a["stakes"]),
       ({"id": cred["id"], "title": cred["title"]}, 1, False, "low"), "the queue entry")
    eq(a["reason"]["rule"], "disagreement", "why it waits")
    q2 = expect(expert2.c.get("/v1/adjudications"), 200)["adjudications"]
    eq([(x["submission_id"], x["reason"]) for x in q2 if x["submission_id"] == sub["id"]],
       [(sub["id"], None)], "an eligible expert sees it, without the disagreement")
    eq([x for x in expect(expert.c.get("/v1/adjudications"), 200)["adjudications"]
        if x["submission_id"] == sub["id"]], [], "not the expert who scored it")
    expect(peer.c.get("/v1/adjudications"), 403, "forbidden")
    expect(earner.c.get("/v1/adjudications"), 403, "forbidden")

    path = "/v1/submissions/%s/reviews" % sub["id"]
    who = expect(lead.c.get(path), 200, what="who scored what")
    eq((who["submission_id"], who["status"], who["stage"], who["decided_review_id"]),
       (sub["id"], "in_review", "adjudication", None), "the submission's state")
    eq([x["kind"] for x in who["reviews"]], [x["stage"] for x in who["reviews"]], "kind is the stage")
    eq([(x["id"], x["stage"], x["pool"], x["status"], x["assessor"], x["verdict"]) for x in who["reviews"]],
       [(rv1["id"], "first", "peer", "submitted", {"id": peer.id, "name": peer.name}, "pass"),
        (rv2["id"], "second", "expert", "submitted", {"id": expert.id, "name": expert.name}, "resubmit")],
       "who scored what")
    eq([s["level_label"] for s in who["reviews"][0]["scores"]], ["Exceeds"] * 4, "labelled scores")
    eq(sql(env, "select count(*) from audit_log where action = 'submission.reviews_read' and "
                "object_id = '%s' and actor_id = '%s'" % (sub["id"], lead.id)), "1", "the read is audited")
    for u in (peer, expert, earner):
        expect(u.c.get(path), 403, "forbidden")
    expect(lead.c.get("/v1/submissions/%s/reviews" % uuid.uuid4()), 404, "not_found")

    # a lead claims it; the queue shows it claimed
    adj = claim(lead, cred["id"])
    eq(adj["submission"]["id"], sub["id"], "the lead adjudicates")
    q = expect(lead.c.get("/v1/adjudications"), 200)["adjudications"]
    eq([x["claimed"] for x in q if x["submission_id"] == sub["id"]], [True], "claimed now")


@test
def web_routing_report_history(env):
    """The routing report carries each credential's reliability threshold and the
    estimate after each completed peer/expert pair, oldest first, so a lead's chart
    can draw kappa over time against the threshold."""
    lead = env.user(["lead"])
    peer = env.user(["assessor"])
    expert = env.user(["expert"])
    rubric = env.rubric(lead)
    cred = env.credential(lead, rubric["id"], videos=1,
                          review_policy={"validity_rate": 0, "second_score_rate": 1,
                                         "reliability_threshold": 0.55})
    env.grant(lead, cred["id"], peer)
    env.grant(lead, cred["id"], expert, pool="expert")
    for level in (3, 4, 2):
        earner = env.user(["earner"])
        env.submit(earner.c, cred["id"],
                   [a["id"] for a, _ in env.evidence(earner.c, video_size=128, videos=1)])
        body = {"scores": env.scores({k: level for k in CRITERION_KEYS}), "feedback": "f"}
        rv = claim(peer, cred["id"])
        expect(peer.c.post("/v1/reviews/%s/scores" % rv["id"], body), 200)
        rv = claim(expert, cred["id"])
        expect(expert.c.post("/v1/reviews/%s/scores" % rv["id"], body), 200)
    # the estimate is computed after the expert's answer (handlers_review.c): wait for
    # it, bounded
    row = None
    for _ in range(100):
        rep = expect(lead.c.get("/v1/reports/routing"), 200)
        row = [x for x in rep["credentials"] if x["credential_id"] == cred["id"]][0]
        if row["pairs"] == 3 and row["history"] and row["history"][-1]["pairs"] == 3:
            break
        time.sleep(0.1)
    eq(row["threshold"], 0.55, "the credential's reliability threshold")
    hist = row["history"]
    check(hist and hist[-1]["pairs"] == 3, "a history up to the third pair: %s" % row)
    eq(hist[-1]["kappa"], row["kappa"], "the last estimate is the current one")
    eq(hist[-1]["ci"], row["ci"], "with its interval")
    eq([h["pairs"] for h in hist], sorted(h["pairs"] for h in hist), "oldest first")
    eq([h["at"] for h in hist], sorted(h["at"] for h in hist), "in time order")
    eq(hist[-1]["kappa"], 1.0, "identical peer and expert scores over varied levels agree perfectly")


@test
def web_anchor_masters_name_criteria_and_levels(env):
    """An anchor's master scores (shown after a calibration session) name each
    criterion and level as people do."""
    from t_calibration import make_anchor
    lead = env.user(["lead"])
    rubric = env.rubric(lead)
    a, _ = make_anchor(env, lead, rubric["id"], [2, 3, 4, 1], tag="web")
    got = expect(lead.c.get("/v1/anchors/" + a["id"]), 200)
    eq([(s["criterion_title"], s["level_label"]) for s in got["master"]["scores"]],
       [(TITLES[k], LABELS[v]) for k, v in zip(CRITERION_KEYS, [2, 3, 4, 1])],
       "master scores with titles and labels")


@test
def web_concurrent_draft_saves(env):
    """Saves racing from several devices with the same version: exactly one wins and
    the others get 409 draft_conflict (the save runs under the submission's row
    lock, so the version check cannot be passed twice)."""
    import threading
    lead, assessor, earner, rubric, cred, sub = setup_review(env)
    rv = claim(assessor, cred["id"])
    expect(put_draft(assessor.c, rv["id"], {"feedback": "start"}, 0), 200)
    results = []
    lock = threading.Lock()

    def save(i):
        r = put_draft(assessor.c, rv["id"], {"feedback": "device %d" % i}, 1)
        with lock:
            results.append((r.status, r.json.get("error", {}).get("code") if r.status != 200 else i))

    threads = [threading.Thread(target=save, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    eq(len(results), 8, "every save answered")
    won = [x for s, x in results if s == 200]
    eq(len(won), 1, "exactly one save wins: %s" % results)
    eq(sorted(x for s, x in results if s != 200), ["draft_conflict"] * 7, "the others conflict")
    d = expect(assessor.c.get("/v1/reviews/%s/draft" % rv["id"]), 200)
    eq((d["version"], d["draft"]["feedback"]), (2, "device %d" % won[0]), "the winner's text is kept")


@test
def web_unsubscribe_link_opens_the_page(env):
    """The "stop these emails" link of a mail: a browser is sent to the web
    app's page (the token in the fragment, out of logs and Referer), which
    the binary serves; the link itself still changes nothing, and a script
    still gets JSON."""
    import hashlib
    import secrets
    u = env.user(["earner"])
    token = secrets.token_hex(32)
    sql(env, "INSERT INTO unsubscribe_tokens (token_hash, user_id) VALUES ('%s', '%s')"
        % (hashlib.sha256(token.encode()).hexdigest(), u.id))
    anon = env.admin.c.anon()
    html = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    r = anon.request("GET", "/v1/unsubscribe?token=" + token, headers=html)
    eq(r.status, 303, "a browser following the mail's link")
    eq(r.header("Location"), "/unsubscribe#" + token, "Location")
    eq(r.header("Referrer-Policy"), "no-referrer", "Referrer-Policy")
    # the page is the web app (not an API path: fetched outside the contract checker)
    import http.client
    conn = http.client.HTTPConnection(HOST, env.server.port, timeout=30)
    conn.request("GET", "/unsubscribe", headers=html)
    page = conn.getresponse()
    page.read()
    conn.close()
    eq(page.status, 200, "GET /unsubscribe")
    check((page.getheader("Content-Type") or "").startswith("text/html"), page.getheader("Content-Type"))
    check("script-src 'self'" in (page.getheader("Content-Security-Policy") or ""), "CSP on the page")
    # nothing changed; a script gets the state as JSON
    st = expect(anon.get("/v1/unsubscribe?token=" + token), 200)
    eq(st, {"email": True, "unsubscribed": False}, "the state after the browser's visit")
    # an ill-formed or unknown token is not redirected: 404, to browsers too
    expect(anon.request("GET", "/v1/unsubscribe?token=nothex", headers=html), 404, "not_found")
    expect(anon.request("GET", "/v1/unsubscribe?token=" + "0" * 64, headers={"Accept": "application/json"}), 404, "not_found")

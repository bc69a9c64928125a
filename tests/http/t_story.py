# SPDX-License-Identifier: Apache-2.0
"""The review loop, end to end: Ms. Brown earns "Morning Meeting for SEL"."""

import json
import os

from badges import badge_server, fetch_jwt, verified
from harness import (PUBLIC_URL, CRITERION_KEYS, Failure, assert_not_in_text, check, eq, expect,
                     is_ts, is_uuid, sha256, short, soft, test)


class Steps:
    """Prefixes a failure with the story step it happened in."""

    def __init__(self):
        self.name = "start"

    def __call__(self, name):
        self.name = name


def ids(items):
    return sorted(a["id"] for a in items)


@test
def story_morning_meeting(env):
    step = Steps()
    try:
        _story(env, step)
    except Failure as e:
        raise Failure("[step: %s] %s" % (step.name, e))


def _story(env, step):
    step("people")
    lead = env.user(["lead"], name="Lena Lead", org="District Office")
    brown = env.user(["earner"], name="Ms. Brown", org="Lincoln Elementary",
                     email="brown@lincoln.example.org")
    peer = env.user(["assessor"], name="Paul Peerson", org="Jefferson Middle",
                    email="paul.peerson@jefferson.example.org")
    peer2 = env.user(["assessor"], name="Rita Reviewer", org="Roosevelt High",
                     email="rita.reviewer@roosevelt.example.org")
    me = expect(brown.c.get("/v1/me"), 200)
    eq((me["id"], me["name"], me["email"], me["org"], me["roles"]),
       (brown.id, "Ms. Brown", brown.email, "Lincoln Elementary", ["earner"]), "GET /v1/me")

    step("lead defines the rubric")
    body = env.rubric_body()
    # levels sent out of order: the answer lists them ascending
    for c in body["criteria"]:
        c["levels"] = list(reversed(c["levels"]))
    rubric = expect(lead.c.post("/v1/rubrics", body), 201)
    check(is_uuid(rubric["id"]), "rubric id %r" % rubric["id"])
    eq(rubric["title"], "Morning Meeting for SEL", "rubric title")
    eq([c["key"] for c in rubric["criteria"]], CRITERION_KEYS, "rubric criteria keys")
    for c in rubric["criteria"]:
        eq([(l["value"], l["label"]) for l in c["levels"]],
           [(1, "Not yet"), (2, "Approaching"), (3, "Meets"), (4, "Exceeds")],
           "levels of %s (sorted ascending)" % c["key"])
    check(is_ts(rubric.get("created_at")), "rubric created_at %r is not RFC 3339 UTC"
          % rubric.get("created_at"))
    got = expect(peer.c.get("/v1/rubrics/" + rubric["id"]), 200)
    eq(got, rubric, "GET /v1/rubrics/{id} by an assessor")

    step("lead defines the credential")
    cred = env.credential(lead, rubric["id"], title="Morning Meeting for SEL")
    eq((cred["stakes"], cred["rubric_id"], cred["max_attempts"], cred["pass_rule"]),
       ("low", rubric["id"], 3, {"min_level_each": 3}), "credential fields")
    eq(sorted((e["kind"], e["min"]) for e in cred["evidence"]),
       [("plan", 1), ("reflection", 1), ("video", 3)], "credential evidence")
    got = expect(brown.c.get("/v1/credentials/" + cred["id"]), 200)
    eq(got.pop("rubric", None), rubric, "the rubric she will be scored on, in the credential")
    eq(got, cred, "GET /v1/credentials/{id} by the earner")
    eq(expect(brown.c.get("/v1/rubrics/" + rubric["id"]), 200), rubric,
       "GET /v1/rubrics/{id} by the earner")
    lst = expect(brown.c.get("/v1/credentials"), 200)
    check(cred["id"] in [c["id"] for c in lst["credentials"]],
          "GET /v1/credentials does not list the new credential")

    step("Ms. Brown uploads evidence")
    videos = []
    for i, size in enumerate((3 * 1024 * 1024 + 17, 2 * 1024 * 1024 + 5, 2 * 1024 * 1024)):
        data = os.urandom(size)
        a = env.upload(brown.c, "video", data, "video/mp4", "morning-meeting-%d.mp4" % (i + 1))
        eq((a["kind"], a["media_type"], a["filename"], a["url"]),
           ("video", "video/mp4", "morning-meeting-%d.mp4" % (i + 1), None), "video metadata")
        check(is_uuid(a["id"]), "artifact id %r" % a["id"])
        videos.append((a, data))
    plan_data = b"%PDF-1.4\n% lesson plan: greeting, share, activity, message\n" + os.urandom(4000)
    plan = env.upload(brown.c, "plan", plan_data, "application/pdf", "plan-week1.pdf")
    eq((plan["kind"], plan["media_type"]), ("plan", "application/pdf"), "plan metadata")
    refl_data = ("My students greeted each other by name; the share ran long. "
                 "Next time I will model peer feedback first. " * 8).encode()
    refl = env.upload(brown.c, "reflection", refl_data, "text/plain", "reflection.txt")
    meta = expect(brown.c.get("/v1/artifacts/" + videos[0][0]["id"]), 200)
    eq((meta["id"], meta["bytes"], meta["sha256"]),
       (videos[0][0]["id"], len(videos[0][1]), sha256(videos[0][1])), "GET /v1/artifacts/{id}")

    step("submit with too little evidence")
    r = brown.c.post("/v1/submissions", {"credential_id": cred["id"],
                                         "artifact_ids": [videos[0][0]["id"], videos[1][0]["id"],
                                                          plan["id"], refl["id"]]})
    j = expect(r, 422, "missing_evidence")
    check("video" in j["error"]["message"],
          "missing_evidence message should name the video shortfall: %r" % j["error"]["message"])

    step("submit attempt 1")
    first_ids = [v[0]["id"] for v in videos] + [plan["id"], refl["id"]]
    sub1 = env.submit(brown.c, cred["id"], first_ids)
    eq((sub1["credential_id"], sub1["attempt"], sub1["previous_id"], sub1["status"]),
       (cred["id"], 1, None, "queued"), "new submission")
    with soft():
        eq(ids(sub1["artifacts"]), sorted(first_ids), "artifacts in the POST /v1/submissions answer")
    r = brown.c.post("/v1/submissions", {"credential_id": cred["id"], "artifact_ids": first_ids})
    expect(r, 409, "already_submitted", "second submission while one is open")
    view = expect(brown.c.get("/v1/submissions/" + sub1["id"]), 200)
    eq((view["status"], view["result"], view["earner_id"]), ("queued", None, brown.id),
       "submission before review")
    eq(ids(view["artifacts"]), sorted(first_ids), "GET /v1/submissions/{id} artifacts")

    step("peer assessor is granted and claims")
    g = env.grant(lead, cred["id"], peer, "peer", True)
    eq((g["credential_id"], g["user_id"], g["pool"], g["waive_award"]),
       (cred["id"], peer.id, "peer", True), "grant")
    claim = expect(peer.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200)
    check(is_uuid(claim.get("id")), "review id %r" % claim.get("id"))
    eq(claim["status"], "active", "claim status")
    check(is_ts(claim.get("lease_expires_at")), "lease_expires_at %r" % claim.get("lease_expires_at"))
    eq((claim["credential"]["id"], claim["credential"]["title"], claim["credential"]["stakes"]),
       (cred["id"], cred["title"], "low"), "claim.credential")
    eq((claim["submission"]["id"], claim["submission"]["attempt"],
        claim["submission"]["previous_result"]), (sub1["id"], 1, None), "claim.submission")
    eq(ids(claim["submission"]["artifacts"]), sorted(first_ids), "claim.submission.artifacts")
    eq(claim["rubric"]["id"], rubric["id"], "claim.rubric.id")
    eq([c["key"] for c in claim["rubric"]["criteria"]], CRITERION_KEYS, "claim.rubric criteria")
    blind = [("earner's name", brown.name), ("earner's email", brown.email),
             ("earner's id", brown.id), ("earner's org", brown.org)]
    expect(peer.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 204,
           what="a second claim with nothing else queued")
    assert_not_in_text(json_text(claim), blind, "the claimed review")
    rv = expect(peer.c.get("/v1/reviews/" + claim["id"]), 200)
    assert_not_in_text(json_text(rv), blind, "GET /v1/reviews/{id}")
    view = expect(brown.c.get("/v1/submissions/" + sub1["id"]), 200)
    eq(view["status"], "in_review", "submission status after the claim")

    step("assessor reads a video with Range")
    vid, vdata = videos[0]
    size = len(vdata)
    meta = expect(peer.c.get("/v1/artifacts/" + vid["id"]), 200)
    assert_not_in_text(json_text(meta), blind, "artifact metadata read by the assessor")
    r = peer.c.get("/v1/artifacts/%s/content" % vid["id"], timeout=60)
    expect(r, 200)
    check(r.body == vdata, "full content: %d bytes, sha256 %s; expected %d bytes %s"
          % (len(r.body), sha256(r.body), size, sha256(vdata)))
    check(r.header("content-type", "").startswith("video/mp4"),
          "content Content-Type %r, expected video/mp4" % r.header("content-type"))
    eq(r.header("content-length"), str(size), "content Content-Length")
    eq(r.header("accept-ranges"), "bytes", "content Accept-Ranges")
    r = peer.c.get("/v1/artifacts/%s/content" % vid["id"], headers={"Range": "bytes=100-199"})
    expect(r, 206)
    eq(r.header("content-range"), "bytes 100-199/%d" % size, "Content-Range for bytes=100-199")
    check(r.body == vdata[100:200], "bytes=100-199 returned %d bytes, not bytes 100..199"
          % len(r.body))
    eq(r.header("content-length"), "100", "Content-Length of the 206")
    r = peer.c.get("/v1/artifacts/%s/content" % vid["id"], headers={"Range": "bytes=-10"})
    expect(r, 206)
    eq(r.header("content-range"), "bytes %d-%d/%d" % (size - 10, size - 1, size),
       "Content-Range for bytes=-10")
    check(r.body == vdata[-10:], "bytes=-10 did not return the last 10 bytes (%r)" % r.body[:20])
    r = peer.c.get("/v1/artifacts/%s/content" % vid["id"],
                   headers={"Range": "bytes=%d-" % (size + 10)})
    expect(r, 416)
    r = brown.c.get("/v1/artifacts/%s/content" % plan["id"])
    expect(r, 200)
    check(r.body == plan_data, "the earner reading her own plan got different bytes")

    step("assessor scores attempt 1")
    citation = {"artifact_id": vid["id"], "start_s": 42, "end_s": 95,
                "note": "Only the teacher responds during the share; no peer feedback."}
    scores = [
        {"criterion": "meeting-structure", "level": 3,
         "comment": "Clear greeting, share, activity and message."},
        {"criterion": "sel-connection", "level": 3,
         "comment": "Self-awareness is named in the morning message."},
        {"criterion": "student-voice", "level": 2,
         "comment": "Students talk to the teacher more than to each other.",
         "evidence": [citation]},
        {"criterion": "reflection", "level": 3,
         "comment": "Honest analysis of the long share."},
    ]
    feedback = "A well-run meeting. Next: structure peer responses during the share."
    res = expect(peer.c.post("/v1/reviews/%s/scores" % claim["id"],
                             {"scores": scores, "feedback": feedback}), 200)
    eq((res["id"], res["status"], res["verdict"], res["submission_id"], res.get("award_id")),
       (claim["id"], "submitted", "resubmit", sub1["id"], None), "score answer")
    r = peer.c.post("/v1/reviews/%s/scores" % claim["id"], {"scores": scores,
                                                            "feedback": feedback})
    expect(r, 409, "already_scored", "scoring twice")
    rv = expect(peer.c.get("/v1/reviews/" + claim["id"]), 200)
    check(isinstance(rv.get("scores"), list) and len(rv["scores"]) == 4,
          "GET /v1/reviews/{id} after scoring should include the 4 scores: %s" % short(json_text(rv)))

    step("Ms. Brown reads her feedback")
    view = expect(brown.c.get("/v1/submissions/" + sub1["id"]), 200)
    eq(view["status"], "returned", "status after a resubmit verdict")
    res1 = view["result"]
    check(isinstance(res1, dict), "result should be an object once scored: %s" % short(json_text(view)))
    eq(res1["verdict"], "resubmit", "result.verdict")
    eq(res1["feedback"], feedback, "result.feedback")
    check(is_ts(res1.get("decided_at")), "result.decided_at %r" % res1.get("decided_at"))
    by = {s["criterion"]: s for s in res1["scores"]}
    eq(sorted(by), sorted(CRITERION_KEYS), "result criteria")
    for s in scores:
        eq((by[s["criterion"]]["level"], by[s["criterion"]]["comment"]),
           (s["level"], s["comment"]), "result score for %s" % s["criterion"])
    ev = by["student-voice"].get("evidence") or []
    eq(len(ev), 1, "citations on student-voice")
    eq((ev[0]["artifact_id"], num(ev[0].get("start_s")), num(ev[0].get("end_s")), ev[0].get("note")),
       (vid["id"], 42, 95, citation["note"]), "the citation")
    eq(view.get("award_id"), None, "award_id before a pass")
    hidden = [("assessor's id", peer.id), ("assessor's name", peer.name),
              ("assessor's email", peer.email)]
    assert_not_in_text(json_text(view), hidden, "the earner's submission view")
    lst = expect(brown.c.get("/v1/submissions"), 200)
    assert_not_in_text(json_text(lst), hidden, "the earner's submission list")

    step("Ms. Brown revises and resubmits")
    plan2_data = b"%PDF-1.4\n% revised plan: peer feedback stems\n" + os.urandom(6000)
    plan2 = env.upload(brown.c, "plan", plan2_data, "application/pdf", "plan-week2.pdf")
    vid4_data = os.urandom(1024 * 1024 + 3)
    vid4 = env.upload(brown.c, "video", vid4_data, "video/mp4", "morning-meeting-4.mp4")
    second_ids = [v[0]["id"] for v in videos] + [refl["id"], plan2["id"], vid4["id"]]
    sub2 = expect(brown.c.post("/v1/submissions/%s/resubmit" % sub1["id"],
                               {"artifact_ids": second_ids}), 201)
    eq((sub2["attempt"], sub2["previous_id"], sub2["status"], sub2["credential_id"]),
       (2, sub1["id"], "queued", cred["id"]), "resubmission")
    check(sub2["id"] != sub1["id"], "the resubmission must be a new submission")
    with soft():
        eq(ids(sub2["artifacts"]), sorted(second_ids),
           "artifacts in the resubmit answer (exactly those listed)")
    expect(brown.c.post("/v1/submissions/%s/resubmit" % sub1["id"], {"artifact_ids": second_ids}),
           409, "not_returned", "resubmitting the old attempt again")
    view = expect(brown.c.get("/v1/submissions/" + sub2["id"]), 200)
    eq(ids(view["artifacts"]), sorted(second_ids), "GET of the resubmission: artifacts")

    step("second assessor claims attempt 2")
    env.grant(lead, cred["id"], peer2, "peer", True)
    claim2 = expect(peer2.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200)
    eq((claim2["submission"]["id"], claim2["submission"]["attempt"]), (sub2["id"], 2),
       "claim of attempt 2")
    eq(ids(claim2["submission"]["artifacts"]), sorted(second_ids), "attempt 2 artifacts")
    prev = claim2["submission"]["previous_result"]
    check(isinstance(prev, dict), "previous_result should hold attempt 1's result: %s"
          % short(json_text(claim2)))
    eq(prev.get("verdict"), "resubmit", "previous_result.verdict")
    eq(prev.get("feedback"), feedback, "previous_result.feedback")
    pby = {s["criterion"]: s["level"] for s in prev.get("scores", [])}
    eq(pby, {"meeting-structure": 3, "sel-connection": 3, "student-voice": 2, "reflection": 3},
       "previous_result levels")
    assert_not_in_text(json_text(claim2), blind + hidden, "the claim of attempt 2")
    r = peer2.c.get("/v1/artifacts/%s/content" % vid4["id"], headers={"Range": "bytes=0-99"})
    expect(r, 206)
    check(r.body == vid4_data[:100], "bytes=0-99 of the new video")
    # issue 7: evidence is readable only under an active lease; attempt 1 was scored
    expect(peer.c.get("/v1/artifacts/%s/content" % plan["id"]), 403, "forbidden",
           "the first assessor (whose review of attempt 1 is scored) reads its plan")
    expect(peer.c.get("/v1/artifacts/%s/content" % vid4["id"]), 403, "forbidden",
           "the first assessor reads a video only in attempt 2 (never reviewed by them)")

    step("attempt 2 passes")
    s2 = [{"criterion": "meeting-structure", "level": 4, "comment": "Crisp transitions."},
          {"criterion": "sel-connection", "level": 3, "comment": "Competencies named and practised."},
          {"criterion": "student-voice", "level": 3, "comment": "Peer feedback stems work.",
           "evidence": [{"artifact_id": vid4["id"], "start_s": 10, "end_s": 70,
                         "note": "Students respond to each other with the stems."}]},
          {"criterion": "reflection", "level": 3, "comment": "Links the change to the evidence."}]
    res2 = expect(peer2.c.post("/v1/reviews/%s/scores" % claim2["id"],
                               {"scores": s2, "feedback": "Meets the bar. Congratulations!"}), 200)
    eq((res2["verdict"], res2["submission_id"]), ("pass", sub2["id"]), "score of attempt 2")
    check(is_uuid(res2.get("award_id")), "award_id %r on a pass" % res2.get("award_id"))
    view2 = expect(brown.c.get("/v1/submissions/" + sub2["id"]), 200)
    eq((view2["status"], view2["award_id"], view2["result"]["verdict"]),
       ("passed", res2["award_id"], "pass"), "submission after the pass")
    assert_not_in_text(json_text(view2), [("assessor's id", peer2.id),
                                          ("assessor's name", peer2.name),
                                          ("assessor's email", peer2.email)] + hidden,
                       "the passed submission view")
    lead_view = expect(lead.c.get("/v1/submissions/" + sub2["id"]), 200)
    eq(lead_view["status"], "passed", "the lead reads the submission")

    step("public award verification: a signed Open Badges 3.0 credential")
    award_id = res2["award_id"]
    bs = badge_server(env)   # the same database, with ACCORD_PUBLIC_URL set
    anon = brown.on(bs).anon()
    cred_json = expect(anon.get("/v1/awards/" + award_id), 200)
    eq(cred_json["id"], PUBLIC_URL + "/v1/awards/" + award_id, "credential id (the award's URL)")
    check("OpenBadgeCredential" in cred_json["type"], "type %r" % cred_json["type"])
    eq(cred_json["name"], cred["title"], "credential name")
    subject = cred_json["credentialSubject"]
    eq(subject["achievement"]["name"], cred["title"], "achievement name")
    names = [i["identityHash"] for i in subject["identifier"] if i["identityType"] == "name"]
    eq(names, ["Ms. Brown"], "the earner's name on the badge")
    levels = {r["resultDescription"].rsplit("#criterion-", 1)[1]: r["achievedLevel"].rsplit("-", 1)[1]
              for r in subject["result"]}
    eq(levels, {"meeting-structure": "4", "sel-connection": "3", "student-voice": "3",
                "reflection": "3"}, "rubric results on the badge")
    text = json.dumps(cred_json)
    for secret in ("Crisp transitions", "Peer feedback stems work", "Congratulations",
                   vid4["id"], "morning-meeting-4.mp4"):
        check(secret not in text, "the public badge must not expose %r (comments, feedback, "
              "private evidence): %s" % (secret, short(text)))
    assert_not_in_text(text, [("earner's email", brown.email)], "the public badge")
    jwt = fetch_jwt(brown.on(bs), award_id)
    payload = verified(env, jwt, "Ms. Brown's badge")
    eq({k: v for k, v in payload.items() if k not in ("iss", "jti", "sub", "nbf", "iat")},
       cred_json, "the JSON credential is the signed payload")
    page = anon.get("/v1/awards/" + award_id, headers={"Accept": "text/html"})
    expect(page, 200)
    check("Ms. Brown" in page.text and "VALID" in page.text, "the public page: %s" % short(page.text))
    check("<script" not in page.text.lower(), "the public page has a script")

    step("no resubmission after a pass")
    r = brown.c.post("/v1/submissions/%s/resubmit" % sub2["id"], {"artifact_ids": second_ids})
    expect(r, 409, what="resubmitting a passed submission")
    r = brown.c.post("/v1/submissions", {"credential_id": cred["id"], "artifact_ids": second_ids})
    expect(r, 409, "already_passed", "a new submission after passing")


def num(x):
    """start_s/end_s may come back as 42 or 42.0."""
    return int(x) if isinstance(x, float) and x == int(x) else x


def json_text(obj):
    return json.dumps(obj)


@test
def story_attempt_limit(env):
    """max_attempts is enforced: after the last attempt, resubmit is 409 attempts_exhausted."""
    lead = env.user(["lead"])
    earner = env.user(["earner"], org="Limit Elementary")
    a = env.user(["assessor"], org="Limit Assessors A")
    b = env.user(["assessor"], org="Limit Assessors B")
    rubric = env.rubric(lead)
    cred = env.credential(lead, rubric["id"], max_attempts=2)
    env.grant(lead, cred["id"], a)
    env.grant(lead, cred["id"], b)
    ev = [x[0]["id"] for x in env.evidence(earner.c)]
    other = env.user(["earner"], org="Limit Elementary 2")
    foreign = env.upload(other.c, "video", b"someone else's video")["id"]
    sub = env.submit(earner.c, cred["id"], ev)
    for n, assessor in ((1, a), (2, b)):
        cl = expect(assessor.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200)
        eq((cl["submission"]["id"], cl["submission"]["attempt"]), (sub["id"], n), "claim")
        res = expect(assessor.c.post("/v1/reviews/%s/scores" % cl["id"],
                                     {"scores": env.scores({"reflection": 1}, "not yet"),
                                      "feedback": "Not yet."}), 200)
        eq(res["verdict"], "resubmit", "verdict with a level 1")
        if n == 1:
            r = earner.c.post("/v1/submissions/%s/resubmit" % sub["id"], {"artifact_ids": ev[3:]})
            expect(r, 422, "missing_evidence", "a resubmission without videos")
            r = earner.c.post("/v1/submissions/%s/resubmit" % sub["id"],
                              {"artifact_ids": ev + [foreign]})
            expect(r, 403, "forbidden", "a resubmission with another earner's artifact")
            r = a.c.post("/v1/submissions/%s/resubmit" % sub["id"], {"artifact_ids": ev})
            expect(r, 403, "forbidden", "an assessor resubmits")
        r = earner.c.post("/v1/submissions/%s/resubmit" % sub["id"], {"artifact_ids": ev})
        if n == 1:
            sub = expect(r, 201)
            eq(sub["attempt"], 2, "attempt")
        else:
            expect(r, 409, "attempts_exhausted", "resubmitting past max_attempts")

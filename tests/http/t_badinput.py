# SPDX-License-Identifier: Apache-2.0
"""Bad input: malformed JSON, wrong types, invalid scores, oversized bodies,
malformed UUIDs, unknown ids/routes, wrong methods. The server must answer each
with the right status and a JSON error, and keep working."""

import copy
import os
import uuid

from badges import badge_server
from harness import check, eq, expect, raw_exchange, sha256, soft, test


@test
def bad_json_and_types(env):
    lead = env.user(["lead"])
    earner = env.user(["earner"], org="BadInput Org")
    rubric = env.rubric(lead)
    cred = env.credential(lead, rubric["id"])
    ev = env.evidence(earner.c)
    ev_ids = [a["id"] for a, _ in ev]
    sub = env.submit(earner.c, cred["id"], ev_ids)
    hj = {"Content-Type": "application/json"}
    for body in (b'{"title":', b"not json", b'{"title": "x",}', b"\xff\xfe{}", b'{"a":1} trailing'):
        r = lead.c.request("POST", "/v1/rubrics", data=body, headers=hj)
        expect(r, 400, "invalid_json", "POST /v1/rubrics with body %r" % body)
        r = earner.c.request("POST", "/v1/submissions", data=body, headers=hj)
        expect(r, 400, "invalid_json", "POST /v1/submissions with body %r" % body)
    r = lead.c.request("POST", "/v1/credentials", data=b"", headers=hj)
    expect(r, 400, ("invalid_json", "bad_request"), "POST /v1/credentials with an empty body")
    for body in (b"[1,2]", b'"a string"', b"42", b"null"):
        r = earner.c.request("POST", "/v1/submissions", data=body, headers=hj)
        expect(r, 400, ("invalid_json", "bad_request"), "a JSON %r instead of an object" % body)
    # wrong JSON types
    wrong = [
        ("/v1/submissions", earner, {"credential_id": 5, "artifact_ids": ev_ids}),
        ("/v1/submissions", earner, {"credential_id": cred["id"], "artifact_ids": "all"}),
        ("/v1/submissions", earner, {"credential_id": cred["id"], "artifact_ids": [1, 2, 3]}),
        ("/v1/submissions", earner, {"credential_id": "not-a-uuid", "artifact_ids": ev_ids}),
        ("/v1/rubrics", lead, dict(env.rubric_body(), title=5)),
        ("/v1/rubrics", lead, {"title": "t", "criteria": "none"}),
        ("/v1/credentials", lead, {"title": "t", "stakes": "low", "rubric_id": rubric["id"],
                                   "evidence": {"kind": "video"},
                                   "pass_rule": {"min_level_each": 3}}),
        ("/v1/credentials", lead, {"title": "t", "stakes": "low", "rubric_id": rubric["id"],
                                   "evidence": [{"kind": "video", "min": 1}],
                                   "pass_rule": {"min_level_each": "3"}}),
        ("/v1/users", env.admin, {"email": "t%d@example.org" % env.uniq(), "name": "T",
                                  "roles": "earner"}),
    ]
    for path, u, body in wrong:
        r = u.c.post(path, body)
        expect(r, 400, ("bad_request", "invalid_uuid"), "POST %s with %s" % (path, body))
    # nothing changed for the earner
    view = expect(earner.c.get("/v1/submissions/" + sub["id"]), 200)
    eq(view["status"], "queued", "the submission after bad requests")


@test
def bad_rubrics_credentials_users(env):
    lead = env.user(["lead"])
    good = env.rubric_body("Validation rubric")

    def variant(fn):
        b = copy.deepcopy(good)
        fn(b)
        return b

    bad_rubrics = [
        ("no criteria", variant(lambda b: b.__setitem__("criteria", []))),
        ("duplicate keys", variant(lambda b: b["criteria"][1].__setitem__("key",
                                                                          b["criteria"][0]["key"]))),
        ("key with upper case and space", variant(lambda b: b["criteria"][0].__setitem__(
            "key", "Bad Key"))),
        ("key of 65 chars", variant(lambda b: b["criteria"][0].__setitem__("key", "k" * 65))),
        ("one level", variant(lambda b: b["criteria"][0].__setitem__(
            "levels", [{"value": 1, "label": "Only"}]))),
        ("duplicate level values", variant(lambda b: b["criteria"][0]["levels"][1].__setitem__(
            "value", 1))),
        ("level value 101", variant(lambda b: b["criteria"][0]["levels"][3].__setitem__(
            "value", 101))),
        ("33 criteria", variant(lambda b: b.__setitem__("criteria", [
            {"key": "c%d" % i, "title": "C%d" % i,
             "levels": [{"value": 1, "label": "a"}, {"value": 2, "label": "b"}]}
            for i in range(33)]))),
        ("11 levels", variant(lambda b: b["criteria"][0].__setitem__(
            "levels", [{"value": i, "label": "l%d" % i} for i in range(11)]))),
    ]
    for what, body in bad_rubrics:
        expect(lead.c.post("/v1/rubrics", body), 422, "invalid_rubric", "rubric with " + what)
    rubric = expect(lead.c.post("/v1/rubrics", good), 201, what="the valid rubric")
    base = {"title": "Validation credential", "stakes": "low", "rubric_id": rubric["id"],
            "evidence": [{"kind": "video", "min": 3}], "pass_rule": {"min_level_each": 3}}
    cred = expect(lead.c.post("/v1/credentials", base), 201, what="credential without max_attempts")
    eq(cred["max_attempts"], 3, "default max_attempts")
    expect(lead.c.post("/v1/credentials", dict(base, rubric_id=str(uuid.uuid4()))), 422,
           "unknown_rubric", "credential on an unknown rubric")
    expect(lead.c.post("/v1/credentials", dict(base, pass_rule={"min_level_each": 5})), 422,
           "invalid_pass_rule", "min_level_each not a level of the rubric")
    for what, patch in [("max_attempts 0", {"max_attempts": 0}),
                        ("max_attempts 21", {"max_attempts": 21}),
                        ("stakes medium", {"stakes": "medium"}),
                        ("evidence kind audio", {"evidence": [{"kind": "audio", "min": 1}]}),
                        ("evidence min 0", {"evidence": [{"kind": "video", "min": 0}]}),
                        ("evidence min 51", {"evidence": [{"kind": "video", "min": 51}]})]:
        r = lead.c.post("/v1/credentials", dict(base, **patch))
        expect(r, (400, 422), what="credential with " + what)
    # users
    email = "dup%d@example.org" % env.uniq()
    expect(env.admin.c.post("/v1/users", {"email": email, "name": "D", "roles": ["earner"]}), 201)
    expect(env.admin.c.post("/v1/users", {"email": email, "name": "D2", "roles": ["earner"]}),
           409, "email_taken", "a second user with the same email")
    for roles in ([], ["wizard"], ["earner", "wizard"]):
        expect(env.admin.c.post("/v1/users", {"email": "r%d@example.org" % env.uniq(),
                                              "name": "R", "roles": roles}),
               422, "invalid_roles", "roles %r" % roles)


@test
def bad_artifacts_and_submissions(env):
    lead = env.user(["lead"])
    earner = env.user(["earner"], org="BadArt Org")
    rubric = env.rubric(lead)
    cred = env.credential(lead, rubric["id"])
    ev = env.evidence(earner.c)
    ev_ids = [a["id"] for a, _ in ev]
    # bad kind header
    r = earner.c.request("POST", "/v1/artifacts", data=b"abc",
                         headers={"Content-Type": "video/mp4", "X-Artifact-Kind": "hologram"})
    expect(r, (400, 422), what="upload with X-Artifact-Kind: hologram")
    r = earner.c.request("POST", "/v1/artifacts", data=b"abc", headers={"Content-Type": "video/mp4"})
    expect(r, (400, 422), what="upload without X-Artifact-Kind")
    # external URL artifacts
    ext = expect(earner.c.post("/v1/artifacts", {"kind": "video",
                                                 "url": "https://video.example.org/mm.mp4",
                                                 "title": "Morning meeting (hosted)"}), 201,
                 what="register an external URL")
    eq((ext["bytes"], ext["sha256"], ext["url"], ext["kind"]),
       (None, None, "https://video.example.org/mm.mp4", "video"), "external artifact")
    r = earner.c.get("/v1/artifacts/%s/content" % ext["id"])
    j = expect(r, 409, "external_artifact", "content of an external artifact")
    check("https://video.example.org/mm.mp4" in j["error"]["message"],
          "the external_artifact message should carry the URL: %r" % j["error"]["message"])
    for url in ("ftp://example.org/x.mp4", "javascript:alert(1)", "not a url"):
        r = earner.c.post("/v1/artifacts", {"kind": "video", "url": url})
        expect(r, (400, 422), what="register URL %r" % url)
    # submissions
    expect(earner.c.post("/v1/submissions", {"credential_id": cred["id"],
                                             "artifact_ids": ev_ids + [ev_ids[0]]}),
           422, what="an artifact listed twice")
    expect(earner.c.post("/v1/submissions", {"credential_id": cred["id"],
                                             "artifact_ids": ev_ids + [str(uuid.uuid4())]}),
           422, "unknown_artifact", "an unknown artifact id")
    expect(earner.c.post("/v1/submissions", {"credential_id": str(uuid.uuid4()),
                                             "artifact_ids": ev_ids}),
           (404, 422), what="an unknown credential")
    r = earner.c.post("/v1/submissions", {"credential_id": cred["id"], "artifact_ids": ev_ids[3:]})
    j = expect(r, 422, "missing_evidence", "no videos")
    check("video" in j["error"]["message"], "missing_evidence names videos: %r"
          % j["error"]["message"])
    sub = env.submit(earner.c, cred["id"], ev_ids)
    eq(sub["status"], "queued", "the valid submission")


@test
def bad_scores(env):
    lead = env.user(["lead"])
    earner = env.user(["earner"], org="BadScores Org")
    assessor = env.user(["assessor"], org="BadScores Assessors")
    rubric = env.rubric(lead)
    cred = env.credential(lead, rubric["id"])
    env.grant(lead, cred["id"], assessor)
    ev = env.evidence(earner.c)
    sub = env.submit(earner.c, cred["id"], [a["id"] for a, _ in ev])
    other = env.evidence(earner.c, videos=1)[0][0]["id"]   # the earner's, not in the submission
    cl = expect(assessor.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200)
    path = "/v1/reviews/%s/scores" % cl["id"]
    good = env.scores({}, "fine")
    unknown = good[:3] + [{"criterion": "charisma", "level": 3}]
    missing = good[:3]
    dup = good + [dict(good[0])]
    out_hi = [dict(s, level=5) if s["criterion"] == "reflection" else s for s in good]
    out_lo = [dict(s, level=0) if s["criterion"] == "reflection" else s for s in good]
    bad_cite = [dict(s, evidence=[{"artifact_id": other, "start_s": 1, "end_s": 2}])
                if s["criterion"] == "student-voice" else s for s in good]
    unknown_cite = [dict(s, evidence=[{"artifact_id": str(uuid.uuid4())}])
                    if s["criterion"] == "student-voice" else s for s in good]
    for what, scores in [("an unknown criterion", unknown), ("a missing criterion", missing),
                         ("a duplicate criterion", dup), ("level 5 (not a level)", out_hi),
                         ("level 0 (not a level)", out_lo), ("no scores", [])]:
        expect(assessor.c.post(path, {"scores": scores, "feedback": "x"}), 422, "invalid_scores",
               "scores with " + what)
    for what, scores in [("a citation of an artifact outside the submission", bad_cite),
                         ("a citation of an unknown artifact", unknown_cite)]:
        expect(assessor.c.post(path, {"scores": scores, "feedback": "x"}), 422,
               what="scores with " + what)
    for what, body in [("a string level", {"scores": [dict(s, level="3") for s in good],
                                           "feedback": "x"}),
                       ("scores not an array", {"scores": {"reflection": 3}, "feedback": "x"}),
                       ("a non-string feedback", {"scores": good, "feedback": 7})]:
        expect(assessor.c.post(path, body), 400, "bad_request", "scores with " + what)
    r = assessor.c.request("POST", path, data=b'{"scores": [', headers={
        "Content-Type": "application/json"})
    expect(r, 400, "invalid_json", "truncated scores JSON")
    # the review is still active and a correct score goes through
    rv = expect(assessor.c.get("/v1/reviews/" + cl["id"]), 200)
    eq(rv["status"], "active", "review status after rejected scores")
    res = expect(assessor.c.post(path, {"scores": good, "feedback": "All meets."}), 200)
    eq((res["verdict"], res["submission_id"]), ("pass", sub["id"]), "the valid score")


@test
def bad_paths_and_methods(env):
    u = env.user(["lead", "earner", "assessor"], org="Paths Org")
    for path in ("/v1/submissions/not-a-uuid", "/v1/artifacts/1234",
                 "/v1/artifacts/xyz/content", "/v1/reviews/zzz",
                 "/v1/credentials/0000", "/v1/rubrics/%s" % ("g" * 36),
                 "/v1/submissions/%s" % str(uuid.uuid4())[:-1]):
        expect(u.c.get(path), 400, "invalid_uuid", "GET " + path)
    expect(u.c.post("/v1/submissions/nope/resubmit", {"artifact_ids": []}), 400, "invalid_uuid",
           "resubmit of a malformed id")
    expect(u.c.post("/v1/reviews/nope/scores", {"scores": [], "feedback": ""}), 400,
           "invalid_uuid", "scores of a malformed id")
    expect(u.c.anon().get("/v1/awards/nope"), 400, "invalid_uuid", "award with a malformed id")
    rnd = str(uuid.uuid4())
    for path in ("/v1/submissions/" + rnd, "/v1/artifacts/" + rnd,
                 "/v1/artifacts/%s/content" % rnd, "/v1/reviews/" + rnd,
                 "/v1/credentials/" + rnd, "/v1/rubrics/" + rnd):
        expect(u.c.get(path), 404, "not_found", "GET " + path)
    # badges are issued (and looked up) by a server with ACCORD_PUBLIC_URL
    expect(u.on(badge_server(env)).anon().get("/v1/awards/" + rnd), 404, "not_found",
           "an unknown award")
    expect(u.c.post("/v1/reviews/%s/release" % rnd), 404, "not_found", "release of an unknown review")
    expect(u.c.post("/v1/submissions/%s/resubmit" % rnd, {"artifact_ids": []}), 404, "not_found",
           "resubmit of an unknown submission")
    expect(env.admin.c.post("/v1/users/%s/tokens" % rnd), 404, "not_found",
           "token for an unknown user")
    for path in ("/v1/nope", "/nope", "/v1", "/v2/me", "/v1/submissions/%s/extra" % rnd):
        expect(u.c.get(path), 404, "not_found", "GET " + path)
    for method, path in (("DELETE", "/v1/me"), ("PUT", "/v1/rubrics"), ("PATCH", "/v1/credentials"),
                         ("GET", "/v1/artifacts"), ("DELETE", "/v1/submissions/" + rnd),
                         ("PUT", "/v1/users"),
                         ("PUT", "/v1/credentials/%s/assessors" % rnd)):
        expect(u.c.request(method, path, json_body={} if method != "GET" else None), 405,
               "method_not_allowed", "%s %s" % (method, path))


def check_libevent_413(raw):
    """libevent 2.1 refuses a body over the limit itself, from its headers,
    before accord sees the request, with its own fixed HTML page (2.1 has no
    hook to replace it; README.md says so). What matters: the status, and
    that the connection is closed instead of the body being read."""
    head = raw.split(b"\r\n\r\n", 1)[0].lower()
    check(b"connection: close" in head, "the 413 should close the connection: %r" % raw[:300])


@test
def bad_body_too_large(env):
    limit = 65536
    s = env.start_server("maxbody", {"ACCORD_MAX_BODY": str(limit),
                                     "ACCORD_MAX_JSON_BODY": str(limit)})
    earner = env.user(["earner"], org="BigBody Org", server=s)
    data = os.urandom(limit - 1024)
    a = env.upload(earner.c, "video", data)                          # under the limit: fine
    r = earner.c.get("/v1/artifacts/%s/content" % a["id"])
    expect(r, 200)
    check(sha256(r.body) == sha256(data), "content under the limit differs")
    for size in (limit + 1, 300 * 1024):
        body = os.urandom(size)
        head = ("POST /v1/artifacts HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                "Content-Type: video/mp4\r\nX-Artifact-Kind: video\r\nContent-Length: %d\r\n"
                "Connection: close\r\n\r\n" % (earner.token, size)).encode()
        status, raw = raw_exchange(s.port, head, body, timeout=15)
        eq(status, 413, "upload of %d bytes with a limit of %d (answer %r)" % (size, limit, raw[:300]))
        check_libevent_413(raw)
    big = ('{"credential_id": "%s", "artifact_ids": [%s]}' % (
        uuid.uuid4(), ",".join('"%s"' % uuid.uuid4() for _ in range(3000)))).encode()
    head = ("POST /v1/submissions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: application/json\r\nContent-Length: %d\r\n"
            "Connection: close\r\n\r\n" % (earner.token, len(big))).encode()
    status, raw = raw_exchange(s.port, head, big, timeout=15)
    eq(status, 413, "a JSON body of %d bytes with a limit of %d (answer %r)"
       % (len(big), limit, raw[:300]))
    check_libevent_413(raw)
    # still serving, and nothing lost
    expect(earner.c.get("/healthz"), 200)
    r = earner.c.get("/v1/artifacts/%s/content" % a["id"])
    expect(r, 200)
    check(r.body == data, "the earlier artifact changed after the oversized bodies")
    msg = s.stop()
    check(msg is None, msg)


@test
def bad_input_leaves_server_healthy(env):
    """A garbage stream of requests, then /healthz and an intact submission."""
    lead = env.user(["lead"])
    earner = env.user(["earner"], org="Garbage Org")
    rubric = env.rubric(lead)
    cred = env.credential(lead, rubric["id"])
    ev = env.evidence(earner.c)
    sub = env.submit(earner.c, cred["id"], [a["id"] for a, _ in ev])
    garbage = [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /v1/me HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"POST /v1/submissions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
        earner.token.encode() + b"\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{\"a\"",
        b"GET /v1/%00%ff/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /v1/artifacts/" + ev[0][0]["id"].encode() + b"/content HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer " + earner.token.encode() + b"\r\nRange: bytes=zz-yy\r\n"
        b"Connection: close\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64),
    ]
    for g in garbage:
        raw_exchange(env.server.port, g, timeout=3, early_wait=0.1)
    for rng in ("bytes=5-2", "bytes=abc", "items=0-1", "bytes=0-1,5-9"):
        r = earner.c.get("/v1/artifacts/%s/content" % ev[0][0]["id"], headers={"Range": rng})
        check(r.status in (200, 206, 416), "Range %r answered %d" % (rng, r.status))
        if r.status == 200:
            check(r.body == ev[0][1], "Range %r ignored, but the full body differs" % rng)
    expect(earner.c.get("/healthz"), 200)
    view = expect(earner.c.get("/v1/submissions/" + sub["id"]), 200)
    eq((view["status"], sorted(a["id"] for a in view["artifacts"])),
       ("queued", sorted(a["id"] for a, _ in ev)), "the submission after garbage")
    for a, data in ev:
        r = earner.c.get("/v1/artifacts/%s/content" % a["id"])
        expect(r, 200)
        check(r.body == data, "artifact %s bytes changed" % a["id"])

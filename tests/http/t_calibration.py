# SPDX-License-Identifier: Apache-2.0
"""Calibration (issue 4), endpoint by endpoint, against server/API.md "Calibration":
rubric settings, credential review policy, anchors, calibration sessions and their
hand-checked results, qualifications, eligibility, blind validity items, double scoring,
adjudication, reports; authorization and bad input on every new endpoint.

Grants are posted directly here (not with env.grant, which may qualify the assessor as
a side effect): whether an assessor is qualified is part of what is tested."""

import csv
import io
import json
import os
import uuid

from harness import (CRITERION_KEYS, Client, assert_not_in_text, check, eq, expect, is_ts,
                     is_uuid, run_cli, short, soft, test)

DEFAULTS = {"exact_min": 0.70, "adjacent_min": 0.95, "verdict_min": 0.80, "set_size": 5,
            "window": 20, "min_items": 8, "verdict_level": None}
BAD_UUIDS = ["not-a-uuid", "1234", "%s-x" % uuid.uuid4(), str(uuid.uuid4()).replace("-", "")]


# ---------------------------------------------------------------------------
# helpers


def grant(lead, cred_id, user, pool="peer"):
    body = {"user_id": user.id, "pool": pool}
    if pool == "peer":
        body["waive_award"] = True
    return expect(lead.c.post("/v1/credentials/%s/assessors" % cred_id, body), 201,
                  what="grant %s %s" % (pool, user.email))


def qualify(lead, user, rubric_id, status="qualified", reason="calibrated in a workshop"):
    return expect(lead.c.post("/v1/assessors/%s/qualifications" % user.id,
                              {"rubric_id": rubric_id, "status": status, "reason": reason}),
                  201, what="lead sets %s %s" % (user.email, status))


def put(client, path, body):
    return client.request("PUT", path, json_body=body)


def master(levels, tag="m"):
    return {"scores": [{"criterion": k, "level": l, "rationale": "%s rationale %s" % (tag, k)}
                       for k, l in zip(CRITERION_KEYS, levels)],
            "feedback": "%s master feedback" % tag}


def scores_body(levels, comment="ok", feedback="feedback"):
    return {"scores": [{"criterion": k, "level": l, "comment": "%s %s" % (comment, k)}
                       for k, l in zip(CRITERION_KEYS, levels)], "feedback": feedback}


def lead_artifact(env, lead, tag="anchor"):
    return env.upload(lead.c, "video", ("%s " % tag).encode() + os.urandom(256),
                      filename="%s.mp4" % tag)


def make_anchor(env, lead, rubric_id, levels, tag="a"):
    art = lead_artifact(env, lead, tag)
    a = expect(lead.c.post("/v1/anchors", {"rubric_id": rubric_id, "artifact_ids": [art["id"]],
                                           "master": master(levels, tag)}), 201,
               what="create anchor %s" % tag)
    return a, art


def cal_grant(env, lead, rubric_id, *users):
    """Issue 7: calibration on a rubric needs a grant on one of its credentials."""
    cred = credential(env, lead, rubric_id, "low", {"validity_rate": 0, "second_score_rate": 0})
    for u in users:
        grant(lead, cred["id"], u, "expert" if "expert" in (u.roles or []) else "peer")
    return cred


def credential(env, lead, rubric_id, stakes="low", policy=None):
    body = {"title": "Calibration %s #%d" % (stakes, env.uniq()), "stakes": stakes,
            "rubric_id": rubric_id, "evidence": [{"kind": "video", "min": 1}],
            "pass_rule": {"min_level_each": 3}, "max_attempts": 3}
    if policy is not None:
        body["review_policy"] = policy
    return expect(lead.c.post("/v1/credentials", body), 201, what="create credential")


def one_video_submission(env, cred_id, org="Calibration earners"):
    earner = env.user(["earner"], org=org)
    art = env.upload(earner.c, "video", os.urandom(128), filename="meeting.mp4")
    return earner, env.submit(earner.c, cred_id, [art["id"]]), art


def shape(x):
    """The keys at every level (values ignored; a list's shape is its items' union)."""
    if isinstance(x, dict):
        return {k: shape(v) for k, v in sorted(x.items())}
    if isinstance(x, list):
        merged = {}
        for v in x:
            s = shape(v)
            if isinstance(s, dict):
                merged.update(s)
        return ["list", merged]
    return "*"


def all_keys(x, out=None):
    out = set() if out is None else out
    if isinstance(x, dict):
        for k, v in x.items():
            out.add(k)
            all_keys(v, out)
    elif isinstance(x, list):
        for v in x:
            all_keys(v, out)
    return out


def approx(got, want, what, tol=1e-9):
    check(isinstance(got, (int, float)) and not isinstance(got, bool) and abs(got - want) <= tol,
          "%s: expected %r, got %r" % (what, want, got))


def my_status(user, rubric_id):
    q = expect(user.c.get("/v1/me/qualifications"), 200)
    check(isinstance(q.get("qualifications"), list), "GET /v1/me/qualifications: %s" % q)
    rows = [x for x in q["qualifications"] if x.get("rubric_id") == rubric_id]
    return rows[0] if rows else None


def metric_names(env):
    """The metric names `accord irr` prints (the agreement report must carry each)."""
    path = os.path.join(env.workdir, "irr-names.csv")
    with open(path, "w") as f:
        f.write("unit,rater,score\na,r1,1\na,r2,2\nb,r1,3\nb,r2,3\nc,r1,2\nc,r2,1\n")
    rc, out, err = run_cli(env.binary, ["irr", path], env.base_env)
    check(rc == 0, "accord irr exited %d: %s" % (rc, err))
    return sorted(json.loads(out)["metrics"].keys())


class World:
    """A lead, a rubric with anchors, a qualified peer and expert."""

    def __init__(self, env, n_anchors=6):
        self.lead = env.user(["lead"], name="Cal Lead", org="Cal District")
        self.rubric = env.rubric(self.lead, "Calibration rubric #%d" % env.uniq())
        self.rid = self.rubric["id"]
        self.anchors = [make_anchor(env, self.lead, self.rid, [1 + (i + j) % 4 for j in range(4)],
                                    "w%d" % i)[0] for i in range(n_anchors)]
        self.peer = env.user(["assessor"], name="Cal Peer", org="Cal Peer Org",
                             email="cal.peer%d@example.org" % env.uniq())
        self.expert = env.user(["expert"], name="Cal Expert", org="Cal Expert Org",
                               email="cal.expert%d@example.org" % env.uniq())


# ---------------------------------------------------------------------------
# settings and policy


@test
def calibration_settings(env):
    lead = env.user(["lead"])
    other = env.user(["assessor"])
    rubric = env.rubric(lead, "Settings rubric")
    path = "/v1/rubrics/%s/calibration" % rubric["id"]
    got = expect(lead.c.get(path), 200, what="GET calibration settings")
    eq(got.get("rubric_id"), rubric["id"], "settings rubric_id")
    for k, v in DEFAULTS.items():
        if v is None:
            eq(got.get(k, "missing"), None, "default %s" % k)
        else:
            approx(got.get(k), v, "default %s" % k)
    got = expect(put(lead.c, path, {"window": 12, "min_items": 6}), 200, what="partial PUT")
    eq((got["window"], got["min_items"], got["set_size"]), (12, 6, 5), "after a partial PUT")
    approx(got["exact_min"], 0.70, "exact_min untouched by a partial PUT")
    got = expect(put(lead.c, path, {"verdict_level": 2, "exact_min": 0.75}), 200)
    eq(got["verdict_level"], 2, "verdict_level set")
    approx(got["exact_min"], 0.75, "exact_min set")
    again = expect(lead.c.get(path), 200)
    eq(again, got, "GET after PUT")
    got = expect(put(lead.c, path, {"verdict_level": None}), 200, what="verdict_level back to null")
    eq(got["verdict_level"], None, "verdict_level null")
    for body in ({"exact_min": 1.5}, {"exact_min": -0.1}, {"adjacent_min": 2},
                 {"verdict_min": -1}, {"set_size": 0}, {"set_size": -3}, {"window": 0},
                 {"min_items": 0},
                 {"verdict_level": 7}, {"verdict_level": 0}):
        expect(put(lead.c, path, body), (400, 422), what="PUT settings %r" % body)
    for body in ({"exact_min": "0.7"}, {"set_size": 2.5}, {"window": "20"}, {"set_size": True},
                 {"verdict_level": "3"}, [1, 2], "x"):
        expect(put(lead.c, path, body), 400, what="PUT settings with wrong type %r" % (body,))
    final = expect(lead.c.get(path), 200)
    eq(final, got, "settings after refused PUTs")
    expect(put(other.c, path, {"window": 5}), 403, "forbidden", "an assessor PUTs settings")
    expect(put(lead.c, "/v1/rubrics/%s/calibration" % uuid.uuid4(), {"window": 5}), 404,
           what="PUT settings of an unknown rubric")
    expect(lead.c.get("/v1/rubrics/%s/calibration" % uuid.uuid4()), 404,
           what="GET settings of an unknown rubric")


@test
def calibration_policy(env):
    lead = env.user(["lead"])
    rubric = env.rubric(lead, "Policy rubric")
    low = credential(env, lead, rubric["id"], "low")
    high = credential(env, lead, rubric["id"], "high")
    with soft():
        pol = low.get("review_policy")
        check(isinstance(pol, dict), "a new credential should show its review_policy: %s"
              % short(json.dumps(low)))
        approx(pol.get("second_score_rate"), 0.20, "low stakes default second_score_rate")
        approx(high["review_policy"].get("second_score_rate"), 0.25,
               "high stakes default second_score_rate")
        for k, v in (("validity_rate", 0.05), ("second_score_floor", 0.10),
                     ("reliability_threshold", 0.60), ("min_pairs", 30), ("peer_wait_hours", 72)):
            approx(pol.get(k), v, "default %s" % k)
    custom = credential(env, lead, rubric["id"], "low", {"validity_rate": 0.5, "min_pairs": 10})
    with soft():
        approx(custom["review_policy"]["validity_rate"], 0.5, "review_policy at creation")
        approx(custom["review_policy"]["min_pairs"], 10, "review_policy at creation (min_pairs)")
        approx(custom["review_policy"]["second_score_rate"], 0.20, "unset fields take defaults")
    path = "/v1/credentials/%s/policy" % low["id"]
    got = expect(put(lead.c, path, {"validity_rate": 0.3}), 200, what="PUT policy")
    got = got.get("review_policy", got)
    approx(got["validity_rate"], 0.3, "validity_rate after PUT")
    approx(got["second_score_rate"], 0.20, "second_score_rate untouched by a partial PUT")
    cred = expect(lead.c.get("/v1/credentials/%s" % low["id"]), 200)
    with soft():
        approx(cred.get("review_policy", {}).get("validity_rate"), 0.3,
               "GET /v1/credentials/{id} shows the new policy")
    for body in ({"validity_rate": 1.5}, {"validity_rate": -0.1}, {"second_score_rate": 2},
                 {"second_score_floor": -1}, {"reliability_threshold": 1.1},
                 {"min_pairs": 0}, {"min_pairs": -5}, {"peer_wait_hours": -1}):
        expect(put(lead.c, path, body), (400, 422), what="PUT policy %r" % body)
    for body in ({"validity_rate": "0.1"}, {"min_pairs": 2.5}, {"min_pairs": "30"},
                 {"peer_wait_hours": True}, [], 3):
        expect(put(lead.c, path, body), 400, what="PUT policy with wrong type %r" % (body,))
    bad_create = {"title": "Bad policy", "stakes": "low", "rubric_id": rubric["id"],
                  "evidence": [{"kind": "video", "min": 1}], "pass_rule": {"min_level_each": 3},
                  "review_policy": {"validity_rate": 3}}
    expect(lead.c.post("/v1/credentials", bad_create), (400, 422),
           what="credential with validity_rate 3")
    expect(lead.c.post("/v1/credentials", dict(bad_create, review_policy="often")), 400,
           what="credential with review_policy a string")
    assessor = env.user(["assessor"])
    earner = env.user(["earner"])
    for u in (assessor, earner):
        expect(put(u.c, path, {"validity_rate": 0.1}), 403, "forbidden",
               "%s PUTs a policy" % u.roles)
    expect(put(lead.c, "/v1/credentials/%s/policy" % uuid.uuid4(), {"validity_rate": 0.1}), 404,
           what="policy of an unknown credential")


# ---------------------------------------------------------------------------
# anchors


@test
def calibration_anchors(env):
    lead = env.user(["lead"])
    rubric = env.rubric(lead, "Anchor rubric")
    rid = rubric["id"]
    art = lead_artifact(env, lead, "anchor-shape")
    body = {"rubric_id": rid, "artifact_ids": [art["id"]], "master": master([3, 2, 4, 1], "s")}
    a = expect(lead.c.post("/v1/anchors", body), 201, what="create anchor")
    check(is_uuid(a.get("id")), "anchor id %r" % a.get("id"))
    eq((a["rubric_id"], a["artifact_ids"]), (rid, [art["id"]]), "anchor fields")
    check(is_ts(a.get("created_at")), "anchor created_at %r" % a.get("created_at"))
    eq([(s["criterion"], s["level"]) for s in a["master"]["scores"]],
       list(zip(CRITERION_KEYS, [3, 2, 4, 1])), "anchor master scores")
    eq(a["master"]["scores"][0]["rationale"], "s rationale %s" % CRITERION_KEYS[0], "rationale")
    eq(a["master"]["feedback"], "s master feedback", "master feedback")
    got = expect(lead.c.get("/v1/anchors/%s" % a["id"]), 200)
    eq(got, a, "GET /v1/anchors/{id}")
    lst = expect(lead.c.get("/v1/anchors?rubric_id=%s" % rid), 200)
    eq([x["id"] for x in lst["anchors"]], [a["id"]], "GET /v1/anchors?rubric_id")
    other = env.rubric(lead, "Another anchor rubric")
    eq(expect(lead.c.get("/v1/anchors?rubric_id=%s" % other["id"]), 200)["anchors"], [],
       "anchors of a rubric without any")

    def bad_master(fn):
        m = master([3, 3, 3, 3], "bad")
        fn(m)
        return dict(body, master=m)

    cases = [
        ("a criterion missing", bad_master(lambda m: m["scores"].pop())),
        ("a criterion twice", bad_master(lambda m: m["scores"].__setitem__(1, dict(m["scores"][0])))),
        ("an unknown criterion", bad_master(lambda m: m["scores"][0].__setitem__("criterion",
                                                                                  "nope"))),
        ("level 5", bad_master(lambda m: m["scores"][0].__setitem__("level", 5))),
        ("level 0", bad_master(lambda m: m["scores"][2].__setitem__("level", 0))),
        ("no scores", bad_master(lambda m: m.__setitem__("scores", []))),
    ]
    for what, b in cases:
        expect(lead.c.post("/v1/anchors", b), 422, "invalid_scores", "anchor with " + what)
    for what, b in [("level a string", bad_master(lambda m: m["scores"][0].__setitem__("level", "3"))),
                    ("scores an object", bad_master(lambda m: m.__setitem__("scores", {}))),
                    ("master a list", dict(body, master=[])),
                    ("artifact_ids a string", dict(body, artifact_ids=art["id"])),
                    ("rubric_id a number", dict(body, rubric_id=7)),
                    ("rubric_id malformed", dict(body, rubric_id="abc"))]:
        expect(lead.c.post("/v1/anchors", b), 400, what="anchor with " + what)
    expect(lead.c.post("/v1/anchors", dict(body, rubric_id=str(uuid.uuid4()))), (404, 422),
           what="anchor on an unknown rubric")
    expect(lead.c.post("/v1/anchors", dict(body, artifact_ids=[str(uuid.uuid4())])), (404, 422),
           what="anchor with an unknown artifact")
    n = len(expect(lead.c.get("/v1/anchors?rubric_id=%s" % rid), 200)["anchors"])
    eq(n, 1, "anchors after refused creations")
    # who: only leads
    assessor = env.user(["assessor"])
    expert = env.user(["expert"])
    earner = env.user(["earner"])
    for u in (assessor, expert, earner):
        expect(u.c.post("/v1/anchors", body), 403, "forbidden", "%s creates an anchor" % u.roles)
        expect(u.c.get("/v1/anchors?rubric_id=%s" % rid), 403, "forbidden",
               "%s lists anchors (masters are secret)" % u.roles)
        expect(u.c.get("/v1/anchors/%s" % a["id"]), 403, "forbidden",
               "%s reads an anchor" % u.roles)
    expect(earner.c.get("/v1/artifacts/%s" % art["id"]), 403, "forbidden",
           "an earner reads an anchor's artifact")
    anon = Client(env.server)
    expect(anon.post("/v1/anchors", body), 401, "unauthorized", "anchor without a token")
    expect(anon.get("/v1/anchors?rubric_id=%s" % rid), 401, "unauthorized")
    expect(anon.get("/v1/anchors/%s" % a["id"]), 401, "unauthorized")
    expect(lead.c.get("/v1/anchors/%s" % uuid.uuid4()), 404, what="unknown anchor")


# ---------------------------------------------------------------------------
# qualification sessions

# Five anchors x four criteria. The assessor is one level off on exactly one criterion
# of each anchor: exact 15/20 = 0.75, adjacent 20/20 = 1.0. Verdicts at the default
# verdict_level (3 on 1-4, every criterion >= 3 passes): only anchor 0 flips
# (master pass, assessor resubmit) -> 4/5 = 0.8; at verdict_level 2 all five agree -> 1.0.
CRAFT_MASTERS = [[3, 3, 3, 3], [2, 2, 2, 2], [4, 4, 4, 4], [1, 2, 3, 4], [3, 4, 3, 4]]
CRAFT_SCORES = [[3, 3, 3, 2], [2, 2, 2, 3], [4, 4, 3, 4], [1, 2, 3, 3], [3, 4, 3, 3]]


def crafted_rubric(env, lead):
    rubric = env.rubric(lead, "Crafted session rubric #%d" % env.uniq())
    by_art = {}
    for i, m in enumerate(CRAFT_MASTERS):
        a, art = make_anchor(env, lead, rubric["id"], m, "craft%d" % i)
        by_art[art["id"]] = (i, a)
    return rubric, by_art


def run_session(user, rubric_id, by_art, scores, check_hidden=True):
    s = expect(user.c.post("/v1/calibration/sessions", {"rubric_id": rubric_id}), 201,
               what="create a calibration session")
    res = None
    for n, item in enumerate(s["items"]):
        i, _ = by_art[item["artifacts"][0]["id"]]
        r = user.c.post("/v1/calibration/sessions/%s/items/%s/scores" % (s["id"], item["id"]),
                        scores_body(scores[i], "cal"))
        j = expect(r, 200, what="score item %d" % n)
        if n < len(s["items"]) - 1:
            eq((j.get("session_id"), j.get("item_id"), j.get("remaining")),
               (s["id"], item["id"], len(s["items"]) - n - 1), "answer to item %d" % n)
            if check_hidden:
                check(not ({"master", "rationale"} & all_keys(j)), "masters before the end: %s"
                      % short(r.text))
        else:
            res = j
    return s, res


@test
def calibration_session_result(env):
    lead = env.user(["lead"])
    rubric, by_art = crafted_rubric(env, lead)
    rid = rubric["id"]
    a1 = env.user(["assessor"], org="Cal A1")
    a2 = env.user(["expert"], org="Cal A2")
    outsider = env.user(["assessor"], org="Cal A3")
    cal_grant(env, lead, rid, a1, a2, outsider)
    s = expect(a1.c.post("/v1/calibration/sessions", {"rubric_id": rid}), 201)
    check(is_uuid(s.get("id")), "session id %r" % s.get("id"))
    eq((s["rubric_id"], s["status"], len(s["items"])), (rid, "open", 5), "new session")
    eq(s["rubric"]["id"], rid, "session.rubric.id")
    pos = sorted(it["position"] for it in s["items"])
    check(pos in (list(range(5)), list(range(1, 6))), "item positions %r" % pos)
    eq({by_art[it["artifacts"][0]["id"]][0] for it in s["items"]}, set(range(5)),
       "the session's items are the five anchors")
    for it in s["items"]:
        eq(it["scored"], False, "item scored flag")
    check(not ({"master", "rationale", "anchor_id"} & all_keys(s)),
          "an open session shows masters or anchor ids: %s" % short(json.dumps(s), 1200))
    for it in s["items"][:1]:
        art = it["artifacts"][0]["id"]
        expect(a1.c.get("/v1/artifacts/%s/content" % art), 200, what="assessor reads item content")
        expect(outsider.c.get("/v1/artifacts/%s/content" % art), 403, "forbidden",
               "another assessor reads the anchor's content")
    path = "/v1/calibration/sessions/%s" % s["id"]
    eq(expect(a1.c.get(path), 200)["id"], s["id"], "GET own session")
    eq(expect(lead.c.get(path), 200)["id"], s["id"], "lead GETs a session")
    expect(outsider.c.get(path), (403, 404), what="another assessor GETs the session")
    expect(lead.c.get("/v1/calibration/sessions/%s" % uuid.uuid4()), 404, what="unknown session")
    item0 = s["items"][0]
    ipath = "%s/items/%s/scores" % (path, item0["id"])
    i0 = by_art[item0["artifacts"][0]["id"]][0]
    expect(outsider.c.post(ipath, scores_body(CRAFT_SCORES[i0])), (403, 404),
           what="scoring an item of someone else's session")
    expect(a1.c.post("%s/items/%s/scores" % (path, uuid.uuid4()), scores_body(CRAFT_SCORES[i0])),
           404, what="scoring an unknown item")
    other_s = expect(a2.c.post("/v1/calibration/sessions", {"rubric_id": rid}), 201)
    expect(a1.c.post("%s/items/%s/scores" % (path, other_s["items"][0]["id"]),
                     scores_body(CRAFT_SCORES[0])), (404, 422),
           what="scoring another session's item through mine")
    for what, b in [("a criterion missing", {"scores": scores_body([3, 3, 3, 3])["scores"][:3],
                                              "feedback": "f"}),
                    ("level 5", scores_body([5, 3, 3, 3])),
                    ("an unknown criterion", {"scores": [dict(x, criterion="zzz") if n == 0 else x
                                                         for n, x in enumerate(
                                                             scores_body([3, 3, 3, 3])["scores"])],
                                             "feedback": "f"})]:
        expect(a1.c.post(ipath, b), 422, "invalid_scores", "session item with " + what)
    j = expect(a1.c.post(ipath, scores_body(CRAFT_SCORES[i0], "cal")), 200)
    eq((j.get("session_id"), j.get("item_id"), j.get("remaining")), (s["id"], item0["id"], 4),
       "first item answer")
    check("scored" in j, "first item answer lacks scored: %s" % short(json.dumps(j)))
    expect(a1.c.post(ipath, scores_body(CRAFT_SCORES[i0])), 409, what="scoring an item twice")
    mid = expect(a1.c.get(path), 200)
    eq(sorted(it["scored"] for it in mid["items"]), [False] * 4 + [True], "scored flags mid-way")
    check(not ({"master", "rationale"} & all_keys(mid)), "masters visible mid-way: %s"
          % short(json.dumps(mid), 1200))
    res = None
    for n, it in enumerate(s["items"][1:]):
        i = by_art[it["artifacts"][0]["id"]][0]
        r = a1.c.post("%s/items/%s/scores" % (path, it["id"]), scores_body(CRAFT_SCORES[i], "cal"))
        jj = expect(r, 200, what="item %d" % (n + 1))
        if n < 3:
            eq(jj.get("remaining"), 3 - n, "remaining after item %d" % (n + 1))
            check(not ({"master", "rationale"} & all_keys(jj)), "masters before the last item")
        else:
            res = jj
    eq((res.get("session_id"), res.get("status")), (s["id"], "completed"), "last item answer")
    result = res["result"]
    approx(result["exact"], 0.75, "exact (15 of 20)")
    approx(result["adjacent"], 1.0, "adjacent (20 of 20)")
    approx(result["verdict_agreement"], 0.8, "verdict agreement at level 3 (4 of 5)")
    eq(result["qualified"], True, "qualified (0.75 >= .70, 1.0 >= .95, 0.8 >= .80)")
    approx(result["thresholds"]["exact_min"], 0.70, "thresholds.exact_min")
    approx(result["thresholds"]["adjacent_min"], 0.95, "thresholds.adjacent_min")
    approx(result["thresholds"]["verdict_min"], 0.80, "thresholds.verdict_min")
    eq(len(result["items"]), 5, "result items")
    by_anchor = {a["id"]: i for i, a in by_art.values()}
    for it in result["items"]:
        i = by_anchor.get(it["anchor_id"])
        check(i is not None, "result item anchor_id %r is not one of the anchors" % it["anchor_id"])
        eq([(x["criterion"], x["level"]) for x in it["master"]["scores"]],
           list(zip(CRITERION_KEYS, CRAFT_MASTERS[i])), "master scores shown for anchor %d" % i)
        check(all(x.get("rationale") for x in it["master"]["scores"]), "rationale shown")
        eq([x["level"] for x in it["scores"]], CRAFT_SCORES[i], "own scores for anchor %d" % i)
    expect(a1.c.post(ipath, scores_body(CRAFT_SCORES[i0])), 409,
           what="scoring an item of a completed session")
    done = expect(a1.c.get(path), 200)
    eq(done["status"], "completed", "session status after the last item")
    q = my_status(a1, rid)
    check(q is not None and q["status"] == "qualified", "a1 after qualifying: %r" % q)
    check(is_ts(q.get("updated_at")), "qualification updated_at %r" % q.get("updated_at"))
    check(isinstance(q.get("window"), dict) and
          {"items", "exact", "adjacent", "verdict_agreement"} <= set(q["window"]),
          "qualification window fields: %r" % q.get("window"))

    # verdict_level 2: every verdict agrees -> 1.0 (a2 scores identically)
    expect(put(lead.c, "/v1/rubrics/%s/calibration" % rid, {"verdict_level": 2}), 200)
    s2, res2 = None, None
    for it in other_s["items"]:
        i = by_art[it["artifacts"][0]["id"]][0]
        res2 = expect(a2.c.post("/v1/calibration/sessions/%s/items/%s/scores"
                                % (other_s["id"], it["id"]), scores_body(CRAFT_SCORES[i])), 200)
    approx(res2["result"]["exact"], 0.75, "exact (second assessor)")
    approx(res2["result"]["verdict_agreement"], 1.0, "verdict agreement at verdict_level 2")
    eq(res2["result"]["qualified"], True, "second assessor qualified")

    # two levels off on one criterion per item: adjacent 15/20 = 0.75 -> not qualified
    expect(put(lead.c, "/v1/rubrics/%s/calibration" % rid, {"verdict_level": None}), 200)
    far = [[m[0], m[1], m[2], m[3] - 2 if m[3] > 2 else m[3] + 2] for m in CRAFT_MASTERS]
    _, res3 = run_session(outsider, rid, by_art, far)
    approx(res3["result"]["adjacent"], 0.75, "adjacent with one score per item two off")
    approx(res3["result"]["exact"], 0.75, "exact with one score per item two off")
    eq(res3["result"]["qualified"], False, "not qualified (adjacent 0.75 < 0.95)")
    q = my_status(outsider, rid)
    check(q is None or q["status"] == "needs_recalibration",
          "an assessor who failed the session: qualification %r" % q)

    # 422 no_anchors; roles
    empty = env.rubric(lead, "No anchors here")
    cal_grant(env, lead, empty["id"], a1)
    expect(a1.c.post("/v1/calibration/sessions", {"rubric_id": empty["id"]}), 422, "no_anchors",
           "session on a rubric without anchors")
    expect(a1.c.post("/v1/calibration/sessions", {"rubric_id": str(uuid.uuid4())}), (404, 422),
           what="session on an unknown rubric")
    earner = env.user(["earner"])
    expect(earner.c.post("/v1/calibration/sessions", {"rubric_id": rid}), 403, "forbidden",
           "an earner opens a session")
    expect(earner.c.get(path), 403, "forbidden", "an earner reads a session")
    anon = Client(env.server)
    expect(anon.post("/v1/calibration/sessions", {"rubric_id": rid}), 401, "unauthorized")
    expect(anon.get(path), 401, "unauthorized")
    expect(anon.post(ipath, scores_body([3, 3, 3, 3])), 401, "unauthorized")
    expect(anon.get("/v1/me/qualifications"), 401, "unauthorized")


@test
def calibration_set_size_and_preference(env):
    lead = env.user(["lead"])
    rubric = env.rubric(lead, "Set size rubric")
    rid = rubric["id"]
    expect(put(lead.c, "/v1/rubrics/%s/calibration" % rid, {"set_size": 3}), 200)
    by_art = {}
    for i in range(4):
        a, art = make_anchor(env, lead, rid, [2, 3, 3, 4], "ss%d" % i)
        by_art[art["id"]] = (i, a)
    u = env.user(["assessor"])
    u2 = env.user(["assessor"])
    cal_grant(env, lead, rid, u, u2)
    s1, _ = run_session(u, rid, by_art, [[2, 3, 3, 4]] * 4)
    eq(len(s1["items"]), 3, "set_size 3 -> 3 items")
    first = {by_art[it["artifacts"][0]["id"]][0] for it in s1["items"]}
    # issue 7: the first session's result showed 3 masters; one new anchor is left
    expect(u.c.post("/v1/calibration/sessions", {"rubric_id": rid}), 422, "anchor_pool_exhausted",
           "a second session with 1 of 4 anchors still new")
    for i in range(4, 6):
        a, art = make_anchor(env, lead, rid, [2, 3, 3, 4], "ss%d" % i)
        by_art[art["id"]] = (i, a)
    s2 = expect(u.c.post("/v1/calibration/sessions", {"rubric_id": rid}), 201)
    second = {by_art[it["artifacts"][0]["id"]][0] for it in s2["items"]}
    eq(len(s2["items"]), 3, "second session size")
    eq(second, set(range(6)) - first, "the second session holds exactly the anchors never shown")
    expect(put(lead.c, "/v1/rubrics/%s/calibration" % rid, {"set_size": 10}), 200)
    expect(u2.c.post("/v1/calibration/sessions", {"rubric_id": rid}), 422, "anchor_pool_exhausted",
           "set_size 10 with 6 anchors")


# ---------------------------------------------------------------------------
# qualifications and eligibility


@test
def calibration_qualifications_and_eligibility(env):
    w = World(env, 2)
    cred = credential(env, w.lead, w.rid, "low", {"validity_rate": 0, "second_score_rate": 0})
    grant(w.lead, cred["id"], w.peer, "peer")
    earner, sub, _ = one_video_submission(env, cred["id"])
    # granted but not qualified: nothing to claim
    expect(w.peer.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 204,
           what="claim by a granted but unqualified peer")
    expect(w.peer.c.post("/v1/reviews/claim", {}), 204, what="claim (no credential) unqualified")
    q = expect(w.peer.c.get("/v1/me/qualifications"), 200)
    eq([x for x in q["qualifications"] if x.get("rubric_id") == w.rid and
        x.get("status") == "qualified"], [], "qualifications before any session")
    path = "/v1/assessors/%s/qualifications" % w.peer.id
    for body in ({"rubric_id": w.rid, "status": "qualified"},
                 {"rubric_id": w.rid, "status": "qualified", "reason": ""}):
        expect(w.lead.c.post(path, body), (400, 422), what="manual qualification %r" % body)
    with soft():   # a blank reason is no reason: the audit log would say nothing
        expect(w.lead.c.post(path, {"rubric_id": w.rid, "status": "needs_recalibration",
                                    "reason": "   "}), (400, 422),
               what="manual qualification with a blank reason")
    for body in ({"rubric_id": w.rid, "status": "expert", "reason": "r"},
                 {"rubric_id": w.rid, "status": "qualified", "reason": 5},
                 {"rubric_id": "abc", "status": "qualified", "reason": "r"},
                 {"rubric_id": w.rid, "status": True, "reason": "r"}):
        expect(w.lead.c.post(path, body), (400, 422), what="manual qualification %r" % body)
    expect(w.lead.c.post(path, {"rubric_id": str(uuid.uuid4()), "status": "qualified",
                                "reason": "r"}), (404, 422), what="unknown rubric")
    expect(w.lead.c.post("/v1/assessors/%s/qualifications" % uuid.uuid4(),
                         {"rubric_id": w.rid, "status": "qualified", "reason": "r"}), (404, 422),
           what="manual qualification of an unknown user")
    expect(w.peer.c.post(path, {"rubric_id": w.rid, "status": "qualified", "reason": "me"}), 403,
           "forbidden", "a peer qualifies himself")
    expect(w.expert.c.post(path, {"rubric_id": w.rid, "status": "qualified", "reason": "x"}), 403,
           "forbidden", "an expert qualifies a peer")
    expect(Client(env.server).post(path, {"rubric_id": w.rid, "status": "qualified",
                                          "reason": "x"}), 401, "unauthorized")
    expect(w.peer.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 204,
           what="claim after refused manual qualifications")
    j = qualify(w.lead, w.peer, w.rid, reason="observed live in the spring workshop")
    check(isinstance(j, dict), "manual qualification answer %r" % j)
    row = my_status(w.peer, w.rid)
    check(row is not None and row["status"] == "qualified", "after manual qualification: %r" % row)
    c = expect(w.peer.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200,
               what="claim by a qualified peer")
    eq(c["submission"]["id"], sub["id"], "the qualified peer claims the submission")
    expect(w.peer.c.post("/v1/reviews/%s/release" % c["id"]), 200)
    qualify(w.lead, w.peer, w.rid, "needs_recalibration", "scored far off on validity items")
    row = my_status(w.peer, w.rid)
    check(row is not None and row["status"] == "needs_recalibration", "after the lead's "
          "needs_recalibration: %r" % row)
    check(isinstance(row.get("reason"), str) and row["reason"], "reason shown: %r" % row)
    expect(w.peer.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 204,
           what="claim by a peer who needs recalibration")
    # qualification is per rubric: another rubric's credential stays closed
    r2 = env.rubric(w.lead, "Other rubric #%d" % env.uniq())
    cred2 = credential(env, w.lead, r2["id"], "low", {"validity_rate": 0, "second_score_rate": 0})
    grant(w.lead, cred2["id"], w.peer, "peer")
    qualify(w.lead, w.peer, w.rid)
    one_video_submission(env, cred2["id"])
    expect(w.peer.c.post("/v1/reviews/claim", {"credential_id": cred2["id"]}), 204,
           what="qualified on rubric A, claiming on rubric B")


# ---------------------------------------------------------------------------
# blind validity items


@test
def calibration_validity_items(env):
    w = World(env, 4)
    live_cred = credential(env, w.lead, w.rid, "low", {"validity_rate": 0, "second_score_rate": 0})
    val_cred = credential(env, w.lead, w.rid, "low", {"validity_rate": 1.0, "second_score_rate": 0})
    for cr in (live_cred, val_cred):
        grant(w.lead, cr["id"], w.peer, "peer")
    qualify(w.lead, w.peer, w.rid)
    earner, live_sub, _ = one_video_submission(env, live_cred["id"])
    earner2, val_sub, _ = one_video_submission(env, val_cred["id"])
    live = expect(w.peer.c.post("/v1/reviews/claim", {"credential_id": live_cred["id"]}), 200,
                  what="a live claim")
    eq(live["submission"]["id"], live_sub["id"], "the live claim's submission")
    v = expect(w.peer.c.post("/v1/reviews/claim", {"credential_id": val_cred["id"]}), 200,
               what="a claim with validity_rate 1.0")
    anchor_arts = {x for a in w.anchors for x in a["artifact_ids"]}
    anchor_sha = {expect(w.lead.c.get("/v1/artifacts/%s" % x), 200)["sha256"] for x in anchor_arts}
    v_arts = {x["id"] for x in v["submission"]["artifacts"]}
    v_sha = {x["sha256"] for x in v["submission"]["artifacts"]}
    check(v_sha <= anchor_sha and v_sha,
          "with validity_rate 1.0 the claim should be an anchor's evidence: %s" % v_sha)
    # issue 7 item 4: served under fresh ids, never the anchor's own
    check(not (v_arts & anchor_arts), "a validity item shows its anchor's artifact ids %s" % v_arts)
    check(v["submission"]["id"] != val_sub["id"], "the validity item reuses a live submission id")
    eq(shape(v), shape(live), "a validity item's keys (at every level) vs a live claim's")
    eq((v["status"], v["credential"]["id"], v["credential"]["stakes"]),
       ("active", val_cred["id"], "low"), "validity claim fields")
    eq(v["submission"]["attempt"], 1, "validity item attempt")
    eq(v["submission"]["previous_result"], None, "validity item previous_result")
    check({"master", "rationale", "anchor_id", "validity", "anchor"}.isdisjoint(all_keys(v)),
          "the validity claim gives itself away: %s" % short(json.dumps(v), 1200))
    # the earner's submission is untouched
    view = expect(earner2.c.get("/v1/submissions/%s" % val_sub["id"]), 200)
    eq((view["status"], view["result"]), ("queued", None), "the earner's submission meanwhile")
    rv = expect(w.peer.c.get("/v1/reviews/%s" % v["id"]), 200)
    rl = expect(w.peer.c.get("/v1/reviews/%s" % live["id"]), 200)
    eq(shape(rv), shape(rl), "GET /v1/reviews/{id}: validity vs live keys")
    sv = expect(w.peer.c.post("/v1/reviews/%s/scores" % v["id"], scores_body([3, 3, 3, 3])), 200,
                what="scoring a validity item")
    sl = expect(w.peer.c.post("/v1/reviews/%s/scores" % live["id"], scores_body([3, 3, 3, 3])), 200)
    eq(sorted(sv), sorted(sl), "score answer keys: validity vs live")
    eq((sv["status"], sv["verdict"], sv.get("award_id")), ("submitted", "pass", None),
       "validity score answer")
    expect(w.peer.c.post("/v1/reviews/%s/scores" % v["id"], scores_body([3, 3, 3, 3])), 409,
           "already_scored", "scoring a validity item twice")
    lead_view = expect(w.lead.c.get("/v1/reviews/%s" % v["id"]), 200)
    eq((lead_view.get("routing") or {}).get("rule"), "validity_item",
       "lead's GET /v1/reviews/{id}: routing rule")
    # the earner never sees it
    view = expect(earner2.c.get("/v1/submissions/%s" % val_sub["id"]), 200)
    eq((view["status"], view["result"]), ("queued", None), "the earner's submission after")
    lst = expect(earner2.c.get("/v1/submissions"), 200)["submissions"]
    eq([s["id"] for s in lst], [val_sub["id"]], "the earner's list")
    expect(earner2.c.get("/v1/submissions/%s" % v["submission"]["id"]), (403, 404),
           what="the earner reads the validity item's submission id")
    all_lead = expect(w.lead.c.get("/v1/submissions"), 200)["submissions"]
    check(v["submission"]["id"] not in [s["id"] for s in all_lead],
          "a validity item shows up in the lead's submissions as live work")
    assert_not_in_text(json.dumps(view) + json.dumps(lst), [("validity review id", v["id"])],
                       "the earner's view")
    # the score counted for calibration: the window has an item
    row = my_status(w.peer, w.rid)
    with soft():
        check(row is not None and row["window"]["items"] >= 1,
              "the validity item should be in the peer's window: %r" % row)


# ---------------------------------------------------------------------------
# double scoring and adjudication


def double_world(env):
    w = World(env, 2)
    w.cred = credential(env, w.lead, w.rid, "low",
                        {"validity_rate": 0, "second_score_rate": 1.0, "second_score_floor": 1.0})
    grant(w.lead, w.cred["id"], w.peer, "peer")
    grant(w.lead, w.cred["id"], w.expert, "expert")
    qualify(w.lead, w.peer, w.rid)
    qualify(w.lead, w.expert, w.rid)
    return w


@test
def calibration_double_scoring(env):
    w = double_world(env)
    earner, sub, _ = one_video_submission(env, w.cred["id"])
    c1 = expect(w.peer.c.post("/v1/reviews/claim", {"credential_id": w.cred["id"]}), 200)
    eq(c1["submission"]["id"], sub["id"], "peer claims first")
    expect(w.expert.c.post("/v1/reviews/claim", {"credential_id": w.cred["id"]}), 204,
           what="expert claim on low stakes while a peer may score first")
    peer_fb = "PEER-FEEDBACK-%d" % env.uniq()
    expect(w.peer.c.post("/v1/reviews/%s/scores" % c1["id"],
                         scores_body([3, 4, 3, 2], "PEER-COMMENT", peer_fb)), 200)
    view = expect(earner.c.get("/v1/submissions/%s" % sub["id"]), 200)
    eq((view["status"], view["result"]), ("in_review", None),
       "the earner after the first of two scores")
    expect(w.peer.c.post("/v1/reviews/claim", {"credential_id": w.cred["id"]}), 204,
           what="the first scorer claims again")
    c2 = expect(w.expert.c.post("/v1/reviews/claim", {"credential_id": w.cred["id"]}), 200,
                what="the expert claims the second score")
    eq(c2["submission"]["id"], sub["id"], "the second claim's submission")
    txt = json.dumps(c2)
    assert_not_in_text(txt, [("peer's comment", "PEER-COMMENT"), ("peer's feedback", peer_fb),
                             ("peer's id", w.peer.id), ("peer's name", w.peer.name)],
                       "the second scorer's claim")
    check("adjudication" not in c2 and "scores" not in c2, "second claim shows first scores: %s"
          % short(txt, 1200))
    rv = expect(w.expert.c.get("/v1/reviews/%s" % c2["id"]), 200)
    assert_not_in_text(json.dumps(rv), [("peer's comment", "PEER-COMMENT")],
                       "GET of the second review")
    expect(w.expert.c.get("/v1/reviews/%s" % c1["id"]), 403, "forbidden",
           "the second scorer reads the first review")
    # agreement (one level apart on one criterion, same verdict): final, expert's scores stand
    r = expect(w.expert.c.post("/v1/reviews/%s/scores" % c2["id"],
                               scores_body([3, 3, 3, 2], "EXPERT-COMMENT", "expert feedback")), 200)
    eq(r["verdict"], "resubmit", "expert verdict")
    view = expect(earner.c.get("/v1/submissions/%s" % sub["id"]), 200)
    eq(view["status"], "returned", "final status after agreeing double scores")
    check(view["result"] is not None, "result after agreement")
    eq([(s["criterion"], s["level"]) for s in view["result"]["scores"]],
       list(zip(CRITERION_KEYS, [3, 3, 3, 2])), "low stakes: the expert's (second) scores stand")
    check(all("EXPERT-COMMENT" in (s.get("comment") or "") for s in view["result"]["scores"]),
          "the comments shown are the expert's: %s" % short(json.dumps(view["result"])))
    assert_not_in_text(json.dumps(view), [("expert's id", w.expert.id), ("peer's id", w.peer.id),
                                          ("expert's name", w.expert.name)], "the earner's result")
    lead_rv = expect(w.lead.c.get("/v1/reviews/%s" % c1["id"]), 200)
    with soft():
        check(isinstance(lead_rv.get("routing"), dict) and lead_rv["routing"].get("rule"),
              "lead's GET of the first review has routing.rule: %s" % short(json.dumps(lead_rv)))
    # high stakes: an expert first, a second expert; agreement -> the first expert's scores
    high = credential(env, w.lead, w.rid, "high", {"validity_rate": 0, "second_score_rate": 1.0,
                                                   "second_score_floor": 1.0})
    e2 = env.user(["expert"], org="Cal Expert Org 2")
    for e in (w.expert, e2):
        grant(w.lead, high["id"], e, "expert")
    qualify(w.lead, e2, w.rid)
    earner_h, sub_h, _ = one_video_submission(env, high["id"])
    h1 = expect(w.expert.c.post("/v1/reviews/claim", {"credential_id": high["id"]}), 200)
    expect(w.expert.c.post("/v1/reviews/%s/scores" % h1["id"],
                           scores_body([4, 4, 3, 3], "FIRST-EXPERT")), 200)
    eq(expect(earner_h.c.get("/v1/submissions/%s" % sub_h["id"]), 200)["result"], None,
       "high stakes result after one score")
    expect(w.expert.c.post("/v1/reviews/claim", {"credential_id": high["id"]}), 204,
           what="the first expert claims his own submission again")
    h2 = expect(e2.c.post("/v1/reviews/claim", {"credential_id": high["id"]}), 200)
    eq(h2["submission"]["id"], sub_h["id"], "second expert claims the same submission")
    expect(e2.c.post("/v1/reviews/%s/scores" % h2["id"], scores_body([4, 3, 3, 3], "SECOND")), 200)
    view = expect(earner_h.c.get("/v1/submissions/%s" % sub_h["id"]), 200)
    eq(view["status"], "passed", "high stakes final status")
    eq([s["level"] for s in view["result"]["scores"]], [4, 4, 3, 3],
       "high stakes: the first expert's scores stand")


@test
def calibration_adjudication(env):
    w = double_world(env)
    e2 = env.user(["expert"], org="Cal Adj Expert 2")
    grant(w.lead, w.cred["id"], e2, "expert")
    qualify(w.lead, e2, w.rid)
    earner, sub, _ = one_video_submission(env, w.cred["id"])
    c1 = expect(w.peer.c.post("/v1/reviews/claim", {"credential_id": w.cred["id"]}), 200)
    expect(w.peer.c.post("/v1/reviews/%s/scores" % c1["id"],
                         scores_body([3, 3, 3, 3], "SET-A", "feedback A")), 200)
    c2 = expect(w.expert.c.post("/v1/reviews/claim", {"credential_id": w.cred["id"]}), 200)
    expect(w.expert.c.post("/v1/reviews/%s/scores" % c2["id"],
                           scores_body([1, 1, 3, 3], "SET-B", "feedback B")), 200)
    view = expect(earner.c.get("/v1/submissions/%s" % sub["id"]), 200)
    eq((view["status"], view["result"]), ("in_review", None), "the earner during adjudication")
    expect(w.peer.c.post("/v1/reviews/claim", {"credential_id": w.cred["id"]}), 204,
           what="the first scorer cannot adjudicate")
    expect(w.expert.c.post("/v1/reviews/claim", {"credential_id": w.cred["id"]}), 204,
           what="the second scorer cannot adjudicate")
    earner_o = env.user(["earner"])
    expect(earner_o.c.post("/v1/reviews/claim", {"credential_id": w.cred["id"]}), 403,
           "forbidden", "an earner claims")
    adj = expect(w.lead.c.post("/v1/reviews/claim", {"credential_id": w.cred["id"]}), 200,
                 what="the lead claims the adjudication")
    eq(adj["submission"]["id"], sub["id"], "adjudication submission")
    sets = adj.get("adjudication", {}).get("score_sets")
    check(isinstance(sets, list) and len(sets) == 2, "adjudication.score_sets: %s"
          % short(json.dumps(adj), 1200))
    got = sorted(([s["level"] for s in x["scores"]], x["feedback"]) for x in sets)
    eq(got, sorted([([3, 3, 3, 3], "feedback A"), ([1, 1, 3, 3], "feedback B")]),
       "both score sets")
    assert_not_in_text(json.dumps(adj), [("peer's id", w.peer.id), ("expert's id", w.expert.id),
                                         ("peer's name", w.peer.name),
                                         ("expert's name", w.expert.name),
                                         ("peer's email", w.peer.email)], "the adjudication claim")
    expect(e2.c.post("/v1/reviews/claim", {"credential_id": w.cred["id"]}), 204,
           what="a third expert while the lead holds the adjudication")
    expect(w.lead.c.post("/v1/reviews/%s/scores" % adj["id"],
                         scores_body([2, 3, 3, 3], "LEAD-ADJ", "adjudicated")), 200)
    view = expect(earner.c.get("/v1/submissions/%s" % sub["id"]), 200)
    eq(view["status"], "returned", "status after adjudication")
    eq([s["level"] for s in view["result"]["scores"]], [2, 3, 3, 3], "the lead's scores stand")
    eq(view["result"]["feedback"], "adjudicated", "the lead's feedback stands")
    lead_rv = expect(w.lead.c.get("/v1/reviews/%s" % adj["id"]), 200)
    with soft():
        rt = json.dumps(lead_rv.get("routing"))
        check("adjudicat" in rt or "disagree" in rt,
              "the adjudication review's routing names the disagreement: %r"
              % lead_rv.get("routing"))
    # a third expert adjudicates the next one
    earner2, sub2, _ = one_video_submission(env, w.cred["id"])
    c1 = expect(w.peer.c.post("/v1/reviews/claim", {"credential_id": w.cred["id"]}), 200)
    expect(w.peer.c.post("/v1/reviews/%s/scores" % c1["id"], scores_body([4, 4, 4, 4])), 200)
    c2 = expect(w.expert.c.post("/v1/reviews/claim", {"credential_id": w.cred["id"]}), 200)
    eq(c2["submission"]["id"], sub2["id"], "second score of submission 2")
    expect(w.expert.c.post("/v1/reviews/%s/scores" % c2["id"], scores_body([2, 4, 4, 4])), 200)
    a3 = expect(e2.c.post("/v1/reviews/claim", {"credential_id": w.cred["id"]}), 200,
                what="a third expert claims the adjudication")
    check("adjudication" in a3, "third expert's claim carries adjudication: %s" % short(json.dumps(a3)))
    expect(e2.c.post("/v1/reviews/%s/scores" % a3["id"], scores_body([3, 4, 4, 4], "E2")), 200)
    view = expect(earner2.c.get("/v1/submissions/%s" % sub2["id"]), 200)
    eq((view["status"], [s["level"] for s in view["result"]["scores"]]), ("passed", [3, 4, 4, 4]),
       "the third expert's scores stand")
    rep = expect(w.lead.c.get("/v1/reports/routing"), 200)
    row = [x for x in rep.get("credentials", []) if x.get("credential_id") == w.cred["id"]]
    with soft():
        check(row and row[0].get("adjudications_open") == 0,
              "routing report adjudications_open after both were settled: %s" % row)


# ---------------------------------------------------------------------------
# reports


@test
def calibration_reports(env):
    w = double_world(env)
    for levels in ([3, 3, 2, 3], [4, 4, 4, 3], [2, 2, 1, 2]):
        one_video_submission(env, w.cred["id"])
        c1 = expect(w.peer.c.post("/v1/reviews/claim", {"credential_id": w.cred["id"]}), 200)
        expect(w.peer.c.post("/v1/reviews/%s/scores" % c1["id"], scores_body(levels)), 200)
        c2 = expect(w.expert.c.post("/v1/reviews/claim", {"credential_id": w.cred["id"]}), 200)
        expect(w.expert.c.post("/v1/reviews/%s/scores" % c2["id"],
                               scores_body([min(4, l + (i == 0)) for i, l in enumerate(levels)])),
               200)
    cid = w.cred["id"]
    names = metric_names(env)
    for pool in ("all", "peer", "expert"):
        rep = expect(w.lead.c.get("/v1/reports/agreement?credential_id=%s&pool=%s" % (cid, pool)),
                     200, what="agreement report pool=%s" % pool)
        keys = all_keys(rep)
        missing = [n for n in names if n not in keys]
        check(not missing, "agreement report (pool=%s) lacks %s: %s"
              % (pool, missing, short(json.dumps(rep), 800)))
    rep = expect(w.lead.c.get("/v1/reports/agreement?credential_id=%s" % cid), 200)
    check(all(k in json.dumps(rep) for k in CRITERION_KEYS),
          "agreement report has a per-criterion part: %s" % short(json.dumps(rep), 800))
    expect(w.lead.c.get("/v1/reports/agreement?credential_id=%s&since=2020-01-01T00:00:00Z"
                        % cid), 200, what="agreement report with since")
    r = w.lead.c.get("/v1/reports/ratings.csv?credential_id=%s" % cid)
    expect(r, 200, what="ratings.csv")
    check(r.header("content-type", "").startswith("text/csv"),
          "ratings.csv Content-Type %r" % r.header("content-type"))
    rows = list(csv.reader(io.StringIO(r.text)))
    eq(rows[0], ["unit", "rater", "score"], "ratings.csv header")
    body = rows[1:]
    eq(len(body), 3 * 4 * 2, "ratings.csv rows (3 submissions x 4 criteria x 2 raters)")
    for unit, rater, score in body:
        sub, _, crit = unit.rpartition(":")
        check(is_uuid(sub) and crit in CRITERION_KEYS, "ratings.csv unit %r" % unit)
        check(rater in (w.peer.id, w.expert.id), "ratings.csv rater %r" % rater)
        check(score in ("1", "2", "3", "4"), "ratings.csv score %r" % score)
    path = os.path.join(env.workdir, "ratings-%d.csv" % env.uniq())
    with open(path, "w") as f:
        f.write(r.text)
    rc, out, err = run_cli(env.binary, ["irr", path], env.base_env)
    check(rc == 0, "accord irr reads ratings.csv: exit %d %s" % (rc, err))
    rt = expect(w.lead.c.get("/v1/reports/routing"), 200)
    row = [x for x in rt.get("credentials", []) if x.get("credential_id") == cid]
    check(len(row) == 1, "routing report lists the credential: %s" % short(json.dumps(rt), 800))
    row = row[0]
    for k in ("title", "stakes", "peer_review", "reason", "pairs", "kappa", "ci",
              "second_score_share", "queue", "oldest_waiting_hours", "adjudications_open"):
        check(k in row, "routing report row lacks %s: %s" % (k, short(json.dumps(row))))
    eq((row["stakes"], row["peer_review"], row["pairs"]), ("low", "active", 3), "routing row")
    check(set(row["queue"]) >= {"first", "second", "adjudication"}, "queue keys %r" % row["queue"])
    ar = expect(w.lead.c.get("/v1/reports/assessors?rubric_id=%s" % w.rid), 200)
    rows = {x["user_id"]: x for x in ar["assessors"]}
    check(w.peer.id in rows, "assessors report lists the peer: %s" % short(json.dumps(ar)))
    pr = rows[w.peer.id]
    for k in ("name", "status", "reason", "items_scored", "validity", "severity", "trend"):
        check(k in pr, "assessors report row lacks %s: %s" % (k, short(json.dumps(pr))))
    check({"vs_master", "vs_experts"} <= set(pr["severity"]), "severity keys %r" % pr["severity"])
    with soft():
        # the peer was 1 level under the expert on one criterion of 3 submissions (one of
        # them capped at 4): 2 of 12 differences are -1 -> vs_experts = -1/6
        approx(pr["severity"]["vs_experts"], -2.0 / 12, "peer severity vs experts (3 decimals)",
               0.0006)
    # bad input and authorization on the reports
    for q in ("/v1/reports/agreement?credential_id=abc", "/v1/reports/agreement",
              "/v1/reports/agreement?credential_id=%s&pool=crowd" % cid,
              "/v1/reports/agreement?credential_id=%s&since=yesterday" % cid,
              "/v1/reports/ratings.csv?credential_id=xyz", "/v1/reports/ratings.csv",
              "/v1/reports/assessors?rubric_id=1234", "/v1/reports/assessors"):
        expect(w.lead.c.get(q), 400, what=q)
    expect(w.lead.c.get("/v1/reports/agreement?credential_id=%s" % uuid.uuid4()), 404,
           what="agreement of an unknown credential")
    for u in (w.peer, w.expert, env.user(["earner"])):
        for q in ("/v1/reports/agreement?credential_id=%s" % cid, "/v1/reports/routing",
                  "/v1/reports/ratings.csv?credential_id=%s" % cid,
                  "/v1/reports/assessors?rubric_id=%s" % w.rid):
            expect(u.c.get(q), 403, "forbidden", "%s reads %s" % (u.roles, q))
    anon = Client(env.server)
    for q in ("/v1/reports/agreement?credential_id=%s" % cid, "/v1/reports/routing",
              "/v1/reports/ratings.csv?credential_id=%s" % cid,
              "/v1/reports/assessors?rubric_id=%s" % w.rid):
        expect(anon.get(q), 401, "unauthorized", "no token: %s" % q)


# ---------------------------------------------------------------------------
# bad input and authorization on every new endpoint


@test
def calibration_bad_input(env):
    w = World(env, 1)
    cal_grant(env, w.lead, w.rid, w.peer)
    expect(put(w.lead.c, "/v1/rubrics/%s/calibration" % w.rid, {"set_size": 1}), 200)
    cred = credential(env, w.lead, w.rid)
    s = expect(w.peer.c.post("/v1/calibration/sessions", {"rubric_id": w.rid}), 201)
    item = s["items"][0]["id"]
    hj = {"Content-Type": "application/json"}
    endpoints = [
        (w.lead, "PUT", "/v1/rubrics/%s/calibration" % w.rid),
        (w.lead, "PUT", "/v1/credentials/%s/policy" % cred["id"]),
        (w.lead, "POST", "/v1/anchors"),
        (w.peer, "POST", "/v1/calibration/sessions"),
        (w.peer, "POST", "/v1/calibration/sessions/%s/items/%s/scores" % (s["id"], item)),
        (w.lead, "POST", "/v1/assessors/%s/qualifications" % w.peer.id),
    ]
    for u, method, path in endpoints:
        for body in (b'{"a":', b"not json", b'{"a": 1,}', b"\xff\xfe{}", b'{"a":1} x'):
            expect(u.c.request(method, path, data=body, headers=hj), 400, "invalid_json",
                   "%s %s with %r" % (method, path, body))
        for body in (b"[1]", b'"s"', b"7", b"null"):
            expect(u.c.request(method, path, data=body, headers=hj), 400,
                   ("invalid_json", "bad_request"), "%s %s with a JSON %r" % (method, path, body))
        expect(u.c.request(method, path, data=b"", headers=hj), (400, 422),
               what="%s %s with an empty body" % (method, path))
    for body in ({"rubric_id": 5}, {"rubric_id": "nope"}, {"rubric_id": None}, {}):
        expect(w.peer.c.post("/v1/calibration/sessions", body), (400, 422),
               what="session with %r" % body)
    ipath = "/v1/calibration/sessions/%s/items/%s/scores" % (s["id"], item)
    for body in ({"scores": "all", "feedback": "f"}, {"scores": [1, 2], "feedback": "f"},
                 {"scores": [{"criterion": 1, "level": 3}], "feedback": "f"},
                 dict(scores_body([3, 3, 3, 3]), feedback=5)):
        expect(w.peer.c.post(ipath, body), 400, what="item score %r" % body)
    # malformed UUIDs in paths and queries
    for bad in BAD_UUIDS:
        for u, method, path, body in [
                (w.lead, "GET", "/v1/rubrics/%s/calibration" % bad, None),
                (w.lead, "PUT", "/v1/rubrics/%s/calibration" % bad, {"window": 5}),
                (w.lead, "PUT", "/v1/credentials/%s/policy" % bad, {"validity_rate": 0.1}),
                (w.lead, "GET", "/v1/anchors/%s" % bad, None),
                (w.lead, "GET", "/v1/anchors?rubric_id=%s" % bad, None),
                (w.peer, "GET", "/v1/calibration/sessions/%s" % bad, None),
                (w.peer, "POST", "/v1/calibration/sessions/%s/items/%s/scores" % (bad, item),
                 scores_body([3, 3, 3, 3])),
                (w.peer, "POST", "/v1/calibration/sessions/%s/items/%s/scores" % (s["id"], bad),
                 scores_body([3, 3, 3, 3])),
                (w.lead, "POST", "/v1/assessors/%s/qualifications" % bad,
                 {"rubric_id": w.rid, "status": "qualified", "reason": "r"}),
                (w.lead, "GET", "/v1/reports/agreement?credential_id=%s" % bad, None),
                (w.lead, "GET", "/v1/reports/ratings.csv?credential_id=%s" % bad, None),
                (w.lead, "GET", "/v1/reports/assessors?rubric_id=%s" % bad, None)]:
            expect(u.c.request(method, path, json_body=body), 400, ("invalid_uuid", "bad_request"),
                   "%s %s" % (method, path))
    # wrong methods on the new paths
    for method, path in (("DELETE", "/v1/rubrics/%s/calibration" % w.rid),
                         ("GET", "/v1/credentials/%s/policy" % cred["id"]),
                         ("PUT", "/v1/anchors"), ("GET", "/v1/calibration/sessions"),
                         ("POST", "/v1/me/qualifications"), ("POST", "/v1/reports/routing")):
        expect(w.lead.c.request(method, path), (404, 405), what="%s %s" % (method, path))
    # nothing changed
    eq(expect(w.lead.c.get("/v1/rubrics/%s/calibration" % w.rid), 200)["window"], 20,
       "settings after bad requests")
    eq(expect(w.peer.c.get("/v1/calibration/sessions/%s" % s["id"]), 200)["items"][0]["scored"],
       False, "the session's item after bad requests")


@test
def calibration_authz(env):
    w = World(env, 1)
    cal_grant(env, w.lead, w.rid, w.peer)
    expect(put(w.lead.c, "/v1/rubrics/%s/calibration" % w.rid, {"set_size": 1}), 200)
    cred = credential(env, w.lead, w.rid)
    s = expect(w.peer.c.post("/v1/calibration/sessions", {"rubric_id": w.rid}), 201)
    item = s["items"][0]["id"]
    anchor = w.anchors[0]
    anon = Client(env.server)
    bad = Client(env.server, "not-a-token-" + uuid.uuid4().hex)
    calls = [("GET", "/v1/rubrics/%s/calibration" % w.rid, None),
             ("PUT", "/v1/rubrics/%s/calibration" % w.rid, {"window": 9}),
             ("PUT", "/v1/credentials/%s/policy" % cred["id"], {"validity_rate": 0.2}),
             ("POST", "/v1/anchors", {"rubric_id": w.rid, "artifact_ids": anchor["artifact_ids"],
                                      "master": master([3, 3, 3, 3])}),
             ("GET", "/v1/anchors?rubric_id=%s" % w.rid, None),
             ("GET", "/v1/anchors/%s" % anchor["id"], None),
             ("POST", "/v1/calibration/sessions", {"rubric_id": w.rid}),
             ("GET", "/v1/calibration/sessions/%s" % s["id"], None),
             ("POST", "/v1/calibration/sessions/%s/items/%s/scores" % (s["id"], item),
              scores_body([3, 3, 3, 3])),
             ("GET", "/v1/me/qualifications", None),
             ("POST", "/v1/assessors/%s/qualifications" % w.peer.id,
              {"rubric_id": w.rid, "status": "qualified", "reason": "r"})]
    for who, c in (("no token", anon), ("unknown token", bad)):
        for method, path, body in calls:
            expect(c.request(method, path, json_body=body), 401, "unauthorized",
                   "%s: %s %s" % (who, method, path))
    earner = env.user(["earner"])
    other = env.user(["assessor"])
    forbidden = [
        (w.peer, "PUT", "/v1/rubrics/%s/calibration" % w.rid, {"window": 9}),
        (w.expert, "PUT", "/v1/rubrics/%s/calibration" % w.rid, {"window": 9}),
        (earner, "PUT", "/v1/rubrics/%s/calibration" % w.rid, {"window": 9}),
        (w.peer, "PUT", "/v1/credentials/%s/policy" % cred["id"], {"validity_rate": 0.2}),
        (w.expert, "PUT", "/v1/credentials/%s/policy" % cred["id"], {"validity_rate": 0.2}),
        (earner, "POST", "/v1/calibration/sessions", {"rubric_id": w.rid}),
        (earner, "POST", "/v1/assessors/%s/qualifications" % w.peer.id,
         {"rubric_id": w.rid, "status": "qualified", "reason": "r"}),
        (other, "POST", "/v1/assessors/%s/qualifications" % other.id,
         {"rubric_id": w.rid, "status": "qualified", "reason": "r"}),
    ]
    for u, method, path, body in forbidden:
        expect(u.c.request(method, path, json_body=body), 403, "forbidden",
               "%s: %s %s" % (u.roles, method, path))
    expect(w.lead.c.post("/v1/calibration/sessions/%s/items/%s/scores" % (s["id"], item),
                         scores_body([3, 3, 3, 3])), (403, 404),
           what="a lead scores an assessor's session item")
    expect(other.c.get("/v1/calibration/sessions/%s" % s["id"]), (403, 404),
           what="another assessor reads the session")
    expect(other.c.post("/v1/calibration/sessions/%s/items/%s/scores" % (s["id"], item),
                        scores_body([3, 3, 3, 3])), (403, 404),
           what="another assessor scores the session's item")
    eq(expect(w.peer.c.get("/v1/calibration/sessions/%s" % s["id"]), 200)["items"][0]["scored"],
       False, "the item after refused scores")
    eq(expect(w.lead.c.get("/v1/rubrics/%s/calibration" % w.rid), 200)["window"], 20,
       "settings after refused PUTs")

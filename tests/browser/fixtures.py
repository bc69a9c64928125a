# SPDX-License-Identifier: Apache-2.0
"""fixtures.py - what each browser story starts from, made through the API
(people, organisations, a credential, grants): the stories then do
everything else in the browser. Each story gets people of its own."""

from harness import expect


def person(env, roles, name, org):
    """A user with a password (set through an invitation, as a person would)."""
    u = env.user(roles, name=name, org=org if org else None, session=True)
    return {"id": u.id, "email": u.email, "name": u.name, "password": u.password}


def make(env, sso=None):
    """sso: the running OpenID test provider (tests/oidc/provider.mjs), or None."""
    fx = {}
    lead = env.user(["lead"], name="Lena Lead")
    rubric = env.rubric(lead)
    cred = env.credential(lead, rubric["id"], videos=3,
                          title="Morning Meeting for SEL")
    # Ms. Brown comes in through her invitation link: the story sets her password.
    org_a = "Lincoln Elementary"
    env.org(org_a)
    inv = env.invite(env.admin.c, "ms.brown@example.org", name="Alice Brown",
                     roles=["earner"], org=org_a)
    peer = env.user(["assessor"], name="Pat Peer", org="Oak Ridge School", session=True)
    env.grant(lead, cred["id"], peer)
    fx["story"] = {
        "credential": {"id": cred["id"], "title": cred["title"]},
        "invite_url": inv["url"],
        "earner": {"email": "ms.brown@example.org", "name": "Alice Brown",
                   "password": "a lantern by the tidepool 42"},
        "peer": {"email": peer.email, "password": peer.password, "name": peer.name},
        "criteria": [c["title"] for c in rubric["criteria"]],
    }
    # drafts, dropped connections, another earner's submission
    other = person(env, ["earner"], "Omar Other", "Maple School")
    c2 = env.credential(lead, rubric["id"], videos=1, title="Restorative Circles")
    peer2 = env.user(["assessor"], name="Quinn Peer", org="Birch School", session=True)
    env.grant(lead, c2["id"], peer2)
    fx["edges"] = {
        "credential": {"id": c2["id"], "title": c2["title"]},
        "earner": person(env, ["earner"], "Erin Earner", "Cedar School"),
        "other": other,
        "peer": {"email": peer2.email, "password": peer2.password},
    }
    fx["live"] = live_fixture(env, lead, rubric)
    fx["lead_story"] = {
        "lead": person(env, ["lead"], "Lee Lead", ""),
        "assessor": person(env, ["assessor"], "Cal Assessor", "Willow School"),
        "seeded": seed_reliability(env, lead),
    }
    # the token a notification mail to Erin would carry (tests/http/t_notify_mail.py
    # follows real mails through an SMTP sink; here only the page is under test)
    import hashlib
    import secrets
    from harness import sql
    token = secrets.token_hex(32)
    sql(env, "INSERT INTO unsubscribe_tokens (token_hash, user_id) VALUES ('%s', '%s')"
        % (hashlib.sha256(token.encode()).hexdigest(), fx["edges"]["earner"]["id"]))
    fx["edges"]["unsubscribe_token"] = token
    fx["people"] = {
        "lead": person(env, ["lead"], "Lou Peoplelead", ""),
        "admin": person(env, ["admin"], "Ada Admin", ""),
        "org": "Willow School",
    }
    fx["notices"] = dead_notices(env, fx["edges"]["earner"])
    if sso:
        fx["sso"] = make_sso(env, sso)
    return fx


def dead_notices(env, earner):
    """Two notices the outbox gave up on, as a refusing mail server leaves them
    (tests/http/t_notify_mail.py makes real ones through an SMTP sink; here
    only the page is under test): Erin's result mail, and an invitation."""
    from harness import sql
    sql(env, """
        WITH e AS (INSERT INTO events (type, payload) VALUES ('submission.result', '{}') RETURNING id)
        INSERT INTO outbox (event_id, channel, user_id, reason, status, attempts, last_status, last_error)
        SELECT id, 'email', '%s', 'earner', 'dead', 8, 550, '5.1.1 mailbox unavailable' FROM e"""
        % earner["id"])
    sql(env, """
        WITH e AS (INSERT INTO events (type, payload) VALUES ('invitation.created', '{}') RETURNING id)
        INSERT INTO outbox (event_id, channel, address, reason, status, attempts, last_error)
        SELECT id, 'email', 'typo@exmaple.org', 'invitee', 'dead', 8, 'no mail server for exmaple.org'
          FROM e""")
    return {"earner": earner["name"]}


def make_sso(env, prov):
    """A district's identity provider (the real npm oidc-provider) and who
    comes through it: Dana, invited by email; Ivy, whose invitation went to
    her home address while the district knows her by her school one."""
    name = "Lincoln District SSO"
    p = expect(env.admin.c.post("/v1/identity-providers", {
        "name": name, "issuer": prov.issuer, "client_id": "accord",
        "client_secret": "accord-test-secret"}), 201, what="create identity provider")
    env.org("Lincoln District")
    env.invite(env.admin.c, "dana.diaz@lincoln.k12.example.us", name="Dana Diaz",
               roles=["earner"], org="Lincoln District")
    ivy = env.invite(env.admin.c, "ivy.home@example.org", name="Ivy Ito", roles=["earner"],
                     org="Lincoln District")
    return {"provider": {"id": p["id"], "name": name},
            "next_login": prov.issuer + "/test/next-login",
            "dana": {"sub": "lincoln-dana", "email": "dana.diaz@lincoln.k12.example.us",
                     "name": "Dana Diaz"},
            "ivy": {"sub": "lincoln-ivy", "email": "ivy.ito@lincoln.k12.example.us",
                    "name": "Ivy Ito", "invite_url": ivy["url"]},
            "stranger": {"sub": "elsewhere-zed", "email": "zed@elsewhere.example.org",
                         "name": "Zed Unknown"}}


def live_fixture(env, lead, rubric):
    """Live updates (issue 14 item 3): an assessor granted a credential of its
    own, an earner whose evidence is uploaded; the story submits and claims
    through the API (bearer tokens) while both watch their pages."""
    cred = env.credential(lead, rubric["id"], videos=1, title="Live: Circle Time")
    peer = env.user(["assessor"], name="Lia Livepeer", org="Elm School", session=True)
    env.grant(lead, cred["id"], peer)
    earner = env.user(["earner"], name="Eli Liveearner", org="Ash School", session=True)
    arts = env.evidence(earner.c, video_size=256, videos=1)
    return {
        "credential": {"id": cred["id"], "title": cred["title"]},
        "peer": {"email": peer.email, "password": peer.password, "token": peer.token},
        "earner": {"email": earner.email, "password": earner.password, "token": earner.token},
        "artifact_ids": [a["id"] for a, _ in arts],
    }


def seed_reliability(env, lead):
    """A credential whose every submission was scored by a peer and then an
    expert (second_score_rate 1): the agreement and routing reports have data.
    The pairs differ by at most one level and never in verdict, so none goes
    to adjudication and every pair counts."""
    rubric = env.rubric(lead, title="Responsive Classroom")
    cred = env.credential(lead, rubric["id"], videos=1, title="Seeded: Responsive Classroom",
                          review_policy={"validity_rate": 0, "second_score_rate": 1})
    peer = env.user(["assessor"], name="Sam Seedpeer")
    expert = env.user(["expert"], name="Ezra Expert")
    env.grant(lead, cred["id"], peer)
    env.grant(lead, cred["id"], expert, pool="expert")
    keys = [c["key"] for c in rubric["criteria"]]
    pairs = [((3, 3, 4, 3), (3, 4, 4, 3)), ((2, 3, 3, 3), (2, 2, 3, 3)),
             ((4, 4, 4, 3), (4, 4, 3, 3)), ((1, 2, 3, 3), (1, 2, 2, 3)),
             ((3, 4, 4, 4), (3, 4, 4, 4)), ((2, 2, 3, 2), (2, 3, 3, 2))]
    for first, second in pairs:
        earner = env.user(["earner"])
        arts = env.evidence(earner.c, videos=1)
        env.submit(earner.c, cred["id"], [a["id"] for a, _ in arts])
        for who, levels in ((peer, first), (expert, second)):
            r = expect(who.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200,
                       what="seed: claim by %s" % who.name)
            expect(who.c.post("/v1/reviews/%s/scores" % r["id"], {
                "scores": [{"criterion": k, "level": v} for k, v in zip(keys, levels)],
                "feedback": "seeded"}), 200, what="seed: score by %s" % who.name)
    # Bo failed calibration as often as the rubric allows (once here): the
    # lead's report offers "Allow another attempt"
    from t_calibration import make_anchor, put
    from t_hardening import JUNK, session_scores
    expect(put(lead.c, "/v1/rubrics/%s/calibration" % rubric["id"],
               {"set_size": 1, "max_failed_sessions": 1}), 200, what="seed: calibration settings")
    make_anchor(env, lead, rubric["id"], [3, 3, 3, 3], "seed-anchor-1")
    make_anchor(env, lead, rubric["id"], [2, 3, 3, 2], "seed-anchor-2")
    bo = env.user(["assessor"], name="Bo Blocked")
    env.grant(lead, cred["id"], bo, qualify=False)
    s = expect(bo.c.post("/v1/calibration/sessions", {"rubric_id": rubric["id"]}), 201,
               what="seed: Bo's calibration session")
    session_scores(bo, s, JUNK)
    return {"id": cred["id"], "title": cred["title"], "blocked": bo.name}


def make_bench(env):
    """make bench: an earner (who records and submits three 50 MB videos in
    the browser), a qualified peer, a lead."""
    lead = env.user(["lead"], name="Bea Benchlead")
    rubric = env.rubric(lead)
    cred = env.credential(lead, rubric["id"], videos=3, title="Bench: Morning Meeting")
    peer = env.user(["assessor"], name="Ben Benchpeer", session=True)
    env.grant(lead, cred["id"], peer)
    return {"bench": {
        "credential": {"id": cred["id"], "title": cred["title"]},
        "earner": person(env, ["earner"], "Eve Benchearner", "Bench School"),
        "peer": {"email": peer.email, "password": peer.password},
        "lead": person(env, ["lead"], "Lou Benchlead", ""),
    }}

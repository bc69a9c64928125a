# SPDX-License-Identifier: Apache-2.0
"""fixtures.py - what each browser story starts from, made through the API
(people, organisations, a credential, grants): the stories then do
everything else in the browser. Each story gets people of its own."""

from harness import expect


def person(env, roles, name, org):
    """A user with a password (set through an invitation, as a person would)."""
    u = env.user(roles, name=name, org=org, session=True)
    return {"id": u.id, "email": u.email, "name": u.name, "password": u.password}


def make(env):
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
    expect(lead.c.get("/v1/me"), 200)
    return fx

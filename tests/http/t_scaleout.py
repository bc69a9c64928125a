# SPDX-License-Identifier: Apache-2.0
"""Issue 13 item 3: several `accord serve` processes on one database, no
sticky sessions. Two servers (A and B) share the suite's database and artifact
directory (the local backend on a shared disk); every step below goes to one
server and its consequence is checked on the other: credentials and their
revocation (each server caches valid credentials for 10 s, so a refusal
within 5 s proves the NOTIFY crossed), sessions, leases and the evidence they
open, the churn limit and the sign-in throttle, tus uploads resumed on the
other server after a kill -9, and the reliability estimate (a stale estimate
never overwrites a newer one; an estimate a dead server never recomputed is
recomputed by the survivors' sweep)."""

import os
import time

from harness import Client, Failure, check, eq, expect, sha256, short, sql, test

REVOCATION_BOUND = 5.0  # seconds; well under the gate's 10 s revalidation
SWEEP_BOUND = 30.0      # seconds; the reliability sweep runs every 5 s


def metric(server, name):
    r = Client(server).get("/metrics")
    eq(r.status, 200, "/metrics status")
    for line in r.text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise Failure("/metrics of %s has no %s" % (server.name, name))


def refused_soon(client, what, bound=REVOCATION_BOUND):
    """Polls GET /v1/me until 401; fails after bound seconds."""
    deadline = time.monotonic() + bound
    while True:
        r = client.get("/v1/me")
        if r.status == 401:
            return r
        check(r.status == 200, "%s: GET /v1/me answered %s" % (what, r.describe()))
        check(time.monotonic() < deadline, "%s: still accepted after %.0f s" % (what, bound))
        time.sleep(0.05)


def two_servers(env, extra=None):
    a = env.start_server("scale-a", extra)
    b = env.start_server("scale-b", extra)
    return a, b


@test
def scaleout_credentials_and_sessions(env):
    a, b = two_servers(env)
    # a token, cached by both servers, revoked through A: B refuses it at once
    u = env.user(["earner"], server=a)
    ua, ub = u.c, u.on(b)
    me = expect(ua.get("/v1/me"), 200, what="token on A")
    for _ in range(2):
        expect(ub.get("/v1/me"), 200, what="token on B (cached)")
    flushes_b = metric(b, "accord_auth_invalidations_total")
    expect(env.admin.c.on(a).delete("/v1/tokens/%s" % me["auth"]["token_id"]), 204,
           what="admin revokes the token through A")
    refused_soon(ub, "a token revoked through A, on B")
    check(metric(b, "accord_auth_invalidations_total") > flushes_b,
          "B's credential cache was not flushed by the revocation on A")

    # a browser session made on A works on B (no sticky sessions), CSRF included
    p = env.user(["earner"], session=True)
    pa = p.c.on(a)
    sa, _ = pa.sign_in(p.email, p.password, what="sign in on A")
    sb = sa.on(b)
    eq(expect(sb.get("/v1/me"), 200, what="A's session cookie on B")["id"], p.id,
       "the session's user on B")
    tok = expect(sb.post("/v1/me/tokens", {"name": "made on B"}), 201,
                 what="a state-changing request on B with A's session and CSRF token")
    check(tok.get("token", "").startswith("acc_"), "token made through B: %s" % short(str(tok)))
    expect(sa.get("/v1/me"), 200, what="the session on A (cached)")
    # signing out on B ends the session on A at once
    expect(sb.delete("/v1/sessions/current"), 204, what="sign out on B")
    refused_soon(sa, "a session ended on B, on A")
    # and a user disabled through B loses every credential on A
    v = env.user(["earner"], server=a)
    expect(v.c.get("/v1/me"), 200, what="second user on A")
    r = env.admin.c.on(b).patch("/v1/users/%s" % v.id, {"disabled": True})
    expect(r, 200, what="admin disables the user through B")
    refused_soon(v.c, "a user disabled through B, on A")


@test
def scaleout_leases_and_limits(env):
    a, b = two_servers(env, {"ACCORD_MAX_RELEASES": "2"})
    lead = env.user(["lead"], server=a)
    cred = env.credential(lead, env.rubric(lead)["id"])
    subs = []
    for i in range(3):
        e = env.user(["earner"], org="Scale Elementary", server=b if i % 2 else a)
        ev = env.evidence(e.c, video_size=1024)
        subs.append((env.submit(e.c, cred["id"], [x["id"] for x, _ in ev]), ev))
    p1 = env.user(["assessor"], org="Scale Assessors 1", server=a)
    p2 = env.user(["assessor"], org="Scale Assessors 2", server=b)
    for p in (p1, p2):
        env.grant(lead, cred["id"], p)

    # a lease taken on A holds on B: p2 gets the next submission, not p1's
    c1 = expect(p1.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200,
                what="p1 claims on A")
    eq(c1["submission"]["id"], subs[0][0]["id"], "oldest first")
    c2 = expect(p2.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200,
                what="p2 claims on B")
    check(c2["submission"]["id"] != c1["submission"]["id"],
          "B handed out the submission A leased: %s" % c2["submission"]["id"])
    # a draft saved through A is read and continued through B (a second device);
    # the stale writer on A gets 409 instead of overwriting B's newer text
    draft = {"scores": [{"criterion": "reflection", "level": 3, "comment": "typed on A"}],
             "feedback": "so far"}
    v1 = expect(p1.c.request("PUT", "/v1/reviews/%s/draft" % c1["id"],
                             json_body={"draft": draft, "version": 0}), 200,
                what="save a draft through A")["version"]
    got = expect(p1.on(b).get("/v1/reviews/%s/draft" % c1["id"]), 200, what="the draft on B")
    eq((got["draft"], got["version"]), (draft, v1), "the draft saved on A, read on B")
    draft_b = dict(draft, feedback="continued on B")
    expect(p1.on(b).request("PUT", "/v1/reviews/%s/draft" % c1["id"],
                            json_body={"draft": draft_b, "version": v1}), 200,
           what="continue the draft through B")
    expect(p1.c.request("PUT", "/v1/reviews/%s/draft" % c1["id"],
                        json_body={"draft": draft, "version": v1}), 409, "draft_conflict",
           "A's stale save after B's")
    eq(expect(p1.c.get("/v1/reviews/%s/draft" % c1["id"]), 200)["draft"], draft_b,
       "the draft on A after the conflict")
    # the lease opens the evidence on either server, release through B closes it on A
    art = c1["submission"]["artifacts"][0]["id"]
    expect(p1.on(b).get("/v1/artifacts/%s/content" % art), 200,
           what="p1 reads the leased evidence through B")
    expect(p1.on(b).post("/v1/reviews/%s/release" % c1["id"]), 200, what="p1 releases on B")
    expect(p1.c.get("/v1/artifacts/%s/content" % art), 403, "forbidden",
           "evidence through A after the release on B")

    # churn limit 2, counted across servers: one release on B (above), one on A
    c3 = expect(p1.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200,
                what="p1 claims again on A")
    expect(p1.c.post("/v1/reviews/%s/release" % c3["id"]), 200, what="p1 releases on A")
    expect(p1.on(b).post("/v1/reviews/claim", {"credential_id": cred["id"]}), 429, "churn_limit",
           "a claim on B after one release on each server (limit 2)")
    expect(p1.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 429, "churn_limit",
           "a claim on A after one release on each server (limit 2)")

    # the sign-in throttle is the database's: failures on A and B add up
    n = env.uniq()
    t = env.user(["earner"], session=True, email="scale-throttle%d@example.org" % n)
    ca = Client(a, source="127.0.0.31")
    cb = Client(b, source="127.0.0.31")
    for i in range(5):
        (ca if i % 2 else cb).sign_in(t.email, "wrong guess %d" % i, status=401)
    _, r = ca.sign_in(t.email, t.password, status=429, what="sign-in on A after 5 failures "
                      "split over A and B")
    _, r = cb.sign_in(t.email, t.password, status=429, what="sign-in on B after 5 failures "
                      "split over A and B")
    check(int(r.header("retry-after", "0")) > 0, "429 without Retry-After on B")


@test
def scaleout_upload_resumes_on_the_other_server(env):
    """A tus upload begun on A, A killed (-9) after the first chunk: B reports
    the offset and takes the rest (the part file is on the shared disk)."""
    a, b = two_servers(env)
    e = env.user(["earner"], server=a)
    data = os.urandom(300 * 1024)
    cut = 128 * 1024
    tus = {"Tus-Resumable": "1.0.0"}
    meta = "kind dmlkZW8=,filename Y2xpcC5tcDQ=,filetype dmlkZW8vbXA0"  # video, clip.mp4, video/mp4
    r = e.c.request("POST", "/v1/uploads", data=b"",
                    headers=dict(tus, **{"Upload-Length": str(len(data)),
                                         "Upload-Metadata": meta}))
    uid = expect(r, 201, what="create the upload on A")["id"]
    r = e.c.request("PATCH", "/v1/uploads/" + uid, data=data[:cut],
                    headers=dict(tus, **{"Content-Type": "application/offset+octet-stream",
                                         "Upload-Offset": "0"}))
    eq(r.status, 204, "first chunk through A (%s)" % r.text[:200])
    a.kill()
    eb = e.on(b)
    r = eb.request("HEAD", "/v1/uploads/" + uid, headers=tus)
    eq((r.status, r.header("upload-offset")), (200, str(cut)), "HEAD on B after A died")
    r = eb.request("PATCH", "/v1/uploads/" + uid, data=data[cut:],
                   headers=dict(tus, **{"Content-Type": "application/offset+octet-stream",
                                        "Upload-Offset": str(cut)}))
    eq(r.status, 204, "the rest through B (%s)" % r.text[:200])
    aid = r.header("x-artifact-id")
    art = expect(eb.get("/v1/artifacts/%s" % aid), 200, what="the artifact on B")
    eq((art["bytes"], art["sha256"]), (len(data), sha256(data)), "the resumed artifact")
    got = eb.get("/v1/artifacts/%s/content" % aid, headers={"Range": "bytes=1000-1999"})
    eq((got.status, got.body), (206, data[1000:2000]), "seeking in the resumed video on B")


@test
def scaleout_reliability_estimate(env):
    """The estimate of a credential's peer/expert agreement, written by
    whichever server recorded the pair."""
    a, b = two_servers(env)
    lead = env.user(["lead"], server=a)
    rubric = env.rubric(lead)
    cred = env.credential(lead, rubric["id"],
                          review_policy={"validity_rate": 0, "second_score_rate": 1.0,
                                         "second_score_floor": 1.0})
    peer = env.user(["assessor"], org="Scale Peer Org", server=a)
    expert = env.user(["expert"], org="Scale Expert Org", server=b)
    env.grant(lead, cred["id"], peer, "peer")
    env.grant(lead, cred["id"], expert, "expert")
    for i, levels in enumerate(([3, 3, 3, 3], [2, 3, 4, 3])):
        e = env.user(["earner"], org="Scale Pair Earners", server=b)
        ev = env.evidence(e.c, video_size=256, videos=3)
        env.submit(e.c, cred["id"], [x["id"] for x, _ in ev])
        for who in (peer, expert):      # the peer scores through A, the expert through B
            c = expect(who.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200,
                       what="%s claims" % who.email)
            body = {"scores": [{"criterion": s["criterion"], "level": lv}
                               for s, lv in zip(env.scores({}), levels)], "feedback": "ok"}
            expect(who.c.post("/v1/reviews/%s/scores" % c["id"], body), 200, what="score")

    def routing_row():
        rows = expect(lead.c.get("/v1/reports/routing"), 200)["credentials"]
        return [x for x in rows if x["credential_id"] == cred["id"]][0]

    deadline = time.monotonic() + SWEEP_BOUND
    while routing_row()["pairs"] != 2:
        check(time.monotonic() < deadline, "the estimate never counted the 2 pairs: %s"
              % routing_row())
        time.sleep(0.1)
    held = routing_row()
    # an estimate read before the second pair, arriving last (a slow server),
    # is ignored: the routing state keeps the newer one
    sql(env, "SELECT routing_update('%s', 1, -0.5, -0.9, 0.1, 1)" % cred["id"])
    now = routing_row()
    eq((now["pairs"], now["kappa"], now["ci"]), (held["pairs"], held["kappa"], held["ci"]),
       "the routing state after a stale estimate arrived")
    # a server that recorded a pair and died before recomputing: the estimate
    # is behind (here: forgotten), and the surviving servers' sweep redoes it
    sql(env, "UPDATE credentials SET routing_state = '{}', reliability_seen = 0 "
             "WHERE id = '%s'" % cred["id"])
    eq(routing_row()["pairs"], 0, "pairs after the estimate was lost")
    b.kill()
    deadline = time.monotonic() + SWEEP_BOUND
    while routing_row()["pairs"] != 2:
        check(time.monotonic() < deadline, "no server recomputed the lost estimate within "
              "%.0f s: %s" % (SWEEP_BOUND, routing_row()))
        time.sleep(0.2)
    eq((routing_row()["kappa"], routing_row()["ci"]), (held["kappa"], held["ci"]),
       "the recomputed estimate")

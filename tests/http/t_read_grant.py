# SPDX-License-Identifier: Apache-2.0
"""Evidence read grants (issue 15, item 6; server/read_grant.h): a server
reuses an evidence read's authorization for a moment instead of asking the
database for every range, and throws it away the instant anything that could
revoke it happens. Each test reads over one kept-alive connection, so that
its reads meet the same event loop's grants; /metrics says how each read was
authorized. Nothing here is timed: waits poll for an outcome with a bound."""

import hashlib
import http.client
import re
import time

from harness import HOST, Client, check, eq, expect, sql, test

WAIT = 15.0  # bound on every poll below (seconds)


class Reader:
    """Range reads of one artifact over one kept-alive connection."""

    def __init__(self, server, path, data):
        self.conn = http.client.HTTPConnection(HOST, server.port, timeout=30)
        self.path = path
        self.data = data

    def read(self, token, first=0, last=999):
        self.conn.request("GET", self.path, headers={"Authorization": "Bearer " + token,
                                                     "Range": "bytes=%d-%d" % (first, last)})
        r = self.conn.getresponse()
        body = r.read()
        if r.status == 206:
            eq(body, self.data[first:last + 1], "range %d-%d's bytes" % (first, last))
        return r.status

    def close(self):
        self.conn.close()


def counters(server):
    r = Client(server).get("/metrics")
    expect(r, 200, what="/metrics")
    out = {k: int(v) for k, v in
           re.findall(r'(?m)^accord_evidence_reads_total\{authorized="(\w+)"\} (\d+)$', r.text)}
    for name in ("accord_read_grant_invalidations_total", "accord_auth_invalidations_total"):
        m = re.search(r"(?m)^%s (\d+)$" % name, r.text)
        check(m, "/metrics has no %s" % name)
        out[name] = int(m.group(1))
    check("database" in out and "grant" in out,
          "/metrics has no accord_evidence_reads_total by authorized=database|grant")
    return out


def read_until_grant(env, reader, token, what):
    """Reads ranges until one is served from a grant (the first of a moment
    asks the database; writes and catch-ups just before may drop a grant)."""
    before = counters(env.server)
    deadline = time.monotonic() + WAIT
    i = 0
    while True:
        st = reader.read(token, i * 1000, i * 1000 + 999)
        check(st == 206, "%s: range %d answered %d" % (what, i, st))
        now = counters(env.server)
        if now["grant"] > before["grant"]:
            return now
        check(time.monotonic() < deadline,
              "%s: no read served from a grant in %.0f s (%d reads; before %r, now %r)"
              % (what, WAIT, i + 1, before, now))
        i = (i + 1) % 8


def wait_for_drop(env, before, what, counter="accord_read_grant_invalidations_total"):
    """Until the main server's counter (by default: its grants dropped) moved past `before`."""
    deadline = time.monotonic() + WAIT
    while counters(env.server)[counter] == before:
        check(time.monotonic() < deadline, "%s: %s did not move in %.0f s" % (what, counter, WAIT))
        time.sleep(0.02)


def claimed_reading(env, tag):
    """An assessor holding a review lease on an earner's video."""
    lead = env.user(["lead"])
    cred = env.credential(lead, env.rubric(lead)["id"])
    earner = env.user(["earner"], org="Grant Org E %s" % tag)
    ev = env.evidence(earner.c, video_size=16 * 1024)
    env.submit(earner.c, cred["id"], [a["id"] for a, _ in ev])
    assessor = env.user(["assessor"], org="Grant Org A %s" % tag)
    env.grant(lead, cred["id"], assessor)
    cl = expect(assessor.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200,
                what="the assessor claims")
    art, data = ev[0]
    return lead, earner, assessor, cl, art, data


def audit_rows(env, art_id, user_id):
    return sql(env, "SELECT count(*) FROM audit_log WHERE action = 'artifact.read'"
                    " AND object_id = '%s' AND actor_id = '%s'" % (art_id, user_id))


@test
def read_grant_ranges_within_a_moment(env):
    """The first range is authorized by the database, the next ones by the
    grant; one artifact.read row for all."""
    lead = env.user(["lead"])
    data = bytes(range(256)) * 64
    art = env.upload(lead.c, "video", data, filename="moment.mp4")
    reader = Reader(env.server, "/v1/artifacts/%s/content" % art["id"], data)
    try:
        before = counters(env.server)
        after = read_until_grant(env, reader, lead.token, "the owner")
        check(after["database"] > before["database"], "the first range asked the database")
        # more ranges in the same moment: mostly grants now
        for i in range(4):
            eq(reader.read(lead.token, i * 100, i * 100 + 99), 206, "range %d" % i)
    finally:
        reader.close()
    eq(audit_rows(env, art["id"], lead.id), "1", "every range of the minute: one artifact.read row")


@test
def read_grant_not_shared_with_another_user(env):
    """A grant is the reader's own: someone without the right is refused on
    the same connection, right after the holder was served from a grant, and
    the holder still reads."""
    lead, earner, assessor, cl, art, data = claimed_reading(env, "other")
    stranger = env.user(["assessor"], org="Grant Org S")
    reader = Reader(env.server, "/v1/artifacts/%s/content" % art["id"], data)
    try:
        read_until_grant(env, reader, assessor.token, "the holder")
        eq(reader.read(stranger.token), 403, "another assessor, no lease")
        eq(reader.read(earner.token), 206, "the owner reads their own")
        eq(reader.read(assessor.token, 2000, 2999), 206, "the holder still reads")
        eq(reader.read(stranger.token, 2000, 2999), 403, "the stranger again")
    finally:
        reader.close()
    eq(sql(env, "SELECT count(*) FROM audit_log WHERE action = 'artifact.read'"
                " AND object_id = '%s' AND actor_id = '%s'" % (art["id"], stranger.id)), "0",
       "the stranger's refusals write no artifact.read row")


@test
def read_grant_dropped_by_a_release_through_another_server(env):
    """A release through another accord server on the same database: this
    server's live catch-up hears of it and the reader is refused."""
    lead, earner, assessor, cl, art, data = claimed_reading(env, "second")
    second = env.start_server("grant-second")
    reader = Reader(env.server, "/v1/artifacts/%s/content" % art["id"], data)
    try:
        read_until_grant(env, reader, assessor.token, "the holder")
        expect(assessor.c.on(second).post("/v1/reviews/%s/release" % cl["id"]), 200,
               what="the lease given back on the second server")
        deadline = time.monotonic() + WAIT
        while reader.read(assessor.token) != 403:
            check(time.monotonic() < deadline,
                  "still served %.0f s after a release on another server" % WAIT)
            time.sleep(0.02)
        for i in range(3):
            eq(reader.read(assessor.token, i * 1000, i * 1000 + 999), 403,
               "range %d after the release" % i)
    finally:
        reader.close()
    eq(audit_rows(env, art["id"], assessor.id), "1", "one artifact.read row")


@test
def read_grant_dropped_by_any_write_on_another_server(env):
    """Any write through another accord server (announced on accord_live)
    drops this server's grants, also when what it changed is nothing the live
    catch-up watches. The revocation itself is made unseen (the lease ended
    in the reviews table only, in psql), the write on the second server is an
    unrelated one: once this server dropped its grants after it, the next
    range asks the database and is refused."""
    lead, earner, assessor, cl, art, data = claimed_reading(env, "announce")
    second = env.start_server("grant-announce")
    reader = Reader(env.server, "/v1/artifacts/%s/content" % art["id"], data)
    try:
        read_until_grant(env, reader, assessor.token, "the holder")
        sql(env, "UPDATE reviews SET lease_expires_at = now() - interval '1 s' WHERE id = '%s'"
            % cl["id"])
        c0 = counters(env.server)["accord_read_grant_invalidations_total"]
        expect(env.admin.c.on(second).post("/v1/organisations", {"name": "Grant Org announce"}),
               201, what="an unrelated write on the second server")
        wait_for_drop(env, c0, "the second server's write")
        eq(reader.read(assessor.token), 403, "the next range after the lease ended")
    finally:
        reader.close()


@test
def read_grant_dropped_by_a_review_ended_in_psql(env):
    """A review ended by another tool (the UPDATEs api_review_release makes,
    in psql): once the catch-up has seen it (any grant drop after the
    commit), the very next range is refused."""
    lead, earner, assessor, cl, art, data = claimed_reading(env, "psql")
    reader = Reader(env.server, "/v1/artifacts/%s/content" % art["id"], data)
    try:
        read_until_grant(env, reader, assessor.token, "the holder")
        c0 = counters(env.server)["accord_read_grant_invalidations_total"]
        sql(env, "BEGIN; UPDATE reviews SET status = 'released', ended_at = now() WHERE id = '%s';"
                 " UPDATE submissions SET status = 'queued', lease_expires_at = NULL,"
                 " current_review_id = NULL, updated_at = now() WHERE current_review_id = '%s';"
                 " COMMIT" % (cl["id"], cl["id"]))
        wait_for_drop(env, c0, "the live catch-up")
        eq(reader.read(assessor.token), 403, "the next range after the catch-up")
        eq(reader.read(assessor.token, 1000, 1999), 403, "another range")
    finally:
        reader.close()


@test
def read_grant_dropped_by_a_token_revoked_in_psql(env):
    """A token revoked outside the server (its trigger NOTIFYs accord_auth):
    once the server heard it, the token reads nothing more."""
    lead, earner, assessor, cl, art, data = claimed_reading(env, "revoked")
    reader = Reader(env.server, "/v1/artifacts/%s/content" % art["id"], data)
    try:
        read_until_grant(env, reader, assessor.token, "the holder")
        c0 = counters(env.server)["accord_auth_invalidations_total"]
        sql(env, "UPDATE tokens SET revoked_at = now() WHERE token_hash = '%s'"
            % hashlib.sha256(assessor.token.encode()).hexdigest())
        wait_for_drop(env, c0, "the token revoked in psql", "accord_auth_invalidations_total")
        eq(reader.read(assessor.token), 401, "the next range with the revoked token")
    finally:
        reader.close()


@test
def read_grant_bounded_by_the_lease(env):
    """A lease that lapses by the clock: the database's grant_ms (the lease's
    remaining time) bounds the grant, so no range is served after the lapse,
    though the server's cap (2 s) is longer than what was left."""
    lead, earner, assessor, cl, art, data = claimed_reading(env, "lapse")
    sql(env, "BEGIN; UPDATE reviews SET lease_expires_at = now() + interval '1500 ms'"
             " WHERE id = '%s'; UPDATE submissions SET lease_expires_at = now() + interval '1500 ms'"
             " WHERE current_review_id = '%s'; COMMIT" % (cl["id"], cl["id"]))
    # a write through this server: grants made before the lease was shortened go
    env.org("Grant Org lapse marker")
    reader = Reader(env.server, "/v1/artifacts/%s/content" % art["id"], data)
    before = counters(env.server)
    served_after_lapse = None
    try:
        deadline = time.monotonic() + WAIT
        i = 0
        while True:
            lapsed = sql(env, "SELECT lease_expires_at <= now() FROM reviews WHERE id = '%s'"
                         % cl["id"]) == "t"
            st = reader.read(assessor.token, i * 1000, i * 1000 + 999)
            if lapsed:
                if st != 403:
                    served_after_lapse = st
                break
            check(st in (206, 403), "range %d under the lease answered %d" % (i, st))
            check(time.monotonic() < deadline, "the lease did not lapse in %.0f s" % WAIT)
            i = (i + 1) % 8
        after = counters(env.server)
    finally:
        reader.close()
    check(served_after_lapse is None,
          "a range after the lease lapsed was answered %r" % served_after_lapse)
    check(after["grant"] > before["grant"], "some ranges under the lease came from a grant "
          "(else this test proves nothing): %r -> %r" % (before, after))

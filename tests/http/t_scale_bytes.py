# SPDX-License-Identifier: Apache-2.0
"""Evidence bytes at scale (issue 15, item 6): Range reads of one artifact are
audited once a minute per reader, not once per range; every range is still
authorized (t_read_grant.py: by a grant of a moment ago) and exact. Not timed (make bench compares with nginx)."""

import os

from harness import check, eq, expect, sql, test


@test
def scale_range_reads_audited_once_a_minute(env):
    lead = env.user(["lead"])
    data = os.urandom(256 * 1024)
    art = env.upload(lead.c, "video", data, filename="lesson.mp4")
    path = "/v1/artifacts/%s/content" % art["id"]
    for i in range(8):
        first = i * 20000
        last = first + 9999
        r = lead.c.request("GET", path, headers={"Range": "bytes=%d-%d" % (first, last)})
        expect(r, 206, what="range %d" % i)
        eq(r.body, data[first:last + 1], "range %d's bytes" % i)
    r = lead.c.get(path)
    expect(r, 200, what="the whole file")
    eq(r.body, data, "the whole file's bytes")
    eq(sql(env, "SELECT count(*) FROM audit_log WHERE action = 'artifact.read'"
                " AND object_id = '%s' AND actor_id = '%s'" % (art["id"], lead.id)), "1",
       "nine reads within a minute leave one artifact.read row")
    # another reader is audited on their own
    other = env.user(["lead"])
    expect(other.c.get(path), 200, what="another lead reads it")
    eq(sql(env, "SELECT count(DISTINCT actor_id) FROM audit_log WHERE action = 'artifact.read'"
                " AND object_id = '%s'" % art["id"]), "2", "each reader has their row")
    # a minute later (moved back in time: the log is append-only, so the
    # test ages the row by its own clock) the next read is audited again.
    # The server that served the reads remembers for a minute of its own
    # clock that the row stands, which the test cannot move: the read goes
    # to another server, as a player's next request may.
    sql(env, "ALTER TABLE audit_log DISABLE TRIGGER USER; UPDATE audit_log SET at = at - interval '2 minutes'"
             " WHERE action = 'artifact.read' AND object_id = '%s'; ALTER TABLE audit_log ENABLE TRIGGER USER"
             % art["id"])
    second = env.start_server("bytes-second")
    expect(lead.c.on(second).get(path), 200, what="a read two minutes later")
    eq(sql(env, "SELECT count(*) FROM audit_log WHERE action = 'artifact.read'"
                " AND object_id = '%s' AND actor_id = '%s'" % (art["id"], lead.id)), "2",
       "a read after the minute is audited again")


@test
def scale_range_reads_authorized_every_time(env):
    """Ranges after the audited one write no audit row but stay authorized:
    a lease given back refuses the very next range (the release through this
    server drops every read grant it holds: server/read_grant.h), and the
    refusal is audited."""
    lead = env.user(["lead"])
    cred = env.credential(lead, env.rubric(lead)["id"])
    earner = env.user(["earner"], org="Bytes Org E")
    ev = env.evidence(earner.c, video_size=64 * 1024)
    env.submit(earner.c, cred["id"], [a["id"] for a, _ in ev])
    assessor = env.user(["assessor"], org="Bytes Org A")
    env.grant(lead, cred["id"], assessor)
    cl = expect(assessor.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200,
                what="the assessor claims")
    art, data = ev[0]
    path = "/v1/artifacts/%s/content" % art["id"]
    for i in range(4):
        r = assessor.c.request("GET", path, headers={"Range": "bytes=%d-%d" % (i * 1000, i * 1000 + 999)})
        expect(r, 206, what="range %d under the lease" % i)
        eq(r.body, data[i * 1000:i * 1000 + 1000], "range %d's bytes" % i)
    rows = "SELECT count(*) FROM audit_log WHERE action = 'artifact.read' AND object_id = '%s'" \
           " AND actor_id = '%s'" % (art["id"], assessor.id)
    eq(sql(env, rows), "1", "four ranges, one artifact.read row")
    expect(assessor.c.post("/v1/reviews/%s/release" % cl["id"]), 200, what="the lease given back")
    r = assessor.c.request("GET", path, headers={"Range": "bytes=0-999"})
    expect(r, 403, what="the next range after the release")
    check(int(sql(env, "SELECT count(*) FROM audit_log WHERE action = 'access.refused'"
                       " AND object_id = '%s' AND actor_id = '%s'" % (art["id"], assessor.id))) >= 1,
          "the refused range is audited")
    r = assessor.c.request("GET", path, headers={"Range": "bytes=1000-1999"})
    expect(r, 403, what="another range after the release")
    eq(sql(env, rows), "1", "refused ranges write no artifact.read row")

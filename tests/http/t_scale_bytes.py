# SPDX-License-Identifier: Apache-2.0
"""Evidence bytes at scale (issue 15, item 6): Range reads of one artifact are
audited once a minute per reader, not once per range; every range is still
authorized and exact. Not timed (make bench compares with nginx)."""

import os

from harness import eq, expect, sql, test


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
    # test ages the row by its own clock) the next read is audited again
    sql(env, "ALTER TABLE audit_log DISABLE TRIGGER USER; UPDATE audit_log SET at = at - interval '2 minutes'"
             " WHERE action = 'artifact.read' AND object_id = '%s'; ALTER TABLE audit_log ENABLE TRIGGER USER"
             % art["id"])
    expect(lead.c.get(path), 200, what="a read two minutes later")
    eq(sql(env, "SELECT count(*) FROM audit_log WHERE action = 'artifact.read'"
                " AND object_id = '%s' AND actor_id = '%s'" % (art["id"], lead.id)), "2",
       "a read after the minute is audited again")

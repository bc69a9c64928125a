# SPDX-License-Identifier: Apache-2.0
"""Issue 13 item 4: reports from a read replica.

Two local clusters: the suite's own (the primary) and a streaming standby made
from it with `pg_basebackup -R` (tests/replica/standby.sh), each on a unix
socket of its own. A server started with ACCORD_REPLICA_URL reads the
agreement statistics, ratings.csv and the assessors and routing reports from
the standby while it is within the staleness bound, says so (Accord-Read-From
/ Accord-Replica-Lag, /metrics), and reads them from the primary when the
standby falls behind (replay paused) or is stopped, and from the standby
again once it is back. Authorization and the audit row stay on the primary.

That the standby answered is proved by the data, not only by the header:
with its replay paused it answers without a score the primary already has.

Timing: every check holds for any scheduling. The server and this test share
CLOCK_MONOTONIC, so an answer asked for at t with Accord-Replica-Lag L shows
every change acknowledged before t - L; while replay is paused an answer from
the standby shows the data as of the pause; an answer from the primary shows
the current data. Only "the standby is used once caught up" and "the primary
is used once the bound has passed" wait, each with a deadline far above the
1 s monitor period.
"""

import os
import subprocess
import time

from harness import Client, check, eq, expect, short, test

HERE = os.path.dirname(os.path.abspath(__file__))
STANDBY = os.path.join(os.path.dirname(HERE), "replica", "standby.sh")
MAX_LAG = 3          # ACCORD_REPLICA_MAX_LAG for the server under test (seconds)
WAIT = 30.0          # deadline for a state change the monitor must notice


def psql(url, query):
    p = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", url, "-c", query],
                       capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, "psql %r: %s" % (query, p.stderr))
    return p.stdout.strip()


def standby(*args):
    p = subprocess.run([STANDBY] + list(args), capture_output=True, text=True, timeout=180)
    check(p.returncode == 0, "standby.sh %s: %s%s" % (" ".join(args), p.stdout, p.stderr))
    return p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""


def source(r):
    return r.header("accord-read-from")


def until(fn, what, bound=WAIT):
    deadline = time.monotonic() + bound
    while True:
        got = fn()
        if got:
            return got
        check(time.monotonic() < deadline, "%s: not within %.0f s" % (what, bound))
        time.sleep(0.1)


def from_replica(get, what):
    """The first answer from the standby. Whether a given request goes there
    depends on when the monitor last confirmed it (a loaded machine can delay
    that past the bound), so the test waits for one instead of expecting it."""
    return until(lambda: (lambda r: r if source(r) == "replica" else None)(get()), what)


def metric(server, name):
    for line in Client(server).get("/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            yield line


def replay_paused(url, paused):
    psql(url, "select pg_wal_replay_pause()" if paused else "select pg_wal_replay_resume()")
    want = "paused" if paused else "not paused"
    until(lambda: psql(url, "select pg_get_wal_replay_pause_state()") == want,
          "the standby's replay is %s" % want)


@test
def replica_reports_from_a_standby(env):
    sdir = os.path.join(env.workdir, "standby-%d" % env.uniq())
    primary_url = env.base_env["DATABASE_URL"]
    replica_url = standby("start", env.cluster.dir, sdir)
    try:
        eq(psql(replica_url, "select pg_is_in_recovery()"), "t", "the standby is in recovery")
        s = env.start_server("replica", {"ACCORD_REPLICA_URL": replica_url,
                                         "ACCORD_REPLICA_MAX_LAG": str(MAX_LAG)})
        lead = env.user(["lead"])
        cred = env.credential(lead, env.rubric(lead)["id"])
        peer = env.user(["assessor"], org="Replica Peers")
        env.grant(lead, cred["id"], peer)

        def scored_submission(levels):
            e = env.user(["earner"], org="Replica Elementary")
            ev = env.evidence(e.c, video_size=256)
            env.submit(e.c, cred["id"], [a["id"] for a, _ in ev])
            c = expect(peer.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200)
            expect(peer.c.post("/v1/reviews/%s/scores" % c["id"],
                               {"scores": env.scores(levels), "feedback": "ok"}), 200)
            return c["id"]

        for lv in ({}, {"reflection": 4}):
            scored_submission(lv)
        # scored ten minutes ago: an agreement answer may be kept (017: the
        # newest score is over a minute old)
        psql(primary_url, "UPDATE reviews SET scored_at = scored_at - interval '10 minutes'"
                          " WHERE credential_id = '%s'" % cred["id"])
        written = time.monotonic()      # the last change, acknowledged
        lr = lead.on(s)
        csv_path = "/v1/reports/ratings.csv?credential_id=%s" % cred["id"]
        agr_path = "/v1/reports/agreement?credential_id=%s" % cred["id"]
        truth = lead.c.get(csv_path)          # the suite's server: no replica
        eq(truth.status, 200, "ratings.csv from the suite's server")
        eq(len(truth.text.splitlines()), 1 + 2 * 4, "ratings.csv lines (header + 2 x 4)")
        agreement = expect(lead.c.get(agr_path), 200, what="agreement from the suite's server")

        # The stated bound, checked exactly: an answer asked for at t with
        # Accord-Replica-Lag L reflects every change acknowledged before t - L.
        def timed_get(path):
            t = time.monotonic()
            return t, lr.get(path)

        def within_bound(t, r, body_now, changed_at, what):
            eq(r.status, 200, what)
            if source(r) != "replica":
                eq(source(r), "primary", "%s: Accord-Read-From" % what)
                return
            lag = float(r.header("accord-replica-lag", "nan"))
            check(0 <= lag <= MAX_LAG, "%s: Accord-Replica-Lag %r outside [0, %d]"
                  % (what, lag, MAX_LAG))
            if t - lag > changed_at + 0.01:
                eq(r.body, body_now, "%s: from the standby with lag %.3f s, asked %.3f s after "
                   "the last change" % (what, lag, t - changed_at))

        # caught up: both reports come from the standby
        def csv_from_replica():
            t, r = timed_get(csv_path)
            within_bound(t, r, truth.body, written, "ratings.csv")
            return r if source(r) == "replica" and r.body == truth.body else None
        until(csv_from_replica, "ratings.csv answered by the caught-up standby")
        # the assessors and routing reports too (the same answers as the primary's)
        rubric_id = expect(lead.c.get("/v1/credentials/%s" % cred["id"]), 200)["rubric_id"]
        ass_path = "/v1/reports/assessors?rubric_id=%s" % rubric_id
        r = from_replica(lambda: lr.get(ass_path), "assessors from the standby")
        eq(r.status, 200, "assessors once caught up")
        eq(r.json, expect(lead.c.get(ass_path), 200, what="assessors from the primary"),
           "the assessors report from the standby = from the primary")
        r = from_replica(lambda: lr.get("/v1/reports/routing"), "routing from the standby")
        eq(r.status, 200, "routing once caught up")
        routed = [c["credential_id"] for c in r.json["credentials"]]
        check(cred["id"] in routed, "the routing report from the standby lists the credential")
        r = from_replica(lambda: lr.get(agr_path), "agreement from the standby")
        eq(r.status, 200, "agreement once caught up")
        eq(r.json, agreement, "the agreement statistics from the standby = from the primary")
        r = from_replica(lambda: lr.get(agr_path), "agreement from the standby, again")
        eq(r.header("x-report-cache"), "hit", "the standby's stamp is unchanged: the kept answer")
        until(lambda: next(metric(s, "accord_replica_in_use"), "") == "accord_replica_in_use 1",
              "/metrics says the replica is in use")
        # the audit row is written on the primary, once per report
        count_sql = ("SELECT count(*) FROM audit_log WHERE action = 'report.read'"
                     " AND object_id = '%s'" % cred["id"])
        before, asked = int(psql(primary_url, count_sql)), [0]

        def counted_csv():
            asked[0] += 1
            return lr.get(csv_path)
        from_replica(counted_csv, "ratings.csv from the standby, counted")
        eq(int(psql(primary_url, count_sql)), before + asked[0],
           "one report.read row per ratings.csv, the standby's included")
        before = before + asked[0]
        # a non-lead and an unknown credential are refused by the primary
        expect(peer.on(s).get(csv_path), 403, "forbidden", "an assessor asks for ratings.csv")
        expect(peer.on(s).get(agr_path), 403, "forbidden", "an assessor asks for agreement")
        expect(peer.on(s).get(ass_path), 403, "forbidden", "an assessor asks for assessors")
        expect(peer.on(s).get("/v1/reports/routing"), 403, "forbidden", "an assessor, routing")
        expect(lr.get("/v1/reports/ratings.csv?credential_id=00000000-0000-4000-8000-"
                      "000000000000"), 404, "not_found", "an unknown credential")
        expect(lr.get(agr_path + "&pool=nobody"), 400, what="a bad pool")
        eq(int(psql(primary_url, count_sql)), before, "no audit row for a refused report")

        # replay paused, then a new score on the primary (five minutes old: a
        # newer stamp, still an answer that may be kept): while the bound
        # allows, the standby answers with the data as of the pause, the kept
        # agreement answer included; then the primary, with the new score
        replay_paused(replica_url, True)
        old = truth.body
        third = scored_submission({"sel-connection": 2})
        psql(primary_url, "UPDATE reviews SET scored_at = now() - interval '5 minutes'"
                          " WHERE id = '%s'" % third)
        fresh = lead.c.get(csv_path).body
        check(fresh != old and len(fresh.splitlines()) == 1 + 3 * 4,
              "the primary has the third submission's scores")
        fresh_agreement = lead.c.get(agr_path).json
        check(fresh_agreement != agreement, "the third score changes the agreement statistics")
        seen = set()

        def from_primary(path, old_body, new_body):
            def once():
                r = lr.get(path)
                eq(r.status, 200, "%s while the standby is behind" % path)
                if source(r) == "replica":
                    lag = float(r.header("accord-replica-lag", "nan"))
                    check(lag <= MAX_LAG, "a replica answer with lag %.3f over the bound" % lag)
                    eq(r.body, old_body, "a replica answer while replay is paused")
                else:
                    eq((source(r), r.body), ("primary", new_body), "an answer from the primary")
                seen.add(source(r))
                return r if source(r) == "primary" else None
            return once
        until(from_primary(csv_path, old, fresh),
              "the primary answers once the standby is over %d s behind" % MAX_LAG, MAX_LAG + WAIT)
        # the kept agreement answer (computed on the standby) is not sent past the bound
        r = lr.get(agr_path)
        eq((r.status, source(r), r.header("x-report-cache")), (200, "primary", "miss"),
           "agreement past the bound: computed from the primary")
        eq(r.json, fresh_agreement, "agreement past the bound has the third score")
        r = lr.get(agr_path)
        eq((source(r), r.header("x-report-cache"), r.json), ("primary", "hit", fresh_agreement),
           "the primary's answer is kept")
        check(next(metric(s, "accord_replica_in_use"), "") == "accord_replica_in_use 0",
              "/metrics says the replica is out of use")
        replay_paused(replica_url, False)

        def caught_up_again():
            t, r = timed_get(csv_path)
            if source(r) == "replica" and r.body != fresh:
                # still replaying: only possible while its bound reaches back past the change
                lag = float(r.header("accord-replica-lag", "nan"))
                check(t - lag <= written + 0.01, "a replica answer without the third "
                      "submission although its bound (%.3f s) is newer than it" % lag)
            return r if source(r) == "replica" and r.body == fresh else None
        written = time.monotonic()
        until(caught_up_again, "the standby answers again, caught up, after replay resumed")
        r = from_replica(lambda: lr.get(agr_path), "agreement from the standby, caught up")
        eq((r.header("x-report-cache"), r.json), ("hit", fresh_agreement),
           "caught up: the standby's stamp is the primary's, the kept answer holds")

        # the standby stopped: every report still answers, from the primary
        standby("stop", sdir)
        for _ in range(3):
            for p in (csv_path, agr_path, ass_path, "/v1/reports/routing"):
                r = lr.get(p)
                eq((r.status, source(r)), (200, "primary"), "%s with the standby down" % p)
            eq(lr.get(csv_path).body, fresh, "ratings.csv with the standby down")
        expect(Client(s).get("/readyz"), 200, what="/readyz with the standby down")
        lag = next(metric(s, "accord_replica_lag_seconds"), "")
        until(lambda: next(metric(s, "accord_replica_lag_seconds"), "") ==
              "accord_replica_lag_seconds -1.000", "/metrics: the standby's lag is unknown")
        fallbacks = next(metric(s, "accord_replica_fallbacks_total"), "")
        check(fallbacks.startswith("accord_replica_fallbacks_total "), "fallbacks counted: %s"
              % short(lag + fallbacks))
        # and back: started again, it serves again
        standby("start", env.cluster.dir, sdir)
        until(lambda: source(lr.get(csv_path)) == "replica",
              "the standby answers again once it is back")
        eq(lr.get(csv_path).body, fresh, "ratings.csv from the standby, back")
        cacheable_counts_from_the_last_replayed_commit(env, primary_url, replica_url)
    finally:
        standby("stop", sdir)


def cacheable_counts_from_the_last_replayed_commit(env, primary_url, replica_url):
    """018: on a standby an agreement answer may be kept only when its newest
    score is a minute older than the last transaction the standby replayed
    (not than the standby's clock): a transaction not replayed yet commits
    after that one, so its scores are newer than any the answer saw."""
    lead = env.user(["lead"])
    cred = env.credential(lead, env.rubric(lead)["id"])
    peer = env.user(["assessor"], org="Replica Peers")
    env.grant(lead, cred["id"], peer)
    e = env.user(["earner"], org="Replica Elementary")
    ev = env.evidence(e.c, video_size=256)
    env.submit(e.c, cred["id"], [a["id"] for a, _ in ev])
    c = expect(peer.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200)
    expect(peer.c.post("/v1/reviews/%s/scores" % c["id"],
                       {"scores": env.scores({}), "feedback": "ok"}), 200)
    # the score 59 s old when its transaction began
    psql(primary_url, "UPDATE reviews SET scored_at = now() - interval '59 seconds'"
                      " WHERE id = '%s'" % c["id"])
    newest = psql(primary_url, "SELECT scored_at FROM reviews WHERE id = '%s'" % c["id"])
    until(lambda: psql(replica_url, "SELECT count(*) FROM reviews WHERE id = '%s'"
                                    " AND scored_at = '%s'" % (c["id"], newest)) == "1",
          "the standby has the score")
    replay_paused(replica_url, True)
    # the standby's clock passes the minute; its data does not move
    until(lambda: psql(replica_url, "SELECT now() - interval '1 minute' > '%s'" % newest)
          == "t", "a minute after the score on the standby's clock")
    q = "{\"credential_id\": \"%s\"}" % cred["id"]
    head = psql(replica_url, "SELECT split_part(report_agreement_data('%s', NULL), E'\\n', 1)"
                "::json ->> 'cacheable'" % q)
    horizon_ok = psql(replica_url, "SELECT '%s'::timestamptz < pg_last_xact_replay_timestamp()"
                                   " - interval '1 minute'" % newest)
    eq(head, "true" if horizon_ok == "t" else "false",
       "cacheable on the standby follows the last replayed commit")
    # for the primary, "now" is its own clock (017's rule, unchanged)
    head = psql(primary_url, "SELECT split_part(report_agreement_data('%s', NULL), E'\\n', 1)"
                "::json ->> 'cacheable'" % q)
    eq(head, "true", "cacheable on the primary, a minute after the score")
    replay_paused(replica_url, False)

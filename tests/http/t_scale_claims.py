# SPDX-License-Identifier: Apache-2.0
"""Claims that stay flat as the work grows (issue 15, items 1-2): the plan
shapes, the claim cursors and their correctness. Not timed.

Runs in a database of its own on the test cluster (accord_scale, filled by
tests/bench/scaling_claims.sql at a small size: 200 credentials x 20 queued,
1,000 ineligible submissions at the head of two queues), with a server of its
own on it, so that the bulk rows never meet the other tests' queues.
"""

import json
import os
import re
import subprocess

from harness import check, eq, expect, fail, run_cli, test, Client

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
HEADS = 1000


def bench_token(name):
    import hashlib
    h = hashlib.md5(("scale-" + name).encode()).hexdigest()
    return "acc_" + h + h


def psql(url, sql, *extra):
    p = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", url] + list(extra)
                       + (["-c", sql] if sql else []), capture_output=True, text=True, timeout=300)
    check(p.returncode == 0, "psql %r: %s" % ((sql or extra)[:200], p.stderr[-1500:]))
    return p.stdout.strip()


_state = {}


def scale_env(env):
    """The accord_scale database (made once) and a server on it (one per
    test: the harness stops a test's servers after it)."""
    if _state:
        return _state["url"], env.start_server("scale", {"DATABASE_URL": _state["url"]})
    base = env.base_env["DATABASE_URL"]
    url = re.sub(r"dbname=\S+", "dbname=accord_scale", base)
    psql(base, "DROP DATABASE IF EXISTS accord_scale")
    psql(base, "CREATE DATABASE accord_scale")
    e = dict(env.base_env, DATABASE_URL=url)
    rc, out, err = run_cli(env.binary, ["migrate"], e, timeout=180)
    check(rc == 0, "accord migrate on accord_scale: %s%s" % (out, err))
    psql(url, None, "-v", "creds=200", "-v", "per=20", "-v", "heads=%d" % HEADS,
         "-f", os.path.join(ROOT, "tests", "bench", "scaling_claims.sql"))
    _state.update(url=url)
    return url, env.start_server("scale", {"DATABASE_URL": url})


def user_id(url, name):
    return psql(url, "SELECT id || ' ' || coalesce(org_id::text, '') FROM users"
                     " WHERE email = 'scale-%s@example.org'" % name).split()


def claim(server, name, status=200):
    c = Client(server, bench_token(name))
    r = c.post("/v1/reviews/claim", {})
    return expect(r, status, what="claim by %s" % name)


def plan_nodes(plan):
    yield plan
    for p in plan.get("Plans", []):
        yield from plan_nodes(p)


def heads_plan(url, name, analyze=False):
    uid, org = user_id(url, name)
    creds = psql(url, "SELECT string_agg(credential_id::text, ',') FROM assessor_grants"
                      " WHERE user_id = '%s'" % uid)
    n = len(creds.split(","))
    out = psql(url, "EXPLAIN (FORMAT JSON%s) SELECT * FROM _queue_heads('%s', '%s', '{%s}',"
                    " array_fill('infinity'::timestamptz, ARRAY[%d]))"
               % (", ANALYZE" if analyze else "", uid, org, creds, n))
    return n, json.loads(out)[0]["Plan"]


def oldest_eligible(url, name):
    """The claim's answer by definition: the oldest queued submission of a
    granted credential that is not the assessor's own, from another
    organisation, never reviewed by them (a full scan, no index design)."""
    uid, org = user_id(url, name)
    return psql(url, """SELECT s.id FROM submissions s
                         WHERE s.status = 'queued'
                           AND s.credential_id IN (SELECT credential_id FROM assessor_grants
                                                    WHERE user_id = '%s')
                           AND s.earner_id <> '%s' AND s.earner_org_id <> '%s'
                           AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.submission_id = s.id
                                                                     AND r.assessor_id = '%s')
                         ORDER BY s.queued_at, s.id LIMIT 1""" % (uid, uid, org, uid))


@test
def scale_many_grants_probe_each_credential(env):
    """Up to 32 grants: one probe of the per-credential index per grant; more:
    one walk of the whole queue from a cursor (the probes stay the fallback)."""
    url, server = scale_env(env)
    n, plan = heads_plan(url, "g500")
    eq(n, 200, "grants of g500 in the small database")
    scans = [p for p in plan_nodes(plan) if p.get("Relation Name") == "submissions"]
    check(scans, "no scan of submissions in the plan: %s" % json.dumps(plan)[:1500])
    for p in scans:
        eq(p.get("Index Name"), "submissions_queue_cred_idx",
           "the heads' scan of submissions (%s) uses the per-credential queue index"
           % p.get("Node Type"))
    # and the claims themselves take the oldest eligible work, with 1, 10 and 200 grants
    for name in ("g1", "g10", "g500", "g500"):
        want = oldest_eligible(url, name)
        got = claim(server, name)
        eq(got["submission"]["id"], want, "%s claims the oldest eligible submission" % name)
    # 200 grants walk the whole queue instead of 200 probes; the 2,000 submissions of
    # credentials g500 holds no grant on, at the head of the queue, are passed once
    uid, _ = user_id(url, "g500")
    eq(psql(url, "SELECT count(*) FROM claim_walk_cursors w WHERE w.user_id = '%s'"
                 " AND w.queued_at > (SELECT max(s.queued_at) FROM submissions s"
                 " JOIN credentials c ON c.id = s.credential_id"
                 " WHERE c.title IN ('scale-own', 'scale-released') AND s.queued_at"
                 " < now() - interval '10 days')" % uid), "1",
       "g500's walk cursor is past the head it can never claim")


def walk_plans(url, name, sql_env=""):
    """The plans of _queue_walk's statements as a claim runs them (generic
    plans: api_review_claim forces them), printed by auto_explain."""
    uid, _ = user_id(url, name)
    p = subprocess.run(
        ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", url],
        input="""LOAD 'auto_explain';
                 SET auto_explain.log_min_duration = 0;
                 SET auto_explain.log_nested_statements = on;
                 SET auto_explain.log_format = json;
                 SET auto_explain.log_level = notice;
                 SET client_min_messages = notice;
                 SET plan_cache_mode = force_generic_plan;
                 %s
                 SELECT count(*) FROM (SELECT w.* FROM users u, _claim_grants(u.id, NULL) g,
                                              _queue_walk(u, g.first, g.first_sig) w
                                        WHERE u.id = '%s') z;""" % (sql_env, uid),
        capture_output=True, text=True, timeout=120)
    check(p.returncode == 0, "auto_explain of the walk: %s" % p.stderr[-1500:])
    plans = []
    for chunk in p.stderr.split("NOTICE:")[1:]:
        if "{" in chunk:
            body = chunk[chunk.index("{"):]
            body = body[:body.rindex("}") + 1]
            plans.append(json.loads(body))
    return [x for x in plans if "= ANY (p_creds)" in x.get("Query Text", "")]


@test
def scale_many_grants_walk_is_an_index_range(env):
    """More than 32 grants: the walk reads the queue index in order from the
    cursor and stops at its first row (no sort, no scan of the whole queue),
    in the cached generic plan the claim uses."""
    url, _ = scale_env(env)
    plans = walk_plans(url, "g500")
    check(plans, "no plan of the walk's statement was printed")
    nodes = list(plan_nodes(plans[0]["Plan"]))
    kinds = [n["Node Type"] for n in nodes]
    check("Sort" not in kinds and "Incremental Sort" not in kinds,
          "the walk sorts: %s" % json.dumps(plans[0]["Plan"])[:1500])
    subs = [n for n in nodes if n.get("Relation Name") == "submissions"]
    check(subs, "the walk reads no submissions: %s" % kinds)
    eq(subs[0]["Node Type"], "Index Scan", "the walk's read of the queue")
    eq(subs[0].get("Index Name"), "submissions_queue_idx", "the walk's index")
    eq(kinds[0], "Limit", "the walk stops at its first row")
    # and the test can fail: without the function's settings the same
    # generic plan reads the whole queue and sorts it
    bad = walk_plans(url, "g500", "ALTER FUNCTION _queue_walk(users, uuid[], text) RESET ALL;"
                                  " SET enable_indexscan = off;")
    check(bad and any(n["Node Type"] in ("Sort", "Seq Scan", "Bitmap Heap Scan")
                      for n in plan_nodes(bad[0]["Plan"])), "the plan check sees a bad plan")


def visited(url, name):
    """Rows of submissions the heads probe visited (EXPLAIN ANALYZE)."""
    _, plan = heads_plan(url, name, analyze=True)
    return sum(p.get("Actual Rows", 0) * p.get("Actual Loops", 1) + p.get("Rows Removed by Filter", 0)
               for p in plan_nodes(plan) if p.get("Relation Name") == "submissions")


@test
def scale_ineligible_heads_are_passed_once(env):
    url, server = scale_env(env)
    for name in ("own", "rel"):
        before = visited(url, name)
        check(before > HEADS, "%s: before any claim the probe walks the %d ineligible rows (%d)"
              % (name, HEADS, before))
        want = oldest_eligible(url, name)
        got = claim(server, name)
        eq(got["submission"]["id"], want, "%s claims the first eligible submission" % name)
        after = visited(url, name)
        check(after < 40, "%s: after one claim the probe starts past the ineligible head"
              " (visited %d rows)" % (name, after))
        want = oldest_eligible(url, name)
        got = claim(server, name)
        eq(got["submission"]["id"], want, "%s: the next claim is the next eligible one" % name)


@test
def scale_release_brings_cursors_back(env):
    """A submission held by Q while P's cursor moved past it, then released,
    is P's next claim: the release lowers every cursor beyond it."""
    url, server = scale_env(env)
    cred = psql(url, "SELECT id FROM credentials WHERE title = 'scale-own'")
    org_a = psql(url, "SELECT id FROM organisations WHERE name = 'scale-a'")
    # P and Q: two more assessors of organisation scale-a on "own"
    psql(url, """INSERT INTO users (email, name, roles, org_id)
                 SELECT 'scale-' || n || '@example.org', n, '{assessor}', '%s'
                   FROM unnest(ARRAY['p', 'q']) n;
                 INSERT INTO tokens (token_hash, user_id)
                 SELECT encode(sha256(convert_to(bench_token(n), 'UTF8')), 'hex'), u.id
                   FROM unnest(ARRAY['p', 'q']) n JOIN users u ON u.email = 'scale-' || n || '@example.org';
                 INSERT INTO assessor_grants (credential_id, user_id, pool)
                 SELECT '%s', id, 'peer' FROM users WHERE email IN ('scale-p@example.org', 'scale-q@example.org');
                 INSERT INTO qualifications (user_id, rubric_id, status, reason, qualified_at)
                 SELECT u.id, c.rubric_id, 'qualified', 'test', now() FROM users u, credentials c
                  WHERE u.email IN ('scale-p@example.org', 'scale-q@example.org') AND c.id = '%s'"""
         % (org_a, cred, cred))
    held = claim(server, "q")                      # Q takes the first eligible (B1)
    first = claim(server, "p")                     # P: the next (B2); P's cursor passes B1's place
    uid_p = user_id(url, "p")[0]
    at = psql(url, "SELECT count(*) FROM claim_cursors WHERE user_id = '%s'" % uid_p)
    eq(at, "1", "P has a cursor on the credential after passing %d ineligible rows" % HEADS)
    check(first["submission"]["id"] != held["submission"]["id"], "P and Q hold different work")
    expect(Client(server, bench_token("q")).post("/v1/reviews/%s/release" % held["id"]), 200,
           what="Q releases B1")
    again = claim(server, "p")
    eq(again["submission"]["id"], held["submission"]["id"],
       "P's next claim is the released B1 (older than P's cursor), not B3")


def profile(url, name):
    uid, _ = user_id(url, name)
    return psql(url, "SELECT epoch || ' ' || coalesce(built_epoch::text, '-') || ' '"
                     " || coalesce(cardinality(gc), 0) FROM claim_profiles"
                     " WHERE user_id = '%s'" % uid).split()


@test
def scale_claim_profile_follows_changes(env):
    """A claim reads the grants from the user's kept profile; every change
    it depends on (a grant, a qualification, a credential's pause, the
    user's roles) makes the next claim read them afresh."""
    url, server = scale_env(env)
    uid, _ = user_id(url, "g10")
    own = psql(url, "SELECT id FROM credentials WHERE title = 'scale-own'")
    rubric = psql(url, "SELECT rubric_id FROM credentials WHERE id = '%s'" % own)
    want = oldest_eligible(url, "g10")
    eq(claim(server, "g10")["submission"]["id"], want, "g10 claims the oldest eligible work")
    e, built, n = profile(url, "g10")
    eq((built, n), (e, "10"), "after a claim, g10's profile is current with its 10 grants")

    def changed(what, sql, want):
        before = int(profile(url, "g10")[0])
        psql(url, sql)
        after = profile(url, "g10")
        check(int(after[0]) > before and after[1] != after[0],
              "%s makes g10's profile out of date (epoch %d -> %s)" % (what, before, after))
        if want == 204:
            claim(server, "g10", 204)
        else:
            expected = want()
            got = claim(server, "g10")
            eq(got["submission"]["id"], expected, "g10's claim after %s" % what)
        e, built, _ = profile(url, "g10")
        eq(built, e, "the claim after %s rebuilt the profile" % what)

    # a grant on "own": its older work (earners of another organisation) comes first
    changed("a new grant",
            "INSERT INTO assessor_grants (credential_id, user_id, pool) VALUES ('%s', '%s', 'peer')"
            % (own, uid), lambda: oldest_eligible(url, "g10"))
    got_cred = psql(url, "SELECT s.credential_id FROM reviews r JOIN submissions s ON s.id = r.submission_id"
                         " WHERE r.assessor_id = '%s' ORDER BY r.claimed_at DESC LIMIT 1" % uid)
    eq(got_cred, own, "the claim after the grant took work of the new credential")
    # the credential's peer pool paused: its peer grants stop routing first scores
    changed("pausing the credential's peers",
            "UPDATE credentials SET peer_paused_at = now() WHERE id = '%s'" % own,
            lambda: psql(url, "SELECT s.id FROM submissions s JOIN assessor_grants g"
                              " ON g.credential_id = s.credential_id AND g.user_id = '%s'"
                              " WHERE s.status = 'queued' AND s.credential_id <> '%s'"
                              " ORDER BY s.queued_at, s.id LIMIT 1" % (uid, own)))
    psql(url, "UPDATE credentials SET peer_paused_at = NULL WHERE id = '%s'" % own)
    # the qualification lapses: nothing to claim; restored: work again
    changed("a lapsed qualification",
            "UPDATE qualifications SET status = 'needs_recalibration' WHERE user_id = '%s'"
            " AND rubric_id = '%s'" % (uid, rubric), 204)
    changed("a restored qualification",
            "UPDATE qualifications SET status = 'qualified', qualified_at = now() WHERE user_id = '%s'"
            " AND rubric_id = '%s'" % (uid, rubric), lambda: oldest_eligible(url, "g10"))
    # no assessor role: peer grants route nothing
    changed("losing the assessor role",
            "UPDATE users SET roles = '{expert}' WHERE id = '%s'" % uid, 204)
    changed("the role back", "UPDATE users SET roles = '{assessor}' WHERE id = '%s'" % uid,
            lambda: oldest_eligible(url, "g10"))
    # a revoked grant
    changed("a revoked grant",
            "DELETE FROM assessor_grants WHERE credential_id = '%s' AND user_id = '%s'" % (own, uid),
            lambda: oldest_eligible(url, "g10"))
    eq(profile(url, "g10")[2], "10", "g10 is back to its 10 grants")


@test
def scale_claims_done(env):
    """Drops the accord_scale database (its servers are stopped)."""
    if not _state:
        fail("the accord_scale database was never made")
    psql(env.base_env["DATABASE_URL"], "DROP DATABASE accord_scale")
    _state.clear()

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


@test
def scale_claims_done(env):
    """Drops the accord_scale database (its servers are stopped)."""
    if not _state:
        fail("the accord_scale database was never made")
    psql(env.base_env["DATABASE_URL"], "DROP DATABASE accord_scale")
    _state.clear()

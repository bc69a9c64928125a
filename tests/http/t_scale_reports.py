# SPDX-License-Identifier: Apache-2.0
"""Reports that stay flat as the data grows (issue 15, items 3-5): the
scored-rows index and its plan, ratings.csv streamed in bounded chunks (the
same bytes as 006's one-piece CSV), a download cut short, and the agreement
report kept until new scores arrive. Not timed.

Runs in a database of its own on the test cluster (accord_scale_reports,
filled by tests/bench/scaling_reports.sql: a 2,500-submission credential and
a 30-submission one, two scored reviews each), with a server of its own.
"""

import json
import os
import re
import socket
import subprocess

from harness import HOST, check, eq, expect, fail, run_cli, test, Client

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIG, SMALL = 2500, 30


def lead_token():
    import hashlib
    h = hashlib.md5(b"report-lead").hexdigest()
    return "acc_" + h + h


def psql(url, sql, *extra):
    p = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", url] + list(extra)
                       + (["-c", sql] if sql else []), capture_output=True, text=True, timeout=300)
    check(p.returncode == 0, "psql %r: %s" % ((sql or extra)[:200], p.stderr[-1500:]))
    return p.stdout.strip()


_state = {}


def reports_env(env):
    """The accord_scale_reports database (made once) and a server on it."""
    if not _state:
        base = env.base_env["DATABASE_URL"]
        url = re.sub(r"dbname=\S+", "dbname=accord_scale_reports", base)
        psql(base, "DROP DATABASE IF EXISTS accord_scale_reports")
        psql(base, "CREATE DATABASE accord_scale_reports")
        rc, out, err = run_cli(env.binary, ["migrate"], dict(env.base_env, DATABASE_URL=url),
                               timeout=180)
        check(rc == 0, "accord migrate on accord_scale_reports: %s%s" % (out, err))
        psql(url, None, "-v", "big=%d" % BIG, "-v", "small=%d" % SMALL,
             "-f", os.path.join(ROOT, "tests", "bench", "scaling_reports.sql"))
        creds = dict(line.split("|") for line in psql(
            url, "SELECT title, id FROM credentials WHERE title LIKE 'report-%'").splitlines())
        _state.update(url=url, big=creds["report-big"], small=creds["report-small"])
    return _state["url"], env.start_server("reports", {"DATABASE_URL": _state["url"]})


def plan_nodes(plan):
    yield plan
    for p in plan.get("Plans", []):
        yield from plan_nodes(p)


@test
def scale_reports_small_credential_reads_its_own_rows(env):
    url, _ = reports_env(env)
    # the rows of a small credential: one range of the scored-reviews index, in a
    # database where another credential holds 99% of the scores
    out = psql(url, "EXPLAIN (FORMAT JSON) SELECT r.submission_id, r.assessor_id, r.levels"
                    " FROM reviews r WHERE r.credential_id = '%s' AND r.status = 'submitted'"
                    " AND r.stage <> 'validity'" % _state["small"])
    plan = json.loads(out)[0]["Plan"]
    scans = [p for p in plan_nodes(plan) if p.get("Relation Name") == "reviews"]
    check(scans and all(p.get("Index Name") in ("reviews_scored_credential_idx",
                                                "reviews_scored_at_idx") for p in scans),
          "the small credential's scored reviews are read through a partial index on scored"
          " reviews by credential: %s" % [(p["Node Type"], p.get("Index Name")) for p in scans])
    # the report functions plan per call: no cached generic plan that hashes every score
    for fn in ("api_report_agreement_data", "api_report_ratings_page", "_live_scores"):
        cfg = psql(url, "SELECT array_to_string(proconfig, ',') FROM pg_proc WHERE proname = '%s'"
                   % fn)
        check("plan_cache_mode=force_custom_plan" in cfg, "%s plans per call: %r" % (fn, cfg))
    # every scored review carries its credential and levels (trigger and backfill)
    eq(psql(url, "SELECT count(*) FROM reviews WHERE status = 'submitted'"
                 " AND (credential_id IS NULL OR cardinality(levels) <> 4)"), "0",
       "scored reviews without credential or levels")


def chunked_get(port, path, token, stop_after=None):
    """GET over a raw socket; returns (status, headers, [chunk sizes], body).
    stop_after: close the connection after that many chunks."""
    s = socket.create_connection((HOST, port), timeout=60)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                   "Connection: close\r\n\r\n" % (path, token)).encode())
        data = b""
        while b"\r\n\r\n" not in data:
            more = s.recv(65536)
            if not more:
                break
            data += more
        head, _, rest = data.partition(b"\r\n\r\n")
        status = int(head.split()[1])
        headers = head.decode("latin-1").lower()
        sizes, body = [], b""
        if "transfer-encoding: chunked" not in headers:
            while True:
                more = s.recv(65536)
                if not more:
                    break
                rest += more
            return status, headers, sizes, rest
        buf = rest
        while True:
            while b"\r\n" not in buf:
                more = s.recv(65536)
                if not more:
                    fail("the chunked answer ended without its last chunk")
                buf += more
            line, _, buf = buf.partition(b"\r\n")
            n = int(line.split(b";")[0], 16)
            if n == 0:
                break
            while len(buf) < n + 2:
                more = s.recv(1 << 20)
                if not more:
                    fail("the chunked answer ended inside a chunk")
                buf += more
            body += buf[:n]
            buf = buf[n + 2:]
            sizes.append(n)
            if stop_after and len(sizes) >= stop_after:
                return status, headers, sizes, body
        return status, headers, sizes, body
    finally:
        s.close()


@test
def scale_reports_ratings_csv_is_streamed(env):
    url, server = reports_env(env)
    tok = lead_token()
    path = "/v1/reports/ratings.csv?credential_id=%s" % _state["big"]
    status, headers, sizes, body = chunked_get(server.port, path, tok)
    eq(status, 200, "ratings.csv status")
    check("transfer-encoding: chunked" in headers, "ratings.csv is chunked: %s" % headers)
    check(len(sizes) >= 3, "%d submissions come in several chunks (pages): %s" % (BIG, sizes))
    check(max(sizes) <= 1 << 20, "no chunk over 1 MiB (one page at a time): %s" % max(sizes))
    # one audit row per download, not per page
    n = psql(url, "SELECT count(*) FROM audit_log WHERE action = 'report.read'"
                  " AND detail->>'report' = 'ratings.csv'")
    eq(n, "1", "audit rows for one download")
    # the same bytes as 006's one-piece CSV (still in the database, as an oracle)
    old = psql(url, "SELECT api_report_ratings_csv(encode(sha256(convert_to('%s', 'UTF8')), 'hex'),"
                    " jsonb_build_object('credential_id', '%s'::uuid)) ->> 'csv'" % (tok, _state["big"]))
    eq(body.decode(), old + "\n", "the streamed CSV equals the one-piece CSV")
    eq(body.count(b"\n"), 1 + BIG * 2 * 4, "lines: header + submissions x reviews x criteria")
    # a client that goes away after the first chunk: the server carries on
    status, _, sizes, _ = chunked_get(server.port, path, tok, stop_after=1)
    eq((status, len(sizes)), (200, 1), "first chunk, then the client hangs up")
    r = Client(server, tok).get("/v1/me")
    expect(r, 200, what="the server answers after a download was cut short")
    # a small credential: one page, then the end
    status, _, sizes, body = chunked_get(
        server.port, "/v1/reports/ratings.csv?credential_id=%s" % _state["small"], tok)
    eq((status, body.count(b"\n")), (200, 1 + SMALL * 8), "small credential's CSV")


@test
def scale_reports_agreement_kept_until_new_scores(env):
    url, server = reports_env(env)
    c = Client(server, lead_token())
    path = "/v1/reports/agreement?credential_id=%s" % _state["small"]
    first = expect(c.get(path), 200, what="agreement, first")
    r = c.get(path)
    second = expect(r, 200, what="agreement, again")
    eq(r.header("X-Report-Cache"), "hit", "the second read is the kept answer")
    eq(second, first, "the kept answer is the same answer")
    eq(psql(url, "SELECT count(*) FROM audit_log WHERE action = 'report.read'"
                 " AND detail->>'report' = 'agreement'"), "2", "every read is audited, kept or not")
    # a new score: the stamp moves, the report is computed again (and, being
    # under a minute old, not kept: a score could still commit with an older time)
    psql(url, """INSERT INTO reviews (submission_id, assessor_id, status, lease_expires_at, verdict,
                                      scored_at, stage, pool)
                 SELECT s.id, u.id, 'submitted', now(), 'pass', now(), 'adjudication', 'lead'
                   FROM submissions s, users u
                  WHERE s.credential_id = '%s' AND u.email = 'report-lead@example.org'
                  ORDER BY s.id LIMIT 1 RETURNING id""" % _state["small"])
    for what in ("after a new score", "still fresh"):
        r = c.get(path)
        expect(r, 200, what="agreement %s" % what)
        eq(r.header("X-Report-Cache"), "miss", "agreement %s: computed" % what)


def thread_sched(pid, name):
    """(nice, policy) of the server's thread named name, or None."""
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                if f.read().strip() != name:
                    continue
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        return int(fields[16]), int(fields[38])   # stat fields 19 (nice) and 41 (policy)
    return None


@test
def scale_reports_yield_to_uploads(env):
    """A report's computation runs on a thread of its own that yields the CPU
    to requests (an upload next to two reports took 5.4x its time alone):
    SCHED_BATCH at nice 10, named accord-report."""
    _, server = reports_env(env)
    c = Client(server, lead_token())
    r = c.get("/v1/reports/agreement?credential_id=%s&since=2000-01-01T00:00:00Z" % _state["small"])
    expect(r, 200, what="agreement")
    eq(r.header("X-Report-Cache"), "miss", "the report was computed")
    got = thread_sched(server.proc.pid, "accord-report")
    check(got is not None, "the server has a thread named accord-report after a report")
    eq(got, (10, 3), "the report thread's (nice, policy): 10 and SCHED_BATCH (3)")
    eq(os.getpriority(os.PRIO_PROCESS, server.proc.pid), 0,
       "the event loop (the main thread) keeps its priority")


@test
def scale_reports_done(env):
    """Drops the accord_scale_reports database (its servers are stopped)."""
    if not _state:
        fail("the accord_scale_reports database was never made")
    psql(env.base_env["DATABASE_URL"], "DROP DATABASE accord_scale_reports")
    _state.clear()

#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""scaling.py - cost that stays flat as the work grows (issue 15; make bench).

Each measure is printed beside its anchor, measured in the same run, as a
ratio with the issue's target:

  claims   p50 of POST /v1/reviews/claim over HTTP (durable PostgreSQL: the
           commit's fsync included) and of the claim function alone (timed
           inside the database), for assessors with 1 (the anchor), 10, 100
           and 500 grants over 1,000 credentials with work spread over time,
           and with 10^5 ineligible submissions at the head of their queue
           (their own organisation's; claimed and released by them); then one
           assessor looping claim -> release 1,600 times (last 100 against
           the first 100). Targets: <= 1.5x for grants, <= 2x for the heads.

    python3 tests/bench/scaling.py --bin build/accord [--parts claims]

Everything runs on a throwaway cluster (db/cluster.sh, default durability)
and servers on 127.0.0.1:<free port>; all is stopped and removed at exit.
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "http"))

import harness  # noqa: E402

PSQL = os.path.join(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
                    .stdout.strip() or "/usr/lib/postgresql/15/bin", "psql")


def log(msg):
    print("[scaling %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def psql(url, sql=None, path=None, variables=None):
    cmd = [PSQL, url, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"]
    for k, v in (variables or {}).items():
        cmd += ["-v", "%s=%s" % (k, v)]
    cmd += ["-f", path] if path else ["-c", sql]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("psql failed: %s\n%s" % ((sql or path)[:200], p.stderr[-2000:]))
    return p.stdout.strip()


def pct(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = max(1, min(len(v), int(p / 100.0 * len(v) + 0.999999)))
    return v[k - 1]


def bench_token(name):
    import hashlib
    h = hashlib.md5(("scale-" + name).encode()).hexdigest()
    return "acc_" + h + h


def row(label, value, anchor, target=None, unit="ms"):
    ratio = value / anchor if anchor else float("nan")
    verdict = ""
    if target is not None:
        verdict = "target <= %.1fx: %s" % (target, "met" if ratio <= target else "NOT met")
    print("  %-44s %9.2f %-4s %6.2fx  %s" % (label, value, unit, ratio, verdict))


class Stack:
    """A durable cluster and one accord server on it."""

    def __init__(self, binary, workdir):
        self.binary = os.path.abspath(binary)
        self.workdir = workdir
        self.server = None
        self.url = None

    def start_db(self):
        out = subprocess.run([os.path.join(ROOT, "db", "cluster.sh"), "start",
                              os.path.join(self.workdir, "pg")],
                             capture_output=True, text=True, check=True)
        self.url = out.stdout.strip().splitlines()[-1]
        env = dict(os.environ, DATABASE_URL=self.url)
        subprocess.run([self.binary, "migrate"], env=env, check=True, capture_output=True)

    def start_server(self, extra_env=None):
        keys = os.path.join(self.workdir, "keys")
        os.makedirs(keys, mode=0o700, exist_ok=True)
        env = dict(os.environ, DATABASE_URL=self.url, ACCORD_KEY_DIR=keys)
        self.server = harness.Server(self.binary, self.workdir, os.path.join(self.workdir, "data"),
                                     env, name="scaling", extra_env=extra_env)
        self.server.start()
        return self.server.port

    def stop(self):
        if self.server:
            self.server.stop()
        subprocess.run([os.path.join(ROOT, "db", "cluster.sh"), "stop",
                        os.path.join(self.workdir, "pg")], capture_output=True)


def http_claims(port, name, n):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    hdr = {"Authorization": "Bearer " + bench_token(name), "Content-Type": "application/json"}
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("POST", "/v1/reviews/claim", body=b"{}", headers=hdr)
        r = conn.getresponse()
        body = r.read()
        lat.append((time.perf_counter() - t0) * 1000)
        if r.status != 200:
            raise RuntimeError("claim by %s: %d %s" % (name, r.status, body[:300]))
        json.loads(body)
    conn.close()
    return lat


UNDO = """
WITH r AS (SELECT rv.id, rv.submission_id FROM reviews rv JOIN users u ON u.id = rv.assessor_id
            WHERE u.email = 'scale-{0}@example.org' AND rv.status = 'active'),
     s AS (UPDATE submissions SET status = 'queued', current_review_id = NULL, lease_expires_at = NULL
            WHERE id IN (SELECT submission_id FROM r) RETURNING id)
DELETE FROM reviews WHERE id IN (SELECT id FROM r)
"""


def part_claims(stack, args):
    log("claims: filling the database (1,000 credentials, 3 x 10^5 submissions)")
    t0 = time.time()
    psql(stack.url, path=os.path.join(HERE, "scaling_claims.sql"))
    log("claims: filled in %.0f s" % (time.time() - t0))
    port = stack.start_server({"ACCORD_MAX_RELEASES": "10000"})
    n = args.claims
    scen = [("g1", "1 grant, clean queue (anchor)", None),
            ("g10", "10 grants", 1.5), ("g100", "100 grants", 1.5), ("g500", "500 grants", 1.5),
            ("own", "10^5 own-organisation at the head", 2.0),
            ("rel", "10^5 claimed-and-released at the head", 2.0)]
    res_http, res_fn = {}, {}
    for name, _, _ in scen:
        http_claims(port, name, 1)   # the first claim pays once for what it passes
        psql(stack.url, UNDO.format(name))
    for rnd in range(2):             # two alternating rounds: background load hits all alike
        for name, _, _ in scen:
            lat = http_claims(port, name, n // 2)
            res_http.setdefault(name, []).extend(lat)
            psql(stack.url, UNDO.format(name))
    for name, _, _ in scen:
        psql(stack.url, "CALL bench_claims('%s', %d, 'undo')" % (name, n))
        res_fn[name] = [float(x) for x in psql(
            stack.url, "SELECT ms FROM bench_latency WHERE scenario = '%s'" % name).split()]
    log("claims: claim -> release loop, %d cycles" % args.loop)
    psql(stack.url, "CALL bench_claims('loop', %d, 'release')"
         % args.loop)
    loop = [float(x) for x in psql(stack.url, "SELECT ms FROM bench_latency WHERE scenario = 'loop'"
                                   " ORDER BY n").split()]
    stack.server.stop()
    print("\nscaling: claims, p50 (%d claims each; anchor: 1 grant, clean queue)" % n)
    print("  over HTTP (POST /v1/reviews/claim, durable commit):")
    a = pct(res_http["g1"], 50)
    for name, label, target in scen:
        row(label, pct(res_http[name], 50), a, target)
    print("  the claim function alone (timed in the database):")
    a = pct(res_fn["g1"], 50)
    for name, label, target in scen:
        row(label, pct(res_fn[name], 50), a, target)
    k = min(100, len(loop) // 4)
    row("claim -> release loop: last %d vs first %d" % (k, k), pct(loop[-k:], 50),
        pct(loop[:k], 50), 1.5)


PARTS = {"claims": part_claims}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "accord"))
    ap.add_argument("--parts", default="claims")
    ap.add_argument("--claims", type=int, default=100, help="claims per scenario")
    ap.add_argument("--loop", type=int, default=1600, help="claim -> release cycles")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    rc = 0
    for part in args.parts.split(","):
        workdir = tempfile.mkdtemp(prefix="accord-scaling-")
        os.chmod(workdir, 0o755)  # the cluster's owner (postgres, under root) enters it
        stack = Stack(args.bin, workdir)
        try:
            stack.start_db()
            PARTS[part](stack, args)
        except Exception as e:  # noqa: BLE001 - reported, the next part still runs
            print("scaling: %s failed: %s" % (part, e), file=sys.stderr)
            rc = 1
        finally:
            stack.stop()
            if args.keep:
                log("kept %s" % workdir)
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())

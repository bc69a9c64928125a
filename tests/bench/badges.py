#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""badges.py - what a badge costs to serve (make bench; issue 12).

Issues N awards, then times, from one client, sequentially:
  anchor : GET /healthz                         (no database, no crypto)
  db     : GET /v1/credentials/{id}             (one plain database round trip)
  first  : GET /v1/awards/{id} as application/vc+jwt, the first read of each
           badge: the credential is built, RS256-signed off the event loop and
           stored (one extra round trip)
  stored : the same reads again: the stored JWT, no cryptography
  page   : the HTML page (decodes the JWT and checks its signature off-loop)
and prints each per request and as a ratio to the anchor, measured in the same
run. Then 8 client threads read stored badges for throughput, against 8 on
/healthz.

    python3 tests/bench/badges.py --bin build/accord [--awards 100]
"""

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "http"))

import harness  # noqa: E402
from badges import earn  # noqa: E402


def timed(fn, n):
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - t0) / n


def throughput(fn, n_threads, per_thread):
    def worker():
        for i in range(per_thread):
            fn(i)
    threads = [threading.Thread(target=worker) for _ in range(n_threads)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return n_threads * per_thread / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--awards", type=int, default=100)
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    workdir = tempfile.mkdtemp(prefix="accord-bench-badges-")
    os.chmod(workdir, 0o755)
    cluster = harness.Cluster(ROOT, os.path.join(workdir, "pg"))
    base_env = dict(os.environ, ACCORD_KEY_DIR=os.path.join(workdir, "keys"),
                    ACCORD_PUBLIC_URL=harness.PUBLIC_URL)
    env = harness.Env(ROOT, binary, workdir, cluster, base_env)
    try:
        base_env["DATABASE_URL"] = cluster.start()
        for cmd in (["migrate"], ["user", "add", "--email", "admin@example.org", "--name", "Admin",
                                  "--roles", "admin"]):
            rc, out, err = harness.run_cli(binary, cmd, base_env, timeout=120)
            if rc != 0:
                raise RuntimeError("%s: %s%s" % (cmd, out, err))
        rc, out, err = harness.run_cli(binary, ["token", "create", "--email", "admin@example.org"],
                                       base_env)
        token = harness.last_line(out)
        env.server = env.start_server("bench")
        env.admin = harness.User(env, harness.Client(env.server, token).get("/v1/me").json, token)
        lead = env.user(["lead"])
        assessor = env.user(["assessor"])
        cred = env.credential(lead, env.rubric(lead)["id"])
        env.grant(lead, cred["id"], assessor)
        ids = []
        for _ in range(args.awards):
            earner = env.user(["earner"])
            ids.append(earn(env, lead, earner, cred, assessor)[0])
        anon = env.admin.c.anon()
        jwt_h = {"Accept": "application/vc+jwt"}
        html_h = {"Accept": "text/html"}

        def get(path, headers=None):
            r = anon.get(path, headers=headers)
            if r.status != 200:
                raise RuntimeError(r.describe())

        n = len(ids)
        anchor = timed(lambda i: get("/healthz"), n)
        cred_get = timed(lambda i: lead.c.get("/v1/credentials/" + cred["id"]), n)
        first = timed(lambda i: get("/v1/awards/" + ids[i], jwt_h), n)
        stored = timed(lambda i: get("/v1/awards/" + ids[i], jwt_h), n)
        page = timed(lambda i: get("/v1/awards/" + ids[i], html_h), n)
        print("== badges: %d awards, one client, sequential (ms per request; ratio to /healthz)" % n)
        for name, t in (("anchor /healthz", anchor), ("GET /v1/credentials/{id}", cred_get),
                        ("first read (sign+store)", first),
                        ("stored VC-JWT", stored), ("HTML page (verify)", page)):
            print("  %-26s %7.2f ms  %5.2fx" % (name, t * 1000, t / anchor))
        print("  first read / stored read: %.2fx" % (first / stored))
        per = max(1, n // 2)
        hz = throughput(lambda i: get("/healthz"), 8, per)
        bz = throughput(lambda i: get("/v1/awards/" + ids[i % n], jwt_h), 8, per)
        print("  8 clients: /healthz %.0f/s, stored badges %.0f/s (%.2fx)" % (hz, bz, bz / hz))
        return 0
    finally:
        for s in env.servers:
            msg = s.stop()
            if msg:
                print("bench: " + msg)
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

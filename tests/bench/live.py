#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tests/bench/live.py - what 1,000 open live update streams cost (issue 14).

Starts a throwaway cluster and `accord serve` (the optimised build), creates
ten assessors granted one credential, then prints the server's resident
memory (VmRSS) idle (the anchor) and with 1,000 open GET /v1/events streams
(a hundred per assessor), the ratio of the two, the memory per
stream, the batched queries it took to open them and to fan one new
submission out to all of them, and how long that fan-out took (printed, not
judged: the machine is shared).

    python3 tests/bench/live.py [--bin build/accord]
Only loopback; every client and process it starts is bounded and stopped.
"""

import argparse
import os
import resource
import sys
import shutil
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "http"))

from harness import Client, Cluster, Env, User, last_line, run_cli  # noqa: E402
import t_live  # noqa: E402


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default="build/accord")
    ap.add_argument("--users", type=int, default=10)
    ap.add_argument("--per-user", type=int, default=100)
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    work = tempfile.mkdtemp(prefix="accord-bench-live-")
    os.chmod(work, 0o755)
    cluster = Cluster(ROOT, os.path.join(work, "pg"))
    env = Env(ROOT, binary, work, cluster, dict(os.environ))
    rc = 1
    try:
        env.base_env["DATABASE_URL"] = cluster.start()
        env.base_env["ACCORD_KEY_DIR"] = os.path.join(work, "keys")
        for cmd in (["migrate"], ["user", "add", "--email", "admin@example.org", "--name",
                                  "Admin", "--roles", "admin"]):
            code, out, err = run_cli(binary, cmd, env.base_env, timeout=120)
            if code != 0:
                raise RuntimeError("accord %s: %s%s" % (" ".join(cmd), out, err))
        code, out, err = run_cli(binary, ["token", "create", "--email", "admin@example.org"],
                                 env.base_env)
        token = last_line(out)
        env.server = env.start_server("bench-live", {
            "ACCORD_LIVE_STREAMS_PER_USER": str(args.per_user), "ACCORD_LOG": "warn"})
        env.admin = User(env, Client(env.server, token).get("/v1/me").json, token)
        n = args.users * args.per_user
        anchor = 0

        def take_anchor():   # the server warm and the users set up, before any stream
            nonlocal anchor
            anchor = rss_kib(env.server.proc.pid)

        many, open_b, fan_b, fan_s = t_live.thousand_streams(env, env.server, args.users,
                                                             args.per_user, take_anchor)
        with_streams = rss_kib(env.server.proc.pid)
        many.close()
        print("== live updates: %d open GET /v1/events streams on one server (%d users)"
              % (n, args.users))
        print("   RSS idle (anchor)        %8.1f MiB" % (anchor / 1024))
        print("   RSS with %d streams    %8.1f MiB  (ratio %.2f to the anchor; %.1f KiB a stream)"
              % (n, with_streams / 1024, with_streams / max(1, anchor),
                 (with_streams - anchor) / n))
        print("   batched queries: %d to open them, %d to fan one submission out to all"
              % (open_b, fan_b))
        print("   fan-out: the last of %d streams had the new count %.3f s after the submit"
              % (n, fan_s))
        rc = 0
    finally:
        for s in env.servers:
            s.stop()
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())

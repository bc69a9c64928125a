#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Browser tests of the web app (issue 11): Debian's chromium, headless,
driven by npm playwright-core, pages checked by axe-core.

    python3 tests/browser/run.py --bin build/asan/accord [-k NAME] [--keep]
                                 [--screenshots DIR]

Starts a throwaway PostgreSQL and one `accord serve` exactly as the HTTP suite
does (tests/http/harness.py), with ACCORD_PUBLIC_URL naming the server's own
origin (so badges and invitation links point at it), creates the people and
the credentials each story starts from through the API (fixtures.py), then runs
the stories (stories.mjs) in one browser. The stories use the app only as a
person would: controls are found by role and accessible name. Everything talks
to 127.0.0.1 only; the run is bounded by --timeout. The last line is
`browser: N passed, N failed`.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "http"))

import harness  # noqa: E402
from harness import Client, Cluster, Env, User, last_line, run_cli, tail  # noqa: E402

import fixtures  # noqa: E402
import serving  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def free_port():
    """A port nobody listens on now (the server takes it a moment later; a
    start that loses the race is retried with another)."""
    with socket.socket() as s:
        s.bind((harness.HOST, 0))
        return s.getsockname()[1]


def setup(env, binary, max_body=32 * 1024 * 1024):
    e = env.base_env
    rc, out, err = run_cli(binary, ["migrate"], e, timeout=120)
    if rc != 0:
        raise RuntimeError("accord migrate exited %d:\n%s%s" % (rc, out, err))
    rc, out, err = run_cli(binary, ["user", "add", "--email", "admin@example.org", "--name",
                                    "Admin", "--roles", "admin"], e)
    if rc != 0:
        raise RuntimeError("accord user add exited %d:\n%s%s" % (rc, out, err))
    rc, out, err = run_cli(binary, ["token", "create", "--email", "admin@example.org"], e)
    if rc != 0:
        raise RuntimeError("accord token create exited %d:\n%s%s" % (rc, out, err))
    token = last_line(out)
    for attempt in range(3):
        port = free_port()
        s = harness.Server(binary, env.workdir, env.data_dir, env.base_env, "main",
                           {"ACCORD_PUBLIC_URL": "http://%s:%d" % (harness.HOST, port),
                            "ACCORD_MAX_BODY": str(max_body)})
        try:
            s.start(port=port)
        except RuntimeError:
            if attempt == 2:
                raise
            continue
        env.servers.append(s)
        env.server = s
        break
    r = Client(env.server, token).get("/v1/me")
    if r.status != 200:
        raise RuntimeError("GET /v1/me with the admin token: %s" % r.describe())
    env.admin = User(env, r.json, token)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("-k", dest="filter", default="")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--screenshots", default="", help="write README screenshots here")
    ap.add_argument("--timeout", type=int, default=300)
    ap.add_argument("--bench", action="store_true",
                    help="time the main pages and opening a review of 3 x 50 MB videos (bench.mjs)")
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    os.chdir(ROOT)
    if not os.access(CHROMIUM, os.X_OK):
        print("browser: no chromium at %s (make browser-deps installs Debian's)" % CHROMIUM)
        print("browser: 0 passed, 1 failed")
        return 1

    signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    workdir = tempfile.mkdtemp(prefix="accord-browser-")
    os.chmod(workdir, 0o755)
    cluster = Cluster(ROOT, os.path.join(workdir, "pg"))
    base_env = dict(os.environ)
    base_env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    base_env["ACCORD_KEY_DIR"] = os.path.join(workdir, "keys")
    env = Env(ROOT, binary, workdir, cluster, base_env)
    passed = failed = 0
    t0 = time.monotonic()
    try:
        base_env["DATABASE_URL"] = cluster.start()
        # the bench posts each 50 MB video in one request
        setup(env, binary, 64 * 1024 * 1024 if args.bench else 32 * 1024 * 1024)
        if args.bench:
            fx = fixtures.make_bench(env)
            fx.update(base="http://%s:%d" % (harness.HOST, env.server.port), chromium=CHROMIUM)
            path = os.path.join(workdir, "fixtures.json")
            with open(path, "w") as f:
                json.dump(fx, f)
            p = subprocess.run(["node", os.path.join(HERE, "bench.mjs"), path], cwd=HERE,
                               timeout=900, stdin=subprocess.DEVNULL)
            failed += p.returncode != 0
            passed += p.returncode == 0
            return 1 if failed else 0
        if not args.filter or args.filter in "serving":
            t1 = time.monotonic()
            problems, numbers = serving.check(env, ROOT)
            if problems:
                failed += 1
                print("FAIL serving (%.1fs)\n    %s" % (time.monotonic() - t1, "\n    ".join(problems)))
            else:
                passed += 1
                print("PASS serving (%.1fs): first load %.1f KB of gzip-compressed HTML, JS and CSS"
                      % (time.monotonic() - t1, numbers["first_load_gzip_bytes"] / 1024))
        # the district's identity provider: the real npm oidc-provider on
        # loopback, redirecting to this server's callback
        from t_oidc import TestProvider  # noqa: E402 (needs the server's port)
        fx = fixtures.make(env, TestProvider.get(env))
        fx["base"] = "http://%s:%d" % (harness.HOST, env.server.port)
        fx["chromium"] = CHROMIUM
        fx["filter"] = args.filter
        fx["screenshots"] = os.path.abspath(args.screenshots) if args.screenshots else ""
        fx["workdir"] = workdir
        path = os.path.join(workdir, "fixtures.json")
        with open(path, "w") as f:
            json.dump(fx, f)
        print("browser: fixtures ready in %.1fs; server on %s; logs in %s"
              % (time.monotonic() - t0, fx["base"], workdir))
        sys.stdout.flush()
        p = subprocess.run(["node", os.path.join(HERE, "stories.mjs"), path], cwd=HERE,
                           timeout=args.timeout, stdin=subprocess.DEVNULL)
        with open(os.path.join(workdir, "results.json")) as f:
            res = json.load(f)
        passed += res["passed"]
        failed += res["failed"]
        if p.returncode != 0 and failed == 0:
            failed = 1
        reports = env.server.new_sanitizer_reports()
        for line in reports[:5]:
            print("FAIL sanitizer report in the server's stderr: %s" % line)
            failed += 1
        msg = env.server.stop()
        if msg:
            print("FAIL shutdown_main_server\n%s" % msg)
            failed += 1
        return 1 if failed else 0
    except subprocess.TimeoutExpired:
        print("browser: the stories took longer than %d s" % args.timeout)
        failed += 1
        return 1
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001
        print("browser: %s: %s" % (type(e).__name__, e))
        if env.server:
            print(tail(env.server.stderr_path))
        failed += 1
        return 1
    finally:
        oidc = sys.modules.get("t_oidc")
        if oidc and oidc.TestProvider._instance:
            oidc.TestProvider._instance.stop()
        for s in env.servers:
            s.kill()
        try:
            cluster.stop()
        except Exception as e:  # noqa: BLE001
            print("cluster stop failed: %s" % e)
        if args.keep:
            print("kept %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        print("browser: %d passed, %d failed (%.0f s)" % (passed, failed, time.monotonic() - t0))
        sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())

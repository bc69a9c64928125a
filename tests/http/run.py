#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""HTTP integration tests for accord (Python 3 standard library only).

    python3 tests/http/run.py --bin build/asan/accord [-k SUBSTRING] [--keep]

Starts a throwaway PostgreSQL (db/cluster.sh), runs `accord migrate`, creates
the admin with the CLI, starts `accord serve` on 127.0.0.1:0 and runs the tests
(tests/http/t_*.py, in the order imported below) against it. Every server the
harness started must still be alive after each test and must exit 0 within
10 s of SIGTERM at the end; a sanitizer report in a server's stderr fails the
test during which it appeared. The last line is `http: N passed, N failed`;
the exit status is 1 when anything failed.
"""

import argparse
import importlib
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import contract  # noqa: E402
import harness  # noqa: E402
from harness import (Cluster, Env, Failure, User, Client, last_line, log_excerpt,  # noqa
                     run_cli, tail)

# Test modules, in run order; any other tests/http/t_*.py runs after these
# (sorted by name) and before t_ops, whose database-outage test must stay last
# because it stops and restarts the cluster.
ORDER = ["t_story", "t_artifacts", "t_authz", "t_badinput", "t_concurrency", "t_crash"]
LAST = ["t_ops"]
_found = sorted(f[:-3] for f in os.listdir(HERE) if f.startswith("t_") and f.endswith(".py"))
for _mod in ORDER + [m for m in _found if m not in ORDER + LAST] + LAST:
    if _mod in _found:
        importlib.import_module(_mod)

MAIN_MAX_BODY = str(32 * 1024 * 1024)


class Watchdog(BaseException):
    pass


def on_signal(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def on_alarm(signum, frame):
    raise Watchdog("the whole run took longer than the --timeout")


def setup(env, binary):
    e = env.base_env
    rc, out, err = run_cli(binary, ["migrate"], e, timeout=120)
    if rc != 0:
        raise RuntimeError("accord migrate exited %d:\n%s%s" % (rc, out, err))
    rc, out, err = run_cli(binary, ["user", "add", "--email", "admin@example.org", "--name",
                                    "Admin", "--roles", "admin"], e)
    if rc != 0:
        raise RuntimeError("accord user add exited %d:\n%s%s" % (rc, out, err))
    admin_id = last_line(out)
    if not harness.is_uuid(admin_id):
        raise RuntimeError("accord user add printed %r, expected the new user's id" % out)
    rc, out, err = run_cli(binary, ["token", "create", "--email", "admin@example.org"], e)
    if rc != 0:
        raise RuntimeError("accord token create exited %d:\n%s%s" % (rc, out, err))
    token = last_line(out)
    if not token:
        raise RuntimeError("accord token create printed no token")
    env.server = env.start_server("main", {"ACCORD_MAX_BODY": MAIN_MAX_BODY})
    r = Client(env.server, token).get("/v1/me")
    if r.status != 200 or not isinstance(r.json, dict) or r.json.get("id") != admin_id:
        raise RuntimeError("GET /v1/me with the admin token: %s" % r.describe())
    env.admin = User(env, r.json, token)


def post_checks(env):
    """Problems after a test: answers that depart from server/openapi.json,
    servers that died, sanitizer reports."""
    problems = []
    found = contract.take()
    if found:
        shown = sorted(set(found))
        problems.append("answers not as server/openapi.json documents them (%d):\n%s"
                        % (len(found), "\n".join(shown[:25])
                           + ("\n..." if len(shown) > 25 else "")))
    for s in env.servers:
        reports = s.new_sanitizer_reports()
        if reports and not s.finished and s.proc is not None:
            try:                     # a sanitizer aborts the process: let it finish
                s.proc.wait(5)
            except Exception:  # noqa: BLE001
                pass
        for line in reports[:5]:
            problems.append("sanitizer report in %s stderr: %s" % (s.name, line))
        if not s.finished and s.proc is not None and s.proc.poll() is not None:
            problems.append("%s died (exit status %d); stderr:\n%s"
                            % (s.name, s.proc.returncode, indent(log_excerpt(s.stderr_path))))
            s.finished = True
            if s is env.server:
                try:
                    s.finished = False
                    s.start()
                    problems.append("(main server restarted on port %d for the next tests)"
                                    % s.port)
                except Exception as e:  # noqa: BLE001
                    problems.append("could not restart the main server: %s" % e)
    return problems


def indent(text, pad="    "):
    return "\n".join(pad + l for l in str(text).splitlines())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True, help="the accord binary to test")
    ap.add_argument("-k", dest="filter", default=None, help="run tests whose name contains this")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, cluster)")
    # ends a hang; 175 tests took 590 s at load average 13 on 2 cores (several tracks testing)
    ap.add_argument("--timeout", type=int, default=1200, help="bound on the whole run (s)")
    args = ap.parse_args()

    binary = args.bin
    if not os.path.isabs(binary):
        binary = os.path.abspath(binary) if os.path.exists(binary) else os.path.join(ROOT, binary)
    os.chdir(ROOT)
    selected = [t for t in harness.TESTS if not args.filter or args.filter in t.__name__]
    if not os.access(binary, os.X_OK):
        print("http: %s is not an executable" % binary)
        print("http: 0 passed, %d failed" % max(1, len(selected)))
        return 1

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(args.timeout)

    workdir = tempfile.mkdtemp(prefix="accord-http-")
    os.chmod(workdir, 0o755)  # the cluster may belong to the postgres user
    cluster = Cluster(ROOT, os.path.join(workdir, "pg"))
    base_env = dict(os.environ)
    base_env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    # badges (issue 12): signing keys of this run's own (the servers that issue
    # badges are started with ACCORD_PUBLIC_URL, see tests/http/badges.py)
    base_env["ACCORD_KEY_DIR"] = os.path.join(workdir, "keys")
    # notifications (issue 14): the servers share one database, so only the
    # servers of the notification tests deliver (their settings, their receivers)
    base_env["ACCORD_OUTBOX_THREADS"] = "0"
    env = Env(ROOT, binary, workdir, cluster, base_env)
    passed = failed = 0
    try:
        try:
            base_env["DATABASE_URL"] = cluster.start()
            setup(env, binary)
        except (Exception, Watchdog) as e:  # noqa: BLE001
            print("SETUP FAILED: %s" % e)
            for s in env.servers:
                print("--- %s stderr ---\n%s" % (s.name, tail(s.stderr_path)))
            failed = max(1, len(selected))
            return 1
        print("http: %d tests; main server on 127.0.0.1:%d; logs in %s"
              % (len(selected), env.server.port, workdir))
        for t in selected:
            t0 = time.monotonic()
            err = None
            del harness.SOFT_FAILURES[:]
            try:
                t(env)
            except Failure as e:
                err = str(e)
            except Watchdog:
                raise
            except Exception:  # noqa: BLE001
                err = "unexpected exception:\n" + traceback.format_exc(limit=6)
            finally:
                # servers a test started and left running: stop and judge them
                for s in env.servers:
                    if s is not env.server and not s.finished:
                        msg = s.stop()
                        if msg and err is None:
                            err = msg
            if err is not None and env.server.alive():
                # a main server that stopped answering may be dying: give it a moment
                try:
                    Client(env.server).get("/healthz", timeout=3)
                except Failure:
                    try:
                        env.server.proc.wait(5)
                    except Exception:  # noqa: BLE001
                        pass
            if harness.SOFT_FAILURES:
                soft = "\n".join("(soft) " + m for m in harness.SOFT_FAILURES)
                err = soft if err is None else soft + "\n" + err
            problems = post_checks(env)
            if problems and err is None:
                err = "\n".join(problems)
            elif problems:
                err += "\n" + "\n".join(problems)
            dt = time.monotonic() - t0
            if err is None:
                passed += 1
                print("PASS %s (%.1fs)" % (t.__name__, dt))
            else:
                failed += 1
                print("FAIL %s (%.1fs)\n%s" % (t.__name__, dt, indent(err)))
                if "stderr:" not in err and tail(env.server.stderr_path, 12).strip():
                    print("    --- main server stderr (tail) ---\n%s"
                          % indent(tail(env.server.stderr_path, 12), "    | "))
            sys.stdout.flush()
        # the main server must shut down cleanly
        msg = env.server.stop()
        problems = post_checks(env)
        if msg or problems:
            failed += 1
            print("FAIL shutdown_main_server\n%s" % indent("\n".join(filter(None, [msg] + problems))))
        return 1 if failed else 0
    except KeyboardInterrupt as e:
        print("\ninterrupted (%s)" % e)
        failed += 1
        return 1
    except Watchdog as e:
        print("\nWATCHDOG: %s" % e)
        failed += 1
        return 1
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
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
        print("http: %d passed, %d failed" % (passed, failed))
        sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())

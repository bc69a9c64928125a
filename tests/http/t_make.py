# SPDX-License-Identifier: Apache-2.0
"""`make run` installs only what running needs; `make test` adds the test
tools; both wait for a held apt lock and say so plainly (issue 9, item 1)."""

import os
import stat
import subprocess
import tempfile

from harness import check, eq, test

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEST_ONLY = ("python3-sklearn", "python3-statsmodels", "python3-pandas", "python3-numpy",
             "r-cran-psych", "prometheus")


def make(*args, env=None, timeout=120):
    e = dict(os.environ)
    e.update(env or {})
    e.pop("MAKEFLAGS", None)
    e.pop("MAKELEVEL", None)
    p = subprocess.run(["make", "-s", "--no-print-directory"] + list(args), cwd=ROOT, env=e,
                       capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout + p.stderr


@test
def make_run_installs_only_what_running_needs(env):
    rc, run_pkgs = make("print-RUN_PKGS")
    eq(rc, 0, "make print-RUN_PKGS")
    rc, test_pkgs = make("print-TEST_PKGS")
    eq(rc, 0, "make print-TEST_PKGS")
    run_pkgs, test_pkgs = run_pkgs.split(), test_pkgs.split()
    for p in ("libevent-dev", "libjansson-dev", "libpq-dev", "uuid-dev", "postgresql", "gcc"):
        check(p in run_pkgs, "RUN_PKGS lacks %s: %s" % (p, run_pkgs))
    for p in TEST_ONLY:
        check(p not in run_pkgs, "RUN_PKGS has the test-only package %s" % p)
        check(p in test_pkgs, "TEST_PKGS lacks %s" % p)
    # what `make run` would do: only the run list is installed before serving
    rc, plan = make("-n", "run")
    eq(rc, 0, "make -n run:\n" + plan[-2000:])
    check("libevent-dev" in plan, "make -n run does not check the run packages:\n" + plan[:2000])
    for p in TEST_ONLY:
        check(p not in plan, "make -n run would install the test-only %s" % p)
    rc, plan = make("-n", "deps-test")
    for p in TEST_ONLY + ("libevent-dev",):
        check(p in plan, "make -n deps-test does not install %s" % p)


FAKE_APT = """#!/bin/sh
echo "$@" >> "%(log)s"
echo "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)" >&2
exit 100
"""


@test
def make_deps_reports_a_held_apt_lock(env):
    """A stand-in apt-get that always finds the lock held: make waits through
    apt (DPkg::Lock::Timeout) and then says what happened, exit non-zero."""
    with tempfile.TemporaryDirectory() as d:
        log = os.path.join(d, "apt-args")
        fake = os.path.join(d, "apt-get")
        with open(fake, "w") as f:
            f.write(FAKE_APT % {"log": log})
        os.chmod(fake, stat.S_IRWXU)
        for target, var in (("deps-run", "RUN_PKGS"), ("deps-test", "TEST_PKGS")):
            rc, out = make(target, "%s=accord-no-such-package" % var, "APT_GET=" + fake,
                           "APT_LOCK_WAIT=7")
            check(rc != 0, "make %s with the apt lock held should fail, got exit 0:\n%s"
                  % (target, out))
            if os.getuid() != 0:
                check("missing Debian packages: accord-no-such-package" in out, out)
                continue
            check("apt is busy" in out and "4242" in out and "APT_LOCK_WAIT" in out,
                  "make %s with the apt lock held should say so plainly, got:\n%s"
                  % (target, out))
            with open(log) as f:
                calls = f.read().splitlines()
            check(calls and all("DPkg::Lock::Timeout=7" in c for c in calls),
                  "every apt-get call should wait for the lock: %s" % calls)
            os.unlink(log)

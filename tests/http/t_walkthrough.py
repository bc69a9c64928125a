# SPDX-License-Identifier: Apache-2.0
"""The README's walkthrough, as written (issue 9, item 8): the shell block
after the marker comment runs against a fresh server on a fresh database,
ends with the award, runs a second time, and stops loudly at the first error
(TOKEN unset, a wrong token) instead of printing tracebacks and exiting 0."""

import json
import os
import re
import shutil
import subprocess
import tempfile

from harness import Cluster, check, eq, fail, last_line, run_cli, short, test

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MARKER = "<!-- tests/http/t_walkthrough.py runs the next shell block as written -->"


def walkthrough_script():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    i = text.find(MARKER)
    check(i >= 0, "README.md lost the walkthrough marker %r" % MARKER)
    m = re.compile(r"```(?:sh|bash)\n(.*?)\n```", re.S).search(text, i)
    check(m, "README.md: no ```sh block after the walkthrough marker")
    return m.group(1)


def run_walkthrough(script, base_url, token, timeout=180):
    env = {k: v for k, v in os.environ.items() if k not in ("TOKEN", "B")}
    env["B"] = base_url
    if token is not None:
        env["TOKEN"] = token
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


@test
def walkthrough_as_written(env):
    check(shutil.which("curl"), "curl is not installed (make deps-test installs it)")
    script = walkthrough_script()
    check(not re.search(r"^\s*id\s*\(\)", script, re.M),
          "the walkthrough defines a helper named id, which shadows the system command")
    work = tempfile.mkdtemp(prefix="walkthrough-", dir=env.workdir)
    os.chmod(work, 0o755)            # the cluster belongs to the postgres user
    cluster = Cluster(ROOT, os.path.join(work, "pg"))
    server = None
    try:
        e = dict(env.base_env, DATABASE_URL=cluster.start())
        for args in (["migrate"], ["user", "add", "--email", "admin@localhost", "--name",
                                   "Administrator", "--roles", "admin"]):
            rc, out, err = run_cli(env.binary, args, e)
            eq(rc, 0, "accord %s: %s%s" % (" ".join(args), out, err))
        rc, out, err = run_cli(env.binary, ["token", "create", "--email", "admin@localhost"], e)
        eq(rc, 0, "accord token create: %s" % err)
        token = last_line(out)
        server = env.start_server("walkthrough", {
            "DATABASE_URL": e["DATABASE_URL"], "ACCORD_DATA_DIR": os.path.join(work, "data"),
            "ACCORD_KEY_DIR": os.path.join(work, "keys"),
            # as make run sets it (db/run-embedded.sh): badges are issued only with it
            "ACCORD_PUBLIC_URL": "http://127.0.0.1:8080"})
        base = "http://127.0.0.1:%d" % server.port
        for run in (1, 2):                      # re-runnable: the second run must pass too
            p = run_walkthrough(script, base, token)
            if p.returncode != 0:
                fail("walkthrough run %d exited %d\nstderr:\n%s\nstdout:\n%s"
                     % (run, p.returncode, short(p.stderr, 2000), short(p.stdout, 2000)))
            check("Traceback" not in p.stderr, "walkthrough run %d: %s" % (run, short(p.stderr)))
            lines = [l for l in p.stdout.splitlines() if l.strip()]
            check(len(lines) >= 2, "run %d printed too little:\n%s" % (run, p.stdout))
            # the OpenBadgeCredential (indented JSON), then its VC-JWT on one line
            starts = [i for i, l in enumerate(lines[:-1]) if l == "{"]
            try:
                award = json.loads("\n".join(lines[starts[-1]:-1]))
            except (ValueError, IndexError):
                fail("run %d: the badge JSON should come before the last line; the output ends:\n%s"
                     % (run, short("\n".join(lines[-6:]), 1500)))
            check("OpenBadgeCredential" in award.get("type", []),
                  "run %d: the award is not an OpenBadgeCredential: %s" % (run, short(lines[-2])))
            eq(award.get("name"), "Morning Meeting for SEL", "run %d: the badge's credential" % run)
            names = [i.get("identityHash") for i in award["credentialSubject"].get("identifier", [])
                     if i.get("identityType") == "name"]
            eq(names, ["Ms. Brown"], "run %d: the earner on the badge" % run)
            check(re.match(r"^[\w-]+\.[\w-]+\.[\w-]+$", lines[-1]),
                  "run %d: the last line should be the VC-JWT, got %s" % (run, short(lines[-1])))
            check(re.search(r"^206 100 bytes$", p.stdout, re.M),
                  "run %d: the ranged read should print '206 100 bytes':\n%s"
                  % (run, short(p.stdout, 1500)))
        # TOKEN unset: a clear message, exit non-zero, before any call
        p = run_walkthrough(script, base, None)
        check(p.returncode != 0, "with TOKEN unset the walkthrough exited 0:\n%s" % p.stdout[:500])
        check("TOKEN" in p.stderr and "Traceback" not in p.stderr,
              "with TOKEN unset: %r" % p.stderr[:500])
        eq(p.stdout.strip(), "", "stdout with TOKEN unset")
        # a wrong token: stops at the first call, naming it and the HTTP error
        p = run_walkthrough(script, base, "acc_" + "0" * 64)
        check(p.returncode != 0, "with a wrong TOKEN the walkthrough exited 0")
        check(re.search(r"POST /v1/\w+: HTTP 401 .*unauthorized", p.stderr)
              and "Traceback" not in p.stderr and p.stderr.count("HTTP 401") == 1,
              "with a wrong TOKEN: stop at the first call with its error, got:\n%s"
              % short(p.stderr, 1500))
    finally:
        if server is not None:
            msg = server.stop()
            check(msg is None, msg)
        cluster.stop()

# SPDX-License-Identifier: Apache-2.0
"""The `accord` command behaves like a Unix tool (issue 9, item 6): --version,
--help on every subcommand (stdout, exit 0), usage errors on stderr with exit 2,
and `accord serve --help` names every setting the server reads."""

import glob
import os
import re

from harness import check, eq, fail, run_cli, test

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUBCOMMANDS = ["serve", "migrate", "user", "token", "irr"]


def cli(env, args):
    e = dict(env.base_env)
    e.pop("DATABASE_URL", None)       # --help must not need a database
    return run_cli(env.binary, args, e, timeout=30)


@test
def cli_version_and_help(env):
    rc, out, err = cli(env, ["--version"])
    eq(rc, 0, "accord --version exit status (stderr %r)" % err)
    check(re.match(r"^accord \d+\.\d+\.\d+\b", out), "accord --version printed %r" % out)
    for args in (["--help"], ["help"], ["-h"]):
        rc, out, err = cli(env, args)
        eq(rc, 0, "accord %s exit status" % " ".join(args))
        for sub in SUBCOMMANDS:
            check(re.search(r"^\s+%s\b" % sub, out, re.M),
                  "accord %s does not list %s: %r" % (" ".join(args), sub, out))
    rc, out, err = cli(env, [])
    eq(rc, 2, "accord with no command exit status")
    check("usage" in err, "accord with no command: usage on stderr, got %r" % err)
    rc, out, err = cli(env, ["frobnicate"])
    eq(rc, 2, "accord frobnicate exit status")
    check("unknown command" in err, "accord frobnicate: %r" % err)


@test
def cli_every_subcommand_has_help(env):
    cases = [[s, "--help"] for s in SUBCOMMANDS] + [
        ["user", "add", "--help"], ["token", "create", "--help"], ["irr", "-h"],
        ["migrate", "-h"], ["user", "add", "--email", "x@example.org", "--help"]]
    for args in cases:
        rc, out, err = cli(env, args)
        what = "accord %s" % " ".join(args)
        eq(rc, 0, "%s exit status (stdout %r, stderr %r)" % (what, out[:200], err[:200]))
        check(out.startswith("usage: accord %s" % args[0]),
              "%s: usage on stdout expected, got stdout %r stderr %r" % (what, out[:200], err[:200]))
        check("unrecognized option" not in err and "invalid option" not in err,
              "%s: %r" % (what, err))
    # a wrong option is a usage error: exit 2, the usage on stderr, nothing on stdout
    for args in (["migrate", "--bogus"], ["serve", "--bogus"], ["user", "add", "--bogus"],
                 ["token", "create", "--bogus"], ["irr", "--bogus"], ["migrate", "extra"]):
        rc, out, err = cli(env, args)
        what = "accord %s" % " ".join(args)
        eq(rc, 2, "%s exit status (stderr %r)" % (what, err[:300]))
        check("usage" in err, "%s: usage on stderr expected, got %r" % (what, err[:300]))
        eq(out, "", "%s stdout" % what)


def settings_read_by_server():
    """Every ACCORD_* / DATABASE_URL name in the server's sources."""
    names = set()
    for path in glob.glob(os.path.join(ROOT, "server", "*.c")):
        with open(path, encoding="utf-8") as f:
            names.update(re.findall(r'"((?:ACCORD_[A-Z0-9_]+)|DATABASE_URL)"', f.read()))
    return names


@test
def cli_serve_help_names_every_setting(env):
    rc, out, err = cli(env, ["serve", "--help"])
    eq(rc, 0, "accord serve --help exit status (stderr %r)" % err)
    names = settings_read_by_server()
    check({"ACCORD_LOG", "ACCORD_LISTEN", "DATABASE_URL"} <= names,
          "the source scan found only %s" % sorted(names))
    missing = sorted(n for n in names if not re.search(r"\b%s\b" % n, out))
    check(not missing, "accord serve --help does not mention %s:\n%s" % (missing, out))
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    missing = sorted(n for n in names if "`%s" % n not in readme)
    check(not missing, "README.md's configuration table does not mention %s" % missing)
    # every flag the help lists is accepted (with --help after it, nothing starts)
    flags = re.findall(r"^\s+(--[a-z-]+)", out, re.M)
    check(len(flags) >= 10, "accord serve --help lists only %s" % flags)
    for flag in flags:
        rc, o, e = cli(env, ["serve", flag, "x", "--help"] if flag not in (
            "--no-migrate", "--help") else ["serve", flag, "--help"])
        if rc == 2 and "unrecognized option" in e:
            fail("accord serve does not accept %s, which its --help lists" % flag)

# SPDX-License-Identifier: Apache-2.0
"""Mail (issue 14 item 2) through a real SMTP server: Debian's python3-aiosmtpd
with its Mailbox handler (tests/smtp/sink.py), on loopback.

- the Ms. Brown story: she hears that her submission arrived, that feedback is
  ready and she may resubmit, that she passed and has a badge; never her
  scores, her feedback's words or who reviewed her; the one-click unsubscribe
  (RFC 8058) in her mail stops her mail;
- an assessor gets a digest ("3 reviews are waiting for ..."), not a mail per
  submission, and never two mails closer than the interval;
- invitations are mailed (the link works);
- STARTTLS with authentication; mail that cannot go is dead-lettered.

Each test's people live in a cluster of the mail tests' own: mail goes to
everyone with mail waiting, and the run's shared cluster holds every other
test's people.

Timing: the server holds a new notification --mail-delay-ms for others to
join it and mails one person at most once per --mail-interval seconds. The
assertions wait for mails; the one about the interval compares the sink's own
arrival times, which a correct server cannot bring closer than the interval.
"""

import atexit
import copy
import email
import email.policy
import mailbox
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse

from harness import (HOST, Client, Cluster, User, check, eq, expect, last_line, run_cli,
                     test)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SINK = os.path.join(ROOT, "tests", "smtp", "sink.py")
DEBIAN_PYTHON = "/usr/bin/python3"  # where Debian's python3-aiosmtpd is


class Sink:
    def __init__(self, tls=None, auth=None):
        self.dir = tempfile.mkdtemp(prefix="accord-smtp-")
        args = [DEBIAN_PYTHON, SINK, os.path.join(self.dir, "maildir")]
        if tls:
            args += ["--tls", tls[0], tls[1]]
        if auth:
            args += ["--auth", auth[0], auth[1]]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(os.path.join(self.dir, "sink.log"), "wb"))
        line = self.proc.stdout.readline().decode()
        m = re.match(r"port (\d+)", line)
        if not m:
            self.close()
            raise AssertionError("the SMTP sink did not start: %r %s" % (line, self.log()))
        self.port = int(m.group(1))
        self.box = mailbox.Maildir(os.path.join(self.dir, "maildir"), create=True)

    def log(self):
        try:
            with open(os.path.join(self.dir, "sink.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def url(self):
        return "smtp://%s:%d" % (HOST, self.port)

    def mails(self, to=None):
        """[(arrival_ns, message)] in arrival order."""
        out = []
        self.box = mailbox.Maildir(os.path.join(self.dir, "maildir"), create=True)
        for key in self.box.keys():
            path = os.path.join(self.box._path, self.box._lookup(key))
            try:
                with open(path, "rb") as f:
                    msg = email.message_from_binary_file(f, policy=email.policy.default)
                at = os.stat(path).st_mtime_ns
            except FileNotFoundError:
                continue
            if to is None or to.lower() in str(msg["To"]).lower():
                out.append((at, msg))
        out.sort(key=lambda t: t[0])
        return out

    def wait(self, to, cond, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            got = self.mails(to)
            if cond(got):
                return got
            if time.monotonic() > deadline:
                raise AssertionError("SMTP sink: %s for %s not seen within %.0f s; got %s; sink log %s"
                                     % (what, to, timeout, [str(m["Subject"]) for _, m in got],
                                        self.log()))
            time.sleep(0.1)

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


def body_text(msg):
    return msg.get_body(("plain",)).get_content()


def body_html(msg):
    return msg.get_body(("html",)).get_content()


def everything(msg):
    return "\n".join([str(msg["Subject"]), body_text(msg), body_html(msg)])


_private = {}


def private_env(env):
    """An Env on the mail tests' own cluster (made on first use)."""
    if "env" not in _private:
        work = tempfile.mkdtemp(prefix="mail-", dir=env.workdir)
        os.chmod(work, 0o755)  # the cluster belongs to the postgres user
        cluster = Cluster(env.root, os.path.join(work, "pg"))
        atexit.register(cluster.stop)
        _private["cluster"] = cluster
        base = dict(env.base_env, DATABASE_URL=cluster.start(),
                    ACCORD_KEY_DIR=os.path.join(work, "keys"))
        rc, out, err = run_cli(env.binary, ["migrate"], base, timeout=120)
        eq(rc, 0, "accord migrate: %s" % err)
        rc, out, err = run_cli(env.binary, ["user", "add", "--email", "admin@example.org",
                                            "--name", "Admin", "--roles", "admin"], base)
        eq(rc, 0, "accord user add: %s" % err)
        rc, out, err = run_cli(env.binary, ["token", "create", "--email", "admin@example.org"],
                               base)
        eq(rc, 0, "accord token create: %s" % err)
        p = copy.copy(env)
        p.base_env = base
        p.cluster = cluster
        p._orgs = {}
        p.admin_token = last_line(out)
        _private["env"] = p
    return _private["env"]


def stop_private():
    c = _private.pop("cluster", None)
    _private.pop("env", None)
    if c:
        c.stop()


def mailing(env, name, sink, **extra):
    e = {"ACCORD_OUTBOX_THREADS": "1", "ACCORD_SMTP_URL": sink.url(),
         "ACCORD_SMTP_FROM": "accord@district.example.org", "ACCORD_SMTP_TLS": "off",
         "ACCORD_MAIL_DELAY_MS": "300", "ACCORD_MAIL_INTERVAL": "0",
         "ACCORD_OUTBOX_RETRY_MS": "100", "ACCORD_OUTBOX_RETRY_MAX": "1",
         "ACCORD_RANDOM_SEED": "14"}
    e.update({k: str(v) for k, v in extra.items()})
    p = private_env(env)
    s = p.start_server(name, e)
    p.server = s
    me = expect(Client(s, p.admin_token).get("/v1/me"), 200)
    p.admin = User(p, me, p.admin_token)
    return s, p


def check_mail_shape(msg, to):
    eq(str(msg["From"]), "accord@district.example.org", "From")
    check(to.lower() in str(msg["To"]).lower(), "To %r" % msg["To"])
    check(msg["Message-ID"] and msg["Date"], "Message-ID and Date are set")
    check(msg.get_body(("plain",)) is not None and msg.get_body(("html",)) is not None,
          "text and HTML alternatives: %s" % msg.get_content_type())


@test
def notify_mail_ms_brown_story(env):
    sink = Sink()
    s, env = mailing(env, "notify-mail", sink)
    try:
        lead = env.user(["lead"], server=s)
        first = env.user(["assessor"], name="Mr. Ortiz", server=s)
        second = env.user(["assessor"], name="Ms. Lee", server=s)
        brown = env.user(["earner"], name="Ms. Brown", server=s)
        green = env.user(["earner"], name="Mr. Green", server=s)
        rubric = env.rubric(lead)
        title = "Morning Meeting for SEL (mail %d)" % env.uniq()
        cred = env.credential(lead, rubric["id"], title=title)
        env.grant(lead, cred["id"], first)
        env.grant(lead, cred["id"], second)
        ev = env.evidence(brown.c, video_size=256)
        sub = env.submit(brown.c, cred["id"], [a["id"] for a, _ in ev])
        got = sink.wait(brown.email, lambda m: m, 30, "the received mail")
        msg = got[0][1]
        check_mail_shape(msg, brown.email)
        check("We received your submission for \"%s\" (attempt 1)" % title in body_text(msg),
              "received mail: %s" % body_text(msg))
        unsub = str(msg["List-Unsubscribe"])
        m = re.match(r"^<(http://127\.0\.0\.1:%d/v1/unsubscribe\?token=([0-9a-f]{64}))>$" % s.port,
                     unsub)
        check(m, "List-Unsubscribe is an https/http URL with a token: %r" % unsub)
        eq(str(msg["List-Unsubscribe-Post"]), "List-Unsubscribe=One-Click", "RFC 8058 header")

        # scored "not yet": feedback ready, resubmit; no scores, words or reviewer in the mail
        cl = expect(first.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200)
        eq(cl["submission"]["id"], sub["id"], "the claim")
        words = "Your share ran long; name the SEL competency (private %d)" % env.uniq()
        expect(first.c.post("/v1/reviews/%s/scores" % cl["id"],
                            {"scores": env.scores({"reflection": 2}, "comment-%d" % env.uniq()),
                             "feedback": words}), 200)
        got = sink.wait(brown.email, lambda m: len(m) >= 2, 30, "the feedback mail")
        msg = got[1][1]
        check("Feedback on your submission for \"%s\" is ready. You may revise and resubmit "
              "(attempt 2 of 3)." % title in body_text(msg), "feedback mail: %s" % body_text(msg))
        for _, mm in got:
            text = everything(mm)
            for leak in (words, "comment-", first.name, first.email, second.name, "Approaching",
                         "level"):
                check(leak not in text, "Ms. Brown's mail must not carry %r: %s" % (leak, text))
        # resubmitted, passed, awarded
        ev2 = env.evidence(brown.c, video_size=256)
        sub2 = expect(brown.c.post("/v1/submissions/%s/resubmit" % sub["id"],
                                   {"artifact_ids": [a["id"] for a, _ in ev2]}), 201)
        cl2 = expect(second.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200)
        eq(cl2["submission"]["id"], sub2["id"], "the second claim")
        done = expect(second.c.post("/v1/reviews/%s/scores" % cl2["id"],
                                    {"scores": env.scores({}, "fine"), "feedback": "Well done."}),
                      200)
        check(done.get("award_id"), "an award: %s" % done)

        def passed(m):
            return any("You passed \"%s\"" % title in body_text(x) for _, x in m) and \
                any("Your badge for \"%s\" has been issued." % title in body_text(x) for _, x in m)
        got = sink.wait(brown.email, passed, 30, "the pass and badge mail")
        check(any("We received your submission for \"%s\" (attempt 2)" % title in body_text(x)
                  for _, x in got), "the resubmission was acknowledged")
        # Mr. Green never hears of Ms. Brown
        eg = env.evidence(green.c, video_size=256)
        env.submit(green.c, cred["id"], [a["id"] for a, _ in eg])
        got_green = sink.wait(green.email, lambda m: m, 30, "Mr. Green's received mail")
        for _, mm in got_green:
            check("Brown" not in everything(mm) and brown.email not in everything(mm),
                  "Mr. Green's mail names Ms. Brown: %s" % everything(mm))
        # assessors: told of waiting work, never who the earner is
        for who in (first, second):
            for _, mm in sink.mails(who.email):
                for leak in (brown.name, brown.email, green.name, green.email):
                    check(leak not in everything(mm), "%s's mail names %r" % (who.name, leak))

        # one-click unsubscribe: GET changes nothing, POST does
        path = m.group(1)[len("http://127.0.0.1:%d" % s.port):]
        anon = env.admin.c.on(s).anon()
        eq(expect(anon.get(path), 200), {"email": True, "unsubscribed": False}, "GET the link")
        r = anon.request("POST", path, data=b"List-Unsubscribe=One-Click",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        eq(expect(r, 200), {"email": False, "unsubscribed": True}, "one-click POST")
        expect(anon.get("/v1/unsubscribe?token=" + "0" * 64), 404, "not_found")
        expect(anon.get("/v1/unsubscribe?token=nonsense"), 404, "not_found")
        prefs = expect(brown.c.get("/v1/me/notifications"), 200)
        eq(prefs["email"], False, "her preference says so")
        n_before = len(sink.mails(brown.email))
        # her badge is revoked (an event for her), then Mr. Green gets a result (a barrier)
        expect(lead.c.post("/v1/awards/%s/revoke" % done["award_id"],
                           {"reason": "issued by mistake in the mail test"}), 200)
        clg = expect(first.c.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200)
        expect(first.c.post("/v1/reviews/%s/scores" % clg["id"],
                            {"scores": env.scores({}, "ok"), "feedback": "Good."}), 200)
        sink.wait(green.email, lambda mm: any("You passed" in body_text(x) for _, x in mm), 30,
                  "Mr. Green's pass mail")
        time.sleep(1.0)
        eq(len(sink.mails(brown.email)), n_before, "no mail after she unsubscribed")
        # preferences: muting, bad input
        expect(brown.c.request("PUT", "/v1/me/notifications", json_body={"muted": ["nope"]}), 400)
        expect(brown.c.request("PUT", "/v1/me/notifications", json_body={"email": "yes"}), 400)
        p2 = expect(brown.c.request("PUT", "/v1/me/notifications",
                                    json_body={"email": True, "muted": ["award.revoked"]}), 200)
        eq((p2["email"], p2["muted"]), (True, ["award.revoked"]), "preferences saved")
    finally:
        msg = s.stop()
        sink.close()
    check(msg is None, msg)


@test
def notify_mail_digest_not_flood(env):
    sink = Sink()
    interval = 4
    s, env = mailing(env, "notify-digest", sink, ACCORD_MAIL_DELAY_MS=2000,
                     ACCORD_MAIL_INTERVAL=interval)
    try:
        lead = env.user(["lead"], server=s)
        assessor = env.user(["assessor"], server=s)
        earners = [env.user(["earner"], server=s) for _ in range(5)]
        rubric = env.rubric(lead)
        title = "Morning Meeting for SEL (digest %d)" % env.uniq()
        cred = env.credential(lead, rubric["id"], title=title)
        env.grant(lead, cred["id"], assessor)
        evidence = [env.evidence(e.c, video_size=128) for e in earners]
        for e, ev in list(zip(earners, evidence))[:3]:
            env.submit(e.c, cred["id"], [a["id"] for a, _ in ev])
        want = "3 reviews are waiting for %s" % title

        def says(n):
            w = "%d reviews are waiting for %s" % (n, title)
            return lambda m: any(w in body_text(x) for _, x in m)
        got = sink.wait(assessor.email, says(3), 30, "the digest")
        check(len(got) <= 2, "a digest, not a mail per submission: %s"
              % [str(x["Subject"]) for _, x in got])
        if len(got) == 1:  # the usual case: one mail says it all, in its subject too
            eq(str(got[0][1]["Subject"]), want, "the digest's subject")
        first_at = got[-1][0]
        n = len(got)
        for e, ev in list(zip(earners, evidence))[3:]:
            env.submit(e.c, cred["id"], [a["id"] for a, _ in ev])
        got = sink.wait(assessor.email, says(5), 30, "the next digest")
        eq(len(got), n + 1, "one more mail for two more submissions")
        gap = (got[-1][0] - first_at) / 1e9
        check(gap >= interval - 0.05, "two mails %.2f s apart, under the %d s interval"
              % (gap, interval))
    finally:
        msg = s.stop()
        sink.close()
    check(msg is None, msg)


@test
def notify_mail_invitation_starttls_auth(env):
    tmp = tempfile.mkdtemp(prefix="accord-tls-")
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    sink = Sink(tls=(cert, key), auth=("accord", "smtp secret %d" % os.getpid()))
    servers = []
    try:
        s, penv = mailing(env, "notify-tls", sink, ACCORD_SMTP_TLS="require",
                          ACCORD_SMTP_CA_FILE=cert, ACCORD_SMTP_USER="accord",
                          ACCORD_SMTP_PASSWORD="smtp secret %d" % os.getpid())
        servers.append(s)
        admin = penv.admin.c
        invitee = "new.teacher.%d@example.org" % env.uniq()
        inv = expect(admin.post("/v1/invitations", {"email": invitee, "name": "New Teacher",
                                                    "roles": ["earner"]}), 201)
        got = sink.wait(invitee, lambda m: m, 30, "the invitation (over STARTTLS, authenticated)")
        text = body_text(got[0][1])
        check(inv["url"] in text, "the mail carries the link: %s" % text)
        check("List-Unsubscribe" not in got[0][1], "no unsubscribe for someone without an account")
        c = penv.accept_invitation(inv, "a long enough passphrase for the test")
        check(expect(c.on(s).get("/v1/me"), 200)["email"] == invitee, "the link works")
        msg = s.stop()
        check(msg is None, msg)
        # the mail server goes away: every attempt fails, and after the last one the
        # mail is dead, for a lead to see and send again
        sink.close()
        bad, penv = mailing(env, "notify-nosmtp", sink, ACCORD_SMTP_TLS="require",
                            ACCORD_SMTP_CA_FILE=cert, ACCORD_OUTBOX_ATTEMPTS=2)
        servers.append(bad)
        other = "other.teacher.%d@example.org" % env.uniq()
        expect(penv.admin.c.post("/v1/invitations", {"email": other, "name": "Other",
                                                     "roles": ["earner"]}), 201)
        lead = penv.user(["lead"])
        dead = None
        deadline = time.monotonic() + 30
        while dead is None and time.monotonic() < deadline:
            rows = expect(lead.c.get("/v1/outbox/dead"), 200)["deliveries"]
            dead = next((d for d in rows if d["channel"] == "email"
                         and d["type"] == "invitation.created"), None)
            time.sleep(0.1)
        check(dead is not None, "the undeliverable mail is dead-lettered")
        eq((dead["attempts"], dead["webhook_id"], dead["user_id"]), (2, None, None),
           "two attempts, to an address")
        check("connect" in (dead["last_error"] or "").lower(), "why: %s" % dead["last_error"])
    finally:
        for srv in servers:
            if not srv.finished:
                srv.stop()
        sink.close()
        shutil.rmtree(tmp, ignore_errors=True)
        stop_private()  # the last of the mail tests

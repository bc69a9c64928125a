# SPDX-License-Identifier: Apache-2.0
"""Issue 13 item 5: accord behind a real PgBouncer 1.18 (Debian 12's) in
transaction mode, with --db-prepared 0.

PgBouncer listens only on a unix socket in the test's own directory (no TCP
port), in front of the suite's cluster, with two server connections for the
database: accord's eight client connections (two loops x three pool
connections, plus one credential-lookup connection per loop) share them
transaction by transaction, which is what breaks protocol-level prepared
statements and session settings.
"""

import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from harness import Client, Failure, check, eq, expect, short, test

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
SERVER_POOL = 2     # server connections PgBouncer may open to the database
PORT_NAME = 6432    # only names the unix socket file (.s.PGSQL.6432) in our own directory


def as_postgres(cmd):
    """PgBouncer refuses to run as root; the cluster belongs to postgres anyway."""
    return (["runuser", "-u", "postgres", "--"] + cmd) if os.getuid() == 0 else cmd


class PgBouncer:
    def __init__(self, env, mode="transaction"):
        self.dir = os.path.join(env.workdir, "pgbouncer-%d" % env.uniq())
        os.makedirs(self.dir)
        cluster_dir = env.cluster.dir
        self.ini = os.path.join(self.dir, "pgbouncer.ini")
        with open(os.path.join(self.dir, "users.txt"), "w") as f:
            f.write('"postgres" ""\n')
        with open(self.ini, "w") as f:
            f.write("[databases]\n"
                    "accord = host=%s port=5432 dbname=accord user=postgres\n"
                    "[pgbouncer]\n"
                    "listen_addr =\n"
                    "listen_port = %d\n"
                    "unix_socket_dir = %s\n"
                    "auth_type = trust\n"
                    "auth_file = %s/users.txt\n"
                    "admin_users = postgres\n"
                    "pool_mode = %s\n"
                    "default_pool_size = %d\n"
                    "max_client_conn = 200\n"
                    "server_check_delay = 0\n"
                    "logfile = %s/pgbouncer.log\n"
                    % (cluster_dir, PORT_NAME, self.dir, self.dir, mode, SERVER_POOL, self.dir))
        if os.getuid() == 0:
            shutil.chown(self.dir, "postgres")
            for name in os.listdir(self.dir):
                shutil.chown(os.path.join(self.dir, name), "postgres")
        self.proc = subprocess.Popen(as_postgres([PGBOUNCER, self.ini]), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        self.url = "host=%s port=%d dbname=accord user=postgres" % (self.dir, PORT_NAME)
        deadline = time.monotonic() + 10
        while not os.path.exists(os.path.join(self.dir, ".s.PGSQL.%d" % PORT_NAME)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise Failure("pgbouncer did not start: %s" % self.log())
            time.sleep(0.05)

    def log(self):
        try:
            with open(os.path.join(self.dir, "pgbouncer.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return "(no log)"

    def admin(self, command):
        """Rows of a SHOW command on PgBouncer's admin console (simple protocol)."""
        p = subprocess.run(["psql", "-X", "-At", "-F", "|", "host=%s port=%d dbname=pgbouncer "
                            "user=postgres" % (self.dir, PORT_NAME), "-c", command],
                           capture_output=True, text=True, timeout=30)
        check(p.returncode == 0, "pgbouncer %s: %s" % (command, p.stderr))
        return [l.split("|") for l in p.stdout.splitlines() if l]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def metric(server, name):
    """A counter's value from the server's /metrics."""
    r = Client(server).get("/metrics")
    eq(r.status, 200, "/metrics status")
    for line in r.text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise Failure("/metrics has no %s" % name)


def reset_role_defaults(env):
    """The pooler-mode server wrote session settings as defaults of the test
    role in the database (server/pooler.h); the other tests' servers pass
    their own, but leave the cluster as it was."""
    subprocess.run(["psql", "-X", "-q", env.base_env["DATABASE_URL"], "-c",
                    "ALTER ROLE postgres IN DATABASE accord RESET ALL"],
                   capture_output=True, timeout=30)


@test
def scaleout_pgbouncer_needs_a_direct_url(env):
    """--db-prepared 0 without a direct URL is a usage error naming the setting."""
    e = dict(env.base_env, ACCORD_DB_PREPARED="0")
    p = subprocess.run([env.binary, "serve", "--listen", "127.0.0.1:0"], env=e,
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    eq(p.returncode, 2, "serve --db-prepared 0 without --direct-database-url: exit status")
    check("--direct-database-url" in p.stderr,
          "the usage error should name --direct-database-url: %s" % short(p.stderr))


@test
def scaleout_pgbouncer_transaction_mode(env):
    bouncer = PgBouncer(env)
    try:
        # Without the setting, PgBouncer 1.18 refuses the connection's startup
        # options (accord's settings travel there on a direct connection): no
        # query can run, and readiness says so.
        plain = env.start_server("pgb-prepared", {"DATABASE_URL": bouncer.url,
                                                  "ACCORD_MIGRATE": "0"})
        r = Client(plain).get("/readyz")
        eq(r.status, 503, "/readyz of a server with prepared statements behind PgBouncer "
           "in transaction mode")
        plain.stop()

        s = env.start_server("pgb", {
            "DATABASE_URL": bouncer.url,
            "ACCORD_DB_PREPARED": "0",
            "ACCORD_DIRECT_DATABASE_URL": env.base_env["DATABASE_URL"],
            "ACCORD_THREADS": "2", "ACCORD_DB_POOL": "3",
            # proves the SQL functions see the server's settings behind the pooler
            "ACCORD_MAX_RELEASES": "1",
        })
        expect(Client(s).get("/readyz"), 200, what="/readyz behind PgBouncer")
        lead = env.user(["lead"], server=s)
        rubric = expect(lead.c.post("/v1/rubrics", env.rubric_body()), 201, what="rubric")
        cred = env.credential(lead, rubric["id"])

        def submit(i):
            e = env.user(["earner"], org="Bouncer Elementary", server=s)
            ev = env.evidence(e.c, video_size=1024)
            sub = env.submit(e.c, cred["id"], [a["id"] for a, _ in ev])
            return e, sub

        with ThreadPoolExecutor(max_workers=8) as ex:
            earners = list(ex.map(submit, range(8), timeout=180))
        assessors = [env.user(["assessor"], org="Bouncer Assessors %d" % i, server=s)
                     for i in range(4)]
        for a in assessors:
            env.grant(lead, cred["id"], a)

        # four assessors claim and score the eight submissions at once, each
        # request a transaction on whichever of the two server connections is free
        def work(a):
            done = []
            while True:
                r = a.c.post("/v1/reviews/claim")
                if r.status == 204:
                    return done
                rev = expect(r, 200, what="claim behind PgBouncer")
                expect(a.c.post("/v1/reviews/%s/scores" % rev["id"],
                                {"scores": env.scores({}), "feedback": "fine"}), 200,
                       what="score behind PgBouncer")
                done.append(rev["submission"]["id"])

        with ThreadPoolExecutor(max_workers=4) as ex:
            scored = [x for got in ex.map(work, assessors, timeout=180) for x in got]
        eq(sorted(scored), sorted(sub["id"] for _, sub in earners),
           "every submission scored exactly once through the pooler")
        for e, sub in earners:
            got = expect(e.c.get("/v1/submissions/%s" % sub["id"]), 200)
            eq(got.get("status"), "passed", "submission status after scoring")

        # PgBouncer really multiplexed: accord holds 8 client connections, the
        # database saw at most SERVER_POOL of them
        clients = [c for c in bouncer.admin("SHOW CLIENTS") if len(c) > 2 and c[2] == "accord"]
        servers = [c for c in bouncer.admin("SHOW SERVERS") if len(c) > 2 and c[2] == "accord"]
        check(len(clients) >= 8, "PgBouncer lists %d accord clients, expected 8" % len(clients))
        check(0 < len(servers) <= SERVER_POOL, "PgBouncer opened %d server connections "
              "(pool size %d)" % (len(servers), SERVER_POOL))

        # --max-releases 1 reached the SQL functions (a role default, not PGOPTIONS)
        e, sub = submit(99)
        a = assessors[0]
        rev = expect(a.c.post("/v1/reviews/claim"), 200, what="claim to release")
        expect(a.c.post("/v1/reviews/%s/release" % rev["id"]), 200, what="release")
        expect(a.c.post("/v1/reviews/claim"), 429, "churn_limit",
               "claim after reaching --max-releases 1 behind the pooler")

        # revocation reaches the credential cache at once: LISTEN runs on the
        # direct URL (a LISTEN through a transaction pooler would hear nothing)
        u = env.user(["earner"], server=s)
        me = expect(u.c.get("/v1/me"), 200, what="/v1/me (cached now)")
        hits = metric(s, "accord_auth_cache_hits_total")
        # each of the 2 loops has its own cache: of 3 more requests at least one hits
        for _ in range(3):
            expect(u.c.get("/v1/me"), 200, what="/v1/me (from a cache)")
        check(metric(s, "accord_auth_cache_hits_total") > hits,
              "the credential cache is in use behind the pooler (its listener is up)")
        flushes = metric(s, "accord_auth_invalidations_total")
        expect(u.c.delete("/v1/me/tokens/%s" % me["auth"]["token_id"]), 204, what="revoke")
        deadline = time.monotonic() + 5
        while u.c.get("/v1/me").status != 401:
            check(time.monotonic() < deadline, "a revoked token still works behind the pooler "
                  "after 5 s (the cache was not told)")
            time.sleep(0.05)
        check(metric(s, "accord_auth_invalidations_total") > flushes,
              "the revocation's NOTIFY reached the server through the direct URL")
    finally:
        bouncer.stop()
        reset_role_defaults(env)

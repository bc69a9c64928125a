#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""outbox.py - how fast the outbox delivers webhooks (make bench; issue 14).

One local receiver (Python's threading HTTP server on loopback, checking
nothing: the sender is measured, not the receiver). Then, in the same run:
  anchor : one client POSTing N signed-size JSON bodies to the receiver, one
           after another on a kept-alive connection (what one sequential
           sender can reach against this receiver)
  outbox : N events committed at once (one INSERT ... SELECT through the
           outbox's own emit function, so every event has its delivery row),
           delivered by the server's threads: events/s from the commit to the
           last one received, for 1 and 2 delivery threads
and prints events/s and the ratio to the anchor.

    python3 tests/bench/outbox.py --bin build/accord [--events 2000]
"""

import argparse
import http.client
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "http"))

import harness  # noqa: E402
import nginx  # noqa: E402


class Receiver:
    def __init__(self):
        self.lock = threading.Condition()
        self.ids = set()
        rx = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                with rx.lock:
                    rx.ids.add(self.headers.get("webhook-id"))
                    rx.lock.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer((harness.HOST, 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait_for(self, n, timeout):
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.ids) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.lock.wait(min(left, 0.5))
        return True


class IdLog:
    """A receiver that writes each webhook-id it gets to self.log, a line each."""

    def count(self):
        ids = set()
        try:
            with open(self.log) as f:
                for line in f:
                    line = line.strip()
                    if line and line != "-" and not line.startswith("anchor-"):
                        ids.add(line)
        except FileNotFoundError:
            pass
        return len(ids)

    def wait_for(self, n, timeout):
        deadline = time.monotonic() + timeout
        while self.count() < n:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True



class NginxReceiver(IdLog):
    """nginx answering 200 to every POST, logging each webhook-id: a receiver
    in C with two worker processes, so that the sender is what is measured
    (Python's threading server serialises its handler threads on the GIL, and
    gets slower, not faster, with a second concurrent sender)."""

    def __init__(self, work):
        self.dir = os.path.join(work, "nginx")
        os.makedirs(self.dir)
        self.log = os.path.join(self.dir, "ids.log")
        self.proc, self.port = nginx.start(
            self.dir, "log_format ids '$http_webhook_id'; access_log %s ids;\n"
            "  keepalive_requests 1000000; client_body_buffer_size 64k;" % self.log,
            "location / { return 200; }", connections=256)

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def psql(url, sql):
    p = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise RuntimeError(p.stderr)
    return p.stdout.strip()


def anchor(port, n):
    body = json.dumps({"type": "assessor.recalibration_needed", "timestamp": "x",
                       "data": {"user_id": "0" * 36, "rubric_id": "0" * 36}}).encode()
    c = http.client.HTTPConnection(harness.HOST, port, timeout=30)
    t0 = time.perf_counter()
    for i in range(n):
        c.request("POST", "/anchor", body=body, headers={
            "Content-Type": "application/json", "webhook-id": "anchor-%d" % i,
            "webhook-timestamp": "0", "webhook-signature": "v1," + "A" * 44})
        c.getresponse().read()
    c.close()
    return n / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--receiver", choices=("nginx", "python"), default="nginx")
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    work = tempfile.mkdtemp(prefix="accord-bench-outbox-")
    os.chmod(work, 0o755)
    cluster = harness.Cluster(ROOT, os.path.join(work, "pg"))
    server = None
    rx = None
    rc = 0
    try:
        url = cluster.start()
        env = dict(os.environ, DATABASE_URL=url, ACCORD_WEBHOOK_ALLOW_PRIVATE="1",
                   ACCORD_LOG="warn")
        r, out, err = harness.run_cli(binary, ["migrate"], env, timeout=120)
        if r != 0:
            raise RuntimeError("migrate: %s%s" % (out, err))
        rx = NginxReceiver(work) if args.receiver == "nginx" else Receiver()
        psql(url, "INSERT INTO webhooks (url, events, secret) VALUES "
                  "('http://127.0.0.1:%d/hook', '{assessor.recalibration_needed}', "
                  "'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')" % rx.port)
        anchor(rx.port, 200)  # warm-up
        base = anchor(rx.port, args.events)
        print("== outbox: webhook deliveries to a local receiver (%s; %d events)"
              % (args.receiver, args.events))
        print("  anchor  one sequential client       %8.0f requests/s" % base)
        delivered = 0
        runs = {1: [], 2: []}
        # 1, 2, 2, 1: a drift of the shared machine's load during the run hits both alike
        for threads in (1, 2, 2, 1):
            # each run starts from the same table state (the first run's rows vacuumed away)
            psql(url, "VACUUM ANALYZE outbox, events, webhook_attempts")
            server = harness.Server(binary, work, os.path.join(work, "data"), env,
                                    "bench-%d" % threads,
                                    {"ACCORD_OUTBOX_THREADS": str(threads)}).start()
            # the server's listening connection is up (its catch-up query has run):
            # the NOTIFY below wakes its delivery threads at once
            deadline = time.monotonic() + 30
            while psql(url, "SELECT count(*) FROM pg_stat_activity "
                            "WHERE query LIKE 'SELECT live_changes%'") == "0":
                if time.monotonic() > deadline:
                    raise RuntimeError("the server's listening connection did not come up")
                time.sleep(0.05)
            # committed at once, then announced: the clock starts at the commit
            psql(url, "SELECT count(_outbox_emit('assessor.recalibration_needed', "
                      "jsonb_build_object('user_id', gen_random_uuid(), 'rubric_id', "
                      "gen_random_uuid(), 'n', i), NULL)) FROM generate_series(1, %d) i; "
                      "NOTIFY accord_outbox" % args.events)
            t0 = time.perf_counter()
            ok = rx.wait_for(delivered + args.events, 600)
            dt = time.perf_counter() - t0
            delivered += args.events
            if not ok:
                print("  outbox  %d thread(s): not all delivered within 600 s" % threads)
                rc = 1
            else:
                rate = args.events / dt
                runs[threads].append(rate)
                print("  outbox  %d delivery thread%s         %8.0f events/s   %.2f x anchor"
                      % (threads, "" if threads == 1 else "s", rate, rate / base))
            msg = server.stop()
            server = None
            if msg:
                print("  " + msg)
                rc = 1
        if runs[1] and runs[2]:
            one, two = (sum(runs[k]) / len(runs[k]) for k in (1, 2))
            print("  mean    1 thread %.0f events/s, 2 threads %.0f events/s: 2 threads / 1 thread %.2f"
                  % (one, two, two / one))
    finally:
        if rx is not None and hasattr(rx, "close"):
            rx.close()
        if server:
            server.stop()
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())

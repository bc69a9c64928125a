#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tests/bench/memory.py - what clients can make the server hold (issue 7).

Starts a throwaway cluster and `accord serve` (the optimised build), then
measures the server's peak RSS (VmHWM, reset through /proc/PID/clear_refs
before each case) in four cases and prints each with the bound README.md
("Security model") states for it:

  anchor  the idle server
  (a)     1,000 idle connections
  (b)     64 clients sending the largest upload body (--max-body) with no token
  (c)     the same 64 clients with a valid token (the bodies are accepted)

Bounds (README "Security model"; baseline = the anchor's peak): bodies take at
most --max-body-memory + one --max-body per loop + 32 KiB per connection above
the baseline, for every client (server/conntrack.h: past the budget, large
senders wait their turn). Idle connections hold no body: 64 KiB each at most.

    python3 tests/bench/memory.py [--bin build/accord] [--max-body BYTES]
Only loopback; every client and process it starts is bounded and stopped.
"""

import argparse
import os
import resource
import socket
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "http"))

from harness import HOST, Client, Cluster, Server, last_line, run_cli  # noqa: E402

KIB = 1024
MIB = 1024 * 1024


def rss_peak_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def reset_peak(pid):
    with open("/proc/%d/clear_refs" % pid, "w") as f:
        f.write("5")


def upload(port, token, size, results, chunk=256 * KIB):
    auth = "Authorization: Bearer %s\r\n" % token if token else ""
    head = ("POST /v1/artifacts HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Type: video/mp4\r\n"
            "X-Artifact-Kind: video\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
            % (auth, size)).encode()
    block = os.urandom(chunk)
    status = None
    try:
        s = socket.create_connection((HOST, port), timeout=120)
        try:
            s.sendall(head)
            sent = 0
            while sent < size:
                n = min(chunk, size - sent)
                s.sendall(block[:n])
                sent += n
        except OSError:
            pass                      # refused early: the server closed
        try:
            data = s.recv(4096)
            if data.startswith(b"HTTP/1."):
                status = int(data[9:12])
        except OSError:
            pass
        s.close()
    except OSError:
        pass
    results.append(status)


def run_clients(port, token, size, n):
    results, threads = [], []
    for _ in range(n):
        t = threading.Thread(target=upload, args=(port, token, size, results))
        t.start()
        threads.append(t)
    for t in threads:
        t.join(300)
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "accord"))
    ap.add_argument("--max-body", type=int, default=8 * MIB)
    ap.add_argument("--max-body-memory", type=int, default=64 * MIB)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--idle", type=int, default=1000)
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    work = tempfile.mkdtemp(prefix="accord-memory.")
    os.chmod(work, 0o755)  # the cluster may belong to the postgres user
    cluster = Cluster(ROOT, os.path.join(work, "pg"))
    server = None
    try:
        url = cluster.start()
        env = dict(os.environ, DATABASE_URL=url, ACCORD_MAX_BODY=str(args.max_body),
                   ACCORD_MAX_BODY_MEMORY=str(args.max_body_memory),
                   ACCORD_THREADS=str(args.threads),
                   ACCORD_LOG="warn",
                   ACCORD_KEY_DIR=os.path.join(work, "keys"))
        for cmd in (["migrate"],
                    ["user", "add", "--email", "bench@example.org", "--roles", "earner"]):
            rc, out, err = run_cli(args.bin, cmd, env)
            if rc != 0:
                raise SystemExit("accord %s: %s%s" % (cmd[0], out, err))
        rc, out, err = run_cli(args.bin, ["token", "create", "--email", "bench@example.org"], env)
        token = last_line(out)
        server = Server(args.bin, work, os.path.join(work, "artifacts"), env, "memory")
        server.start()
        pid = server.proc.pid
        if Client(server, token).get("/v1/me").status != 200:
            raise SystemExit("the bench user cannot sign in")
        rows = []

        time.sleep(0.5)
        reset_peak(pid)
        time.sleep(0.5)
        base = rss_peak_kib(pid)
        rows.append(("anchor: idle server", base, base, ""))

        reset_peak(pid)
        socks = [socket.create_connection((HOST, server.port), timeout=30)
                 for _ in range(args.idle)]
        time.sleep(2.0)
        peak = rss_peak_kib(pid)
        for s in socks:
            s.close()
        rows.append(("(a) %d idle connections" % args.idle, peak, base + args.idle * 64,
                     "open"))

        body_bound = (args.max_body_memory + args.threads * args.max_body) // KIB + \
            args.clients * 32
        time.sleep(1.0)
        reset_peak(pid)
        res = run_clients(server.port, None, args.max_body, args.clients)
        peak = rss_peak_kib(pid)
        rows.append(("(b) %d x %d MiB, no token" % (args.clients, args.max_body // MIB), peak,
                     base + body_bound, "answers %s" % sorted(set(map(str, res)))))

        time.sleep(1.0)
        reset_peak(pid)
        res = run_clients(server.port, token, args.max_body, args.clients)
        peak = rss_peak_kib(pid)
        rows.append(("(c) %d x %d MiB, valid token" % (args.clients, args.max_body // MIB),
                     peak, base + body_bound, "answers %s" % sorted(set(map(str, res)))))

        print("== memory: peak RSS of accord serve (VmHWM), bounds from README 'Security model'")
        print("%-34s %12s %12s %9s %9s  %s" % ("case", "peak MiB", "bound MiB", "peak/bnd",
                                               "/anchor", "notes"))
        ok = True
        for name, peak, bound, note in rows:
            ok = ok and peak <= bound
            print("%-34s %12.1f %12.1f %9.2f %9.2f  %s" % (name, peak / KIB, bound / KIB,
                                                          peak / bound, peak / base, note))
        print("memory: %s" % ("every peak within its bound" if ok else "A PEAK IS OVER ITS BOUND"))
        return 0 if ok else 1
    finally:
        if server is not None:
            server.stop(timeout=30)
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())

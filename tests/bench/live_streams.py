#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""live_streams.py - holds N GET /v1/events streams open on 127.0.0.1:PORT
(tests/bench/live_notify.sh): prints "open N" once every stream has sent its
`ready` event, reads (and counts) whatever comes until stdin closes or
--seconds pass, then prints "events K" (event lines received) and exits.

    python3 tests/bench/live_streams.py --port P --token T --n 1000
"""

import argparse
import resource
import selectors
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--n", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=600)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    sel = selectors.DefaultSelector()
    req = ("GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
           "Authorization: Bearer %s\r\n\r\n" % args.token).encode()
    ready = 0
    events = 0
    seen = {}
    for _ in range(args.n):
        s = socket.create_connection(("127.0.0.1", args.port), timeout=30)
        s.sendall(req)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        seen[s] = b""
    sel.register(sys.stdin, selectors.EVENT_READ)
    deadline = time.monotonic() + args.seconds
    announced = False
    while time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            if key.fileobj is sys.stdin:
                if not sys.stdin.readline():
                    deadline = 0
                continue
            try:
                data = key.fileobj.recv(65536)
            except BlockingIOError:
                continue
            if not data:
                sel.unregister(key.fileobj)
                key.fileobj.close()
                continue
            events += data.count(b"\nevent: ")
            if seen[key.fileobj] is not None:
                seen[key.fileobj] += data
                if b"event: ready" in seen[key.fileobj]:
                    seen[key.fileobj] = None
                    ready += 1
        if not announced and ready == args.n:
            print("open %d" % ready, flush=True)
            announced = True
    print("events %d" % events, flush=True)
    return 0 if announced else 1


if __name__ == "__main__":
    sys.exit(main())

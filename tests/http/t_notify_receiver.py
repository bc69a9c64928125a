# SPDX-License-Identifier: Apache-2.0
"""A webhook receiver for the notification tests (no tests of its own).

It checks every delivery's Standard Webhooks signature itself, with Python's
hmac and base64 (an implementation independent of the server's OpenSSL code):
    signature = base64(HMAC-SHA256(base64decode(secret minus "whsec_"),
                                   id + "." + timestamp + "." + body))
and keeps what a real receiver keeps: every attempt, and the set of message
ids it has processed (once each: the idempotency key is webhook-id).
"""

import base64
import hashlib
import hmac
import http.server
import json
import threading
import time

from harness import HOST


def signature(secret, msg_id, timestamp, body):
    key = base64.b64decode(secret[len("whsec_"):])
    mac = hmac.new(key, b"%s.%s.%s" % (msg_id.encode(), timestamp.encode(), body),
                   hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


class Receiver:
    """mode(msg_id, n) -> status: what to answer the n-th (1-based) attempt of msg_id;
    may block (a held delivery)."""

    def __init__(self, secret=None, mode=None):
        self.secret = secret
        self.mode = mode or (lambda msg_id, n: 200)
        self.lock = threading.Condition()
        self.attempts = []      # dicts: id, timestamp, sig_ok, body, status, at
        self.processed = {}     # msg_id -> body (once per id)
        self.duplicates = []    # ids seen again after they were processed
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                msg_id = self.headers.get("webhook-id") or ""
                ts = self.headers.get("webhook-timestamp") or ""
                sig = self.headers.get("webhook-signature") or ""
                ok = bool(receiver.secret) and hmac.compare_digest(
                    sig, signature(receiver.secret, msg_id, ts, body))
                with receiver.lock:
                    nth = 1 + sum(1 for a in receiver.attempts if a["id"] == msg_id)
                    rec = {"id": msg_id, "timestamp": ts, "sig_ok": ok, "body": body, "sig": sig,
                           "path": self.path, "ctype": self.headers.get("Content-Type"),
                           "status": None, "at": time.time(), "nth": nth}
                    receiver.attempts.append(rec)
                    receiver.lock.notify_all()
                status = receiver.mode(msg_id, nth) if ok else 401
                with receiver.lock:
                    rec["status"] = status
                    if status == 200:
                        if msg_id in receiver.processed:
                            receiver.duplicates.append(msg_id)
                        else:
                            receiver.processed[msg_id] = json.loads(body)
                    receiver.lock.notify_all()
                try:
                    out = b'{"ok":true}'
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except OSError:
                    pass  # the sender went away (killed)

        self.httpd = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/hook"):
        return "http://%s:%d%s" % (HOST, self.port, path)

    def wait(self, cond, timeout, what):
        """Waits until cond() (called under the lock) is true; returns its value."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                v = cond()
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("webhook receiver: %s not seen within %.0f s; attempts: %s"
                                         % (what, timeout,
                                            [(a["id"], a["status"], a["nth"])
                                             for a in self.attempts][-20:]))
                self.lock.wait(min(left, 0.2))

    def processed_of_type(self, type_):
        return [b for b in self.processed.values() if b.get("type") == type_]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

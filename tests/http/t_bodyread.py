# SPDX-License-Identifier: Apache-2.0
"""Large request bodies are read off the socket in large pieces
(server/bodyread.h, issue 15 item 7): the bytes stored are exactly the bytes
sent, requests pipelined behind a large body on the same connection are
answered in order, a client that leaves halfway costs nothing afterwards,
and the memory bound still holds (t_conntrack.py)."""

import hashlib
import json
import os
import re
import socket
import time

from harness import HOST, Client, check, eq, expect, sql, test

MIB = 1 << 20
WAIT = 30.0


def counter(server, name):
    r = Client(server).get("/metrics")
    expect(r, 200)
    m = re.search(r"(?m)^%s (\d+)$" % re.escape(name), r.text)
    check(m, "/metrics has no %s" % name)
    return int(m.group(1))


def gauge_sum(server, name):
    r = Client(server).get("/metrics")
    expect(r, 200)
    return sum(int(v) for v in re.findall(r'(?m)^%s\{loop="\d+"\} (\d+)$' % re.escape(name), r.text))


def read_answers(sock, n):
    """n answers read off sock: a list of (status, body bytes); each has a Content-Length."""
    data, out = b"", []
    deadline = time.monotonic() + WAIT
    while len(out) < n:
        head, sep, rest = data.partition(b"\r\n\r\n")
        m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
        if sep and m and len(rest) >= int(m.group(1)):
            size = int(m.group(1))
            out.append((int(head[9:12]), rest[:size]))
            data = rest[size:]
            continue
        check(time.monotonic() < deadline, "%d of %d answers within %.0f s" % (len(out), n, WAIT))
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        chunk = sock.recv(1 << 20)
        check(chunk, "the server closed the connection after %d of %d answers" % (len(out), n))
        data += chunk
    return out


def upload_head(token, size):
    return ("POST /v1/artifacts HTTP/1.1\r\nHost: accord\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: video/mp4\r\nX-Artifact-Kind: video\r\nContent-Length: %d\r\n\r\n"
            % (token, size)).encode()


@test
def bodyread_large_body_then_pipelined_requests(env):
    """A 24 MiB upload and two small requests behind it, all sent at once on
    one connection: the upload is stored byte for byte (its SHA-256 is the
    sent bytes'), and the two requests that arrived in the same reads are
    answered after it, in order. Most of the body came in large reads."""
    s = env.start_server("bodyread", {"ACCORD_THREADS": "1"})
    earner = env.user(["earner"], server=s)
    body = os.urandom(24 * MIB)
    before = counter(s, "accord_body_large_read_bytes_total")
    more = ("GET /healthz HTTP/1.1\r\nHost: accord\r\n\r\n"
            "GET /v1/me HTTP/1.1\r\nHost: accord\r\nAuthorization: Bearer %s\r\n\r\n"
            % earner.token).encode()
    sock = socket.create_connection((HOST, s.port), timeout=WAIT)
    try:
        sock.sendall(upload_head(earner.token, len(body)) + body + more)
        answers = read_answers(sock, 3)
    finally:
        sock.close()
    eq(answers[0][0], 201, "the upload (answer %r)" % answers[0][1][:300])
    art = json.loads(answers[0][1])
    eq(art.get("bytes"), len(body), "bytes stored")
    eq(art.get("sha256"), hashlib.sha256(body).hexdigest(), "the stored bytes' SHA-256")
    eq(answers[1][0], 200, "GET /healthz pipelined behind the body")
    eq(answers[2][0], 200, "GET /v1/me pipelined behind it")
    check(b'"id"' in answers[2][1], "the third answer is /v1/me's: %r" % answers[2][1][:200])
    r = earner.c.get("/v1/artifacts/%s/content" % art["id"])
    expect(r, 200)
    check(r.body == body, "the content read back differs from what was sent")
    large = counter(s, "accord_body_large_read_bytes_total") - before
    # The bufferevent's own reads take 4 KiB per wake-up, the large ones up to 1 MiB:
    # unless the large reads are not wired in, they take nearly everything.
    check(large >= len(body) // 2,
          "only %d of %d body bytes came in large reads" % (large, len(body)))
    msg = s.stop()
    check(msg is None, msg)


@test
def bodyread_client_leaves_halfway(env):
    """A client that announces 32 MiB, sends 12 and closes: the server lets
    go of the bytes (body memory back to about 0), stores nothing, and serves
    the next client."""
    s = env.start_server("bodyleave", {"ACCORD_THREADS": "1"})
    earner = env.user(["earner"], server=s)
    count = "SELECT count(*) FROM artifacts WHERE owner_id = '%s'" % earner.id
    sock = socket.create_connection((HOST, s.port), timeout=WAIT)
    try:
        sock.sendall(upload_head(earner.token, 32 * MIB) + os.urandom(12 * MIB))
    finally:
        sock.close()
    deadline = time.monotonic() + WAIT
    while gauge_sum(s, "accord_body_memory_bytes") >= 4096:
        check(time.monotonic() < deadline, "body memory still held %.0f s after the client left"
              % WAIT)
        time.sleep(0.05)
    eq(sql(env, count), "0", "artifacts stored from the cut upload")
    data = os.urandom(3 * MIB)
    art = env.upload(earner.c.on(s), "video", data)
    eq(art["bytes"], len(data), "the next upload's bytes")
    msg = s.stop()
    check(msg is None, msg)

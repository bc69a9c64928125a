# SPDX-License-Identifier: Apache-2.0
"""Resumable uploads (tus 1.0 core + creation): a video larger than one body,
sent in chunks, resumed after an interruption, and turned into an artifact
whose bytes and hash match; the protocol's refusals (412, 415, 409, 413, 403)."""

import base64
import os
import subprocess
import threading
import socket
import time
import uuid

from harness import HOST, check, eq, expect, is_uuid, raw_exchange, sha256, sql, test

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"
MAX_SIZE = 8 << 30


def b64(s):
    return base64.b64encode(s.encode()).decode()


def metadata(kind="video", filename="morning-meeting.mp4", filetype="video/mp4"):
    parts = ["kind " + b64(kind)]
    if filename:
        parts.append("filename " + b64(filename))
    if filetype:
        parts.append("filetype " + b64(filetype))
    return ",".join(parts)


def create(client, length, meta=None, headers=None):
    h = dict(TUS)
    h["Upload-Length"] = str(length)
    h["Upload-Metadata"] = meta if meta is not None else metadata()
    h.update(headers or {})
    return client.request("POST", "/v1/uploads", data=b"", headers=h)


def patch(client, upload_id, offset, data, headers=None, tus=True):
    h = dict(TUS) if tus else {}
    h["Content-Type"] = OCTETS
    h["Upload-Offset"] = str(offset)
    h.update(headers or {})
    return client.request("PATCH", "/v1/uploads/" + upload_id, data=data, headers=h, timeout=120)


def head(client, upload_id):
    return client.request("HEAD", "/v1/uploads/" + upload_id, headers=dict(TUS))


def expect_tus(r, status, what):
    eq(r.status, status, "%s: status (%s)" % (what, r.text[:300]))
    eq(r.header("tus-resumable"), "1.0.0", "%s: Tus-Resumable" % what)


def new_upload(client, length, **kw):
    r = create(client, length, **kw)
    body = expect(r, 201, what="create an upload of %d bytes" % length)
    check(is_uuid(body.get("id")), "POST /v1/uploads: id %r" % body.get("id"))
    eq(r.header("location"), "/v1/uploads/" + body["id"], "POST /v1/uploads: Location")
    eq(r.header("upload-offset"), "0", "POST /v1/uploads: Upload-Offset")
    eq(r.header("tus-resumable"), "1.0.0", "POST /v1/uploads: Tus-Resumable")
    eq(body.get("offset"), 0, "POST /v1/uploads: offset")
    eq(body.get("length"), length, "POST /v1/uploads: length")
    return body["id"]


def interrupted_patch(port, token, upload_id, offset, data, sent):
    """A PATCH whose client goes away after `sent` of len(data) body bytes."""
    s = socket.create_connection((HOST, port), timeout=10)
    try:
        s.sendall(("PATCH /v1/uploads/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "Authorization: Bearer %s\r\nTus-Resumable: 1.0.0\r\n"
                   "Content-Type: %s\r\nUpload-Offset: %d\r\nContent-Length: %d\r\n\r\n"
                   % (upload_id, token, OCTETS, offset, len(data))).encode())
        s.sendall(data[:sent])
        time.sleep(0.2)
    finally:
        s.close()


@test
def upload_tus_options(env):
    r = env.admin.c.anon().request("OPTIONS", "/v1/uploads")
    eq(r.status, 204, "OPTIONS /v1/uploads: status")
    eq(r.header("tus-resumable"), "1.0.0", "OPTIONS: Tus-Resumable")
    eq(r.header("tus-version"), "1.0.0", "OPTIONS: Tus-Version")
    eq(r.header("tus-extension"), "creation,termination,expiration", "OPTIONS: Tus-Extension")
    eq(r.header("tus-max-size"), str(MAX_SIZE), "OPTIONS: Tus-Max-Size")


@test
def upload_tus_video_in_chunks(env):
    earner = env.user(["earner"], org="Tus Org")
    other = env.user(["earner"], org="Other Tus Org")
    lead = env.user(["lead"])
    data = os.urandom(20 * 1024 * 1024 + 12345)
    cut1, cut2 = 7 * 1024 * 1024, 14 * 1024 * 1024 + 999

    # refusals at creation
    r = earner.c.request("POST", "/v1/uploads", data=b"",
                         headers={"Upload-Length": str(len(data)),
                                  "Upload-Metadata": metadata()})
    expect(r, 412, "unsupported_tus_version", "create without Tus-Resumable")
    eq(r.header("tus-version"), "1.0.0", "412: Tus-Version")
    expect(create(earner.c, MAX_SIZE + 1), 413, "upload_too_large", "Upload-Length over the max")
    expect(create(earner.c, 0), 400, "bad_request", "Upload-Length 0")
    expect(create(earner.c, "12a"), 400, "bad_request", "Upload-Length not a number")
    expect(create(earner.c, 100, meta=""), 400, "bad_metadata", "no kind in the metadata")
    expect(create(earner.c, 100, meta="kind %%%"), 400, "bad_metadata", "kind not base64")
    expect(create(earner.c, 100, meta=metadata(kind="movie")), 400, "bad_request",
           "unknown kind")
    # Earners upload evidence and leads upload anchor evidence; nobody else.
    assessor = env.user(["assessor"], org="Tus Assessors")
    expect(create(assessor.c, 100), 403, "forbidden", "an assessor creates an upload")

    uid = new_upload(earner.c, len(data))
    r = head(earner.c, uid)
    expect_tus(r, 200, "HEAD at the start")
    eq(r.header("upload-offset"), "0", "HEAD: Upload-Offset")
    eq(r.header("upload-length"), str(len(data)), "HEAD: Upload-Length")
    eq(r.header("cache-control"), "no-store", "HEAD: Cache-Control")

    # first chunk
    r = patch(earner.c, uid, 0, data[:cut1])
    expect_tus(r, 204, "PATCH the first chunk")
    eq(r.header("upload-offset"), str(cut1), "first PATCH: Upload-Offset")
    # the same chunk again with its (now stale) offset
    r = patch(earner.c, uid, 0, data[:cut1])
    expect(r, 409, "offset_mismatch", "the first chunk re-sent at offset 0")
    eq(r.header("tus-resumable"), "1.0.0", "409: Tus-Resumable")
    # wrong content type, no Tus-Resumable
    r = patch(earner.c, uid, cut1, data[cut1:cut2], headers={"Content-Type": "video/mp4"})
    expect(r, 415, "unsupported_media_type", "PATCH with Content-Type video/mp4")
    r = patch(earner.c, uid, cut1, data[cut1:cut2], tus=False)
    expect(r, 412, "unsupported_tus_version", "PATCH without Tus-Resumable")
    # someone else's upload
    eq(head(other.c, uid).status, 403, "another earner's HEAD")
    expect(other.c.get("/v1/uploads/" + uid), 403, "forbidden", "another earner's GET")
    expect(patch(other.c, uid, cut1, data[cut1:cut2]), 403, "forbidden", "another earner's PATCH")
    expect(lead.c.get("/v1/uploads/" + uid), 403, "forbidden", "a lead's GET")
    eq(head(earner.c, str(uuid.uuid4())).status, 404, "HEAD of an unknown upload")

    # the connection drops in the middle of the second chunk
    interrupted_patch(env.server.port, earner.token, uid, cut1, data[cut1:cut2], 1024 * 1024)
    r = head(earner.c, uid)
    expect_tus(r, 200, "HEAD after the interruption")
    offset = int(r.header("upload-offset"))
    eq(offset, cut1, "the offset after an interrupted PATCH")
    # resume from where the server says
    r = patch(earner.c, uid, offset, data[offset:cut2])
    expect_tus(r, 204, "PATCH the second chunk")
    eq(r.header("upload-offset"), str(cut2), "second PATCH: Upload-Offset")
    check(r.header("x-artifact-id") is None, "X-Artifact-Id before the upload is complete")
    view = expect(earner.c.get("/v1/uploads/" + uid), 200, what="GET the upload")
    eq(view.get("offset"), cut2, "GET: offset")
    eq(view.get("artifact_id"), None, "GET: artifact_id before completion")
    # a chunk past the length
    expect(patch(earner.c, uid, cut2, data[cut2:] + b"x"), 400, "length_exceeded",
           "a chunk past Upload-Length")

    # the last chunk makes the artifact
    r = patch(earner.c, uid, cut2, data[cut2:])
    expect_tus(r, 204, "PATCH the last chunk")
    eq(r.header("upload-offset"), str(len(data)), "last PATCH: Upload-Offset")
    aid = r.header("x-artifact-id")
    check(is_uuid(aid), "last PATCH: X-Artifact-Id %r" % aid)
    a = expect(earner.c.get("/v1/artifacts/" + aid), 200, what="the uploaded artifact")
    eq(a.get("bytes"), len(data), "artifact bytes")
    eq(a.get("sha256"), sha256(data), "artifact sha256")
    eq(a.get("kind"), "video", "artifact kind")
    eq(a.get("media_type"), "video/mp4", "artifact media_type")
    eq(a.get("filename"), "morning-meeting.mp4", "artifact filename")
    r = earner.c.get("/v1/artifacts/%s/content" % aid, timeout=120)
    expect(r, 200, what="download the uploaded video")
    check(r.body == data, "the downloaded bytes differ from the uploaded file")
    view = expect(earner.c.get("/v1/uploads/" + uid), 200, what="GET the finished upload")
    eq(view.get("artifact_id"), aid, "GET: artifact_id after completion")
    eq(view.get("offset"), len(data), "GET: offset after completion")
    # after completion: no more bytes
    expect(patch(earner.c, uid, len(data), b""), 409, "upload_complete",
           "PATCH a finished upload")
    check(not os.path.exists(os.path.join(env.data_dir, "uploads", uid + ".part")),
          "the part file should be gone once the upload is an artifact")

    # the same bytes again: a second artifact sharing the stored file
    small = data[:300000]
    uid2 = new_upload(earner.c, len(small), meta=metadata(kind="other", filename=None,
                                                          filetype=None))
    r = patch(earner.c, uid2, 0, small)
    expect_tus(r, 204, "a one-chunk upload")
    a2 = expect(earner.c.get("/v1/artifacts/" + r.header("x-artifact-id")), 200)
    eq(a2.get("sha256"), sha256(small), "one-chunk upload sha256")
    eq(a2.get("media_type"), "application/octet-stream", "default media type")
    # served like any uploaded artifact
    r = earner.c.get("/v1/artifacts/%s/content" % a2["id"])
    check(r.body == small, "one-chunk upload content")


@test
def upload_tus_chunk_over_max_body(env):
    limit = 65536
    s = env.start_server("tusmaxbody", {"ACCORD_MAX_BODY": str(limit)})
    earner = env.user(["earner"], org="Tus Limit Org", server=s)
    data = os.urandom(3 * limit)
    uid = new_upload(earner.c, len(data))
    head_bytes = ("PATCH /v1/uploads/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  "Authorization: Bearer %s\r\nTus-Resumable: 1.0.0\r\nContent-Type: %s\r\n"
                  "Upload-Offset: 0\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                  % (uid, earner.token, OCTETS, 2 * limit)).encode()
    status, raw = raw_exchange(s.port, head_bytes, data[:2 * limit], timeout=15)
    eq(status, 413, "a chunk of %d bytes with a body limit of %d (%r)" % (2 * limit, limit,
                                                                          raw[:200]))
    r = head(earner.c, uid)
    eq(r.header("upload-offset"), "0", "the offset after a refused chunk")
    # within the limit, chunk by chunk
    step = limit - 1024
    off = 0
    while off < len(data):
        r = patch(earner.c, uid, off, data[off:off + step])
        expect_tus(r, 204, "PATCH at %d" % off)
        off = min(off + step, len(data))
        eq(r.header("upload-offset"), str(off), "Upload-Offset after PATCH")
    aid = r.header("x-artifact-id")
    a = expect(earner.c.get("/v1/artifacts/" + aid), 200)
    eq(a.get("sha256"), sha256(data), "sha256 of the upload in small chunks")
    msg = s.stop()
    check(msg is None, msg)


@test
def upload_tus_finish_retry(env):
    """The last step (artifact row) failed after the file moved into the store:
    a PATCH with Upload-Offset = length and no bytes finishes it."""
    earner = env.user(["earner"], org="Tus Retry Org")
    data = os.urandom(100000)
    uid = new_upload(earner.c, len(data), meta=metadata(kind="reflection", filename="r.txt",
                                                         filetype="text/plain"))
    r = patch(earner.c, uid, 0, data[:50000])
    expect_tus(r, 204, "first half")
    r = patch(earner.c, uid, 50000, b"")
    expect_tus(r, 204, "an empty PATCH")
    eq(r.header("upload-offset"), "50000", "an empty PATCH changes nothing")
    r = patch(earner.c, uid, 50000, data[50000:])
    expect_tus(r, 204, "second half")
    first = r.header("x-artifact-id")
    # as if api_upload_finish had never committed
    p = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", env.base_env["DATABASE_URL"],
                        "-c", "UPDATE uploads SET artifact_id = NULL WHERE id = '%s'" % uid],
                       capture_output=True, text=True, timeout=30)
    eq(p.returncode, 0, "psql: %s" % p.stderr)
    expect(patch(earner.c, uid, 0, b"x"), 409, "offset_mismatch", "a chunk at 0 of a full upload")
    r = patch(earner.c, uid, len(data), b"")
    expect_tus(r, 204, "the retried last step")
    aid = r.header("x-artifact-id")
    check(is_uuid(aid) and aid != first, "the retried last step: X-Artifact-Id %r" % aid)
    r = earner.c.get("/v1/artifacts/%s/content" % aid)
    expect(r, 200)
    check(r.body == data, "content after the retried last step")


@test
def upload_tus_racing_patches(env):
    """Two PATCHes at the same offset with different bytes: exactly one is
    taken (204), the other is refused (423 while it writes, 409 after), and
    the artifact holds the winner's bytes."""
    earner = env.user(["earner"], org="Tus Race Org")
    size = 4 * 1024 * 1024
    for _ in range(3):
        uid = new_upload(earner.c, size)
        bodies = [os.urandom(size), os.urandom(size)]
        results = [None, None]

        def send(i):
            results[i] = patch(earner.c, uid, 0, bodies[i])

        threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        statuses = sorted(r.status for r in results)
        check(statuses in ([204, 409], [204, 423]),
              "two racing PATCHes: expected one 204 and one 409/423, got %s (%s)"
              % (statuses, [r.text[:200] for r in results]))
        win = 0 if results[0].status == 204 else 1
        aid = results[win].header("x-artifact-id")
        r = earner.c.get("/v1/artifacts/%s/content" % aid)
        expect(r, 200)
        check(r.body == bodies[win], "the artifact should hold the accepted PATCH's bytes")


# ---- the hash that advances with the chunks (issue 15 item 7) ----------------

_K = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2]
_H0 = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
       0x5be0cd19]


def _rotr(x, n):
    return ((x >> n) | (x << (32 - n))) & 0xffffffff


def sha256_chaining_value(blocks):
    """FIPS 180-4's SHA-256 H(i) after `blocks` (a whole number of 64-byte
    blocks), as 32 big-endian bytes: what the server keeps between chunks.
    A second, plain implementation, so the test does not trust the server's
    OpenSSL; it is checked against hashlib in sha256_chaining_value_checked."""
    h = list(_H0)
    for at in range(0, len(blocks), 64):
        w = [int.from_bytes(blocks[at + 4 * i:at + 4 * i + 4], "big") for i in range(16)]
        for i in range(16, 64):
            s0 = _rotr(w[i - 15], 7) ^ _rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
            s1 = _rotr(w[i - 2], 17) ^ _rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
            w.append((w[i - 16] + s0 + w[i - 7] + s1) & 0xffffffff)
        a, b, c, d, e, f, g, hh = h
        for i in range(64):
            t1 = (hh + (_rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)) + ((e & f) ^ (~e & g))
                  + _K[i] + w[i]) & 0xffffffff
            t2 = ((_rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) \
                & 0xffffffff
            a, b, c, d, e, f, g, hh = (t1 + t2) & 0xffffffff, a, b, c, (d + t1) & 0xffffffff, e, f, g
        h = [(x + y) & 0xffffffff for x, y in zip(h, [a, b, c, d, e, f, g, hh])]
    return b"".join(x.to_bytes(4, "big") for x in h)


def sha256_chaining_value_checked(data):
    """The chaining value after data (whole blocks), once the padded message
    of the same implementation has been seen to give hashlib's digest."""
    padded = data + b"\x80" + b"\0" * ((55 - len(data)) % 64) + (8 * len(data)).to_bytes(8, "big")
    check(sha256_chaining_value(padded).hex() == sha256(data),
          "the test's own SHA-256 disagrees with hashlib")
    return sha256_chaining_value(data)


def hash_row(env, uid):
    out = sql(env, "SELECT upload_offset, hashed_bytes, coalesce(encode(hash_state, 'hex'), '')"
                   " FROM uploads WHERE id = '%s'" % uid).split("|")
    return int(out[0]), int(out[1]), out[2]


def part_file(env, uid):
    return os.path.join(env.data_dir, "uploads", uid + ".part")


@test
def upload_tus_hash_resumes_across_restarts(env):
    """The file's SHA-256 advances as chunks arrive and is kept between them
    as the standard chaining value (checked by a second implementation): the
    chunks after a crash (SIGKILL) of the server that took the first go
    through another server process, and the artifact's hash and bytes are the
    file's. Chunk ends fall inside 64-byte blocks, so the bytes after the kept
    state are re-read from the part file."""
    a = env.start_server("tus-hash-a")
    earner = env.user(["earner"], org="Tus Hash Org", server=a)
    # small: the second implementation is plain Python (about 100 KB/s)
    data = os.urandom(40003 + 30011 + 7777)
    cuts = [0, 40003, 70014, len(data)]
    uid = new_upload(earner.c, len(data))
    r = patch(earner.c, uid, 0, data[:cuts[1]])
    expect_tus(r, 204, "first chunk on A")
    offset, hashed, state = hash_row(env, uid)
    eq((offset, hashed), (cuts[1], cuts[1] // 64 * 64), "offset and bytes hashed after chunk 1")
    eq(state, sha256_chaining_value_checked(data[:hashed]).hex(), "the kept hash state, chunk 1")
    a.kill()  # a crash: nothing more is written by A

    b = env.start_server("tus-hash-b")
    eb = earner.on(b)
    r = patch(eb, uid, cuts[1], data[cuts[1]:cuts[2]])
    expect_tus(r, 204, "second chunk on B after A crashed")
    offset, hashed, state = hash_row(env, uid)
    eq((offset, hashed), (cuts[2], cuts[2] // 64 * 64), "offset and bytes hashed after chunk 2")
    eq(state, sha256_chaining_value(data[:hashed]).hex(), "the kept hash state, chunk 2")
    r = patch(eb, uid, cuts[2], data[cuts[2]:])
    expect_tus(r, 204, "last chunk on B")
    aid = r.header("x-artifact-id")
    art = expect(eb.get("/v1/artifacts/" + aid), 200, what="the resumed artifact")
    eq((art.get("bytes"), art.get("sha256")), (len(data), sha256(data)), "the artifact's hash")
    got = eb.get("/v1/artifacts/%s/content" % aid, timeout=60)
    check(got.status == 200 and got.body == data, "the stored bytes are the uploaded file")
    msg = b.stop()
    check(msg is None, msg)


@test
def upload_tus_damaged_part_file(env):
    """The hash is taken from the bytes as they arrive, so the part file must
    hold exactly what was acknowledged: a file cut short (lost bytes) is never
    filled with a hole — the chunk is refused and the offset stays; bytes past
    the offset (a chunk that crashed mid-write) are cut before the next one;
    a wrong Upload-Offset is still a 409."""
    earner = env.user(["earner"], org="Tus Damage Org")
    data = os.urandom(300000)
    uid = new_upload(earner.c, len(data))
    expect_tus(patch(earner.c, uid, 0, data[:100000]), 204, "first chunk")
    expect(patch(earner.c, uid, 100001, data[100001:200000]), 409, "offset_mismatch",
           "a chunk one byte past the offset")
    with open(part_file(env, uid), "r+b") as f:
        f.truncate(50000)
    r = patch(earner.c, uid, 100000, data[100000:200000])
    body = expect(r, 500, "storage_failed", "a chunk after the part file lost bytes")
    check("DELETE" in body["error"]["message"], "the message says what to do: %r" % body)
    eq(head(earner.c, uid).header("upload-offset"), "100000", "the offset after the refusal")
    eq(os.path.getsize(part_file(env, uid)), 50000, "the damaged part file is left as it was")
    eq(earner.c.request("DELETE", "/v1/uploads/" + uid, headers=dict(TUS)).status, 204,
       "the damaged upload is deleted")

    # leftovers of an unacknowledged chunk are cut, and the hash is of the acknowledged bytes
    uid = new_upload(earner.c, len(data))
    expect_tus(patch(earner.c, uid, 0, data[:100000]), 204, "first chunk")
    with open(part_file(env, uid), "ab") as f:
        f.write(os.urandom(12345))
    r = patch(earner.c, uid, 100000, data[100000:])
    expect_tus(r, 204, "the rest after the leftovers")
    aid = r.header("x-artifact-id")
    art = expect(earner.c.get("/v1/artifacts/%s" % aid), 200, what="the artifact")
    eq((art.get("bytes"), art.get("sha256")), (len(data), sha256(data)), "hash after leftovers")
    got = earner.c.get("/v1/artifacts/%s/content" % aid)
    check(got.body == data, "the stored bytes after leftovers were cut")


@test
def upload_tus_without_saved_hash(env):
    """An upload begun before the hash was kept (no state in its row): its
    next chunk hashes the bytes already on disk once, and the artifact is right."""
    earner = env.user(["earner"], org="Tus Legacy Org")
    data = os.urandom(250000)
    uid = new_upload(earner.c, len(data))
    expect_tus(patch(earner.c, uid, 0, data[:130000]), 204, "first chunk")
    sql(env, "UPDATE uploads SET hashed_bytes = 0, hash_state = NULL WHERE id = '%s'" % uid)
    r = patch(earner.c, uid, 130000, data[130000:])
    expect_tus(r, 204, "the last chunk")
    art = expect(earner.c.get("/v1/artifacts/" + r.header("x-artifact-id")), 200)
    eq(art.get("sha256"), sha256(data), "the hash of an upload without a saved state")

# SPDX-License-Identifier: Apache-2.0
"""Issue 13's test of several servers with object storage: two `accord serve`
processes (A and B), one database, one store (the radosgw of t_s3.py), and
no shared disk: each server has a data directory of its own, so nothing can
work by accident through a file one of them wrote.

- an earner uploads a video through A with presigned multipart URLs; A is
  killed (-9) in the middle of a request while a part is on its way to the
  store; the upload resumes through B (the parts A recorded are in the
  database, the URLs A signed stay good: the store checks them, not A) and
  completes through B, which hashes the object;
- an assessor claims the submission through B and seeks in the video (a
  Range request on the presigned GET B redirects to, across a part boundary);
- the store refuses presigned URLs that were tampered with (another part
  number, another key, a changed signature) or that expired (signed an hour
  ago by the independent signer of t_s3.py, which signed for now is accepted);
- a server that died after the store completed an upload but before the
  database heard of it: the upload stays locked for the completing lease (a
  minute, renewed by the completing server while it works), and once that
  ran out another server finishes it from the object in the store;
- a tus upload under the S3 backend, begun on A, A killed: B answers where it
  stands and takes the next chunk, and a third server (its own empty disk)
  the last (the chunks are in the store, not only on the disk of the server
  that took them); the artifact holds exactly the bytes that were sent, the
  chunks leave the store once it is stored, and the partial copy left on B's
  disk is removed by B's sweep.
"""

import datetime
import os
import socket
import time
import urllib.parse

from harness import Server, check, eq, expect, sha256, sql, test
from t_s3 import PART, content, fetch, presign_py, s3_env, store


def private_server(env, rgw, name):
    """An S3 server with a data directory of its own (not the suite's)."""
    s = Server(env.binary, env.workdir, os.path.join(env.workdir, name + "-data"), env.base_env,
               name, s3_env(rgw))
    env.servers.append(s)
    s.start()
    return s


def send_half(url, method, data, headers=None):
    """Opens a request to url and sends its head and the first half of data;
    returns the socket and the rest, to finish later with finish()."""
    u = urllib.parse.urlsplit(url)
    s = socket.create_connection((u.hostname, u.port), timeout=30)
    head = "%s %s%s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nConnection: close\r\n" % (
        method, u.path, "?" + u.query if u.query else "", u.netloc, len(data))
    for k, v in (headers or {}).items():
        head += "%s: %s\r\n" % (k, v)
    s.sendall(head.encode() + b"\r\n" + data[:len(data) // 2])
    return s, data[len(data) // 2:]


def finish(sock, rest):
    """Sends the rest and reads the answer: (status, headers, body); status 0
    when the other side closed the connection without an answer."""
    try:
        sock.sendall(rest)
        sock.shutdown(socket.SHUT_WR)
        raw = b""
        while True:
            got = sock.recv(65536)
            if not got:
                break
            raw += got
    except OSError:
        raw = b""
    finally:
        sock.close()
    if not raw.startswith(b"HTTP/1.1 "):
        return 0, {}, b""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in
               (l.split(":", 1) for l in lines[1:] if ":" in l)}
    return int(lines[0].split()[1]), headers, body


def with_query(url, **changes):
    u = urllib.parse.urlsplit(url)
    q = urllib.parse.parse_qsl(u.query, keep_blank_values=True)
    q = [(k, changes.get(k, v)) for k, v in q]
    return urllib.parse.urlunsplit(u._replace(query=urllib.parse.urlencode(q)))


@test
def s3_scaleout_presigned_upload_across_servers(env):
    rgw, _ = store(env)
    a = private_server(env, rgw, "s3-a")
    b = private_server(env, rgw, "s3-b")
    lead = env.user(["lead"], org="", server=b)
    cred = env.credential(lead, env.rubric(lead)["id"], videos=1)
    assessor = env.user(["assessor"], server=b)
    env.grant(lead, cred["id"], assessor)
    earner = env.user(["earner"])
    ea, eb = earner.on(a), earner.on(b)

    data = os.urandom(2 * PART + 54321)       # three parts, the last short
    u = expect(ea.post("/v1/object-uploads", {"kind": "video", "media_type": "video/mp4",
                                              "bytes": len(data), "filename": "lesson.mp4",
                                              "sha256": sha256(data)}),
               201, what="create the upload through A")
    eq(u["parts"], 3, "parts")
    r = ea.post("/v1/object-uploads/%s/part-urls" % u["id"], {"part_numbers": [1, 2, 3]})
    urls = {p["part_number"]: p["url"] for p in expect(r, 200, what="part URLs from A")["parts"]}
    key = "uploads/" + u["id"]
    upload_id = urllib.parse.parse_qs(urllib.parse.urlsplit(urls[1]).query)["uploadId"][0]

    # the store checks every presigned URL itself: another part number under
    # part 1's signature, a changed signature, an expired one are refused
    st, _, body = fetch(with_query(urls[1], partNumber="3"), "PUT", data[:PART])
    eq(st, 403, "the store's answer to part 1's URL used for part 3 (%s)" % body[:200])
    sig = urls[1].rsplit("X-Amz-Signature=", 1)[1]
    flipped = urls[1][:-len(sig)] + ("0" if sig[0] != "0" else "1") + sig[1:]
    eq(fetch(flipped, "PUT", data[:PART])[0], 403, "the store's answer to a changed signature")
    now = datetime.datetime.now(datetime.timezone.utc)
    q = {"partNumber": "1", "uploadId": upload_id}
    st, _, body = fetch(presign_py(rgw, "PUT", key, 60, now - datetime.timedelta(hours=1), q),
                        "PUT", data[:PART])
    eq(st, 403, "the store's answer to an expired part URL (%s)" % body[:200])
    st, _, body = fetch(presign_py(rgw, "PUT", key, 60, now, q), "PUT", data[:PART])
    eq(st, 200, "the same URL signed for now (%s)" % body[:200])

    # part 1 through A's URL, recorded through A
    st, h, _ = fetch(urls[1], "PUT", data[:PART])
    eq(st, 200, "PUT of part 1")
    expect(ea.post("/v1/object-uploads/%s/parts" % u["id"], {"part_number": 1,
                                                              "etag": h["etag"]}), 200,
           what="record part 1 through A")
    # part 2 is half on its way to the store and the earner's record of
    # something is half sent to A when A is killed
    to_store, rest = send_half(urls[2], "PUT", data[PART:2 * PART])
    to_a, rest_a = send_half("http://127.0.0.1:%d/v1/object-uploads/%s/parts" % (a.port, u["id"]),
                             "POST", b'{"part_number": 2, "etag": "x"}',
                             {"Authorization": "Bearer " + earner.token,
                              "Content-Type": "application/json"})
    a.kill()
    eq(finish(to_a, rest_a)[0], 0, "an answer from A after kill -9")
    st, h, _ = finish(to_store, rest)
    eq(st, 200, "the store took part 2 while A died")
    # B knows where the upload stands: what A recorded is in the database
    got = expect(eb.get("/v1/object-uploads/" + u["id"]), 200, what="the upload through B")
    eq((got["state"], [p["part_number"] for p in got["parts_done"]]), ("open", [1]),
       "state and recorded parts, read through B after A died")
    expect(eb.post("/v1/object-uploads/%s/parts" % u["id"], {"part_number": 2,
                                                              "etag": h["etag"]}), 200,
           what="record part 2 through B")
    # a URL A signed before it died is still good: the store checks it, not A
    st, h, _ = fetch(urls[3], "PUT", data[2 * PART:])
    eq(st, 200, "PUT of part 3 with the URL A signed")
    expect(eb.post("/v1/object-uploads/%s/parts" % u["id"], {"part_number": 3,
                                                              "etag": h["etag"]}), 200,
           what="record part 3 through B")
    video = expect(eb.post("/v1/object-uploads/%s/complete" % u["id"]), 201,
                   what="complete through B")
    eq((video["bytes"], video["sha256"]), (len(data), sha256(data)), "the artifact B hashed")

    plan = env.upload(eb, "plan", b"%PDF-1.4 plan " + os.urandom(300), filename="plan.pdf")
    refl = env.upload(eb, "reflection", b"What I would change next time.", filename="r.txt")
    sub = env.submit(eb, cred["id"], [video["id"], plan["id"], refl["id"]])

    # the assessor claims through B and seeks in the video
    ab = assessor.on(b)
    c = expect(ab.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200, what="claim")
    eq(c["submission"]["id"], sub["id"], "the claimed submission")
    reads = int(sql(env, "select count(*) from audit_log where actor_id = '%s' and "
                         "action = 'artifact.read' and object_id = '%s'"
                    % (assessor.id, video["id"])))
    rng = {"Range": "bytes=%d-%d" % (PART - 100, PART + 99)}
    loc, (st, _, body) = content(ab, video["id"], headers=rng)
    eq(st, 206, "a Range request on the presigned URL B redirected to")
    check(body == data[PART - 100:PART + 100], "the bytes across the part boundary differ")
    eq(int(sql(env, "select count(*) from audit_log where actor_id = '%s' and "
                    "action = 'artifact.read' and object_id = '%s'"
               % (assessor.id, video["id"]))), reads + 1, "the assessor's read is audited")
    st, _, body = fetch(loc, headers={"Range": "bytes=0-99"})
    eq((st, body), (206, data[:100]), "seeking back to the start")
    # the assessor's URL, tampered: another object, a changed signature
    eq(fetch(loc.replace(key, "sha256/" + plan["sha256"]))[0], 403,
       "the store's answer to the video's signature on another key")
    sig = loc.rsplit("X-Amz-Signature=", 1)[1]
    eq(fetch(loc[:-len(sig)] + ("0" if sig[0] != "0" else "1") + sig[1:])[0], 403,
       "the store's answer to a changed signature")
    # and someone else gets no URL at all
    other = env.user(["assessor"], server=b)
    r = other.c.get("/v1/artifacts/%s/content" % video["id"])
    expect(r, 403, "forbidden")
    check(r.header("location") is None, "a refused read carries no presigned URL")


@test
def s3_scaleout_complete_taken_over(env):
    """A died after the store completed the upload and before the database
    heard of it (the worst moment): B finds the object and finishes."""
    rgw, _ = store(env)
    a = private_server(env, rgw, "s3-a2")
    b = private_server(env, rgw, "s3-b2")
    earner = env.user(["earner"])
    ea, eb = earner.on(a), earner.on(b)
    data = os.urandom(PART + 777)
    u = expect(ea.post("/v1/object-uploads", {"kind": "video", "media_type": "video/mp4",
                                              "bytes": len(data)}), 201, what="create through A")
    r = ea.post("/v1/object-uploads/%s/part-urls" % u["id"], {"part_numbers": [1, 2]})
    urls = {p["part_number"]: p["url"] for p in expect(r, 200)["parts"]}
    etags = []
    for n, chunk in ((1, data[:PART]), (2, data[PART:])):
        st, h, _ = fetch(urls[n], "PUT", chunk)
        eq(st, 200, "PUT of part %d" % n)
        etags.append(h["etag"])
        expect(ea.post("/v1/object-uploads/%s/parts" % u["id"],
                       {"part_number": n, "etag": h["etag"]}), 200)
    # what A's complete had done when it died: the lease taken, the store's
    # CompleteMultipartUpload made (here with curl's signer, as A would have)
    sql(env, "update object_uploads set state = 'completing', "
             "lease_until = now() + interval '5 seconds' where id = '%s'" % u["id"])
    # (A renewed its one-minute lease every 20 s while it worked: 019_objects2.sql)
    sql(env, "select object_upload_complete_renew('%s', 60)" % u["id"])
    left = float(sql(env, "select extract(epoch from lease_until - now()) from object_uploads "
                          "where id = '%s'" % u["id"]))
    check(50 < left <= 60, "the renewed lease has %.1f s left, not about 60" % left)
    upload_id = urllib.parse.parse_qs(urllib.parse.urlsplit(urls[1]).query)["uploadId"][0]
    xml = "<CompleteMultipartUpload>%s</CompleteMultipartUpload>" % "".join(
        "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>" % (i + 1, e)
        for i, e in enumerate(etags))
    st, body, _ = rgw.request("POST", "/%s/uploads/%s?uploadId=%s" % (
        rgw.bucket, u["id"], urllib.parse.quote(upload_id, safe="")), xml.encode())
    eq(st, 200, "the store's CompleteMultipartUpload (%s)" % body[:200])
    a.kill()
    # within the lease B does not step on A's work
    r = eb.post("/v1/object-uploads/%s/complete" % u["id"])
    expect(r, 423, "upload_locked")
    got = expect(eb.get("/v1/object-uploads/" + u["id"]), 200)
    eq(got["state"], "open", "a completing upload reads as open")
    # a renewal never touches an upload that is not being completed
    other = expect(eb.post("/v1/object-uploads", {"kind": "video", "media_type": "video/mp4",
                                                  "bytes": 10}), 201)
    sql(env, "select object_upload_complete_renew('%s', 60)" % other["id"])
    eq(sql(env, "select coalesce(lease_until::text, 'none') from object_uploads where id = '%s'"
           % other["id"]), "none", "the lease of an open upload after a renewal")
    expect(eb.delete("/v1/object-uploads/" + other["id"]), 204)
    # the lease ran out (A is dead): B finishes from the object in the store
    sql(env, "update object_uploads set lease_until = now() - interval '1 second' "
             "where id = '%s'" % u["id"])
    art = expect(eb.post("/v1/object-uploads/%s/complete" % u["id"]), 201,
                 what="complete through B after A's lease ran out")
    eq((art["bytes"], art["sha256"]), (len(data), sha256(data)), "the artifact B hashed")
    _, (st, _, body) = content(eb, art["id"])
    check(st == 200 and body == data, "the object reads back whole through B")
@test
def s3_scaleout_tus_resumes_on_the_other_server(env):
    rgw, _ = store(env)
    a = private_server(env, rgw, "s3-a3")
    b = private_server(env, rgw, "s3-b3")
    earner = env.user(["earner"])
    ea, eb = earner.on(a), earner.on(b)
    data = os.urandom(300 * 1024)
    cuts = [0, 100 * 1024, 180 * 1024, len(data)]
    tus = {"Tus-Resumable": "1.0.0"}
    meta = "kind dmlkZW8=,filename Y2xpcC5tcDQ=,filetype dmlkZW8vbXA0"  # video, clip.mp4, video/mp4
    r = ea.request("POST", "/v1/uploads", data=b"",
                   headers=dict(tus, **{"Upload-Length": str(len(data)),
                                        "Upload-Metadata": meta}))
    uid = expect(r, 201, what="create the upload on A")["id"]

    def patch(client, i, what):
        r = client.request("PATCH", "/v1/uploads/" + uid, data=data[cuts[i]:cuts[i + 1]],
                           headers=dict(tus, **{"Content-Type": "application/offset+octet-stream",
                                                "Upload-Offset": str(cuts[i])}))
        eq(r.status, 204, "%s (%s)" % (what, r.text[:300]))
        return r

    patch(ea, 0, "first chunk through A")
    a.kill()
    r = eb.request("HEAD", "/v1/uploads/" + uid, headers=tus)
    eq((r.status, r.header("upload-offset")), (200, str(cuts[1])), "HEAD on B after A died")
    patch(eb, 1, "second chunk through B")
    # and back to a third server (A's replacement, its own empty disk)
    c = private_server(env, rgw, "s3-c3")
    r = patch(earner.on(c), 2, "the last chunk through C")
    aid = r.header("x-artifact-id")
    art = expect(eb.get("/v1/artifacts/%s" % aid), 200, what="the artifact on B")
    eq((art["bytes"], art["sha256"]), (len(data), sha256(data)), "the resumed artifact")
    _, (st, _, body) = content(eb, aid, headers={"Range": "bytes=1000-1999"})
    eq((st, body), (206, data[1000:2000]), "seeking in the resumed video")
    for off in cuts[:-1]:
        eq(rgw.request("HEAD", "/%s/tus/%s/%d" % (rgw.bucket, uid, off))[0], 404,
           "the chunk at %d is gone from the store once the upload is stored" % off)
    # B's copy of the first two chunks is a stale cache now: B's sweep removes
    # it once untouched for --upload-expiry (here B again, restarted with 3 s)
    stale = os.path.join(b.data_dir, "uploads", uid + ".part")
    eq(os.path.getsize(stale), cuts[2], "B's part file after the upload went on through C")
    check(b.stop() is None, "B stops cleanly")
    b2 = Server(env.binary, env.workdir, b.data_dir, env.base_env, "s3-b3-again",
                s3_env(rgw, ACCORD_UPLOAD_EXPIRY="3"))
    env.servers.append(b2)
    b2.start()
    deadline = time.monotonic() + 30
    while os.path.exists(stale) and time.monotonic() < deadline:
        time.sleep(0.25)
    check(not os.path.exists(stale), "B's stale part file is still there after 30 s")


@test
def s3_scaleout_local_tus_on_a_disk_not_shared(env):
    """The local backend on servers that do not share the data directory (a
    misconfiguration: README, Scaling out): a chunk sent to the server that
    does not hold the first ones is refused, never written after a hole."""
    a = Server(env.binary, env.workdir, os.path.join(env.workdir, "own-a-data"), env.base_env,
               "own-a")
    b = Server(env.binary, env.workdir, os.path.join(env.workdir, "own-b-data"), env.base_env,
               "own-b")
    for s in (a, b):
        env.servers.append(s)
        s.start()
    earner = env.user(["earner"])
    ea, eb = earner.on(a), earner.on(b)
    data = os.urandom(64 * 1024)
    tus = {"Tus-Resumable": "1.0.0"}
    r = ea.request("POST", "/v1/uploads", data=b"",
                   headers=dict(tus, **{"Upload-Length": str(len(data)),
                                        "Upload-Metadata": "kind dmlkZW8="}))
    uid = expect(r, 201, what="create on A")["id"]

    def patch(client, lo, hi):
        return client.request("PATCH", "/v1/uploads/" + uid, data=data[lo:hi],
                              headers=dict(tus, **{"Upload-Offset": str(lo),
                                                   "Content-Type":
                                                   "application/offset+octet-stream"}))

    eq(patch(ea, 0, 30000).status, 204, "the first chunk on A")
    r = patch(eb, 30000, len(data))
    expect(r, 500, "storage_failed", "the rest on B, which has not the first bytes")
    r = ea.request("HEAD", "/v1/uploads/" + uid, headers=tus)
    eq(r.header("upload-offset"), "30000", "the offset after B's refusal")
    r = patch(ea, 30000, len(data))
    eq(r.status, 204, "the rest on A (%s)" % r.text[:200])
    art = expect(ea.get("/v1/artifacts/%s" % r.header("x-artifact-id")), 200)
    eq(art["sha256"], sha256(data), "the artifact's bytes")

# SPDX-License-Identifier: Apache-2.0
"""Evidence in S3-compatible object storage (issue 13), against a real S3
that checks signatures: Ceph's radosgw (tests/s3/rgw.py, started once for
these tests, ~13 s, stopped when the run ends).

- the S3 backend for the API everyone uses (POST /v1/artifacts, tus): the
  bytes land in the bucket under sha256/<hex>; reads are audited 302s to
  short-lived presigned GETs, and Range works on them (video seeking);
- presigned multipart uploads straight to the store: create, part URLs, PUT
  to the store, record, resume after a dropped connection, complete (accord
  hashes the object before the artifact exists);
- the store refuses tampered and expired presigned URLs (signatures made by
  accord's C code, checked by radosgw; an expired one made here with an
  independent SigV4 implementation in Python);
- bad input: someone else's upload (403), complete with a missing part (409),
  a wrong recorded ETag (409, part forgotten), a wrong announced sha256 (422),
  an object deleted behind accord's back (410 on reads, the submission intact;
  409 evidence_missing when it is submitted again, nothing made), the
  store down (503 + Retry-After, nothing lost, a tus chunk not counted);
  abandoned uploads expire
  (rows audited and gone, the store told to abort them).
"""

import atexit
import datetime
import hashlib
import hmac
import http.client
import os
import socket
import sys
import time
import urllib.parse

from harness import HOST, check, eq, expect, sha256, sql, test

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "s3"))
from rgw import Rgw  # noqa: E402

PART = 5 << 20            # S3's smallest part (all but the last)
_store = {}


def store(env):
    """The radosgw of this run and an accord server using it (started once)."""
    if "rgw" not in _store:
        r = Rgw(os.path.join(env.workdir, "rgw"))
        r.start()
        atexit.register(r.stop)
        _store["rgw"] = r
    if "server" not in _store or not _store["server"].alive():
        _store["server"] = env.start_server("s3", s3_env(_store["rgw"]))
        # not judged after each test like other extra servers: it serves them all
        env.servers.remove(_store["server"])
        atexit.register(_store["server"].stop)
    return _store["rgw"], _store["server"]


def s3_env(r, **extra):
    e = {"ACCORD_STORAGE": "s3", "ACCORD_S3_ENDPOINT": r.endpoint,
         "ACCORD_S3_BUCKET": r.bucket, "ACCORD_S3_ACCESS_KEY": r.access_key,
         "ACCORD_S3_SECRET_KEY": r.secret_key, "ACCORD_S3_PART_SIZE": str(PART),
         "ACCORD_MAX_BODY": str(32 << 20)}
    e.update(extra)
    return e


def fetch(url, method="GET", data=None, headers=None):
    """A request to the store itself (a browser following a presigned URL)."""
    u = urllib.parse.urlsplit(url)
    check(u.hostname == HOST, "presigned URL host %r is not loopback" % u.hostname)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        conn.request(method, u.path + ("?" + u.query if u.query else ""), body=data,
                     headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def content(client, artifact_id, headers=None):
    """GET content: the 302 accord answers, then the store's answer."""
    r = client.get("/v1/artifacts/%s/content" % artifact_id, headers=headers)
    expect(r, 302, shape=False, what="content of %s" % artifact_id)
    loc = r.header("location")
    check(loc and "X-Amz-Signature=" in loc, "no presigned Location: %r" % loc)
    eq(r.header("cache-control"), "no-store", "Cache-Control of the redirect")
    return loc, fetch(loc, headers=headers)


def presign_py(r, method, key, expires, when, extra=None):
    """SigV4 query signing written here from the AWS document, independent of
    server/s3_sign.c: for URLs accord would never make (expired ones). extra:
    more query parameters (partNumber, uploadId), signed too."""
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    date = when.strftime("%Y%m%d")
    host = urllib.parse.urlsplit(r.endpoint).netloc
    scope = "%s/%s/s3/aws4_request" % (date, r.region)
    q = {"X-Amz-Algorithm": "AWS4-HMAC-SHA256",
         "X-Amz-Credential": "%s/%s" % (r.access_key, scope),
         "X-Amz-Date": amz_date, "X-Amz-Expires": str(expires), "X-Amz-SignedHeaders": "host"}
    q.update(extra or {})
    enc = lambda s: urllib.parse.quote(s, safe="-_.~")  # noqa: E731
    query = "&".join("%s=%s" % (enc(k), enc(v)) for k, v in sorted(q.items()))
    path = "/%s/%s" % (r.bucket, urllib.parse.quote(key, safe="-_.~/"))
    canonical = "\n".join([method, path, query, "host:" + host, "", "host", "UNSIGNED-PAYLOAD"])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + r.secret_key).encode()
    for part in (date, r.region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    return "%s%s?%s&X-Amz-Signature=%s" % (r.endpoint, path, query, sig)


def audit_count(actor_id, action, object_id):
    return int(sql_env["env"] and sql(sql_env["env"],
               "select count(*) from audit_log where actor_id = '%s' and action = '%s' "
               "and object_id = '%s'" % (actor_id, action, object_id)))


sql_env = {"env": None}


# --------------------------------------------------------------------------


@test
def s3_artifacts_presigned_reads(env):
    sql_env["env"] = env
    rgw, srv = store(env)
    earner = env.user(["earner"])
    c = earner.on(srv)
    data = os.urandom(300000)
    a = env.upload(c, "video", data, "video/mp4", "lesson.mp4")
    # the bytes are in the bucket, content-addressed (read with curl's own signer)
    st, body, _ = rgw.request("GET", "/%s/sha256/%s" % (rgw.bucket, a["sha256"]))
    eq(st, 200, "the object sha256/<hex> in the bucket")
    check(body == data, "the bucket holds other bytes than were uploaded")
    before = audit_count(earner.id, "artifact.read", a["id"])
    loc, (st, h, body) = content(c, a["id"])
    eq(st, 200, "GET of the presigned URL")
    check(body == data, "bytes through the presigned URL differ")
    eq(h.get("content-type"), "video/mp4", "Content-Type the store answers with")
    check(h.get("content-disposition", "").startswith("inline; filename=\"lesson.mp4\""),
          "Content-Disposition from the store: %r" % h.get("content-disposition"))
    eq(audit_count(earner.id, "artifact.read", a["id"]), before + 1, "the read is audited")
    # video seeking: a Range request goes to the store with the URL
    st, h, body = fetch(loc, headers={"Range": "bytes=1000-1999"})
    eq(st, 206, "Range on the presigned URL")
    check(body == data[1000:2000], "ranged bytes differ")
    # a document type a browser would run is a download, never inline
    html = b"<script>alert(1)</script>"
    b = env.upload(c, "other", html, "text/html", "page.html")
    _, (st, h, body) = content(c, b["id"])
    eq(st, 200, "GET of the presigned URL (html)")
    eq(h.get("content-type"), "application/octet-stream", "html is served as bytes")
    check(h.get("content-disposition", "").startswith("attachment"), "html is an attachment")
    # others may not read it, and are not given a URL
    other = env.user(["earner"]).on(srv)
    r = other.get("/v1/artifacts/%s/content" % a["id"])
    expect(r, 403, "forbidden")
    check(r.header("location") is None, "a refused read must not carry a presigned URL")
    # the same artifact through the local-store server: the row says where it is
    # the same artifact through a local-store server: not on its disk, a clear 410
    expect(earner.c.get("/v1/artifacts/%s/content" % a["id"]), 410, "evidence_gone")


@test
def s3_presigned_urls_checked_by_the_store(env):
    rgw, srv = store(env)
    earner = env.user(["earner"])
    c = earner.on(srv)
    data = os.urandom(5000)
    a = env.upload(c, "plan", data, "application/pdf", "plan.pdf")
    loc, (st, _, body) = content(c, a["id"])
    eq(st, 200, "the untouched URL")
    # a changed signature, another object under the same signature, a longer life
    sig = loc.rsplit("X-Amz-Signature=", 1)[1]
    flipped = loc[:-len(sig)] + ("0" if sig[0] != "0" else "1") + sig[1:]
    other = env.upload(c, "plan", os.urandom(5000), "application/pdf")
    for what, url in (("a tampered signature", flipped),
                      ("the signature on another object's key",
                       loc.replace(a["sha256"], other["sha256"])),
                      ("a longer X-Amz-Expires", loc.replace("X-Amz-Expires=300",
                                                             "X-Amz-Expires=3000"))):
        check(url != loc, "the test did not change the URL for %s" % what)
        st, _, body = fetch(url)
        eq(st, 403, "the store's answer to %s (%s)" % (what, body[:200]))
    # expired: signed an hour ago for 60 s, by an independent implementation
    # (which, signed for now, the store accepts: so the refusal is the expiry)
    key = "sha256/" + a["sha256"]
    now = datetime.datetime.now(datetime.timezone.utc)
    st, _, body = fetch(presign_py(rgw, "GET", key, 60, now))
    eq(st, 200, "a fresh URL from the Python signer (%s)" % body[:200])
    st, _, body = fetch(presign_py(rgw, "GET", key, 60, now - datetime.timedelta(hours=1)))
    eq(st, 403, "the store's answer to an expired URL")


def new_upload(client, data, **kw):
    body = {"kind": "video", "media_type": "video/mp4", "bytes": len(data),
            "filename": "morning-meeting.mp4"}
    body.update(kw)
    return expect(client.post("/v1/object-uploads", body), 201, what="create object upload")


def part_urls(client, upload_id, numbers):
    r = client.post("/v1/object-uploads/%s/part-urls" % upload_id, {"part_numbers": numbers})
    return {p["part_number"]: p for p in expect(r, 200, what="part URLs")["parts"]}


def put_part(client, upload_id, url_info, data, record=True):
    n = url_info["part_number"]
    chunk = data[(n - 1) * PART:n * PART]
    eq(url_info["bytes"], len(chunk), "bytes of part %d" % n)
    st, h, body = fetch(url_info["url"], "PUT", chunk)
    eq(st, 200, "PUT of part %d to the store (%s)" % (n, body[:200]))
    if record:
        expect(client.post("/v1/object-uploads/%s/parts" % upload_id,
                           {"part_number": n, "etag": h["etag"]}), 200,
               what="record part %d" % n)
    return h["etag"]


@test
def s3_multipart_upload_resumes_and_completes(env):
    rgw, srv = store(env)
    earner = env.user(["earner"])
    c = earner.on(srv)
    data = os.urandom(2 * PART + 12345)       # three parts, the last short
    u = new_upload(c, data, sha256=sha256(data))
    eq((u["parts"], u["part_size"], u["state"]), (3, PART, "open"), "the new upload")
    urls = part_urls(c, u["id"], [1, 2, 3])
    check(all(urllib.parse.urlsplit(p["url"]).port == urllib.parse.urlsplit(rgw.endpoint).port
              for p in urls.values()), "part URLs name the store")
    put_part(c, u["id"], urls[1], data)
    # the connection drops in the middle of part 2: half the bytes, then gone
    p2 = urllib.parse.urlsplit(urls[2]["url"])
    s = socket.create_connection((p2.hostname, p2.port), timeout=10)
    s.sendall(("PUT %s?%s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n"
               % (p2.path, p2.query, p2.netloc, PART)).encode() + data[PART:PART + PART // 2])
    s.close()
    # completing now: part 2 and 3 are missing
    r = c.post("/v1/object-uploads/%s/complete" % u["id"])
    expect(r, 409, "missing_parts")
    check("2, 3" in r.json["error"]["message"], "the missing parts are named: %s" % r.text)
    # the client comes back: what is recorded says where to resume
    got = expect(c.get("/v1/object-uploads/" + u["id"]), 200)
    eq([p["part_number"] for p in got["parts_done"]], [1], "parts recorded after the drop")
    urls = part_urls(c, u["id"], [2, 3])
    put_part(c, u["id"], urls[2], data)
    put_part(c, u["id"], urls[3], data)
    a = expect(c.post("/v1/object-uploads/%s/complete" % u["id"]), 201, what="complete")
    eq((a["bytes"], a["sha256"]), (len(data), sha256(data)), "the artifact accord hashed")
    done = expect(c.get("/v1/object-uploads/" + u["id"]), 200)
    eq((done["state"], done["artifact_id"]), ("done", a["id"]), "the upload after complete")
    expect(c.post("/v1/object-uploads/%s/complete" % u["id"]), 409, "upload_complete")
    _, (st, _, body) = content(c, a["id"], headers={"Range": "bytes=%d-%d" % (PART - 10,
                                                                              PART + 9)})
    eq(st, 206, "seeking across a part boundary")
    check(body == data[PART - 10:PART + 10], "bytes across the part boundary differ")


@test
def s3_multipart_refusals(env):
    rgw, srv = store(env)
    earner = env.user(["earner"])
    mallory = env.user(["earner"])
    c, m = earner.on(srv), mallory.on(srv)
    data = os.urandom(PART + 100)
    u = new_upload(c, data)
    # someone else's upload: no URLs, no records, no complete, no peek (403, audited)
    expect(m.post("/v1/object-uploads/%s/part-urls" % u["id"], {"part_numbers": [1]}), 403,
           "forbidden")
    expect(m.post("/v1/object-uploads/%s/parts" % u["id"], {"part_number": 1, "etag": "x"}),
           403, "forbidden")
    expect(m.post("/v1/object-uploads/%s/complete" % u["id"]), 403, "forbidden")
    expect(m.get("/v1/object-uploads/" + u["id"]), 403, "forbidden")
    expect(m.delete("/v1/object-uploads/" + u["id"]), 403, "forbidden")
    check(int(sql(env, "select count(*) from audit_log where actor_id = '%s' and "
                  "action = 'access.refused'" % mallory.id)) >= 5, "refusals are audited")
    # bad part numbers and bodies
    expect(c.post("/v1/object-uploads/%s/part-urls" % u["id"], {"part_numbers": [3]}), 400)
    expect(c.post("/v1/object-uploads/%s/part-urls" % u["id"], {"part_numbers": []}), 400)
    expect(c.post("/v1/object-uploads/%s/parts" % u["id"], {"part_number": 1,
                                                              "etag": "<x>"}), 400)
    expect(c.post("/v1/object-uploads", {"kind": "video", "media_type": "video/mp4",
                                         "bytes": 0}), 400)
    expect(c.post("/v1/object-uploads", {"kind": "video", "media_type": "video/mp4",
                                         "bytes": 10, "sha256": "abc"}), 400)
    # a recorded ETag the store does not have: 409 part_mismatch, the record forgotten
    urls = part_urls(c, u["id"], [1, 2])
    put_part(c, u["id"], urls[1], data)
    put_part(c, u["id"], urls[2], data, record=False)
    expect(c.post("/v1/object-uploads/%s/parts" % u["id"],
                  {"part_number": 2, "etag": '"0123456789abcdef0123456789abcdef"'}), 200)
    r = c.post("/v1/object-uploads/%s/complete" % u["id"])
    expect(r, 409, "part_mismatch")
    got = expect(c.get("/v1/object-uploads/" + u["id"]), 200)
    eq([p["part_number"] for p in got["parts_done"]], [1], "the mismatched part is forgotten")
    # a wrong announced sha256: 422 and the upload is gone, nothing half-made
    w = new_upload(c, data, sha256="0" * 64)
    urls = part_urls(c, w["id"], [1, 2])
    put_part(c, w["id"], urls[1], data)
    put_part(c, w["id"], urls[2], data)
    expect(c.post("/v1/object-uploads/%s/complete" % w["id"]), 422, "checksum_mismatch")
    expect(c.get("/v1/object-uploads/" + w["id"]), 404, "not_found")
    eq(rgw.request("HEAD", "/%s/uploads/%s" % (rgw.bucket, w["id"]))[0], 404,
       "the mismatched object is removed from the store")
    # an upload whose server died before the store made it: no URLs, no records, no complete
    x = new_upload(c, data)
    sql(env, "update object_uploads set state = 'creating', store_upload_id = NULL "
             "where id = '%s'" % x["id"])
    expect(c.post("/v1/object-uploads/%s/part-urls" % x["id"], {"part_numbers": [1]}), 409,
           "upload_not_ready")
    expect(c.post("/v1/object-uploads/%s/parts" % x["id"], {"part_number": 1, "etag": "x"}),
           409, "upload_not_ready")
    expect(c.post("/v1/object-uploads/%s/complete" % x["id"]), 409, "upload_not_ready")
    expect(c.delete("/v1/object-uploads/" + x["id"]), 204)
    # cancelling: the row goes and the store forgets the parts
    expect(c.delete("/v1/object-uploads/" + u["id"]), 204)
    expect(c.get("/v1/object-uploads/" + u["id"]), 404, "not_found")
    st, body, _ = rgw.request("GET", "/%s/uploads/%s?uploadId=x" % (rgw.bucket, u["id"]))
    check(st == 404, "the aborted upload's parts are gone from the store (%d)" % st)
    # the local-store server has no object uploads
    expect(earner.c.post("/v1/object-uploads", {"kind": "video", "media_type": "video/mp4",
                                                "bytes": 10}), 409, "object_storage_off")


@test
def s3_object_deleted_behind_accords_back(env):
    rgw, srv = store(env)
    lead = env.user(["lead"], org="")
    earner = env.user(["earner"])
    assessor = env.user(["assessor"])
    rub = env.rubric(lead)
    cred = env.credential(lead, rub["id"])
    env.grant(lead, cred["id"], assessor)
    c = earner.on(srv)
    ev = env.evidence(c)
    sub = env.submit(c, cred["id"], [a["id"] for a, _ in ev])
    video, data = ev[0]
    st, _, _ = rgw.request("DELETE", "/%s/sha256/%s" % (rgw.bucket, video["sha256"]))
    eq(st, 204, "deleting the object in the store directly")
    r = c.get("/v1/artifacts/%s/content" % video["id"])
    expect(r, 410, "evidence_gone")
    check(r.header("location") is None, "no URL for a missing object")
    # the submission and its other evidence are as they were
    got = expect(c.get("/v1/submissions/" + sub["id"]), 200)
    eq([a["id"] for a in got["artifacts"]], [a["id"] for a, _ in ev], "the submission's artifacts")
    a = assessor.on(srv)
    # the claim works; reading evidence needs the active review of this submission
    expect(a.post("/v1/reviews/claim", {"credential_id": cred["id"]}), 200, what="claim")
    _, (st, _, body) = content(a, ev[1][0]["id"])
    eq(st, 200, "the assessor reads the evidence still there")
    check(body == ev[1][1], "other evidence intact")
    expect(a.get("/v1/artifacts/%s/content" % video["id"]), 410, "evidence_gone")
    # submitting it again: refused before anything is made, and the message says which
    cred2 = env.credential(lead, rub["id"])
    before = sql(env, "select count(*) from submissions where earner_id = '%s'" % earner.id)
    r = c.post("/v1/submissions", {"credential_id": cred2["id"],
                                   "artifact_ids": [a2["id"] for a2, _ in ev]})
    expect(r, 409, "evidence_missing")
    check(video["id"] in r.json["error"]["message"], "the missing artifact is named: %s" % r.text)
    eq(sql(env, "select count(*) from submissions where earner_id = '%s'" % earner.id), before,
       "nothing was submitted")
    # with the video uploaded again, the same submission goes through
    again = env.upload(c, "video", os.urandom(3000), "video/mp4", "again.mp4")
    ids = [again["id"]] + [a2["id"] for a2, _ in ev[1:]]
    expect(c.post("/v1/submissions", {"credential_id": cred2["id"], "artifact_ids": ids}), 201,
           what="submit with the evidence uploaded again")


@test
def s3_store_down(env):
    rgw, srv = store(env)
    earner = env.user(["earner"])
    c = earner.on(srv)
    data = os.urandom(4000)
    a = env.upload(c, "reflection", data, "text/plain", "r.txt")
    # a server of the same deployment whose store does not answer (a closed port)
    with socket.socket() as s:
        s.bind((HOST, 0))
        dead = "http://%s:%d" % (HOST, s.getsockname()[1])
    down = env.start_server("s3down", s3_env(rgw, ACCORD_S3_ENDPOINT=dead))
    d = earner.on(down)
    rows = sql(env, "select count(*) from artifacts where owner_id = '%s'" % earner.id)
    r = d.request("POST", "/v1/artifacts", data=os.urandom(3000),
                  headers={"Content-Type": "text/plain", "X-Artifact-Kind": "reflection"})
    expect(r, 503, "storage_unavailable")
    eq(r.header("retry-after"), "30", "Retry-After")
    r = d.get("/v1/artifacts/%s/content" % a["id"])
    expect(r, 503, "storage_unavailable")
    r = d.post("/v1/object-uploads", {"kind": "video", "media_type": "video/mp4",
                                      "bytes": 100})
    expect(r, 503, "storage_unavailable")
    eq(sql(env, "select count(*) from object_uploads where owner_id = '%s'" % earner.id), "0",
       "a failed create leaves no upload holding quota")
    eq(sql(env, "select count(*) from artifacts where owner_id = '%s'" % earner.id), rows,
       "no artifact without bytes")
    # a tus chunk under S3 goes to the store before it counts: 503, nothing counted
    tus = {"Tus-Resumable": "1.0.0"}
    r = d.request("POST", "/v1/uploads", data=b"",
                  headers=dict(tus, **{"Upload-Length": "5000",
                                       "Upload-Metadata": "kind dmlkZW8="}))
    tid = expect(r, 201, what="tus create (the database only)")["id"]
    chunk = dict(tus, **{"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
    r = d.request("PATCH", "/v1/uploads/" + tid, data=data[:3000], headers=chunk)
    expect(r, 503, "storage_unavailable")
    eq(r.header("retry-after"), "30", "Retry-After of a tus chunk")
    eq(c.request("HEAD", "/v1/uploads/" + tid, headers=tus).header("upload-offset"), "0",
       "the offset after the store refused the chunk")
    r = c.request("PATCH", "/v1/uploads/" + tid, data=data[:5000], headers=chunk)
    eq(r.status, 204, "the chunk again, the store up (%s)" % r.text[:200])
    # an open upload whose complete meets a dead store keeps its parts
    u = new_upload(c, data)
    urls = part_urls(c, u["id"], [1])
    st, h, _ = fetch(urls[1]["url"], "PUT", data)
    eq(st, 200, "PUT of the only part")
    expect(c.post("/v1/object-uploads/%s/parts" % u["id"], {"part_number": 1,
                                                              "etag": h["etag"]}), 200)
    expect(d.post("/v1/object-uploads/%s/complete" % u["id"]), 503, "storage_unavailable")
    got = expect(c.get("/v1/object-uploads/" + u["id"]), 200)
    eq((got["state"], len(got["parts_done"])), ("open", 1), "the upload after a failed complete")
    a2 = expect(c.post("/v1/object-uploads/%s/complete" % u["id"]), 201,
                what="complete once the store is back")
    eq(a2["sha256"], sha256(data), "sha256")
    # and everything stored before is still there
    _, (st, _, body) = content(c, a["id"])
    check(st == 200 and body == data, "the earlier artifact is intact")


@test
def s3_tus_upload(env):
    rgw, srv = store(env)
    earner = env.user(["earner"])
    c = earner.on(srv)
    data = os.urandom(70000)
    h = {"Tus-Resumable": "1.0.0", "Upload-Length": str(len(data)),
         "Upload-Metadata": "kind dmlkZW8=,filetype dmlkZW8vbXA0"}
    r = c.request("POST", "/v1/uploads", data=b"", headers=h)
    expect(r, 201, shape=False, what="tus create")
    path = urllib.parse.urlsplit(r.header("location")).path
    off = 0
    for chunk in (data[:40000], data[40000:]):
        r = c.request("PATCH", path, data=chunk,
                      headers={"Tus-Resumable": "1.0.0", "Upload-Offset": str(off),
                               "Content-Type": "application/offset+octet-stream"})
        expect(r, 204, shape=False, what="tus PATCH at %d" % off)
        off += len(chunk)
    aid = r.header("x-artifact-id")
    st, body, _ = rgw.request("GET", "/%s/sha256/%s" % (rgw.bucket, sha256(data)))
    check(st == 200 and body == data, "the tus upload is in the bucket (%d)" % st)
    _, (st, _, body) = content(c, aid)
    check(st == 200 and body == data, "the tus upload reads back through a presigned URL")


@test
def s3_abandoned_multipart_uploads_expire(env):
    rgw, _ = store(env)
    # a server that sweeps every second and expires uploads untouched for 3 s
    srv = env.start_server("s3expiry", s3_env(rgw, ACCORD_UPLOAD_EXPIRY="3"))
    earner = env.user(["earner"])
    c = earner.on(srv)
    data = os.urandom(1000)
    u = new_upload(c, data)
    urls = part_urls(c, u["id"], [1])
    st, h, _ = fetch(urls[1]["url"], "PUT", data)
    eq(st, 200, "PUT of the only part")
    key = "/%s/uploads/%s" % (rgw.bucket, u["id"])
    upload_id = urllib.parse.parse_qs(urllib.parse.urlsplit(urls[1]["url"]).query)["uploadId"][0]
    listing = "%s?uploadId=%s" % (key, urllib.parse.quote(upload_id, safe=""))
    eq(rgw.request("GET", listing)[0], 200, "the store lists the upload's parts")
    # and a tus upload left half done: its chunk in the store goes with it
    tus = {"Tus-Resumable": "1.0.0"}
    r = c.request("POST", "/v1/uploads", data=b"",
                  headers=dict(tus, **{"Upload-Length": "3000",
                                       "Upload-Metadata": "kind dmlkZW8="}))
    tid = expect(r, 201, what="tus create")["id"]
    r = c.request("PATCH", "/v1/uploads/" + tid, data=os.urandom(1000),
                  headers=dict(tus, **{"Upload-Offset": "0",
                                       "Content-Type": "application/offset+octet-stream"}))
    eq(r.status, 204, "the first tus chunk")
    chunk = "/%s/tus/%s/0" % (rgw.bucket, tid)
    eq(rgw.request("HEAD", chunk)[0], 200, "the tus chunk is in the store")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if c.get("/v1/object-uploads/" + u["id"]).status == 404:
            break
        time.sleep(0.5)
    expect(c.get("/v1/object-uploads/" + u["id"]), 404, "not_found")
    eq(sql(env, "select count(*) from audit_log where action = 'object_upload.expire' "
                "and object_id = '%s'" % u["id"]), "1", "the expiry is audited")
    while time.monotonic() < deadline and rgw.request("GET", listing)[0] != 404:
        time.sleep(0.5)
    eq(rgw.request("GET", listing)[0], 404, "the store aborted the expired upload")
    while time.monotonic() < deadline and rgw.request("HEAD", chunk)[0] != 404:
        time.sleep(0.5)
    eq(rgw.request("HEAD", chunk)[0], 404, "the expired tus upload's chunk left the store")

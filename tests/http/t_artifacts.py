# SPDX-License-Identifier: Apache-2.0
"""Artifact content: Range edge cases, media types, content-addressed duplicates."""

import os

from harness import check, eq, expect, sha256, soft, test


@test
def artifact_ranges(env):
    earner = env.user(["earner"], org="Range Org")
    n = 10000
    data = os.urandom(n)
    a = env.upload(earner.c, "video", data, "video/mp4", "range.mp4")
    path = "/v1/artifacts/%s/content" % a["id"]
    cases = [("bytes=0-0", 0, 0), ("bytes=0-", 0, n - 1), ("bytes=%d-" % (n - 1), n - 1, n - 1),
             ("bytes=%d-%d" % (n - 5, n + 100), n - 5, n - 1),
             ("bytes=-%d" % (n + 50), 0, n - 1), ("bytes=1234-5677", 1234, 5677)]
    for rng, lo, hi in cases:
        r = earner.c.get(path, headers={"Range": rng})
        expect(r, 206, what="Range: " + rng)
        eq(r.header("content-range"), "bytes %d-%d/%d" % (lo, hi, n), "Content-Range for " + rng)
        eq(r.header("content-length"), str(hi - lo + 1), "Content-Length for " + rng)
        check(r.body == data[lo:hi + 1], "Range %s: wrong bytes (%d of them)" % (rng, len(r.body)))
        check(r.header("content-type", "").startswith("video/mp4"),
              "Range %s: Content-Type %r" % (rng, r.header("content-type")))
    for rng in ("bytes=%d-" % n, "bytes=%d-%d" % (n, n + 10)):
        r = earner.c.get(path, headers={"Range": rng})
        expect(r, 416, what="Range: " + rng)
        with soft():
            eq(r.header("content-range"), "bytes */%d" % n, "Content-Range of the 416 for " + rng)
    r = earner.c.get(path)
    expect(r, 200)
    check(r.body == data, "full read differs")


@test
def artifact_media_types_and_duplicates(env):
    earner = env.user(["earner"], org="Media Org")
    other = env.user(["earner"], org="Media Org 2")
    text = "Reflexión: los estudiantes se saludaron por su nombre.\n".encode("utf-8")
    a = env.upload(earner.c, "reflection", text, "text/plain; charset=utf-8", "reflexion.txt")
    eq(a["media_type"], "text/plain; charset=utf-8", "stored media type")
    r = earner.c.get("/v1/artifacts/%s/content" % a["id"])
    expect(r, 200)
    eq(r.header("content-type"), "text/plain; charset=utf-8", "served Content-Type")
    check(r.body == text, "text content differs")
    # the same bytes uploaded twice (and by someone else): separate artifacts, one content
    b = env.upload(earner.c, "reflection", text, "text/plain; charset=utf-8")
    c = env.upload(other.c, "other", text, "application/octet-stream")
    check(len({a["id"], b["id"], c["id"]}) == 3, "duplicate uploads must be separate artifacts")
    eq({a["sha256"], b["sha256"], c["sha256"]}, {sha256(text)}, "sha256 of duplicate uploads")
    for who, art in ((earner, b), (other, c)):
        r = who.c.get("/v1/artifacts/%s/content" % art["id"])
        expect(r, 200)
        check(r.body == text, "duplicate upload content differs")
    expect(other.c.get("/v1/artifacts/%s/content" % a["id"]), 403, "forbidden",
           "the same bytes uploaded by someone else do not grant access to my artifact")
    meta = expect(earner.c.get("/v1/artifacts/" + a["id"]), 200)
    eq((meta["filename"], meta["kind"], meta["bytes"]), ("reflexion.txt", "reflection", len(text)),
       "metadata")

# SPDX-License-Identifier: Apache-2.0
"""serving.py - how `accord serve` serves the web app (server/static.h), checked
over plain HTTP before the stories run: paths, headers (CSP without inline
script, nosniff, no framing, ETag revalidation), that the app's files are
byte for byte web/, that other paths are untouched, and the first load's
compressed size. Returns (problems, numbers)."""

import gzip
import os
import re

from harness import Client

FIRST_LOAD_LIMIT = 200 * 1024  # issue 11: first load <= 200 KB of compressed JS + CSS


def check(env, root):
    c = Client(env.server)
    problems = []
    numbers = {}

    def want(cond, msg):
        if not cond:
            problems.append(msg)

    for path in ("/", "/invite"):
        r = c.get(path)
        want(r.status == 200, "GET %s: %s" % (path, r.status))
        csp = r.header("content-security-policy", "")
        want("script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
             and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp,
             "GET %s: Content-Security-Policy %r" % (path, csp))
        want(r.header("x-content-type-options") == "nosniff", "GET %s: no nosniff" % path)
        want((r.header("content-type") or "").startswith("text/html"), "GET %s: content type" % path)
        want(not re.search(rb"<script(?![^>]*\bsrc=)[^>]*>", r.body), "GET %s: an inline script" % path)
        want(b"style=" not in r.body, "GET %s: an inline style" % path)
    files = []
    for d, _, names in os.walk(os.path.join(root, "web")):
        for n in names:
            if n.endswith((".js", ".css", ".svg", ".html")):
                files.append(os.path.relpath(os.path.join(d, n), os.path.join(root, "web")))
    first_load = 0
    for rel in sorted(files):
        path = "/static/" + rel
        data = open(os.path.join(root, "web", rel), "rb").read()
        r = c.get(path)
        if rel == "index.html":
            want(r.status == 404, "GET /static/index.html: %s (only / and /invite serve it)" % r.status)
            first_load += len(gzip.compress(data, 9))
            continue
        want(r.status == 200 and r.body == data, "GET %s: %s, not the file's bytes" % (path, r.status))
        etag = r.header("etag")
        want(etag and r.header("cache-control") == "no-cache", "GET %s: ETag %r Cache-Control %r"
             % (path, etag, r.header("cache-control")))
        if etag:
            r2 = c.request("GET", path, headers={"If-None-Match": etag})
            want(r2.status == 304 and not r2.body, "GET %s with its ETag: %s" % (path, r2.status))
        if rel.endswith((".js", ".css")):
            first_load += len(gzip.compress(data, 9))
    numbers["first_load_gzip_bytes"] = first_load
    want(first_load <= FIRST_LOAD_LIMIT, "first load is %d bytes compressed (limit %d)"
         % (first_load, FIRST_LOAD_LIMIT))
    r = c.request("HEAD", "/")
    want(r.status == 200 and not r.body, "HEAD /: %s" % r.status)
    for path in ("/static/nope.js", "/static/../server/static.c", "/static/", "/index.html",
                 "/v1/nothing-here"):
        r = c.get(path)
        want(r.status == 404 and (r.header("content-type") or "").startswith("application/json"),
             "GET %s: %s %s (want the API's JSON 404)" % (path, r.status, r.header("content-type")))
    r = c.post("/", {})
    want(r.status == 404, "POST /: %s" % r.status)
    for path in ("/healthz", "/.well-known/jwks.json", "/openapi.json"):
        r = c.get(path)
        want(r.status == 200 and (r.header("content-type") or "").startswith("application/json"),
             "GET %s: %s (the app must not shadow it)" % (path, r.status))
    return problems, numbers

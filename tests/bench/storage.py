#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tests/bench/storage.py - a 1 GiB file through each storage backend (issue 13),
each next to its anchor: curl reading or writing the same disk or store
directly, in the same run.

  local upload    tus PATCHes of --max-body (64 MiB) through accord (each
                  chunk written and fsynced, then moved into the store)
                  anchor: curl -T to a file:// on the same disk
  local download  GET /v1/artifacts/{id}/content (sendfile from the page cache)
                  anchors: curl file:// of the stored file (no socket at all),
                  and Debian's nginx serving the same file (sendfile over the
                  same loopback, as tests/bench/scaling.py runs it)
  s3 upload       create -> part URLs -> curl -T each 16 MiB part straight to
                  the store, 4 at once (--in-flight; browsers' S3 clients
                  send several) -> record -> complete (accord reads the
                  object back and hashes it before the artifact exists)
                  anchor: curl --aws-sigv4 -T of the whole file to the store
  s3 download     GET content (302) followed by curl -L to the store
                  anchor: curl --aws-sigv4 GET of the object

The store is Ceph radosgw on memstore (tests/s3/rgw.py). The ratio is
anchor time / accord time (1.0 = as fast as curl alone; the goal is >= 0.8).
Also: accord's peak RSS (VmHWM) during the 1 GiB upload through object
storage, against its idle peak: it must not grow with the file.

    python3 tests/bench/storage.py [--bin build/accord] [--mib 1024]
Only loopback; everything it starts is stopped, its files removed.
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "http"))
sys.path.insert(0, os.path.join(ROOT, "tests", "s3"))

from harness import HOST, Cluster, Server, last_line, run_cli  # noqa: E402
from rgw import Rgw  # noqa: E402

import nginx  # noqa: E402  (tests/bench, this script's folder)

MIB = 1 << 20


def rss_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak(pid):
    with open("/proc/%d/clear_refs" % pid, "w") as f:
        f.write("5")


def api(port, token, method, path, body=None, headers=None, data=None):
    h = {"Authorization": "Bearer " + token}
    h.update(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    c = http.client.HTTPConnection(HOST, port, timeout=600, blocksize=MIB)
    try:
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        payload = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, payload
    finally:
        c.close()


def curl(args):
    t0 = time.monotonic()
    p = subprocess.run(["curl", "-sS", "--fail", "-o", "/dev/null"] + args, capture_output=True,
                       timeout=900)
    if p.returncode != 0:
        raise SystemExit("curl %s: %s" % (" ".join(args[-1:]), p.stderr.decode()[-500:]))
    return time.monotonic() - t0


def s3_curl(r, extra):
    return ["--aws-sigv4", "aws:amz:%s:s3" % r.region, "--user",
            "%s:%s" % (r.access_key, r.secret_key), "-H",
            "x-amz-content-sha256:UNSIGNED-PAYLOAD"] + extra


def median(xs):
    return sorted(xs)[len(xs) // 2]


def start_nginx(work, path):
    """Debian's nginx serving the file at path as /video.bin (sendfile, as
    tests/bench/scaling.py runs it): the anchor that crosses a socket too."""
    www = os.path.join(work, "www")
    os.makedirs(www)
    os.link(path, os.path.join(www, "video.bin"))
    os.chmod(path, 0o644)  # (the same inode: nginx's workers run as nobody)
    for d in (work, www):
        os.chmod(d, 0o755)
    return nginx.start(work, nginx.SERVE_FILES, "root %s;" % www)


def tus_upload(port, token, path, size, chunk):
    import base64
    meta = "kind %s,filetype %s" % (base64.b64encode(b"video").decode(),
                                    base64.b64encode(b"video/mp4").decode())
    st, h, body = api(port, token, "POST", "/v1/uploads", data=b"",
                      headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(size),
                               "Upload-Metadata": meta})
    if st != 201:
        raise SystemExit("tus create: %d %s" % (st, body[:300]))
    loc = urllib.parse.urlsplit(h["location"]).path
    off = 0
    with open(path, "rb") as f:
        while off < size:
            data = f.read(chunk)
            st, h, body = api(port, token, "PATCH", loc, data=data,
                              headers={"Tus-Resumable": "1.0.0", "Upload-Offset": str(off),
                                       "Content-Type": "application/offset+octet-stream"})
            if st != 204:
                raise SystemExit("tus PATCH at %d: %d %s" % (off, st, body[:300]))
            off += len(data)
    return h["x-artifact-id"]


def s3_upload(port, token, parts_dir, size, in_flight):
    """What a browser client does (Uppy's S3 multipart plugin, say): part URLs
    in batches of up to 100, `in_flight` parts on their way at once, each
    recorded when the store took it, then complete."""
    st, h, body = api(port, token, "POST", "/v1/object-uploads",
                      {"kind": "video", "media_type": "video/mp4", "bytes": size})
    if st != 201:
        raise SystemExit("object upload create: %d %s" % (st, body[:300]))
    u = json.loads(body)
    numbers = list(range(1, u["parts"] + 1))

    def send(p):
        part = os.path.join(parts_dir, "part%05d" % p["part_number"])
        out = subprocess.run(["curl", "-sS", "--fail", "-T", part, "-D", "-", "-o",
                              "/dev/null", p["url"]], capture_output=True, timeout=600)
        etag = [l.split(":", 1)[1].strip() for l in out.stdout.decode().splitlines()
                if l.lower().startswith("etag:")]
        if out.returncode != 0 or not etag:
            raise SystemExit("PUT part %d: %s" % (p["part_number"], out.stderr[-300:]))
        st, _, body = api(port, token, "POST", "/v1/object-uploads/%s/parts" % u["id"],
                          {"part_number": p["part_number"], "etag": etag[0]})
        if st != 200:
            raise SystemExit("record part: %d %s" % (st, body[:300]))

    with concurrent.futures.ThreadPoolExecutor(in_flight) as pool:
        for i in range(0, len(numbers), 100):
            st, h, body = api(port, token, "POST", "/v1/object-uploads/%s/part-urls" % u["id"],
                              {"part_numbers": numbers[i:i + 100]})
            if st != 200:
                raise SystemExit("part URLs: %d %s" % (st, body[:300]))
            list(pool.map(send, json.loads(body)["parts"]))
    t0 = time.monotonic()
    st, h, body = api(port, token, "POST", "/v1/object-uploads/%s/complete" % u["id"])
    if st != 201:
        raise SystemExit("complete: %d %s" % (st, body[:300]))
    return json.loads(body)["id"], time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "accord"))
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--in-flight", type=int, default=4,
                    help="parts a client sends at once (default 4, as browsers' S3 clients do)")
    ap.add_argument("--part-mib", type=int, default=16,
                    help="ACCORD_S3_PART_SIZE in MiB (default 16, accord's default)")
    ap.add_argument("--skip-local", action="store_true", help="only the S3 backend")
    args = ap.parse_args()
    size = args.mib * MIB
    part = args.part_mib * MIB

    work = tempfile.mkdtemp(prefix="accord-storage-bench.")
    os.chmod(work, 0o755)  # the cluster may belong to the postgres user
    cluster = Cluster(ROOT, os.path.join(work, "pg"))
    store = Rgw(os.path.join(work, "rgw"), memory=size * 2 + 512 * MIB)
    servers = []
    rows = []
    try:
        src = os.path.join(work, "video.bin")
        with open(src, "wb") as f:
            block = os.urandom(MIB)
            for i in range(args.mib):
                f.write(block[i % 251:] + block[:i % 251])  # no two MiB alike
        parts = os.path.join(work, "parts")
        os.makedirs(parts)
        subprocess.run(["split", "-b", str(part), "-a", "5", "-d", src,
                        os.path.join(parts, "part")], check=True)
        # split numbers from 0, S3 parts from 1: highest first, so no name is taken
        for name in sorted(os.listdir(parts), reverse=True):
            os.rename(os.path.join(parts, name),
                      os.path.join(parts, "part%05d" % (int(name[4:]) + 1)))

        url = cluster.start()
        store.start()
        env = dict(os.environ, DATABASE_URL=url, ACCORD_LOG="warn",
                   ACCORD_KEY_DIR=os.path.join(work, "keys"),
                   ACCORD_QUOTA_BYTES=str(64 << 30), ACCORD_QUOTA_IN_FLIGHT=str(64 << 30))
        for cmd in (["migrate"],
                    ["user", "add", "--email", "bench@example.org", "--roles", "earner"]):
            rc, out, err = run_cli(args.bin, cmd, env)
            if rc != 0:
                raise SystemExit("accord %s: %s%s" % (cmd[0], out, err))
        rc, out, err = run_cli(args.bin, ["token", "create", "--email", "bench@example.org"], env)
        token = last_line(out)

        # ---- local backend
        if not args.skip_local:
            local = Server(args.bin, work, os.path.join(work, "artifacts"), env, "local")
            servers.append(local.start())
            t0 = time.monotonic()
            aid = tus_upload(local.port, token, src, size, 64 * MIB)
            t_acc = time.monotonic() - t0
            t_anchor = curl(["-T", src, "file://" + os.path.join(work, "copy.bin")])
            os.unlink(os.path.join(work, "copy.bin"))
            rows.append(("local upload (tus, 64 MiB PATCHes)", t_acc, t_anchor,
                         "anchor: curl -T file:// (no fsync)", None))
            content = "http://%s:%d/v1/artifacts/%s/content" % (HOST, local.port, aid)
            curl(["-H", "Authorization: Bearer " + token, content])    # warm the page cache
            stored = [os.path.join(dp, f)
                      for dp, _, fs in os.walk(os.path.join(work, "artifacts"))
                      for f in fs if len(f) == 64]
            ngx, nport = start_nginx(work, stored[0])
            try:
                acc, fil, ngt = [], [], []
                for _ in range(3):          # alternating: background load hits all three alike
                    acc.append(curl(["-H", "Authorization: Bearer " + token, content]))
                    fil.append(curl(["file://" + stored[0]]))
                    ngt.append(curl(["http://%s:%d/video.bin" % (HOST, nport)]))
            finally:
                ngx.terminate()
                ngx.wait(10)
            rows.append(("local download (GET content)", median(acc), median(fil),
                         "anchor: curl file:// (no socket); medians of 3", median(ngt)))

        # ---- S3 backend
        s3 = Server(args.bin, work, os.path.join(work, "artifacts-s3"),
                    dict(env, ACCORD_STORAGE="s3", ACCORD_S3_ENDPOINT=store.endpoint,
                         ACCORD_S3_BUCKET=store.bucket, ACCORD_S3_ACCESS_KEY=store.access_key,
                         ACCORD_S3_SECRET_KEY=store.secret_key,
                         ACCORD_S3_PART_SIZE=str(part), ACCORD_LOG="info"), "s3")
        servers.append(s3.start())
        pid = s3.proc.pid
        # a fresh radosgw makes its pools on first use (seconds): warm them up first
        warm = os.path.join(work, "warm")
        os.makedirs(warm)
        with open(os.path.join(warm, "part00001"), "wb") as f:
            f.write(os.urandom(MIB))
        s3_upload(s3.port, token, warm, MIB, 1)
        curl(s3_curl(store, ["-T", os.path.join(warm, "part00001"),
                             store.endpoint + "/%s/warm.bin" % store.bucket]))
        time.sleep(0.5)
        reset_peak(pid)
        idle = rss_kib(pid, "VmHWM")
        reset_peak(pid)
        t0 = time.monotonic()
        aid, t_complete = s3_upload(s3.port, token, parts, size, args.in_flight)
        t_acc = time.monotonic() - t0
        peak = rss_kib(pid, "VmHWM")
        with open(s3.stderr_path, errors="replace") as f:   # the server's own account
            split = [l.split(": ", 2)[-1].strip() for l in f if "%d bytes: the store" % size in l]
        key = "/%s/anchor.bin" % store.bucket
        t_anchor = curl(s3_curl(store, ["-T", src, store.endpoint + key]))
        rows.append(("s3 upload (presigned parts + complete)", t_acc, t_anchor,
                     "anchor: curl --aws-sigv4 -T (one PUT); accord's: %d MiB parts, %d in "
                     "flight, then complete, %.2f s (%s)"
                     % (args.part_mib, args.in_flight, t_complete, split[-1] if split else "?"),
                     None))
        content = "http://%s:%d/v1/artifacts/%s/content" % (HOST, s3.port, aid)
        acc, anc = [], []
        for _ in range(3):
            acc.append(curl(["-L", "-H", "Authorization: Bearer " + token, content]))
            anc.append(curl(s3_curl(store, [store.endpoint + key])))
        rows.append(("s3 download (302 + presigned GET)", median(acc), median(anc),
                     "anchor: curl --aws-sigv4 GET; medians of 3", None))

        print("== storage: %d MiB through each backend, next to curl on the same disk/store"
              % args.mib)
        print("%-40s %9s %9s %9s %9s %9s %9s  %s" % ("case", "accord s", "MiB/s", "anchor s",
                                                     "ratio", "nginx s", "vs nginx", "notes"))
        for name, ta, tb, note, tn in rows:
            print("%-40s %9.2f %9.1f %9.2f %9.2f %9s %9s  %s" % (
                name, ta, args.mib / ta, tb, tb / ta, "%.2f" % tn if tn else "-",
                "%.2f" % (tn / ta) if tn else "-", note))
        print("accord RSS during the %d MiB upload through object storage: peak %.1f MiB, "
              "idle peak %.1f MiB (growth %.1f MiB; the file is %d MiB)"
              % (args.mib, peak / 1024, idle / 1024, (peak - idle) / 1024, args.mib))
        ok = peak - idle < 64 * 1024
        print("storage: RSS %s" % ("ok: does not grow with the file" if ok else
                                   "GREW with the file"))
        return 0 if ok else 1
    finally:
        for s in servers:
            s.stop()
        store.stop()
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

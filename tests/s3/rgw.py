#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""rgw.py - a throwaway single-node Ceph with the S3 gateway (radosgw), for
the object-storage tests and benchmarks: a real S3 implementation that checks
signatures (what a mock that accepts anything cannot show).

    from rgw import Rgw
    with Rgw(workdir) as s3:        # ~13 s, ~140 MB; loopback only
        s3.endpoint, s3.bucket, s3.access_key, s3.secret_key

    python3 tests/s3/rgw.py [--keep]   # starts one, prints its settings,
                                       # waits for Ctrl-C or SIGTERM, stops it

One monitor (messenger v2 only, crc mode: no cephx, no IPv6), one OSD on
memstore (RAM, --memory bytes), one radosgw (beast) on a free port of
127.0.0.1. The daemons run in the foreground as children of this process and
die with it (PR_SET_PDEATHSIG), so a killed test run leaves nothing behind.
"""

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

HOST = "127.0.0.1"
ACCESS_KEY = "ACCORDTESTKEY"
SECRET_KEY = "accord-test-secret-not-for-anything-else"
BUCKET = "accord-evidence"
DAEMONS = ["ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph"]
START_TIMEOUT = 90


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _die_with_parent():
    # PR_SET_PDEATHSIG = 1: the kernel sends SIGTERM when our parent exits.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass
    os.setsid()


class Rgw:
    def __init__(self, workdir=None, memory=512 << 20):
        self.own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="accord-rgw-")
        self.memory = memory
        self.procs = []
        self.endpoint = None
        self.bucket = BUCKET
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self.region = "us-east-1"

    # ------------------------------------------------------------------
    def _conf(self, mon_port, rgw_port):
        d = self.dir
        return f"""[global]
fsid = {uuid.uuid4()}
mon host = v2:{HOST}:{mon_port}
mon initial members = a
public addr = {HOST}
auth cluster required = none
auth service required = none
auth client required = none
ms bind ipv6 = false
ms bind msgr1 = false
ms mon client mode = crc
ms client mode = crc
ms cluster mode = crc
ms service mode = crc
run dir = {d}/run
log file = {d}/log/$name.log
admin socket = {d}/run/$name.asok
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
osd objectstore = memstore
memstore device bytes = {self.memory}
osd data = {d}/osd.$id
mon data = {d}/mon.$id
osd crush chooseleaf type = 0
rgw data = {d}/rgw
rgw frontends = beast endpoint={HOST}:{rgw_port}
rgw dns name = {HOST}
rgw enable usage log = false
debug rgw = 0
"""

    def _run(self, args, timeout=60):
        p = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise RuntimeError("%s exited %d:\n%s%s" % (" ".join(args), p.returncode,
                                                      p.stdout[-2000:], p.stderr[-2000:]))
        return p.stdout

    def _daemon(self, args, name):
        log = open(os.path.join(self.dir, "log", name + ".out"), "ab")
        p = subprocess.Popen(args + ["-f"], stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        log.close()
        self.procs.append((name, p))
        return p

    def start(self):
        missing = [c for c in DAEMONS if not shutil.which(c)]
        if missing:
            raise RuntimeError("Ceph is not installed (missing %s): apt-get install ceph-mon "
                               "ceph-osd radosgw (make deps-test)" % ", ".join(missing))
        for sub in ("run", "log", "mon.a", "osd.0", "rgw"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        mon_port, rgw_port = free_port(), free_port()
        conf = os.path.join(self.dir, "ceph.conf")
        with open(conf, "w") as f:
            f.write(self._conf(mon_port, rgw_port))
        c = ["-c", conf]
        monmap = os.path.join(self.dir, "monmap")
        keyring = os.path.join(self.dir, "mon.keyring")
        fsid = [l.split("=", 1)[1].strip() for l in open(conf) if l.startswith("fsid")][0]
        deadline = time.monotonic() + START_TIMEOUT
        try:
            self._run(["monmaptool", "--create", "--addv", "a", "[v2:%s:%d]" % (HOST, mon_port),
                       "--fsid", fsid, monmap])
            self._run(["ceph-authtool", "--create-keyring", keyring, "--gen-key", "-n", "mon."])
            self._run(["ceph-mon"] + c + ["--mkfs", "-i", "a", "--monmap", monmap,
                                          "--keyring", keyring])
            self._daemon(["ceph-mon"] + c + ["-i", "a"], "mon.a")
            self._run(["ceph"] + c + ["--connect-timeout", "30", "osd", "create"])
            self._run(["ceph-osd"] + c + ["-i", "0", "--mkfs"])
            self._daemon(["ceph-osd"] + c + ["-i", "0"], "osd.0")
            self._daemon(["radosgw"] + c + ["-n", "client.rgw"], "rgw")
            self.endpoint = "http://%s:%d" % (HOST, rgw_port)
            while True:
                for name, p in self.procs:
                    if p.poll() is not None:
                        raise RuntimeError("%s exited with %d; see %s" % (
                            name, p.returncode, os.path.join(self.dir, "log")))
                try:
                    urllib.request.urlopen(self.endpoint + "/", timeout=2).read()
                    break
                except Exception:  # noqa: BLE001 (not up yet)
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("radosgw did not answer within %d s; logs in %s"
                                       % (START_TIMEOUT, os.path.join(self.dir, "log")))
                time.sleep(0.25)
            self._run(["radosgw-admin"] + c + ["-n", "client.rgw", "user", "create",
                                                "--uid", "accord", "--display-name", "accord",
                                                "--access-key", ACCESS_KEY,
                                                "--secret-key", SECRET_KEY])
            self.request("PUT", "/" + self.bucket)
        except BaseException:
            self.stop()
            raise
        return self

    def request(self, method, path, data=None, headers=None):
        """A request signed by curl's --aws-sigv4 (an implementation that is
        not accord's). Returns (status, body bytes, headers text)."""
        # (-X HEAD would wait for a body that never comes: -I is curl's HEAD)
        verb = ["-I"] if method == "HEAD" else ["-X", method]
        args = ["curl", "-sS"] + verb + ["--aws-sigv4", "aws:amz:%s:s3" % self.region,
                "--user", "%s:%s" % (self.access_key, self.secret_key),
                "-H", "x-amz-content-sha256:UNSIGNED-PAYLOAD", "-D", "-",
                "-o", os.path.join(self.dir, "curl.body"), "--max-time", "60"]
        for k, v in (headers or {}).items():
            args += ["-H", "%s:%s" % (k, v)]
        if data is not None:
            body = os.path.join(self.dir, "curl.in")
            with open(body, "wb") as f:
                f.write(data)
            args += ["--data-binary", "@" + body]
        p = subprocess.run(args + [self.endpoint + path], capture_output=True, timeout=90)
        head = p.stdout.decode("latin-1")
        status = 0
        for line in head.splitlines():
            if line.startswith("HTTP/"):
                status = int(line.split()[1])
        with open(os.path.join(self.dir, "curl.body"), "rb") as f:
            out = f.read()
        if method == "PUT" and path == "/" + self.bucket and status != 200:
            raise RuntimeError("creating the bucket: %d %s" % (status, out[:500]))
        return status, out, head

    def stop(self):
        # The store is RAM only and thrown away: SIGKILL, no orderly shutdown
        # (an OSD whose monitor went first waits for it for many seconds).
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.kill()
        for name, p in reversed(self.procs):
            p.wait(10)
        self.procs = []
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main():
    keep = "--keep" in sys.argv
    r = Rgw(tempfile.mkdtemp(prefix="accord-rgw-") if keep else None)
    t0 = time.monotonic()
    r.start()
    print("ACCORD_STORAGE=s3")
    print("ACCORD_S3_ENDPOINT=%s" % r.endpoint)
    print("ACCORD_S3_BUCKET=%s" % r.bucket)
    print("ACCORD_S3_ACCESS_KEY=%s" % r.access_key)
    print("ACCORD_S3_SECRET_KEY=%s" % r.secret_key)
    print("# started in %.1f s; Ctrl-C stops it" % (time.monotonic() - t0), flush=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    try:
        while not stop:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    r.stop()


if __name__ == "__main__":
    main()

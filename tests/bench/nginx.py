# SPDX-License-Identifier: Apache-2.0
"""nginx.py - Debian's nginx as a benchmark's anchor (serving a file) or
receiver (answering webhooks): two worker processes on a free loopback port,
its configuration, pid and error log in a folder of the caller's. The caller
stops it (terminate, wait)."""

import os
import shutil
import socket
import subprocess
import time

HOST = "127.0.0.1"


def start(folder, http, server, connections=64):
    """nginx with `http` inside http { } and `server` inside its one server { }
    (the listen line is added). Returns (Popen, port) once it accepts."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        raise RuntimeError("nginx is missing (make bench installs nginx-light)")
    with socket.socket() as s:
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    conf = os.path.join(folder, "nginx.conf")
    with open(conf, "w") as f:
        f.write("worker_processes 2; pid %s/nginx.pid; error_log %s/nginx.err;\n"
                "events { worker_connections %d; }\n"
                "http { %s\n  server { listen %s:%d; %s } }\n"
                % (folder, folder, connections, http, HOST, port, server))
    p = subprocess.Popen([nginx, "-c", conf, "-p", folder, "-g", "daemon off;"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return p, port
        except OSError:
            if p.poll() is not None or time.monotonic() > deadline:
                p.kill()
                raise RuntimeError("nginx did not start; see %s/nginx.err" % folder)
            time.sleep(0.05)


# Serving files as a web server would, with sendfile: the download anchor.
SERVE_FILES = "access_log off; sendfile on; tcp_nopush on;"

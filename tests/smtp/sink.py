#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A real SMTP server for the mail tests: Debian's python3-aiosmtpd with its
Mailbox handler (every accepted message lands in a Maildir the test reads).

    /usr/bin/python3 tests/smtp/sink.py MAILDIR [--tls CERT KEY] [--auth USER PASSWORD]

Listens on 127.0.0.1, on a port the kernel picks, and prints "port N" once it
accepts connections. --tls offers STARTTLS and requires it before MAIL;
--auth requires AUTH (PLAIN or LOGIN) with that user and password, over TLS.
Runs until its standard input closes (the test ends), so it never outlives
the test that started it. Debian's python3 on purpose: the package installs
there (Makefile TEST_PKGS), whatever python3 runs the tests.
"""

import argparse
import asyncio
import socket
import ssl
import sys

from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("maildir")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--auth", nargs=2, metavar=("USER", "PASSWORD"))
    args = ap.parse_args()

    handler = Mailbox(args.maildir)
    tls = None
    if args.tls:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls[0], args.tls[1])

    def authenticator(server, session, envelope, mechanism, data):
        ok = (isinstance(data, LoginPassword) and args.auth is not None
              and data.login.decode() == args.auth[0]
              and data.password.decode() == args.auth[1])
        return AuthResult(success=ok)

    def factory():
        return SMTP(handler, hostname="sink.accord.test", tls_context=tls,
                    require_starttls=tls is not None, auth_required=args.auth is not None,
                    auth_require_tls=True, authenticator=authenticator if args.auth else None)

    loop = asyncio.new_event_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = loop.run_until_complete(loop.create_server(factory, sock=sock))
    print("port %d" % sock.getsockname()[1], flush=True)

    stop = asyncio.Event()
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not sys.stdin.buffer.read1(4096)
                    else None)
    loop.run_until_complete(stop.wait())
    server.close()
    loop.run_until_complete(server.wait_closed())


if __name__ == "__main__":
    main()

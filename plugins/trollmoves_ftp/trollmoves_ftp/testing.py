"""Throwaway pyftpdlib FTP and FTPS servers on 127.0.0.1, for tests and benchmarks.

:func:`start_server` runs one in a thread of the calling process (its own IOLoop) with a
writer (:data:`USER`) and a read-only user (:data:`READER`), both with :data:`PASSWORD`, and
counts logins. ``python -m trollmoves_ftp.testing ROOT`` runs one in its own process instead
and prints its port. Needs ``pip install trollmoves-ftp[test]`` (pyftpdlib; pyOpenSSL for
FTPS) and the ``openssl`` command for :func:`make_cert`.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import FTPServer

HOST = "127.0.0.1"
USER = "mover"
PASSWORD = "s3cret-pw"  # distinctive, so tests can check it never leaks into messages
READER = "reader"
"""A second user who may list and download but not write."""

logging.getLogger("pyftpdlib").addHandler(logging.NullHandler())
logging.getLogger("pyftpdlib").setLevel(logging.WARNING)


@dataclass
class Counters:
    """What the server saw: successful and failed logins."""

    logins: int = 0
    failed_logins: int = 0
    failed_users: list[str] = field(default_factory=list)


class FtpServerThread(threading.Thread):
    """A pyftpdlib server with a writer and a read-only user.

    ``tls=(cert, key)`` makes it require explicit TLS; ``handler_attrs`` overrides handler
    attributes or ``ftp_*`` command methods (to imitate other servers).
    """

    def __init__(self, root: Path, tls: tuple[Path, Path] | None = None,
                 handler_attrs: dict[str, Any] | None = None, port: int = 0) -> None:
        super().__init__(daemon=True, name="ftp-server")
        self.root = root
        self.counters = Counters()
        counters = self.counters
        authorizer = DummyAuthorizer()
        authorizer.add_user(USER, PASSWORD, str(root), perm="elradfmwMT")
        authorizer.add_user(READER, PASSWORD, str(root), perm="elr")
        base: type[FTPHandler] = FTPHandler
        attrs: dict = {"authorizer": authorizer, "auth_failed_timeout": 0}
        if tls:
            from pyftpdlib.handlers import TLS_FTPHandler

            base = TLS_FTPHandler
            attrs.update(certfile=str(tls[0]), keyfile=str(tls[1]), ssl_context=None,
                         tls_control_required=True, tls_data_required=True)

        # Count before the reply goes out (pyftpdlib's on_login* hooks run after it), so a
        # client that has seen the reply always sees the new count.
        def handle_auth_success(self: FTPHandler, *args: Any) -> None:
            counters.logins += 1
            base.handle_auth_success(self, *args)

        def handle_auth_failed(self: FTPHandler, *args: Any) -> None:
            counters.failed_logins += 1
            counters.failed_users.append(self.username)
            base.handle_auth_failed(self, *args)

        handler = type("CountingHandler", (base,), {**attrs, "handle_auth_success": handle_auth_success,
                                                    "handle_auth_failed": handle_auth_failed,
                                                    **(handler_attrs or {})})
        self.server = FTPServer((HOST, port), handler, ioloop=IOLoop())
        self.port: int = self.server.socket.getsockname()[1]
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)
        self.server.close_all()

    def stop(self) -> None:
        self._halt.set()
        if threading.current_thread() is not self:
            self.join(5)

    def drop_sessions(self) -> None:
        """Close every client connection from the server side, as an idle timeout would."""
        done = threading.Event()

        def close_handlers() -> None:
            for handler in list(self.server.ioloop.socket_map.values()):
                if isinstance(handler, FTPHandler):
                    handler.close()
            done.set()

        self.server.ioloop.call_later(0, close_handlers)
        assert done.wait(5), "server thread did not run the close request"


def make_cert(directory: Path, san: str = "IP:127.0.0.1,DNS:localhost") -> tuple[Path, Path]:
    """A self-signed certificate (its own CA) for the names in ``san``: ``(cert, key)``."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", f"subjectAltName={san}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def start_server(root: Path, tls: tuple[Path, Path] | None = None,
                 handler_attrs: dict[str, Any] | None = None, port: int = 0) -> FtpServerThread:
    """Start a server on ``root`` (created if missing) in a daemon thread; ``port`` 0 picks a free one."""
    root.mkdir(parents=True, exist_ok=True)
    server = FtpServerThread(root, tls, handler_attrs, port)
    server.start()
    return server


_dir_numbers = itertools.count()


def fresh_dir(server: FtpServerThread, name: str) -> str:
    """A new empty directory under the server root; returns its server-side path, ending in '/'."""
    path = f"/{name}-{next(_dir_numbers)}/"
    (server.root / path.strip("/")).mkdir()
    return path


def ftp_uri(server: FtpServerThread, path: str, *, scheme: str = "ftp", user: str = USER,
            password: str | None = PASSWORD) -> str:
    """``scheme://user:password@127.0.0.1:port/path`` (``path`` is absolute)."""
    auth = f"{user}:{password}" if password else user
    return f"{scheme}://{auth}@{HOST}:{server.port}{path}"


def main(argv: list[str] | None = None) -> int:
    """Serve ``ROOT`` until terminated; print the port, then one line per login to ``--login-log``."""
    parser = argparse.ArgumentParser(prog="python -m trollmoves_ftp.testing", description=main.__doc__)
    parser.add_argument("root", type=Path)
    parser.add_argument("--port", type=int, default=0, help="default: a free one")
    parser.add_argument("--tls", nargs=2, type=Path, metavar=("CERT", "KEY"), help="require explicit TLS")
    parser.add_argument("--login-log", type=Path, help="append a line here for every successful login")
    args = parser.parse_args(argv)
    log = open(args.login_log, "a", buffering=1) if args.login_log else None  # noqa: SIM115 - open until killed

    def on_login(_handler: FTPHandler, _username: str) -> None:
        if log:
            log.write("login\n")

    server = start_server(args.root, tls=tuple(args.tls) if args.tls else None,
                          handler_attrs={"on_login": on_login}, port=args.port)
    sys.stdout.write(f"{server.port}\n")
    sys.stdout.flush()
    server.join()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A throwaway nginx on 127.0.0.1 serving HTTP and HTTPS, for tests and benchmarks.

:class:`Nginx` writes its own config in its directory (free ports, every pid, log and temp path
inside the directory, ``user root`` when run as root) and a CA plus a server certificate for
127.0.0.1 made with ``cryptography`` (:attr:`Nginx.ca_file`), then starts ``nginx`` (Debian
package ``nginx``; :func:`available` tells whether it is installed). Under :attr:`Nginx.root`
it serves:

* ``/`` read-only files; every directory answers GET with nginx's HTML listing (``autoindex``);
* ``/dav/`` WebDAV (PUT DELETE MKCOL COPY MOVE, parents created, no size limit), and PROPFIND
  and OPTIONS too with ``propfind=True`` (Debian package ``libnginx-mod-http-dav-ext``,
  :func:`propfind_available`);
* ``/private/`` the same WebDAV behind basic auth (user :data:`USER`, password :data:`PASSWORD`);
* ``/token/`` read-only files for ``Authorization: Bearer`` :data:`TOKEN` only;
* ``/unavailable/`` always 503; ``/redirect/X`` a 302 to ``/X``; ``/loop/`` redirects to itself.

Every request is logged with its connection's serial number, so :meth:`Nginx.requests` and
:meth:`Nginx.connections` tell what a client asked and how many connections it opened.
:class:`CuttingProxy` stands in front of it and drops connections part way through a reply.
``python -m trollmoves_http.testing DIR`` runs one until interrupted and prints its addresses.

Clients must trust :attr:`Nginx.ca_file` explicitly per request (``verify=``): machines that
export ``REQUESTS_CA_BUNDLE`` override a ``requests.Session``'s own ``verify``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import hashlib
import ipaddress
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import NamedTuple

HOST = "127.0.0.1"
USER = "trollmoves"
PASSWORD = "http-s3cret-pw"  # distinctive, so tests can check it never leaks into logs
TOKEN = "http-b3arer-token"  # likewise
NGINX = "/usr/sbin/nginx"
DAV_EXT_MODULE = "/usr/lib/nginx/modules/ngx_http_dav_ext_module.so"

_LOG_FORMAT = '$connection $request_method $status $bytes_sent "$request_uri" "$http_range"'
_SYNC = "/.log-sync-"
_LOG_LINE = re.compile(r'(\d+) (\S+) (\d+) (\d+) "([^"]*)" "([^"]*)"$')


def available() -> bool:
    return os.access(NGINX, os.X_OK)


def propfind_available() -> bool:
    """Whether nginx can answer PROPFIND (the dav-ext module is installed)."""
    return os.path.isfile(DAV_EXT_MODULE)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def make_ca(directory: Path, host: str = HOST) -> tuple[Path, Path, Path]:
    """A CA (``ca.pem``) and a server certificate for ``host`` and localhost signed by it: (ca, cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, signer: ec.EllipticCurvePrivateKey,
                    extensions: list[tuple[x509.ExtensionType, bool]]) -> x509.Certificate:
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=2)))
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = "trollmoves test CA"
    ca = certificate(ca_name, ca_key, ca_name, ca_key, [
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                       encipher_only=False, decipher_only=False), True),
        (x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)])
    server = certificate(host, server_key, ca_name, ca_key, [
        (x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]), False),
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False)])
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    paths[2].chmod(0o600)
    return paths


def htpasswd_line(user: str, password: str) -> str:
    """A ``{SSHA}`` entry for nginx's ``auth_basic_user_file``."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return f"{user}:{{SSHA}}{base64.b64encode(digest + salt).decode()}\n"


class Request(NamedTuple):
    """One line of the access log."""

    connection: int
    """The serial number of the connection it came on."""
    method: str
    status: int
    sent: int
    """Bytes sent in reply, headers included."""
    range: str | None
    """The ``Range`` header asked for."""
    uri: str
    """As requested (percent-encoded)."""


class Nginx:
    """One nginx in ``directory`` on :attr:`port` (HTTP) and :attr:`tls_port` (HTTPS).

    :param propfind: also answer PROPFIND and OPTIONS under ``/dav/`` and ``/private/`` (needs the
        dav-ext module; :func:`propfind_available`).
    :param extra: more ``server`` block directives (``location`` blocks), for a test's own needs.
    """

    def __init__(self, directory: Path, *, propfind: bool = False, extra: str = "") -> None:
        if propfind and not propfind_available():
            raise RuntimeError(f"PROPFIND needs {DAV_EXT_MODULE} (Debian package libnginx-mod-http-dav-ext)")
        self.directory = Path(directory)
        self.root = self.directory / "root"
        for sub in ("root/dav", "root/private", "root/token", "tmp"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        self.port, self.tls_port = free_port(), free_port()
        self.ca_file, cert, key = make_ca(self.directory / "tls")
        self.access_log = self.directory / "access.log"
        self.error_log = self.directory / "error.log"
        htpasswd = self.directory / "htpasswd"
        htpasswd.write_text(htpasswd_line(USER, PASSWORD))
        htpasswd.chmod(0o600)
        tmp = self.directory / "tmp"
        dav = ("dav_methods PUT DELETE MKCOL COPY MOVE; create_full_put_path on; "
               "dav_access user:rw group:r all:r; client_max_body_size 0;"
               + (" dav_ext_methods PROPFIND OPTIONS;" if propfind else ""))
        self.config = self.directory / "nginx.conf"
        self.config.write_text(f"""\
{f"load_module {DAV_EXT_MODULE};" if propfind else ""}
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
daemon off;
pid {self.directory}/nginx.pid;
error_log {self.error_log} info;
events {{ worker_connections 256; }}
http {{
    types {{ }}
    default_type application/octet-stream;
    log_format trollmoves escape=json '{_LOG_FORMAT}';
    access_log {self.access_log} trollmoves;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    sendfile on;
    server {{
        listen {HOST}:{self.port};
        listen {HOST}:{self.tls_port} ssl;
        server_name localhost;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {self.root};
        autoindex on;
        location / {{ }}
        location /dav/ {{ {dav} }}
        location /private/ {{ auth_basic "trollmoves"; auth_basic_user_file {htpasswd}; {dav} }}
        location /token/ {{ if ($http_authorization != "Bearer {TOKEN}") {{ return 401; }} }}
        location /unavailable/ {{ return 503; }}
        location /redirect/ {{ rewrite ^/redirect/(.*)$ /$1 redirect; }}
        location /loop/ {{ return 302 /loop/; }}
{extra}
    }}
}}
""")
        self.proc: subprocess.Popen[str] | None = None

    def url(self, path: str = "/", *, tls: bool = False, user: str | None = None, password: str | None = None) -> str:
        """The address of ``path`` (``/dav/x.dat``) on this server, over HTTPS with ``tls``."""
        userinfo = (user or "") + (f":{password}" if password else "") + ("@" if user else "")
        port = self.tls_port if tls else self.port
        return f"{'https' if tls else 'http'}://{userinfo}{HOST}:{port}{path}"

    def start(self, timeout: float = 10.0) -> Nginx:
        self.proc = subprocess.Popen([NGINX, "-c", str(self.config), "-p", f"{self.directory}/", "-e", "stderr"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        for port in (self.port, self.tls_port):
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"nginx exited with {self.proc.returncode}: {self.proc.stderr.read()}")
                try:
                    socket.create_connection((HOST, port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise TimeoutError(f"nginx did not listen on {port} in {timeout} s") from None
                    time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None

    def requests(self, path: str | None = None) -> list[Request]:
        """The requests served so far (those for the URI ``path`` only, if given), oldest first."""
        entries = []
        for line in self._settled_log():
            match = _LOG_LINE.match(line)
            if match is None:
                continue
            connection, method, status, sent, uri, ranged = match.groups()
            if uri.startswith(_SYNC):
                continue
            entry = Request(int(connection), method, int(status), int(sent), ranged or None, uri)
            if path is None or entry.uri == path:
                entries.append(entry)
        return entries

    def _settled_log(self, timeout: float = 10.0) -> list[str]:
        """The access log once every request answered so far is in it.

        nginx writes a request's line just after sending its reply, so a client can read the log
        before its own last request is there; the one worker handles a marker request only after
        finishing the requests before it, so once the marker's line is written theirs are too.
        """
        marker = f"{_SYNC}{uuid.uuid4().hex}"
        with contextlib.suppress(OSError):
            urllib.request.urlopen(self.url(marker), timeout=timeout).close()
        deadline = time.monotonic() + timeout
        while True:
            lines = self.access_log.read_text(errors="replace").splitlines() if self.access_log.exists() else []
            if any(marker in line for line in lines) or time.monotonic() > deadline:
                return lines
            time.sleep(0.01)

    def connections(self) -> int:
        """How many distinct client connections the logged requests came on."""
        return len({entry.connection for entry in self.requests()})

    def log(self) -> str:
        return self.error_log.read_text(errors="replace") if self.error_log.exists() else ""

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class CuttingProxy:
    """Forward ``127.0.0.1:port`` to ``127.0.0.1:upstream_port``, dropping the first ``cuts``
    connections after ``cut_after`` bytes of the server's reply, as a dropped line would.

    It works at the TCP level, so it serves HTTPS as well (the certificate names 127.0.0.1).
    """

    def __init__(self, upstream_port: int, *, cut_after: int, cuts: int = 1) -> None:
        self.upstream_port = upstream_port
        self.cut_after = cut_after
        self.cuts_left = cuts
        self.connections = 0
        self._listener = socket.create_server((HOST, 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, name="cutting-proxy", daemon=True).start()

    def url(self, path: str = "/", *, tls: bool = False) -> str:
        return f"{'https' if tls else 'http'}://{HOST}:{self.port}{path}"

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection((HOST, self.upstream_port))
            self.connections += 1
            limit = None
            if self.cuts_left > 0:
                self.cuts_left -= 1
                limit = self.cut_after
            threading.Thread(target=_pump, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=_pump, args=(upstream, client, limit), daemon=True).start()

    def __enter__(self) -> CuttingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pump(source: socket.socket, sink: socket.socket, limit: int | None) -> None:
    """Copy ``source`` to ``sink``; after ``limit`` bytes, drop both sockets."""
    sent = 0
    try:
        while data := source.recv(64 * 1024 if limit is None else min(64 * 1024, limit - sent)):
            sink.sendall(data)
            sent += len(data)
            if limit is not None and sent >= limit:
                break
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Run a throwaway nginx (HTTP, HTTPS, WebDAV) on 127.0.0.1")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--propfind", action="store_true", help="answer PROPFIND (needs the dav-ext module)")
    args = parser.parse_args()
    with Nginx(args.directory, propfind=args.propfind) as server:
        sys.stdout.write(f"{server.url()} {server.url(tls=True)} ca={server.ca_file}\n")
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()

"""Helpers for the S3 tests: moto's control API, listings, and a TCP proxy that can cut the line."""

from __future__ import annotations

import contextlib
import socket
import threading
import urllib.request
from typing import Any

HOST = "127.0.0.1"
BUCKET = "trollmoves-test"
CREDENTIALS = {"key": "testing", "secret": "testing"}


def moto_api(endpoint: str, action: str, body: bytes = b"") -> None:
    """POST to moto's control API (``reset``, ``reset-auth``)."""
    request = urllib.request.Request(f"{endpoint}/moto-api/{action}", data=body, method="POST",
                                     headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        reply.read()


def objects(boto: Any, bucket: str) -> list[str]:
    return [item["Key"] for item in boto.list_objects_v2(Bucket=bucket).get("Contents", [])]


def pending_uploads(boto: Any, bucket: str) -> list[dict[str, Any]]:
    return boto.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


class TcpProxy:
    """Forward ``127.0.0.1:port`` to ``127.0.0.1:upstream_port``; :meth:`cut` kills every connection.

    ``cut`` closes the listening socket and every forwarded connection, as a crashed server or
    a dropped network would. A new proxy on the same port "restarts the server".
    """

    def __init__(self, upstream_port: int, port: int = 0) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server((HOST, port), reuse_port=False)
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name="tcp-proxy", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def cut(self) -> None:
        with self._lock:
            self._closed = True
            sockets, self._sockets = [self._listener, *self._sockets], []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection((HOST, self.upstream_port))
            with self._lock:
                if self._closed:
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(256 * 1024):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

"""A throwaway S3 server on 127.0.0.1 (moto), for tests and benchmarks, and tools around it.

:func:`start_server` runs moto's S3 server in a thread of the calling process; it accepts any
access key (:data:`CREDENTIALS` for instance) and keeps everything in memory until
:meth:`S3Server.reset`. :func:`moto_api` drives its control API, :func:`objects` and
:func:`pending_uploads` inspect a bucket through boto3, and :class:`TcpProxy` stands between
client and server to cut the line. Needs ``pip install trollmoves-s3[test]`` (moto[server]).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import urllib.request
from dataclasses import dataclass
from typing import Any

HOST = "127.0.0.1"
BUCKET = "trollmoves-test"
CREDENTIALS = {"key": "testing", "secret": "testing"}


@dataclass
class S3Server:
    """A running moto S3 server."""

    server: Any

    @property
    def port(self) -> int:
        return int(self.server.get_host_and_port()[1])

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:port``, the ``endpoint_url`` of a mover on this server."""
        return f"http://{HOST}:{self.port}"

    def mover_params(self, **extra: Any) -> dict[str, Any]:
        """Connection parameters for a mover on this server."""
        return {"endpoint_url": self.endpoint, **CREDENTIALS, **extra}

    def reset(self) -> None:
        """Forget every bucket and object."""
        moto_api(self.endpoint, "reset")

    def stop(self) -> None:
        self.server.stop()


def start_server() -> S3Server:
    """Start moto's S3 server on a free port of 127.0.0.1, in a daemon thread."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
    server.start()
    return S3Server(server)


def moto_api(endpoint: str, action: str, body: bytes = b"") -> None:
    """POST to moto's control API (``reset``, ``reset-auth``)."""
    request = urllib.request.Request(f"{endpoint}/moto-api/{action}", data=body, method="POST",
                                     headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        reply.read()


def objects(boto: Any, bucket: str) -> list[str]:
    """The keys in ``bucket``, as a boto3 client sees them."""
    return [item["Key"] for item in boto.list_objects_v2(Bucket=bucket).get("Contents", [])]


def pending_uploads(boto: Any, bucket: str) -> list[dict[str, Any]]:
    """The multipart uploads started in ``bucket`` and neither completed nor aborted."""
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

"""Ports for test servers that must be told their port before they start (sshd, Mosquitto, a role
run as a subprocess with ``-p PORT``).

Picking a free port and binding it later races every other socket. :func:`free_port` narrows the
race to nothing on a private test network: it hands each port out once per process, from below the
kernel's ephemeral range, so neither another :func:`free_port` nor a port the kernel picks itself
(a ``connect()``, a bind to port 0) can take it in between. Where the server can bind port 0 and
say which port it got, prefer that.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
from pathlib import Path

HOST = "127.0.0.1"
LOWEST = 10000
"""The lowest port handed out (well above the registered services most hosts run)."""

_lock = threading.Lock()
_next: int | None = None


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _bindable(port: int, host: str) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError as err:
            if err.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_port(host: str = HOST) -> int:
    """A TCP port free on ``host`` now that this process has not handed out before."""
    global _next
    high = _ephemeral_low()
    if high - LOWEST < 1000:  # an unusual ephemeral range: fall back to one the kernel picks
        with socket.socket() as sock:
            sock.bind((host, 0))
            return sock.getsockname()[1]
    span = high - LOWEST
    with _lock:
        if _next is None:  # another test run on the same network starts elsewhere in the span
            _next = LOWEST + (os.getpid() * 7919) % span
        for _ in range(span):
            port, _next = _next, LOWEST + (_next + 1 - LOWEST) % span
            if _bindable(port, host):
                return port
    raise OSError(errno.EADDRINUSE, f"no free port on {host} in {LOWEST}-{high - 1}")

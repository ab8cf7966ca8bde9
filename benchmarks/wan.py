"""A delayed, rate-capped link between two network namespaces, for the ``wan`` scenario.

This kernel has no netem, so the link is a user-space TCP proxy: one thread holds sockets in
both namespaces (``os.setns`` switches only the calling thread), and each direction of the link
delays every chunk by ``delay`` seconds and serialises all connections' bytes at ``rate`` bytes/s.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

CHUNK = 64 * 1024
QUEUED_CHUNKS = 32
"""Chunks a pump holds before it stops reading (2 MiB: above the link's bandwidth-delay product)."""


class Namespace:
    """A network namespace with loopback up, kept alive by a sleeping process."""

    def __init__(self) -> None:
        # A default route over lo, as scripts/in-netns sets: upstream looks up its own address through one.
        setup = "ip link set lo up && ip route add default dev lo src 127.0.0.1 && exec sleep 100000"
        self._holder = subprocess.Popen(["unshare", "-n", "sh", "-c", setup], stdin=subprocess.DEVNULL)
        self.path = f"/proc/{self._holder.pid}/ns/net"
        deadline = time.monotonic() + 10
        while not self._ready():
            if time.monotonic() > deadline or self._holder.poll() is not None:
                raise RuntimeError("could not create a network namespace (needs root and unshare)")
            time.sleep(0.01)

    def _ready(self) -> bool:
        """True once loopback is up: the holder has exec'd its sleep."""
        try:
            with open(f"/proc/{self._holder.pid}/cmdline", "rb") as cmdline:
                return cmdline.read().startswith(b"sleep")
        except OSError:
            return False

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` run inside this namespace."""
        return ["nsenter", f"--net={self.path}", *argv]

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Switch the calling thread into this namespace for the block (sockets keep theirs)."""
        with open("/proc/thread-self/ns/net") as own, open(self.path) as other:
            os.setns(other.fileno(), os.CLONE_NEWNET)
            try:
                yield
            finally:
                os.setns(own.fileno(), os.CLONE_NEWNET)

    def close(self) -> None:
        self._holder.kill()
        self._holder.wait()


@dataclass
class Direction:
    """One direction of the link: every byte leaves at most at ``rate`` and arrives ``delay`` later."""

    delay: float
    rate: float
    free_at: float = 0.0
    bytes: int = 0

    def arrival(self, now: float, size: int) -> float:
        start = max(now, self.free_at)
        self.free_at = start + size / self.rate
        self.bytes += size
        return self.free_at + self.delay


@dataclass
class Link:
    """A TCP proxy between the namespace the benchmark runs in and ``remote``."""

    remote: Namespace
    delay: float = 0.025
    rate: float = 100e6 / 8
    forward: Direction = field(init=False)
    backward: Direction = field(init=False)

    def __post_init__(self) -> None:
        self.forward = Direction(self.delay, self.rate)
        self.backward = Direction(self.delay, self.rate)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="wan-link", daemon=True)
        self._thread.start()
        self._servers: list[asyncio.AbstractServer] = []

    def expose(self, port: int, *, into_remote: bool) -> None:
        """Listen on 127.0.0.1:``port`` on one side and forward to the same port on the other:
        ``into_remote`` listens here and connects in the remote namespace, else the reverse."""
        listen_ns = None if into_remote else self.remote
        target_ns = self.remote if into_remote else None
        outbound, inbound = (self.forward, self.backward) if into_remote else (self.backward, self.forward)
        with self._entered(listen_ns):
            listener = socket.create_server(("127.0.0.1", port), reuse_port=False)
        listener.setblocking(False)

        async def start() -> None:
            server = await asyncio.start_server(
                lambda r, w: self._connect(r, w, (target_ns, port), (outbound, inbound)), sock=listener)
            self._servers.append(server)

        asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)

    def _entered(self, namespace: Namespace | None) -> contextlib.AbstractContextManager:
        return namespace.entered() if namespace else contextlib.nullcontext()

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       target: tuple[Namespace | None, int], directions: tuple[Direction, Direction]) -> None:
        (target_ns, port), (outbound, inbound) = target, directions
        with self._entered(target_ns):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await self._loop.sock_connect(sock, ("127.0.0.1", port))
        except OSError:
            sock.close()
            writer.close()
            return
        for s in (sock, writer.get_extra_info("socket")):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        target_reader, target_writer = await asyncio.open_connection(sock=sock)
        await asyncio.gather(_pump(reader, target_writer, outbound), _pump(target_reader, writer, inbound),
                             return_exceptions=True)

    def measure_limit(self, port: int, total: int) -> float:
        """Seconds to push ``total`` bytes back to back across the link to a sink in the remote
        namespace (until the sink's one-byte answer is back)."""
        with self.remote.entered():
            sink = socket.create_server(("127.0.0.1", port))
        self.expose(port, into_remote=True)

        def drain() -> None:
            conn, _ = sink.accept()
            got = 0
            while got < total:
                data = conn.recv(1 << 20)
                if not data:
                    break
                got += len(data)
            conn.sendall(b"k")
            conn.close()

        thread = threading.Thread(target=drain, daemon=True)
        thread.start()
        block = b"\0" * (1 << 20)
        with socket.create_connection(("127.0.0.1", port)) as conn:
            t0 = time.perf_counter()
            sent = 0
            while sent < total:
                sent += conn.send(block[: min(len(block), total - sent)])
            conn.recv(1)
            elapsed = time.perf_counter() - t0
        thread.join(10)
        sink.close()
        return elapsed

    def close(self) -> None:
        async def stop() -> None:
            for server in self._servers:
                server.close()
        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: Direction) -> None:
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(QUEUED_CHUNKS)
    loop = asyncio.get_running_loop()

    async def receive() -> None:
        try:
            while data := await reader.read(CHUNK):
                await queue.put((direction.arrival(loop.time(), len(data)), data))
        finally:
            await queue.put(None)

    async def deliver() -> None:
        try:
            while (item := await queue.get()) is not None:
                due, data = item
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    await asyncio.gather(receive(), deliver(), return_exceptions=True)

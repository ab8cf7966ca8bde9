"""The SFTP and FTP movers alone over the ``wan`` scenario's link: their own round trips per file.

Run ``python -m benchmarks.wan_movers [--protocol sftp ftp] [--files 300] [--kib 100] [--threads 1 8]``
(root: it makes a network namespace). The movers push from a namespace behind the delayed,
rate-capped link of :mod:`benchmarks.wan` (25 ms each way, 100 Mbit/s) to a throwaway sshd or
pyftpdlib server on this side, from ``--threads`` threads sharing one mover, as the server's
push workers do; announced sizes and checksums are given, so FTP verifies with ``SIZE``. Unlike
the ``wan`` scenario there are no roles: no requests, no client window. Prints files/s, MiB/s,
the share of the link's own limit (measured first, in the same run), the push p50/p90 and the
logins. Not a test: it measures and prints.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from benchmarks.wan import Link, Namespace
from trollmoves_core.checksum import Digest
from trollmoves_core.mover import Mover

SINK_PORT = 19041
PASSIVE_PORTS = range(19100, 19140)
"""pyftpdlib's passive data ports, each exposed through the link."""

MIB = 1024 * 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.wan_movers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", nargs="+", choices=["sftp", "ftp"], default=["sftp", "ftp"])
    parser.add_argument("--files", type=int, default=300, help="files per run (default 300)")
    parser.add_argument("--kib", type=int, default=100, help="file size in KiB (default 100)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 8], help="threads per run (default 1 8)")
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a new temp dir)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-wan-movers-", dir=args.workdir))
    size = args.kib * 1024
    data = os.urandom(size)
    expected = Digest(size, "sha256", base64.b64encode(hashlib.sha256(data).digest()).decode())
    source = work / "source.dat"
    source.write_bytes(data)
    with ExitStack() as stack:
        remote = Namespace()
        stack.callback(remote.close)
        link = Link(remote)
        stack.callback(link.close)
        limit = args.files * size / link.measure_limit(SINK_PORT, args.files * size)
        print(f"link {limit / MIB:.2f} MiB/s = {limit / size:.1f} files/s of {args.kib} KiB, "
              f"RTT {2000 * link.delay:.0f} ms")
        for protocol in args.protocol:
            target = stack.enter_context(_server(protocol, work / protocol, link))
            for threads in args.threads:
                line = _run(target, remote, source, expected, files=args.files, threads=threads, limit=limit)
                print(f"{protocol} x{threads}: {line}")
    return 0


class _Target:
    """A server on this side of the link, a mover for it and where each file goes."""

    def __init__(self, mover: Mover, uri: Callable[[str], str], logins: Callable[[], int], out: Path) -> None:
        self.mover, self.uri, self.logins, self.out = mover, uri, logins, out


@contextlib.contextmanager
def _server(protocol: str, work: Path, link: Link) -> Iterator[_Target]:
    """The ``protocol`` server on this side, exposed through ``link``, and a mover for it."""
    with ExitStack() as stack:
        if protocol == "sftp":
            from trollmoves_ssh.mover import SftpMover
            from trollmoves_ssh.testing import start_sshd

            sshd = start_sshd(work / "sshd")
            stack.callback(sshd.stop)
            link.expose(sshd.port, into_remote=False)
            out = work / "out"
            mover: Mover = SftpMover(sshd.mover_params())
            target = _Target(mover, lambda name: sshd.uri("sftp", f"{out}/{name}"), sshd.login_count, out)
        else:
            from trollmoves_ftp.mover import FtpMover
            from trollmoves_ftp.testing import ftp_uri, start_server

            ftpd = start_server(work / "root", handler_attrs={"passive_ports": list(PASSIVE_PORTS)})
            stack.callback(ftpd.stop)
            for port in (ftpd.port, *PASSIVE_PORTS):
                link.expose(port, into_remote=False)
            out = ftpd.root / "out"
            mover = FtpMover()
            target = _Target(mover, lambda name: ftp_uri(ftpd, f"/out/{name}"), lambda: ftpd.counters.logins, out)
        out.mkdir(parents=True)
        stack.callback(mover.close)
        yield target


def _run(target: _Target, remote: Namespace, source: Path, expected: Digest, *, files: int, threads: int,
         limit: float) -> str:
    """Push ``files`` copies of ``source`` from ``threads`` threads in the remote namespace."""
    run = f"x{threads}-{time.monotonic_ns()}"
    logins = target.logins()

    def push(i: int) -> float:
        with remote.entered():  # the thread's new sockets open behind the link
            started = time.perf_counter()
            target.mover.put(source, target.uri(f"{run}-{i}.dat"), expected=expected)
            return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        seconds = sorted(pool.map(push, range(files)))
    elapsed = time.perf_counter() - started
    landed = len(list(target.out.glob(f"{run}-*.dat")))
    size = expected.size
    p90 = seconds[min(len(seconds) - 1, int(0.9 * len(seconds)))]
    return (f"{files / elapsed:.1f} files/s, {files * size / elapsed / MIB:.2f} MiB/s, "
            f"{files * size / elapsed / limit:.1%} of the link; push p50 {statistics.median(seconds) * 1000:.0f} ms "
            f"p90 {p90 * 1000:.0f} ms; {target.logins() - logins} logins; {landed}/{files} landed")


if __name__ == "__main__":
    sys.exit(main())

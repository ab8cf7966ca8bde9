"""Bandwidth limits: the rate the server's push path achieves under ``bwlimit_per_host``.

``python -m benchmarks.bwlimit [--rate 20M] [--seconds 10] [--streams 1 4] [--protocol file sftp]
[--repeats 3]``: N threads push files back to back for ``--seconds`` through one
:class:`~trollmoves_roles.transfers.service.TransferService` (the server's pushes: pooled movers,
the per-host bucket) to one destination host, and print the rate achieved (bytes delivered over
the time to the last delivery) against the limit, and the same pushes without a limit (what the
machine does, so the limit is below it). ``file`` copies (``mode = copy``) onto /dev/shm; ``sftp``
pushes to a throwaway loopback OpenSSH sshd. Not a test: it measures and prints.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trollmoves_core.bwlimit import Schedule, parse_rate
from trollmoves_core.plugins import default_host

FILE_SIZE = 4 * 1024 * 1024
MIB = 1024 * 1024


def push_for(seconds: float, streams: int, destination: Callable[[int, int], str], *, params: dict[str, Any],
             files: list[Path], limit: Schedule | None) -> tuple[int, float]:
    """Bytes delivered and seconds taken by ``streams`` threads pushing back to back for ``seconds``."""
    from trollmoves_roles.transfers.service import FileJob, TransferService

    service = TransferService(streams, host=default_host(), log_transfers=False)
    delivered = [0] * streams
    started = time.monotonic()
    deadline = started + seconds

    def stream(number: int) -> None:
        count = 0
        while time.monotonic() < deadline:
            future = service.push([FileJob(str(files[number]))], destination(number, count), params,
                                  chain="bench", again=True, bwlimit_per_host=limit)
            future.result()
            count += 1
            delivered[number] += FILE_SIZE

    threads = [threading.Thread(target=stream, args=(n,)) for n in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    service.close()
    return sum(delivered), elapsed


def spread(base: str) -> Callable[[int, int], str]:
    """Destinations under ``base``: a directory per stream, four per stream in turn."""
    return lambda stream, count: f"{base.rstrip('/')}/{stream}/{count % 4}/"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bwlimit", description=__doc__)
    parser.add_argument("--rate", default="20M", help="the per-host limit (default 20M: 20 MiB/s)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--protocol", nargs="+", default=["file", "sftp"], choices=["file", "sftp"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rate = parse_rate(args.rate)
    assert rate is not None, "give a limit, not off"
    limit = Schedule.parse(args.rate)
    work = Path(tempfile.mkdtemp(prefix="bench-bwlimit-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    files = []
    for number in range(max(args.streams)):
        path = work / "src" / f"f{number}.dat"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(FILE_SIZE))
        files.append(path)
    print(f"limit {args.rate} = {rate / MIB:.1f} MiB/s per host, {args.seconds:g} s per run, "
          f"{FILE_SIZE // MIB} MiB files, scratch {work}")
    print("| protocol | streams | run | unlimited MiB/s | limited MiB/s | limited / limit | load (1 min) |")
    print("|---|---|---|---|---|---|---|")
    sshd = None
    try:
        for protocol in args.protocol:
            if protocol == "file":
                params: dict[str, Any] = {"mode": "copy"}
                base = f"file://{work}/out"
            else:
                from trollmoves_ssh.testing import start_sshd

                sshd = start_sshd(work / "sshd")
                params = sshd.mover_params()
                base = sshd.uri("sftp", f"{work}/sftp-out")
            destination = spread(base)
            for streams in args.streams:
                for run in range(1, args.repeats + 1):
                    free_bytes, free_seconds = push_for(min(args.seconds, 3.0), streams, destination, params=params,
                                                        files=files, limit=None)
                    sent, seconds = push_for(args.seconds, streams, destination, params=params, files=files,
                                             limit=limit)
                    achieved = sent / seconds
                    print(f"| {protocol} | {streams} | {run} | {free_bytes / free_seconds / MIB:.1f} | "
                          f"{achieved / MIB:.2f} | {achieved / rate:.3f} | {os.getloadavg()[0]:.1f} |", flush=True)
            if sshd is not None:
                sshd.stop()
                sshd = None
    finally:
        if sshd is not None:
            sshd.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""SSH mover throughput against the OpenSSH ``scp`` client, on a throwaway loopback sshd.

Run ``python -m benchmarks.movers_ssh [--size-mib 1024] [--small-count 1000]`` (needs
``/usr/sbin/sshd``). Not a test: it measures and prints. The SSH detail (cipher variants,
plain paramiko) behind the ``sftp``/``scp`` rows of :mod:`benchmarks.movers`, which compares
every mover with its reference tool and writes ``results/movers.md``.

* big file: one random file uploaded by our SftpMover, our ScpMover, plain paramiko
  ``SFTPClient.put`` with its defaults (the "before tuning" reference) and the OpenSSH
  ``scp`` CLI (SFTP mode with its default cipher, chacha20-poly1305, which is the reference;
  with AES-GCM; legacy ``-O``); downloads by SftpMover, ScpMover and ``scp``.
  Median of ``--repeat`` runs, in MB/s (10^6 bytes per second), and the client's CPU
  seconds per GiB (robust against other load on the machine), each with the ratio to ``scp``.
* small files: N files of 1 KiB through one mover (one pooled connection) against a new
  connection per file; files per second and the ratio.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from trollmoves_ssh.mover import ScpMover, SftpMover
from trollmoves_ssh.testing import INSTALL_HINT, SshServer, sshd_available, start_sshd

from trollmoves_core.mover import Mover


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.movers_ssh", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024, help="big file size in MiB (default 1024)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per big-file measurement (median; default 3)")
    parser.add_argument("--small-count", type=int, default=1000, help="number of small files (default 1000)")
    parser.add_argument("--small-size", type=int, default=1024, help="small file size in bytes (default 1024)")
    parser.add_argument("--scp-small-count", type=int, default=100,
                        help="small files for the SCP mover: each one runs `scp -t` in a remote shell (default 100)")
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a new temp dir)")
    parser.add_argument("--only", choices=["big", "small"], help="run one part only")
    args = parser.parse_args(argv)
    if not sshd_available():
        print(f"cannot run: {INSTALL_HINT}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-ssh-", dir=args.workdir))
    server = start_sshd(work / "sshd")
    try:
        print(f"sshd on 127.0.0.1:{server.port}, user {server.user}, scratch {work}")
        if args.only in (None, "big"):
            big_file(server, work, args.size_mib, args.repeat)
        if args.only in (None, "small"):
            small_files(server, work, args.small_count, args.small_size, args.scp_small_count)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


# -- big file ----------------------------------------------------------------------------


def big_file(server: SshServer, work: Path, size_mib: int, repeat: int) -> None:
    source = work / "big.bin"
    with open(source, "wb") as out:
        for _ in range(size_mib):
            out.write(os.urandom(1024 * 1024))
    size = source.stat().st_size
    remote = work / "remote"
    local = work / "local"
    params = server.mover_params()
    cli = scp_command(server)
    remote_uri = f"{server.user}@127.0.0.1:{remote}/big.bin"

    def fresh() -> None:
        for path in (remote, local):
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir()

    def with_mover(cls: type[Mover], extra: dict[str, str] | None = None) -> Callable[[], None]:
        def run() -> None:
            with cls({**params, **(extra or {})}) as mover:
                mover.put(source, server.uri(cls.SCHEMES[0], f"{remote}/"))
        return run

    def plain_paramiko() -> None:
        import paramiko

        client = paramiko.SSHClient()
        client.load_host_keys(str(server.known_hosts))
        client.connect("127.0.0.1", server.port, server.user, key_filename=str(server.key_filename),
                       allow_agent=False, look_for_keys=False)
        try:
            client.open_sftp().put(str(source), f"{remote}/big.bin")
        finally:
            client.close()

    uploads: list[tuple[str, Callable[[], None]]] = [
        ("OpenSSH scp CLI (SFTP mode)", lambda: _check([*cli, str(source), remote_uri])),
        ("OpenSSH scp CLI -c aes128-gcm", lambda: _check([*cli, "-c", "aes128-gcm@openssh.com", str(source),
                                                         remote_uri])),
        ("OpenSSH scp CLI -O (legacy SCP)", lambda: _check([*cli, "-O", str(source), remote_uri])),
        ("paramiko SFTPClient.put defaults", plain_paramiko),
        ("SftpMover untuned (aes128-ctr, 32 KiB)", with_mover(SftpMover, {"ciphers": "aes128-ctr",
                                                                         "block_size": "32768"})),
        ("SftpMover", with_mover(SftpMover)),
        ("ScpMover", with_mover(ScpMover)),
    ]
    print(f"\nUpload of {size_mib} MiB, median of {repeat}:")
    _report(_measure(uploads, size, repeat, fresh), "OpenSSH scp CLI (SFTP mode)")

    fresh()
    with SftpMover(params) as mover:
        mover.put(source, server.uri("sftp", f"{remote}/"))

    def get_with(cls: type[Mover]) -> Callable[[], None]:
        def run() -> None:
            with cls(params) as mover:
                mover.get(server.uri(cls.SCHEMES[0], f"{remote}/big.bin"), local / "big.bin")
        return run

    def clear_local() -> None:
        shutil.rmtree(local, ignore_errors=True)
        local.mkdir()

    downloads: list[tuple[str, Callable[[], None]]] = [
        ("OpenSSH scp CLI (SFTP mode)", lambda: _check([*cli, remote_uri, str(local / "big.bin")])),
        ("SftpMover", get_with(SftpMover)),
        ("ScpMover", get_with(ScpMover)),
    ]
    print(f"\nDownload of {size_mib} MiB, median of {repeat}:")
    _report(_measure(downloads, size, repeat, clear_local), "OpenSSH scp CLI (SFTP mode)")
    fresh()
    source.unlink()


def _measure(cases: list[tuple[str, Callable[[], None]]], size: int, repeat: int,
             reset: Callable[[], None]) -> dict[str, tuple[float, float]]:
    """Median MB/s and median client CPU seconds per GiB of each case.

    CPU time (this process and its threads, plus child processes such as ``scp``/``ssh``)
    is less sensitive than wall time to other load on a shared machine. The sshd side is
    not counted.
    """
    rates: dict[str, list[float]] = {name: [] for name, _ in cases}
    cpu: dict[str, list[float]] = {name: [] for name, _ in cases}
    for _ in range(repeat):  # interleaved, so that machine noise hits every case alike
        for name, run in cases:
            reset()
            used = cpu_seconds()
            start = time.perf_counter()
            run()
            rates[name].append(size / (time.perf_counter() - start) / 1e6)
            cpu[name].append((cpu_seconds() - used) * 2**30 / size)
    return {name: (statistics.median(rates[name]), statistics.median(cpu[name])) for name in rates}


def scp_command(server: SshServer) -> list[str]:
    """The OpenSSH ``scp`` client logging in to ``server`` with its key, checking its host key; append paths."""
    return ["scp", "-q", "-P", str(server.port), "-i", str(server.key_filename), "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={server.known_hosts}", "-o", "StrictHostKeyChecking=yes"]


def cpu_seconds() -> float:
    """CPU seconds used so far by this process (all threads) and its waited-for children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _report(results: dict[str, tuple[float, float]], reference: str) -> None:
    ref_rate, ref_cpu = results[reference]
    for name, (rate, cpu) in results.items():
        print(f"  {name:42s} {rate:8.1f} MB/s  ratio {rate / ref_rate:4.2f}   "
              f"client CPU {cpu:5.2f} s/GiB  ratio {cpu / ref_cpu:4.2f}")


def _check(command: list[str]) -> None:
    subprocess.run(command, check=True, stdin=subprocess.DEVNULL)


# -- small files -------------------------------------------------------------------------


def small_files(server: SshServer, work: Path, count: int, size: int, scp_count: int) -> None:
    sources = work / "small"
    sources.mkdir()
    files = []
    for i in range(count):
        path = sources / f"f{i:05d}.dat"
        path.write_bytes(os.urandom(size))
        files.append(path)
    params = server.mover_params()
    print(f"\n{count} files of {size} bytes (SCP: first {min(scp_count, count)}):")
    for cls, n in ((SftpMover, count), (ScpMover, min(scp_count, count))):
        scheme = cls.SCHEMES[0]
        rates = {}
        for mode in ("reused connection", "connection per file"):
            dest = work / f"small-{scheme}-{mode.split()[0]}"
            uri = server.uri(scheme, f"{dest}/")
            logins = server.login_count()
            start = time.perf_counter()
            if mode == "reused connection":
                with cls(params) as mover:
                    for path in files[:n]:
                        mover.put(path, uri)
            else:
                for path in files[:n]:
                    with cls(params) as mover:
                        mover.put(path, uri)
            rates[mode] = n / (time.perf_counter() - start)
            assert len(list(dest.iterdir())) == n
            print(f"  {cls.__name__:10s} {mode:20s} {rates[mode]:8.1f} files/s   "
                  f"({server.login_count() - logins} logins)")
            shutil.rmtree(dest)
        ratio = rates["reused connection"] / rates["connection per file"]
        print(f"  {cls.__name__:10s} reused/per-file = {ratio:.1f}x")


if __name__ == "__main__":
    raise SystemExit(main())

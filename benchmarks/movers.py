"""Our movers against the reference tools, on the same loopback servers as the tests.

Run ``python -m benchmarks.movers [--quick] [--protocol file ftp ftps sftp scp s3]``. Not a
test: nothing asserts, it measures, prints and writes ``results/movers.md``. It re-executes
itself in a private network namespace (``scripts/in-netns``) unless it already is in one.

Servers: pyftpdlib (FTP, and FTPS with a self-signed certificate) in a subprocess, a
throwaway OpenSSH ``sshd`` (``trollmoves_ssh.testing``), ``moto_server`` for S3. Our movers
come from ``default_host().mover(uri, params)``, as the roles get them. References, in the
same run: ``cp`` (file; our mover in ``mode=copy``), the OpenSSH ``scp`` client (SFTP mode
for ``sftp``, ``-O`` legacy SCP for ``scp``), ``curl`` (FTP/FTPS), boto3 ``upload_file`` /
``download_file`` (S3). Server-side files go to ``/dev/shm`` when it has room, so the disk
does not take part.

* big file (1 GiB; ``--quick`` 100 MiB): upload and download, ours and the reference
  interleaved, alternating which goes first, median of ``--repeat`` runs; MB/s (10^6 bytes
  per second) and the client's CPU seconds per GiB (this process and the tools it ran; not
  the server).
* small files (1 KiB x 1000; ``--quick`` x 200): through one mover (one pooled connection)
  against the reference tool sending all files in one session (one ``cp``/``scp``/``curl``
  command, one boto3 client); then a new mover per file (one connection per file) on the
  first ``--per-file-count`` files, for the reused/per-file ratio.

Every case has a time limit (``--case-timeout``): tools run with a subprocess timeout,
small-file loops stop at the deadline, and a watchdog stops the server under a transfer that
overruns, so the transfer fails instead of hanging (the server is restarted for the next case).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import ftplib
import importlib.metadata
import os
import platform
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from trollmoves_ssh.testing import start_sshd

from benchmarks.cli import NETNS_ENV
from benchmarks.movers_ssh import cpu_seconds, scp_command
from benchmarks.report import interfaces
from trollmoves_core.mover import Mover
from trollmoves_core.plugins import default_host

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
PROTOCOLS = ("file", "ftp", "ftps", "sftp", "scp", "s3")
HOST = "127.0.0.1"
USER, PASSWORD = "bench", "bench-pw"
BUCKET = "trollmoves-bench"
MIB = 1024 * 1024


@dataclasses.dataclass
class Settings:
    big_mib: int = 1024
    repeat: int = 3
    small_count: int = 1000
    small_size: int = 1024
    per_file_count: int = 200
    case_timeout: float = 300.0
    small_time_limit: float = 30.0
    """Seconds per small-file round of our movers; files/s comes from the files sent by then."""
    directions: tuple[str, ...] = ("put", "get")

    @classmethod
    def quick(cls) -> Settings:
        return cls(big_mib=100, small_count=200, per_file_count=50, case_timeout=60.0, small_time_limit=5.0)


class CaseFailed(Exception):
    """A case overran its time limit or failed; the row shows why."""


# -- targets: one per protocol ---------------------------------------------------------------


class Target:
    """One protocol: its server, our mover's URI and parameters, the reference tool.

    ``rel`` arguments are directories relative to the target's area, ending in ``/``.
    """

    name: str
    reference: str
    small_reference: str = ""
    """The reference for many small files, when not :attr:`reference`."""

    def __init__(self, area: Path) -> None:
        self.area = area

    def start(self) -> None:
        """Start the server (again, after :meth:`interrupt`); prepare the area."""

    def stop(self) -> None:
        """Stop the server for good."""

    def interrupt(self) -> None:
        """Stop the server under a transfer that overran (watchdog); :meth:`start` brings it back."""

    def uri(self, rel: str) -> str:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        return {"retries": 1}

    extra_put_references: dict[str, list[str]] = {}
    """More references for the big upload: name -> extra command-line arguments of the reference tool."""

    def ref_put(self, files: list[Path], rel: str, timeout: float, extra: list[str] | None = None) -> None:
        """Upload ``files`` into ``rel`` in one session of the reference tool (``extra``: more arguments)."""
        raise NotImplementedError

    def ref_get(self, rel_file: str, local: Path, timeout: float) -> None:
        raise NotImplementedError

    def listing(self, rel: str) -> dict[str, int]:
        """Name -> size of the files in ``rel``."""
        directory = self.area / rel
        return {p.name: p.stat().st_size for p in directory.iterdir()} if directory.is_dir() else {}

    def clear(self, rel: str) -> None:
        shutil.rmtree(self.area / rel, ignore_errors=True)

    def logins(self) -> int | None:
        """Logins the server has seen so far, when it can tell."""
        return None


class FileTarget(Target):
    name = "file"
    reference = "cp"

    def uri(self, rel: str) -> str:
        return f"file://{self.area}/{rel}"

    def params(self) -> dict[str, Any]:
        return {**super().params(), "mode": "copy"}

    def ref_put(self, files: list[Path], rel: str, timeout: float, extra: list[str] | None = None) -> None:
        (self.area / rel).mkdir(parents=True, exist_ok=True)
        _run(["cp", *map(str, files), f"{self.area}/{rel}"], timeout)

    def ref_get(self, rel_file: str, local: Path, timeout: float) -> None:
        _run(["cp", str(self.area / rel_file), str(local)], timeout)


FTP_LAUNCHER = r"""
import logging, sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
logging.getLogger("pyftpdlib").addHandler(logging.NullHandler())
logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
root, user, password, port, logins, cert, key = sys.argv[1:8]
authorizer = DummyAuthorizer()
authorizer.add_user(user, password, root, perm="elradfmwMT")
base = FTPHandler
attrs = {"authorizer": authorizer, "auth_failed_timeout": 0}
if cert:
    from pyftpdlib.handlers import TLS_FTPHandler as base
    attrs.update(certfile=cert, keyfile=key, tls_control_required=True, tls_data_required=True)
log = open(logins, "a", buffering=1)
attrs["on_login"] = lambda self, username: log.write("login\n")
server = FTPServer(("127.0.0.1", int(port)), type("Handler", (base,), attrs))
print(server.socket.getsockname()[1], flush=True)
server.serve_forever(timeout=1.0)
"""


class FtpTarget(Target):
    """pyftpdlib in a subprocess (its own interpreter, as a real server would be), served from ``area``."""

    reference = "curl -T"
    small_reference = "ftplib STOR loop"

    def __init__(self, area: Path, tls: bool) -> None:
        super().__init__(area)
        self.tls = tls
        self.name = "ftps" if tls else "ftp"
        if tls:
            self.reference = "curl -T --ssl-reqd"
            self.small_reference = "ftplib (TLS) STOR loop"
        self.port = 0
        self.process: subprocess.Popen[str] | None = None
        self.login_log = area.parent / f"{self.name}-logins.txt"
        self.cert = self.key = None
        if tls:
            self.cert, self.key = area.parent / "cert.pem", area.parent / "key.pem"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                            "-keyout", str(self.key), "-out", str(self.cert)], check=True, capture_output=True)

    def start(self) -> None:
        if self.process and self.process.poll() is None:
            return
        self.area.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-W", "ignore", "-c", FTP_LAUNCHER, str(self.area), USER, PASSWORD, str(self.port),
             str(self.login_log), str(self.cert or ""), str(self.key or "")],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout
        line = self.process.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"pyftpdlib did not start (exit code {self.process.poll()})")
        self.port = int(line)

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(10)
            if self.process.stdout:
                self.process.stdout.close()
            self.process = None

    interrupt = stop

    def uri(self, rel: str) -> str:
        return f"{self.name}://{USER}:{PASSWORD}@{HOST}:{self.port}/{rel}"

    def params(self) -> dict[str, Any]:
        return {**super().params(), **({"ca_file": str(self.cert)} if self.tls else {})}

    def _curl(self) -> list[str]:
        tls = ["--ssl-reqd", "--cacert", str(self.cert)] if self.tls else []
        return ["curl", "-sS", "--fail", "--user", f"{USER}:{PASSWORD}", *tls]

    def ref_put(self, files: list[Path], rel: str, timeout: float, extra: list[str] | None = None) -> None:
        if len(files) == 1:
            _run([*self._curl(), "--ftp-create-dirs", "-T", str(files[0]), f"ftp://{HOST}:{self.port}/{rel}"], timeout)
            return
        # Many files: curl 7.88 idles 1 s before most data connections after the first (passive
        # mode, seen with --trace-time; its active mode fails with TLS), so ftplib is the reference.
        if self.tls:
            ftp: ftplib.FTP = ftplib.FTP_TLS(context=ssl.create_default_context(cafile=str(self.cert)))
        else:
            ftp = ftplib.FTP()
        ftp.connect(HOST, self.port, timeout=timeout)
        try:
            ftp.login(USER, PASSWORD)
            if isinstance(ftp, ftplib.FTP_TLS):
                ftp.prot_p()
            with contextlib.suppress(ftplib.error_perm):
                ftp.mkd(f"/{rel}")
            for path in files:
                with open(path, "rb") as source:
                    ftp.storbinary(f"STOR /{rel}{path.name}", source, blocksize=MIB)
            ftp.quit()
        finally:
            ftp.close()

    def ref_get(self, rel_file: str, local: Path, timeout: float) -> None:
        _run([*self._curl(), "-o", str(local), f"ftp://{HOST}:{self.port}/{rel_file}"], timeout)

    def logins(self) -> int | None:
        return len(self.login_log.read_text().splitlines()) if self.login_log.exists() else 0


class SshTarget(Target):
    """A throwaway OpenSSH sshd; the reference is the OpenSSH ``scp`` client with the same key."""

    def __init__(self, area: Path, scheme: str) -> None:
        super().__init__(area)
        self.name = scheme
        self.reference = "scp (SFTP mode)" if scheme == "sftp" else "scp -O (legacy SCP)"
        if scheme == "sftp":  # scp's default cipher is chacha20-poly1305; ours prefers AES-GCM
            self.extra_put_references = {"scp -c aes128-gcm (our cipher)": ["-c", "aes128-gcm@openssh.com"]}
        self.server: Any = None

    def start(self) -> None:
        self.area.mkdir(parents=True, exist_ok=True)
        if self.server is None:
            self.server = start_sshd(self.area.parent / f"sshd-{self.name}")
        elif self.server.process is None:
            self.server.start()

    def stop(self) -> None:
        if self.server:
            self.server.stop()

    def interrupt(self) -> None:
        if self.server:
            self.server.stop()

    def uri(self, rel: str) -> str:
        return self.server.uri(self.name, f"{self.area}/{rel}")

    def params(self) -> dict[str, Any]:
        return {**super().params(), **self.server.mover_params()}

    def _scp(self) -> list[str]:
        return [*scp_command(self.server), *(["-O"] if self.name == "scp" else [])]

    def ref_put(self, files: list[Path], rel: str, timeout: float, extra: list[str] | None = None) -> None:
        (self.area / rel).mkdir(parents=True, exist_ok=True)
        _run([*self._scp(), *(extra or []), *map(str, files), f"{self.server.user}@{HOST}:{self.area}/{rel}"], timeout)

    def ref_get(self, rel_file: str, local: Path, timeout: float) -> None:
        _run([*self._scp(), f"{self.server.user}@{HOST}:{self.area}/{rel_file}", str(local)], timeout)

    def logins(self) -> int | None:
        return self.server.login_count()


class S3Target(Target):
    """``moto_server`` in a subprocess; the reference is boto3's managed transfers, default settings."""

    name = "s3"
    reference = "boto3 upload_file"

    def __init__(self, area: Path) -> None:
        super().__init__(area)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.client: Any = None

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        if self.process and self.process.poll() is None:
            return
        import boto3

        self.port = _free_port()
        moto = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
        self.process = subprocess.Popen([moto, "-H", HOST, "-p", str(self.port)], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2):
                    break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start (exit code {self.process.poll()})") from None
                time.sleep(0.1)
        self.client = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="testing",
                                   aws_secret_access_key="testing", region_name="us-east-1")
        self.client.create_bucket(Bucket=BUCKET)

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
            self.process = None

    interrupt = stop

    def uri(self, rel: str) -> str:
        return f"s3://{BUCKET}/{rel}"

    def params(self) -> dict[str, Any]:
        return {**super().params(), "endpoint_url": self.endpoint, "key": "testing", "secret": "testing"}

    def ref_put(self, files: list[Path], rel: str, timeout: float, extra: list[str] | None = None) -> None:
        for path in files:
            self.client.upload_file(str(path), BUCKET, f"{rel}{path.name}")

    def ref_get(self, rel_file: str, local: Path, timeout: float) -> None:
        self.client.download_file(BUCKET, rel_file, str(local))

    def listing(self, rel: str) -> dict[str, int]:
        found = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=rel):
            for item in page.get("Contents", []):
                found[item["Key"][len(rel):]] = item["Size"]
        return found

    def clear(self, rel: str) -> None:
        # Objects live in moto's memory: drop them as soon as a case is done.
        keys = [{"Key": rel + name} for name in self.listing(rel)]
        for i in range(0, len(keys), 1000):
            self.client.delete_objects(Bucket=BUCKET, Delete={"Objects": keys[i:i + 1000]})


def make_target(name: str, area: Path) -> Target:
    if name == "file":
        return FileTarget(area)
    if name in ("ftp", "ftps"):
        return FtpTarget(area, tls=name == "ftps")
    if name in ("sftp", "scp"):
        return SshTarget(area, name)
    return S3Target(area)


def unavailable(name: str) -> str | None:
    """Why a protocol cannot be measured here, or None."""
    if name in ("ftp", "ftps") and not shutil.which("curl"):
        return "curl not installed"
    if name in ("sftp", "scp"):
        from trollmoves_ssh.testing import INSTALL_HINT, sshd_available

        if not sshd_available() or not shutil.which("scp"):
            return INSTALL_HINT
    if name == "s3" and not (shutil.which("moto_server", path=str(Path(sys.executable).parent))
                             or shutil.which("moto_server")):
        return "moto_server not installed (pip install 'moto[server]')"
    return None


# -- measuring -------------------------------------------------------------------------------


def _run(command: list[str], timeout: float, cwd: Path | None = None) -> None:
    try:
        subprocess.run(command, check=True, stdin=subprocess.DEVNULL, timeout=timeout, cwd=cwd,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except subprocess.TimeoutExpired:
        raise CaseFailed(f"{command[0]} timed out after {timeout:.0f} s") from None
    except subprocess.CalledProcessError as err:
        raise CaseFailed(f"{command[0]} exited {err.returncode}: {err.stderr.decode(errors='replace')[-300:]}") \
            from None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def watchdog(target: Target, timeout: float) -> Iterator[None]:
    """Stop ``target``'s server if the block overruns ``timeout``, so a stuck transfer fails."""
    fired = threading.Event()

    def expire() -> None:
        fired.set()
        target.interrupt()

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    except Exception as err:
        if fired.is_set():
            raise CaseFailed(f"stopped after the {timeout:.0f} s case limit") from err
        if isinstance(err, CaseFailed):
            raise
        raise CaseFailed(f"{type(err).__name__}: {err}"[:300]) from err
    finally:
        timer.cancel()
        timer.join()  # an expiry in progress finishes stopping the server before it restarts
        if fired.is_set():
            target.start()


def mover_for(target: Target, rel: str) -> Mover:
    return default_host().mover(target.uri(rel), target.params())


@dataclasses.dataclass
class Row:
    """One line of the main table: ours against the reference on one case."""

    protocol: str
    case: str
    unit: str
    reference: str
    ours: float | None = None
    ref: float | None = None
    ours_cpu: float | None = None
    ref_cpu: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.ours / self.ref if self.ours and self.ref else None


@dataclasses.dataclass
class Reuse:
    """Small files through one mover against a new mover (connection) per file."""

    protocol: str
    reused: float | None = None
    per_file: float | None = None
    reused_logins: int | None = None
    per_file_logins: int | None = None
    reused_files: int = 0
    per_file_files: int = 0
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.reused / self.per_file if self.reused and self.per_file else None


def big_put(target: Target, source: Path, s: Settings) -> list[Row]:
    """Rows for the big upload: against the reference, and against each of the target's extra references."""
    size = source.stat().st_size
    case = f"put {_size(size)} x1"

    def ours() -> None:
        with mover_for(target, "big-ours/") as mover:
            mover.put(source, target.uri("big-ours/"))

    def reference(argv: list[str]) -> Callable[[], None]:
        return lambda: target.ref_put([source], "big-ref/", s.case_timeout, extra=argv)

    refs = {target.reference: [], **target.extra_put_references}
    rows = {name: Row(target.name, case, "MB/s", name) for name in refs}
    cases = {"ours": ("big-ours/", ours)} | {name: ("big-ref/", reference(argv)) for name, argv in refs.items()}
    return _big(target, rows, cases, size, s, check=lambda rel: target.listing(rel).get(source.name) == size)


def big_get(target: Target, source: Path, local: Path, s: Settings) -> Row:
    size = source.stat().st_size
    row = Row(target.name, f"get {_size(size)} x1", "MB/s", target.reference.replace("upload_file", "download_file")
              .replace("curl -T", "curl -o"))
    target.clear("big-src/")
    try:
        with watchdog(target, s.case_timeout):
            target.ref_put([source], "big-src/", s.case_timeout)
    except CaseFailed as err:
        row.note = f"could not place the file to download: {err}"
        return row
    remote = f"big-src/{source.name}"

    def ours() -> None:
        with mover_for(target, "big-src/") as mover:
            mover.get(target.uri(remote), local)

    cases = {row.reference: ("", lambda: target.ref_get(remote, local, s.case_timeout)), "ours": ("", ours)}

    def check(_rel: str) -> bool:
        ok = local.exists() and local.stat().st_size == size
        local.unlink(missing_ok=True)
        return ok

    try:
        return _big(target, {row.reference: row}, cases, size, s, check=check)[0]
    finally:
        target.clear("big-src/")


def _big(target: Target, rows: dict[str, Row], cases: dict[str, tuple[str, Callable[[], None]]], size: int,
         s: Settings, *, check: Callable[[str], bool]) -> list[Row]:
    """Run ``cases`` (``ours`` and one per row) ``s.repeat`` times, rotating the order; medians into the rows."""
    rates: dict[str, list[float]] = {who: [] for who in cases}
    cpu: dict[str, list[float]] = {who: [] for who in cases}
    failures: list[str] = []
    order = list(cases)
    for _ in range(s.repeat):
        for who in order:
            rel, run = cases[who]
            if rel:
                target.clear(rel)
            try:
                used, start = cpu_seconds(), time.perf_counter()
                with watchdog(target, s.case_timeout):
                    run()
                elapsed = time.perf_counter() - start
                if not check(rel):
                    raise CaseFailed("the delivered file is missing or has the wrong size")
            except CaseFailed as err:
                failures.append(f"{who}: {err}")
                continue
            finally:
                if rel:
                    target.clear(rel)
            rates[who].append(size / elapsed / 1e6)
            cpu[who].append((cpu_seconds() - used) * 2**30 / size)
        order = order[1:] + order[:1]  # rotate who goes first: page cache and server warm-up favour none
    for name, row in rows.items():
        row.ours, row.ref = _median(rates["ours"]), _median(rates[name])
        row.ours_cpu, row.ref_cpu = _median(cpu["ours"]), _median(cpu[name])
        row.note += "".join(f"{f}. " for f in dict.fromkeys(failures) if f.startswith(("ours:", f"{name}:")))
        if s.repeat > 1 and rates["ours"] and rates[name]:
            row.note += f"median of {len(rates['ours'])}/{len(rates[name])} runs"
    return list(rows.values())


def small_files(target: Target, files: list[Path], s: Settings) -> tuple[Row, Reuse]:
    """The reference, our reused mover and a mover per file, ``s.repeat`` rounds in rotating order; medians."""
    count, size = len(files), files[0].stat().st_size
    row = Row(target.name, f"put {_size(size)} x{count}", "files/s", target.small_reference or target.reference)
    reuse = Reuse(target.name)
    session = {"file": "one cp", "sftp": "one scp", "scp": "one scp", "s3": "one client"}.get(target.name,
                                                                                         "one session")
    row.note = f"reference: all files in {session}"
    if target.name in ("ftp", "ftps"):
        row.note += ", plain STOR of the final name (not curl: it idles 1 s before most data connections)"
    rates: dict[str, list[float]] = {"ref": [], "reused": [], "per_file": []}
    logins: dict[str, int | None] = {}
    sent: dict[str, int] = {}
    cut: dict[str, list[int]] = {"reused": [], "per_file": []}
    errors: list[str] = []
    order = ["ref", "reused", "per_file"]
    for _ in range(s.repeat):
        for mode in order:
            todo = files[:s.per_file_count] if mode == "per_file" else files
            limit = s.case_timeout if mode == "ref" else s.small_time_limit
            try:
                rate, logins[mode], sent[mode] = _small_round(target, mode, todo, limit, s.case_timeout)
            except CaseFailed as err:
                errors.append(f"{mode.replace('_', '-')}: {err}")
                continue
            if sent[mode] < len(todo):
                cut[mode].append(sent[mode])
            rates[mode].append(rate)
        order = order[1:] + order[:1]
    for mode, counts in cut.items():
        if counts:
            total = s.per_file_count if mode == "per_file" else count
            reuse.note += (f"{mode.replace('_', '-')}: {min(counts)}-{max(counts)} of {total} files within the "
                           f"{s.small_time_limit:g} s round limit. ")
    for error in dict.fromkeys(errors):
        if error.startswith("ref:"):
            row.note += f"; {error}"
        else:
            reuse.note += f"{error}. "
    row.ref, row.ours = _median(rates["ref"]), _median(rates["reused"])
    reuse.reused, reuse.per_file = row.ours, _median(rates["per_file"])
    reuse.reused_logins, reuse.per_file_logins = logins.get("reused"), logins.get("per_file")
    reuse.reused_files, reuse.per_file_files = sent.get("reused", 0), sent.get("per_file", 0)
    if s.repeat > 1:
        row.note += f"; median of {s.repeat} rounds"
    if target.name == "file":
        reuse.note += "No connection to reuse: a new mover per file costs only its set-up. "
    return row, reuse


def _small_round(target: Target, mode: str, files: list[Path], limit: float,
                 timeout: float) -> tuple[float, int | None, int]:
    """One round of ``mode`` (``ref``, ``reused``, ``per_file``): files/s, logins (or connections), files sent.

    Our movers stop sending after ``limit`` seconds; the watchdog stops a transfer stuck for ``timeout``.
    """
    rel = f"small-{mode}/"
    uri = target.uri(rel)
    target.clear(rel)
    logins_before, opened, done = target.logins(), 0, 0
    deadline = time.monotonic() + limit
    try:
        start = time.perf_counter()
        if mode == "ref":
            with watchdog(target, timeout):
                target.ref_put(files, rel, timeout)
            done = len(files)
        else:
            with watchdog(target, limit + timeout):
                if mode == "reused":
                    with mover_for(target, rel) as mover:
                        for path in files:
                            if time.monotonic() > deadline:
                                break
                            mover.put(path, uri)
                            done += 1
                        opened = getattr(mover, "connections_opened", 0)
                else:
                    for path in files:
                        if time.monotonic() > deadline:
                            break
                        with mover_for(target, rel) as mover:
                            mover.put(path, uri)
                        done += 1
                        opened += getattr(mover, "connections_opened", 0)
        elapsed = time.perf_counter() - start
        delivered = len(target.listing(rel))
        if delivered != done:
            raise CaseFailed(f"{delivered} files delivered, {done} sent")
    finally:
        target.clear(rel)
    logins = target.logins()
    logins = (opened if mode != "ref" else None) if logins is None or logins_before is None \
        else logins - logins_before
    return done / elapsed, logins, done


def warm_up(target: Target, path: Path) -> None:
    """One untimed small upload each way, so imports and first connections are not timed."""
    with mover_for(target, "warm-up/") as mover:
        mover.put(path, target.uri("warm-up/"))
    target.ref_put([path], "warm-up/", 60)
    target.clear("warm-up/")


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _size(size: int) -> str:
    for unit, factor in (("GiB", 2**30), ("MiB", MIB), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


def make_files(work: Path, s: Settings) -> tuple[Path, list[Path]]:
    """The big file (random, written through the page cache, which keeps it) and the small ones."""
    big = work / "source" / "big.bin"
    big.parent.mkdir(parents=True)
    with open(big, "wb") as out:
        for _ in range(s.big_mib):
            out.write(os.urandom(MIB))
    small_dir = work / "source" / "small"
    small_dir.mkdir()
    small = []
    for i in range(s.small_count):
        path = small_dir / f"f{i:05d}.dat"
        path.write_bytes(os.urandom(s.small_size))
        small.append(path)
    return big, small


def server_area(work: Path, s: Settings) -> Path:
    """Where servers keep delivered files: /dev/shm when it has room for a few big files."""
    shm = Path("/dev/shm")
    need = 4 * s.big_mib * MIB
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > need:
        return Path(tempfile.mkdtemp(prefix="trollmoves-bench-movers-", dir=shm))
    area = work / "served"
    area.mkdir()
    return area


# -- report ---------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def rows_table(rows: list[Row]) -> str:
    lines = ["| protocol | case | ours | reference | ref | ours/ref | client CPU s/GiB ours / ref | notes |",
             "|---|---|---:|---|---:|---:|---:|---|"]
    for r in rows:
        cpu = f"{_fmt(r.ours_cpu, 2)} / {_fmt(r.ref_cpu, 2)}" if r.unit == "MB/s" else ""
        lines.append(f"| {r.protocol} | {r.case} | {_fmt(r.ours)} {r.unit} | {r.reference} | {_fmt(r.ref)} {r.unit} "
                     f"| {_fmt(r.ratio, 2)} | {cpu} | {r.note.strip()} |")
    return "\n".join(lines)


def reuse_table(reuses: list[Reuse]) -> str:
    lines = ["| protocol | reused connection | connection per file | reused/per-file | logins (reused / per-file) "
             "| notes |", "|---|---:|---:|---:|---|---|"]
    for r in reuses:
        logins = (f"{_fmt(r.reused_logins, 0)} for {r.reused_files} / "
                  f"{_fmt(r.per_file_logins, 0)} for {r.per_file_files}")
        lines.append(f"| {r.protocol} | {_fmt(r.reused)} files/s | {_fmt(r.per_file)} files/s | {_fmt(r.ratio, 1)}x "
                     f"| {logins} | {r.note.strip()} |")
    return "\n".join(lines)


def targets(rows: list[Row], reuses: list[Reuse]) -> list[tuple[str, str, str]]:
    out = []

    def find(protocol: str) -> Row | None:
        return next((r for r in rows if r.protocol == protocol and r.case.startswith("put") and r.unit == "MB/s"),
                    None)

    for protocol, reference, goal in (("sftp", "OpenSSH scp CLI", 0.9), ("file", "cp", 0.95)):
        row = find(protocol)
        if row:
            ratio = row.ratio
            verdict = "-" if ratio is None else ("met" if ratio >= goal else "NOT met")
            out.append((f"{protocol} mover ≥ {goal}x {reference} ({row.case})", f"{_fmt(ratio, 2)}x", verdict))
    for r in reuses:
        if r.protocol == "file":
            continue
        verdict = "-" if r.ratio is None else ("met" if r.ratio >= 10 else "NOT met")
        out.append((f"{r.protocol}: reused connection ≥ 10x connection per file", f"{_fmt(r.ratio, 1)}x", verdict))
    return out


def machine_facts(work: Path, area: Path, load_at_start: float) -> list[str]:
    cpu = "?"
    memory = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f}"

    def first_line(command: list[str]) -> str:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return "not installed"
        return ((done.stdout or done.stderr).strip().splitlines() or ["?"])[0]

    def fs_type(path: Path) -> str:
        return first_line(["stat", "-f", "-c", "%T", str(path)])

    versions = []
    for dist in ("paramiko", "pyftpdlib", "pyOpenSSL", "moto", "boto3", "s3fs"):
        try:
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{dist} missing")
    commit = first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores, {memory} GiB RAM, Linux {platform.release()} ({platform.machine()})",
        f"- Network: {'private namespace, ' if NETNS_ENV in os.environ or interfaces() == ['lo'] else ''}"
        f"interfaces {', '.join(interfaces())}; every server on 127.0.0.1",
        f"- Sources on {work} ({fs_type(work)}, in the page cache); server side and downloads on {area.parent} "
        f"({fs_type(area)})",
        f"- Python {platform.python_version()}; {', '.join(versions)}",
        f"- Tools: {first_line(['ssh', '-V'])}; {' '.join(first_line(['curl', '--version']).split()[:2])}; "
        f"{first_line(['cp', '--version'])}",
        f"- Load average (1 min): {load_at_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end "
        f"(other work on the machine shares its {os.cpu_count()} cores)",
        f"- Our commit: {commit}",
    ]


def markdown(command: str, *, started: str, mode: str, duration: float, settings: Settings, facts: list[str],
             rows: list[Row], reuses: list[Reuse]) -> str:
    goals = targets(rows, reuses)
    return "\n".join([
        "# Mover benchmark: our movers against the reference tools",
        "",
        f"Run `{command}` started {started} ({mode} mode, {duration:.0f} s). Produced by `benchmarks/movers.py`; "
        "see its docstring for the method.",
        "",
        "## Machine", "", *facts, "",
        "## Settings", "", "```", json_line(settings), "```", "",
        "## Throughput, ours against the reference tool", "",
        "MB/s is 10^6 bytes per second. Client CPU counts this process and the tools it ran, not the server. "
        "Our movers write under a temporary name and rename (FTP: RNFR/RNTO; SFTP: posix-rename; SCP: "
        "`scp -t` then an SFTP rename); the reference tools write the final name directly.", "",
        "- FTP/FTPS, many files: the reference is a plain `ftplib` STOR loop on one connection, not curl: "
        "curl 7.88 idles 1 s before most data connections after the first in passive mode (seen with "
        "`--trace-time`) and fails in active mode with TLS.",
        "- SSH: the throwaway sshd sets `SHLVL=1` for its sessions, so that bash does not source root's "
        "`~/.bashrc` (`pyenv init` here, about 0.3 s) for every `scp -t` / `scp -f` it starts; without it each "
        "SCP-mover upload, and each `scp -O` command, pays that too.",
        "- S3: moto, not the client, limits both sides (about 15 ms per request, tens of MB/s).", "",
        rows_table(rows), "",
        "## Many small files: one connection against a connection per file", "",
        reuse_table(reuses), "",
        "## Targets", "",
        "| target | measured | verdict |", "|---|---|---|",
        *[f"| {name} | {measured} | {verdict} |" for name, measured, verdict in goals],
        "",
    ])


def json_line(settings: Settings) -> str:
    return ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(settings).items())


# -- main -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.movers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 MiB big file, 200 small files, 60 s case limit")
    parser.add_argument("--protocol", nargs="+", action="extend", choices=PROTOCOLS, metavar="PROTOCOL",
                        help=f"measure only these ({', '.join(PROTOCOLS)}); default all")
    parser.add_argument("--big-mib", type=int, help="big file size in MiB (default 1024, quick 100)")
    parser.add_argument("--repeat", type=int, help="runs per big-file case, median (default 3)")
    parser.add_argument("--small-count", type=int, help="number of 1 KiB files (default 1000, quick 200)")
    parser.add_argument("--per-file-count", type=int,
                        help="files sent with a new connection each (default 200, quick 50)")
    parser.add_argument("--case-timeout", type=float, help="seconds per case (default 300, quick 60)")
    parser.add_argument("--small-time-limit", type=float,
                        help="seconds per small-file round of our movers (default 30, quick 5)")
    parser.add_argument("--direction", choices=("put", "get"), help="big file: only uploads or only downloads")
    parser.add_argument("--workdir", type=Path, help="scratch directory for the source files (default: a temp dir)")
    parser.add_argument("--markdown", type=Path,
                        help="write the markdown summary here (default: results/movers.md, for runs of every protocol)")
    parser.add_argument("--no-netns", action="store_true", help="do not re-run inside a private network namespace")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.no_netns and not os.environ.get(NETNS_ENV) and any(n != "lo" for n in interfaces()):
        os.environ[NETNS_ENV] = "1"
        script = str(REPO / "scripts" / "in-netns")
        os.execv(script, [script, sys.executable, "-m", "benchmarks.movers", *sys.argv[1:]])
    settings = Settings.quick() if args.quick else Settings()
    for field in ("big_mib", "repeat", "small_count", "per_file_count", "case_timeout", "small_time_limit"):
        if getattr(args, field) is not None:
            setattr(settings, field, getattr(args, field))
    if args.direction:
        settings.directions = (args.direction,)
    protocols = [p for p in PROTOCOLS if not args.protocol or p in args.protocol]
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": os.devnull,
                        "AWS_SHARED_CREDENTIALS_FILE": os.devnull}.items():
        os.environ[name] = value

    started = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    load_at_start = os.getloadavg()[0]
    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="trollmoves-bench-movers-", dir=args.workdir))
    shared = server_area(work, settings)
    rows: list[Row] = []
    reuses: list[Reuse] = []
    default_host()  # plugin discovery, once, before any timing
    try:
        print(f"interfaces: {', '.join(interfaces())}; sources in {work}; server side in {shared}", flush=True)
        big, small = make_files(work, settings)
        for name in protocols:
            reason = unavailable(name)
            if reason:
                print(f"[{name}] skipped: {reason}", flush=True)
                rows.append(Row(name, "-", "", "-", note=f"skipped: {reason}"))
                continue
            target = make_target(name, shared / name)
            t0 = time.monotonic()
            try:
                target.start()
                warm_up(target, small[0])
                if "put" in settings.directions:
                    rows += [_show(row) for row in big_put(target, big, settings)]
                if "get" in settings.directions:
                    rows.append(_show(big_get(target, big, shared / "downloaded.bin", settings)))
                row, reuse = small_files(target, small, settings)
                rows.append(_show(row))
                reuses.append(reuse)
                print(f"[{name}] reused {_fmt(reuse.reused)} files/s ({reuse.reused_logins} logins), per file "
                      f"{_fmt(reuse.per_file)} files/s ({reuse.per_file_logins} logins): {_fmt(reuse.ratio)}x "
                      f"{reuse.note}", flush=True)
            except Exception as err:  # one broken protocol must not lose the others' numbers
                print(f"[{name}] FAILED: {type(err).__name__}: {err}", flush=True)
                rows.append(Row(name, "-", "", target.reference, note=f"failed: {type(err).__name__}: {err}"))
            finally:
                target.stop()
                print(f"[{name}] done in {time.monotonic() - t0:.0f} s", flush=True)
        duration = time.monotonic() - began
        print(f"\n{rows_table(rows)}\n\n{reuse_table(reuses)}\n\ntargets:")
        for goal, measured, verdict in targets(rows, reuses):
            print(f"  {verdict:8} {goal}: {measured}")
        out = args.markdown or (RESULTS / "movers.md" if not args.protocol else None)
        if out:
            command = "python -m benchmarks.movers " + " ".join(sys.argv[1:] if argv is None else argv)
            facts = machine_facts(work, shared, load_at_start)
            out.write_text(markdown(command.strip(), started=started, mode="quick" if args.quick else "full",
                                    duration=duration, settings=settings, facts=facts, rows=rows, reuses=reuses))
            print(f"\nwrote {out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(shared, ignore_errors=True)
    return 0


def _show(row: Row) -> Row:
    print(f"[{row.protocol}] {row.case}: ours {_fmt(row.ours)} {row.unit}, {row.reference} {_fmt(row.ref)} {row.unit}, "
          f"ratio {_fmt(row.ratio, 2)} {row.note}", flush=True)
    return row


if __name__ == "__main__":
    raise SystemExit(main())

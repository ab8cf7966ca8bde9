"""The servers and reference tools of the mover benchmark: one :class:`Target` per protocol."""

from __future__ import annotations

import contextlib
import ftplib
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from trollmoves_ftp.testing import PASSWORD, USER, make_cert
from trollmoves_ssh.testing import start_sshd

from benchmarks.movers_ssh import scp_command

PROTOCOLS = ("file", "ftp", "ftps", "sftp", "scp", "s3", "http", "https")
HOST = "127.0.0.1"
BUCKET = "trollmoves-bench"
MIB = 1024 * 1024


class CaseFailed(Exception):
    """A case overran its time limit or failed; the row shows why."""


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
        run_tool(["cp", *map(str, files), f"{self.area}/{rel}"], timeout)

    def ref_get(self, rel_file: str, local: Path, timeout: float) -> None:
        run_tool(["cp", str(self.area / rel_file), str(local)], timeout)


class FtpTarget(Target):
    """The FTP test server of ``trollmoves_ftp.testing`` in a subprocess (its own interpreter, as a real
    server would be), served from ``area``."""

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
            self.cert, self.key = make_cert(area.parent)

    def start(self) -> None:
        if self.process and self.process.poll() is None:
            return
        self.area.mkdir(parents=True, exist_ok=True)
        tls = ["--tls", str(self.cert), str(self.key)] if self.tls else []
        self.process = subprocess.Popen(
            [sys.executable, "-W", "ignore", "-m", "trollmoves_ftp.testing", str(self.area), "--port", str(self.port),
             "--login-log", str(self.login_log), *tls],
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
            run_tool([*self._curl(), "--ftp-create-dirs", "-T", str(files[0]), f"ftp://{HOST}:{self.port}/{rel}"],
                     timeout)
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
        run_tool([*self._curl(), "-o", str(local), f"ftp://{HOST}:{self.port}/{rel_file}"], timeout)

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
        run_tool([*self._scp(), *(extra or []), *map(str, files), f"{self.server.user}@{HOST}:{self.area}/{rel}"],
                 timeout)

    def ref_get(self, rel_file: str, local: Path, timeout: float) -> None:
        run_tool([*self._scp(), f"{self.server.user}@{HOST}:{self.area}/{rel_file}", str(local)], timeout)

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

        self.port = free_port()
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


class HttpTarget(Target):
    """The nginx of ``trollmoves_http.testing`` (WebDAV under ``/dav/``); the reference is ``curl``
    (``-T`` is a PUT of the final name), and a requests PUT loop on one session for many files."""

    small_reference = "requests PUT loop"

    def __init__(self, area: Path, tls: bool) -> None:
        from trollmoves_http.testing import Nginx

        self.tls = tls
        self.name = "https" if tls else "http"
        self.reference = "curl -T" + (" (TLS)" if tls else "")
        self.server = Nginx(area / "nginx")
        super().__init__(self.server.root / "dav")

    def start(self) -> None:
        if self.server.proc is None:
            self.server.start()

    def stop(self) -> None:
        self.server.stop()

    interrupt = stop

    def uri(self, rel: str) -> str:
        return self.server.url(f"/dav/{rel}", tls=self.tls)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "ca_file": str(self.server.ca_file)}

    def _curl(self) -> list[str]:
        return ["curl", "-sS", "--fail", "--cacert", str(self.server.ca_file)]

    def ref_put(self, files: list[Path], rel: str, timeout: float, extra: list[str] | None = None) -> None:
        if len(files) == 1:
            run_tool([*self._curl(), "-T", str(files[0]), self.uri(rel) + files[0].name], timeout)
            return
        import requests

        with requests.Session() as session:
            for path in files:
                with open(path, "rb") as body:
                    session.put(self.uri(rel) + path.name, data=body, verify=str(self.server.ca_file),
                                timeout=timeout).raise_for_status()

    def ref_get(self, rel_file: str, local: Path, timeout: float) -> None:
        run_tool([*self._curl(), "-o", str(local), self.uri(rel_file)], timeout)

    def logins(self) -> int | None:
        return self.server.connections()


def make_target(name: str, area: Path) -> Target:
    if name == "file":
        return FileTarget(area)
    if name in ("ftp", "ftps"):
        return FtpTarget(area, tls=name == "ftps")
    if name in ("sftp", "scp"):
        return SshTarget(area, name)
    if name in ("http", "https"):
        return HttpTarget(area, tls=name == "https")
    return S3Target(area)


def unavailable(name: str) -> str | None:
    """Why a protocol cannot be measured here, or None."""
    if name in ("ftp", "ftps") and not shutil.which("curl"):
        return "curl not installed"
    if name in ("sftp", "scp"):
        from trollmoves_ssh.testing import INSTALL_HINT, sshd_available

        if not sshd_available() or not shutil.which("scp"):
            return INSTALL_HINT
    if name in ("http", "https"):
        from trollmoves_http.testing import available

        if not available() or not shutil.which("curl"):
            return "nginx or curl not installed (scripts/install-system-deps installs nginx)"
    if name == "s3" and not (shutil.which("moto_server", path=str(Path(sys.executable).parent))
                             or shutil.which("moto_server")):
        return "moto_server not installed (pip install 'moto[server]')"
    return None


# -- running tools --------------------------------------------------------------------------


def run_tool(command: list[str], timeout: float, cwd: Path | None = None) -> None:
    """Run a reference tool; raise :class:`CaseFailed` when it fails or overruns ``timeout``."""
    try:
        subprocess.run(command, check=True, stdin=subprocess.DEVNULL, timeout=timeout, cwd=cwd,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except subprocess.TimeoutExpired:
        raise CaseFailed(f"{command[0]} timed out after {timeout:.0f} s") from None
    except subprocess.CalledProcessError as err:
        raise CaseFailed(f"{command[0]} exited {err.returncode}: {err.stderr.decode(errors='replace')[-300:]}") \
            from None


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]

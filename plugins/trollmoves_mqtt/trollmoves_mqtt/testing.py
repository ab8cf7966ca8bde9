"""A throwaway Mosquitto broker on 127.0.0.1, for tests and benchmarks.

:class:`Mosquitto` writes its own config (a free port, persistence in its directory saved every
second, no queue limit, TCP_NODELAY), optionally a password file, an ACL and a TLS listener with
a CA it makes with the ``openssl`` command, and starts ``mosquitto`` (Debian package
``mosquitto``; :func:`available` tells whether it is installed). ``python -m trollmoves_mqtt.testing
DIR`` runs one until interrupted and prints its address.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from trollmoves_core.ports import free_port

HOST = "127.0.0.1"
PASSWORD = "mqtt-s3cret-pw"  # distinctive, so tests can check it never leaks into logs


def available() -> bool:
    return shutil.which("mosquitto") is not None and shutil.which("mosquitto_passwd") is not None


def make_ca(directory: Path, host: str = HOST) -> tuple[Path, Path, Path]:
    """A CA (``ca.pem``) and a server certificate for ``host`` signed by it: (ca, cert, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (directory / n for n in ("ca.key", "ca.pem", "server.key", "server.csr",
                                                          "server.pem"))
    ext = directory / "server.ext"
    ext.write_text(f"subjectAltName=IP:{host},DNS:localhost\n")
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", "/CN=trollmoves test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={host}")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(cert),
        "-days", "2", "-extfile", str(ext))
    return ca, cert, key


class Mosquitto:
    """One broker in ``directory``; :meth:`start`, :meth:`stop` (SIGTERM: saves its sessions), :meth:`kill`.

    :param users: user → password; with users anonymous clients are refused.
    :param acl: the text of an ACL file (``user NAME`` / ``topic read|write|readwrite FILTER``).
    :param tls: also listen with TLS on :attr:`tls_port` (CA in :attr:`ca_file`).
    """

    def __init__(self, directory: Path, *, users: dict[str, str] | None = None, acl: str | None = None,
                 tls: bool = False) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.ca_file: Path | None = None
        self.log_file = self.directory / "mosquitto.log"
        self.proc: subprocess.Popen[str] | None = None
        lines = ["user root" if os.geteuid() == 0 else "",
                 "per_listener_settings false",
                 f"persistence true\npersistence_location {self.directory}/\nautosave_interval 1",
                 "max_queued_messages 0\nset_tcp_nodelay true",
                 f"log_dest file {self.log_file}\nlog_type all",
                 f"listener {self.port} {HOST}"]
        if self.tls_port is not None:
            self.ca_file, cert, key = make_ca(self.directory / "tls")
            lines.append(f"listener {self.tls_port} {HOST}\ncafile {self.ca_file}\ncertfile {cert}\nkeyfile {key}")
        if users:
            passwords = self.directory / "passwords"
            passwords.write_text("")
            passwords.chmod(0o600)
            for user, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwords), user, password], check=True,
                               capture_output=True)
            lines.append(f"allow_anonymous false\npassword_file {passwords}")
        else:
            lines.append("allow_anonymous true")
        if acl is not None:
            acl_file = self.directory / "acl"
            acl_file.write_text(acl)
            lines.append(f"acl_file {acl_file}")
        self.config = self.directory / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")

    def url(self, prefix: str = "trollmoves", *, scheme: str = "mqtt", user: str | None = None, **query: str) -> str:
        """A bus address of this broker (``mqtts`` uses the TLS port)."""
        port = self.tls_port if scheme == "mqtts" else self.port
        userinfo = f"{user}@" if user else ""
        params = "&".join(f"{k}={v}" for k, v in query.items())
        return f"{scheme}://{userinfo}{HOST}:{port}/{prefix}" + (f"?{params}" if params else "")

    def start(self, timeout: float = 10.0) -> Mosquitto:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                socket.create_connection((HOST, self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.01)
        self.kill()
        raise TimeoutError(f"mosquitto did not listen on {self.port} in {timeout} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self._reap()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._reap()

    def _reap(self) -> None:
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Run a throwaway Mosquitto broker on 127.0.0.1")
    parser.add_argument("directory", type=Path)
    args = parser.parse_args()
    with Mosquitto(args.directory) as broker:
        sys.stdout.write(broker.url() + "\n")
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()

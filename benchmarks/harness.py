"""One running setup: N servers and a client of one implementation, and a recorder of what
the client republishes."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from trollmoves_roles.bus.posttroll import Subscription

from benchmarks.configs import CLIENT_PUB_PORT, SUFFIX, ServerSpec, write_client_ini, write_server_ini
from benchmarks.impls import Implementation
from benchmarks.procs import Proc

OURS_SERVER_EXTRA: dict[str, str] = {}
"""Server keys every scenario gives our server (``--checksum``); upstream's configs stay as they are."""


class SetupError(RuntimeError):
    """The implementation did not come up or died; the message carries its log tail."""


class MessageSource(Protocol):
    """What :class:`Recorder` reads: a posttroll :class:`Subscription`, or any bus's subscriber."""

    def recv(self, timeout: float) -> Any: ...

    def close(self) -> None: ...


class Recorder:
    """Subscribe to the client's publisher (an address, or a subscriber of any bus); stamp every
    republished ``file`` message on arrival."""

    def __init__(self, source: str | MessageSource) -> None:
        self.arrivals: dict[str, list[float]] = defaultdict(list)
        self.messages = 0
        self._cond = threading.Condition()
        self._subscription = Subscription([source], ["/"]) if isinstance(source, str) else source
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._halt.is_set():
            message = self._subscription.recv(0.05)
            if message is None:
                continue
            now = time.perf_counter()
            self.messages += 1
            data = message.data if isinstance(message.data, dict) else {}
            # The client's own result: type file, an origin, no request_address (that is the server's).
            if message.type == "file" and "origin" in data and "request_address" not in data:
                uid = str(data.get("uid", ""))
                with self._cond:
                    self.arrivals[uid].append(now)
                    self._cond.notify_all()
        self._subscription.close()

    def first(self, uid: str) -> float | None:
        with self._cond:
            times = self.arrivals.get(uid)
            return times[0] if times else None

    def wait_for(self, uid: str, timeout: float) -> float | None:
        """Arrival time of ``uid`` (perf_counter), waiting up to ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.arrivals.get(uid):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return self.arrivals[uid][0]

    def wait_all(self, uids: set[str], timeout: float, stall: float) -> bool:
        """Wait until every uid arrived; give up after ``timeout`` s, or ``stall`` s without progress."""
        deadline = time.monotonic() + timeout
        last_count, last_progress = -1, time.monotonic()
        with self._cond:
            while True:
                count = sum(1 for u in uids if self.arrivals.get(u))
                now = time.monotonic()
                if count == len(uids):
                    return True
                if count != last_count:
                    last_count, last_progress = count, now
                if now >= deadline or now - last_progress >= stall:
                    return False
                self._cond.wait(min(0.5, deadline - now))

    def close(self) -> None:
        self._halt.set()
        self._thread.join(2)


@dataclass
class Setup:
    """Servers and one client of ``impl``, running in ``workdir``."""

    impl: Implementation
    workdir: Path
    n_servers: int = 1
    dest_dir: Path | None = None
    transfer_req_timeout: float | None = None
    destination: str | None = None
    """Client destination URL (default ``file://<dest_dir>/``)."""
    server_extra: dict[str, str] = field(default_factory=dict)
    client_extra: dict[str, str] = field(default_factory=dict)
    server_env: dict[str, str] = field(default_factory=dict)
    """Extra environment of the server processes (e.g. a HOME with ``.ssh/known_hosts``)."""
    server_wrap: Callable[[list[str]], list[str]] | None = None
    """What runs a server's command line elsewhere (e.g. in another network namespace)."""
    servers: list[ServerSpec] = field(default_factory=list)
    procs: list[Proc] = field(default_factory=list)
    server_procs: list[Proc] = field(default_factory=list)
    client_proc: Proc | None = None
    recorder: Recorder | None = None
    _probes: int = 0

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.dest = self.dest_dir or self.workdir / "out"
        self.dest.mkdir(parents=True, exist_ok=True)
        self.logs = self.workdir / "logs"
        self.logs.mkdir(exist_ok=True)

    def start(self, ready_timeout: float = 60.0) -> float:
        """Start everything and wait until a probe file crosses each server; return the seconds it took."""
        began = time.monotonic()
        for k in range(self.n_servers):
            watch = self.workdir / f"in{k}"
            watch.mkdir(exist_ok=True)
            (self.workdir / f"stage{k}").mkdir(exist_ok=True)
            extra = {**(OURS_SERVER_EXTRA if self.impl.name == "ours" else {}), **dict(self.impl.server_extra),
                     **self.server_extra}
            spec = write_server_ini(self.workdir / f"server{k}.ini", watch, k, extra)
            self.servers.append(spec)
            argv = self.impl.server_argv(spec.config, spec.pub_port)
            proc = Proc(f"{self.impl.name}-server{k}", self.server_wrap(argv) if self.server_wrap else argv,
                        self.logs / f"server{k}.log", cwd=self.workdir, env=self.server_env)
            self.server_procs.append(proc)
            self.procs.append(proc)
        client_ini = write_client_ini(self.workdir / "client.ini", self.servers,
                                      self.destination or f"file://{self.dest}/",
                                      transfer_req_timeout=self.transfer_req_timeout, extra=self.client_extra)
        self.client_proc = Proc(f"{self.impl.name}-client", self.impl.client_argv(client_ini),
                                self.logs / "client.log", cwd=self.workdir)
        self.procs.append(self.client_proc)
        self.recorder = Recorder(f"tcp://127.0.0.1:{CLIENT_PUB_PORT}")
        deadline = time.monotonic() + ready_timeout
        for spec in self.servers:
            self._wait_ready(spec, deadline)
        return time.monotonic() - began

    def _wait_ready(self, spec: ServerSpec, deadline: float) -> None:
        # Probe until one arrives: the first may be lost to zmq's slow joiner or a watcher not yet up.
        assert self.recorder is not None
        while time.monotonic() < deadline:
            self.check_alive()
            self._probes += 1
            uid = f"probe-{spec.index}-{self._probes}{SUFFIX}"
            self.drop(spec, uid, b"probe\n")
            if self.recorder.wait_for(uid, min(3.0, max(0.1, deadline - time.monotonic()))) is not None:
                return
        raise SetupError(f"{self.impl.name}: no probe file crossed server {spec.index} in time\n" + self.log_tails())

    def check_alive(self) -> None:
        for proc in self.procs:
            if not proc.alive():
                raise SetupError(f"{proc.name} exited with {proc.popen.returncode}\n{proc.log_tail()}")

    def stage(self, spec: ServerSpec, uid: str, data: bytes) -> Path:
        """Write ``uid`` into the staging dir next to the server's watch dir (same file system)."""
        path = self.workdir / f"stage{spec.index}" / uid
        with open(path, "wb") as out:
            out.write(data)
        return path

    def publish(self, spec: ServerSpec, staged: Path) -> None:
        """Rename a staged file into the watched dir (one atomic event for the watcher)."""
        os.rename(staged, spec.watch_dir / staged.name)

    def drop(self, spec: ServerSpec, uid: str, data: bytes) -> float:
        """Write ``uid`` under a hidden temp name in the watched dir, rename it into place; return the
        perf_counter time of the rename."""
        temp = spec.watch_dir / f".{uid}.part"
        with open(temp, "wb") as out:
            out.write(data)
        t0 = time.perf_counter()
        os.rename(temp, spec.watch_dir / uid)
        return t0

    def check_destination(self, expected: dict[str, int]) -> dict[str, int]:
        """Compare the destination dir with ``{name: size}``: present, missing, wrong size, extra entries."""
        present = missing = wrong = 0
        names = set(os.listdir(self.dest))
        for name, size in expected.items():
            if name not in names:
                missing += 1
            elif (self.dest / name).stat().st_size != size:
                wrong += 1
            else:
                present += 1
        extra = len([n for n in names - set(expected) if not n.startswith("probe-")])
        return {"dest_present": present, "dest_missing": missing, "dest_wrong_size": wrong, "dest_extra": extra}

    def clear(self) -> None:
        """Empty the watched, staging and destination dirs between rounds."""
        dirs = [s.watch_dir for s in self.servers] + [self.workdir / f"stage{s.index}" for s in self.servers]
        for directory in [*dirs, self.dest]:
            for entry in directory.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)

    def log_tails(self) -> str:
        return "\n".join(f"--- {p.name} ({p.log_path})\n{p.log_tail()}" for p in self.procs)

    def stop(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
        for proc in reversed(self.procs):
            proc.stop()

    def __enter__(self) -> Setup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""The scenarios. Each runs one implementation and returns a flat dict of measurements."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.configs import REQUEST_PORT, SERVER_PUB_PORT, SUFFIX
from benchmarks.harness import OURS_SERVER_EXTRA, Setup, SetupError
from benchmarks.impls import Implementation, Upstream
from benchmarks.wan import Link, Namespace

if TYPE_CHECKING:
    from trollmoves_ssh.testing import SshServer

MIB = 1024 * 1024


@dataclass(frozen=True)
class Params:
    """Sizes and time limits; :meth:`quick` gives the short run."""

    latency_files: int = 200
    burst_files: int = 2000
    big_mib: int = 1024
    big_repeats: int = 5
    fanin_servers: int = 4
    fanin_files: int = 500
    resource_rounds: int = 10
    idle_seconds: float = 60.0
    budget: float = 900.0
    """Seconds one implementation may spend on one scenario (the resource rounds stop early)."""
    stall: float = 30.0
    """Seconds without a new delivery after which a burst counts the rest as lost."""
    big_dest: Path | None = None
    wan_files: int = 300
    wan_kib: int = 100
    mqtt_takeover_after: float = 30.0
    """Group members' ``takeover_after`` in ``mqtt_burst`` (longer than the burst: no healthy file is
    taken over), and how long they run before it."""

    @classmethod
    def quick(cls, **overrides: object) -> Params:
        values: dict[str, object] = dict(latency_files=50, burst_files=200, big_mib=100, big_repeats=3, fanin_files=50,
                                         resource_rounds=3, idle_seconds=10.0, budget=150.0, stall=20.0,
                                         wan_files=100, mqtt_takeover_after=10.0)
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile ``q`` (0..100), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def payload(size: int) -> bytes:
    return os.urandom(min(size, 4096)) * (size // 4096) + os.urandom(size % 4096) if size > 4096 else os.urandom(size)


# --- 1. latency --------------------------------------------------------------------------------------

def latency(impl: Implementation, workdir: Path, params: Params) -> dict:
    """Files of 1 KiB, one at a time: rename into the watched dir -> the client's ``file`` message."""
    data = payload(1024)
    with Setup(impl, workdir) as setup:
        startup = setup.start()
        spec = setup.servers[0]
        assert setup.recorder is not None
        deadline = time.monotonic() + params.budget
        latencies, lost = [], 0
        for i in range(params.latency_files):
            if time.monotonic() > deadline:
                break
            uid = f"lat-{i:05d}{SUFFIX}"
            t0 = setup.drop(spec, uid, data)
            arrived = setup.recorder.wait_for(uid, min(params.stall, max(0.1, deadline - time.monotonic())))
            if arrived is None:
                lost += 1
                setup.check_alive()
                continue
            latencies.append(arrived - t0)
        ms = [x * 1000 for x in latencies]
        return {"files": len(latencies) + lost, "lost": lost, "p50_ms": percentile(ms, 50),
                "p90_ms": percentile(ms, 90), "p99_ms": percentile(ms, 99), "max_ms": max(ms, default=None),
                "startup_s": startup, "latencies_ms": [round(x, 3) for x in ms]}


# --- 2. burst ----------------------------------------------------------------------------------------

def _burst(setup: Setup, n_files: int, size: int, prefix: str, *, params: Params, deadline: float) -> dict:
    """Stage ``n_files`` per server, rename them all into place at once, wait for the deliveries."""
    assert setup.recorder is not None
    data = payload(size)
    staged = []
    for i in range(n_files):
        for spec in setup.servers:
            uid = f"{prefix}-s{spec.index}-{i:05d}{SUFFIX}"
            staged.append((spec, setup.stage(spec, uid, data)))
    expected = {path.name: size for _, path in staged}
    cpu_before = {p.name: p.cpu_seconds() or 0.0 for p in setup.procs}
    t0 = time.perf_counter()
    for spec, path in staged:
        setup.publish(spec, path)
    dropped_s = time.perf_counter() - t0
    complete = setup.recorder.wait_all(set(expected), max(1.0, deadline - time.monotonic()), params.stall)
    if complete:
        time.sleep(1.0)  # let late duplicates show up
    arrivals = {uid: setup.recorder.arrivals.get(uid, []) for uid in expected}
    firsts = [times[0] for times in arrivals.values() if times]
    elapsed = (max(firsts) - t0) if firsts else None
    delivered = len(firsts)
    cpu = {name: (p.cpu_seconds() or 0.0) - cpu_before[name] for name, p in ((p.name, p) for p in setup.procs)}
    return {
        "files": len(expected), "delivered": delivered, "lost": len(expected) - delivered,
        "dup": sum(max(0, len(t) - 1) for t in arrivals.values()),
        "elapsed_s": elapsed, "files_per_s": delivered / elapsed if elapsed else None,
        "drop_s": dropped_s, "complete": complete, "arrivals_s": sorted(round(t - t0, 4) for t in firsts),
        "server_cpu_s": sum(v for k, v in cpu.items() if "server" in k),
        "client_cpu_s": sum(v for k, v in cpu.items() if "client" in k),
        **setup.check_destination(expected),
    }


def burst(impl: Implementation, workdir: Path, params: Params) -> dict:
    """2,000 files of 10 KiB dropped at once into one server's dir."""
    with Setup(impl, workdir) as setup:
        startup = setup.start()
        result = _burst(setup, params.burst_files, 10 * 1024, "burst", params=params,
                        deadline=time.monotonic() + params.budget)
        result["startup_s"] = startup
        return result


# --- 4. fan-in ---------------------------------------------------------------------------------------

def fanin(impl: Implementation, workdir: Path, params: Params) -> dict:
    """4 servers, one client, 500 files of 10 KiB each, all dropped at once."""
    with Setup(impl, workdir, n_servers=params.fanin_servers) as setup:
        startup = setup.start(ready_timeout=120.0)
        result = _burst(setup, params.fanin_files, 10 * 1024, "fanin", params=params,
                        deadline=time.monotonic() + params.budget)
        result["servers"] = params.fanin_servers
        result["startup_s"] = startup
        return result


# --- 3. big file -------------------------------------------------------------------------------------

def big_destination(params: Params, size: int) -> tuple[Path, str]:
    """A destination on another file system than the source (so both sides must copy), and its kind."""
    if params.big_dest is not None:
        return params.big_dest, "given"
    shm = Path("/dev/shm")
    other_fs = shm.is_dir() and os.stat(shm).st_dev != os.stat(tempfile.gettempdir()).st_dev
    if other_fs and shutil.disk_usage(shm).free > 3 * size:
        return Path(tempfile.mkdtemp(prefix="trollmoves-bench-", dir=shm)), "tmpfs (copy across file systems)"
    return Path(tempfile.mkdtemp(prefix="trollmoves-bench-big-")), "same file system (hardlink possible)"


def big(impl: Implementation, workdir: Path, params: Params) -> dict:
    """One big file through the file mover end to end, against ``cp`` between the same two dirs.

    Repeated ``big_repeats`` times (each ``cp`` right before the transfer it is compared with);
    the shared machine is noisy, so the best of each is compared, and the medians are kept too.
    """
    size = params.big_mib * MIB
    dest_root, kind = big_destination(params, size)
    dest = dest_root / f"{impl.name}-out"
    try:
        with Setup(impl, workdir, dest_dir=dest, transfer_req_timeout=600) as setup:
            startup = setup.start()

            def cp(source: Path) -> float:
                return _timed(["cp", str(source), str(dest_root / "cp-baseline.dat")], dest_root / "cp-baseline.dat")

            result = _big_runs(setup, params, cp, params.big_repeats, checksum_of(impl))
            return {"destination": kind, **result, "startup_s": startup}
    finally:
        shutil.rmtree(dest, ignore_errors=True)
        if params.big_dest is None:
            shutil.rmtree(dest_root, ignore_errors=True)


def sftp(impl: Implementation, workdir: Path, params: Params) -> dict:
    """The big file pushed over SFTP to a loopback OpenSSH sshd, against the OpenSSH ``scp`` client."""
    size = params.big_mib * MIB
    dest_root, kind = big_destination(params, size)
    dest = dest_root / f"{impl.name}-out"
    dest.mkdir(parents=True, exist_ok=True)
    sshd = _start_sshd(workdir / "sshd")
    try:
        key, known = str(sshd.key_filename), str(sshd.known_hosts)
        with Setup(impl, workdir, dest_dir=dest, transfer_req_timeout=600, **_sftp_setup(sshd, workdir, dest)) as setup:
            startup = setup.start()
            baseline = dest / "scp-baseline.dat"

            def scp(source: Path) -> float:
                return _timed(["scp", "-q", "-i", key, "-o", f"UserKnownHostsFile={known}", "-o",
                               "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-P", str(sshd.port), str(source),
                               f"{sshd.user}@127.0.0.1:{baseline}"], baseline)

            result = _big_runs(setup, params, scp, params.big_repeats)
            result["cp_note"] = "baseline: OpenSSH scp (SFTP protocol) with the same key"
            return {"destination": kind, **result, "startup_s": startup}
    finally:
        sshd.stop()
        shutil.rmtree(dest, ignore_errors=True)
        if params.big_dest is None:
            shutil.rmtree(dest_root, ignore_errors=True)


def _sftp_setup(sshd: SshServer, workdir: Path, dest: Path) -> dict:
    """Setup arguments for a client destination on ``sshd`` that both implementations accept."""
    key, known = str(sshd.key_filename), str(sshd.known_hosts)
    # Both servers check host keys against ~/.ssh/known_hosts: give them a HOME that knows this sshd.
    home = workdir / "home"
    (home / ".ssh").mkdir(parents=True, exist_ok=True)
    shutil.copy(known, home / ".ssh" / "known_hosts")
    return {
        # A full file name: upstream's SFTP mover does not append the basename to a dir/ destination.
        "destination": f"sftp://127.0.0.1:{sshd.port}{dest}/{{name}}{SUFFIX}",
        # ...and the client must not mkdir that full path locally (it would, the host being local).
        "client_extra": {"login": sshd.user, "create_target_directory": "false"},
        "server_extra": {"connection_parameters__ssh_key_filename": key,
                         "connection_parameters__ssh_private_key_file": key},
        "server_env": {"HOME": str(home)},
    }


def _start_sshd(workdir: Path) -> SshServer:
    try:
        from trollmoves_ssh.testing import sshd_available, start_sshd
    except ImportError as err:
        raise SetupError(f"trollmoves_ssh.testing not importable ({err}): SFTP part skipped") from err
    if not sshd_available():
        raise SetupError("no OpenSSH sshd at /usr/sbin/sshd: SFTP part skipped")
    return start_sshd(workdir)


def _timed(argv: list[str], output: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - t0
    output.unlink()
    return elapsed


def checksum_of(impl: Implementation) -> str | None:
    """The checksum method the implementation's servers announce with (None: upstream, or ``none``)."""
    if isinstance(impl, Upstream):
        return None
    extra = {**(OURS_SERVER_EXTRA if impl.name == "ours" else {}), **dict(impl.server_extra)}
    method = extra.get("checksum", "sha256")
    return None if method == "none" else method


def _hash_pass(path: Path, method: str) -> float:
    t0 = time.perf_counter()
    with open(path, "rb") as source:
        hashlib.file_digest(source, method)
    return time.perf_counter() - t0


def _big_runs(setup: Setup, params: Params, baseline: Callable[[Path], float], repeats: int,
              method: str | None = None) -> dict:
    """Stage the big file once, then ``repeats`` x (baseline copy, one ``method`` hash pass of the file
    when the setup announces checksums, then the file through the setup)."""
    size = params.big_mib * MIB
    spec = setup.servers[0]
    assert setup.recorder is not None
    staged = setup.workdir / "stage0" / f"big-0{SUFFIX}"
    block = os.urandom(MIB)
    with open(staged, "wb") as out:
        for _ in range(params.big_mib):
            out.write(block)
        os.fsync(out.fileno())  # no writeback of the fresh file competing with the copies
    base_times, times, linked, bad = [], [], False, 0
    hash_times: list[float] = []
    for r in range(repeats):
        base_times.append(baseline(staged))
        if method:
            hash_times.append(_hash_pass(staged, method))
        uid = staged.name
        t0 = time.perf_counter()
        setup.publish(spec, staged)
        arrived = setup.recorder.wait_for(uid, params.budget)
        if arrived is None:
            setup.check_alive()
            break
        times.append(arrived - t0)
        delivered, served = setup.dest / uid, spec.watch_dir / uid
        linked = linked or os.stat(delivered).st_ino == os.stat(served).st_ino
        bad += setup.check_destination({uid: size})["dest_wrong_size"]
        delivered.unlink()
        staged = setup.workdir / "stage0" / f"big-{r + 1}{SUFFIX}"
        os.rename(served, staged)
    best, base_best = min(times, default=None), min(base_times)
    hash_best = min(hash_times, default=None)
    limit = base_best if hash_best is None else hash_best + max(base_best, hash_best)
    return {
        "size_mib": params.big_mib, "repeats": len(times),
        "elapsed_s": best, "median_s": percentile(times, 50),
        "mib_per_s": params.big_mib / best if best else None,
        "cp_s": base_best, "cp_median_s": percentile(base_times, 50),
        "vs_cp": base_best / best if best else None,
        "hash_s": hash_best, "limit_s": limit, "vs_limit": limit / best if best else None,
        "hardlinked": linked, "dest_wrong_size": bad,
    }


# --- 5. memory and CPU -------------------------------------------------------------------------------

SETTLE_SECONDS = 3.0
"""Wait after a round's files are deleted before reading RSS: both implementations are still
handling the deletion events (watchdog holds inotify events 0.5 s to pair renames) and any
idle-time cleanup; the unsettled readings are kept in the JSON too."""

def resources(impl: Implementation, workdir: Path, params: Params) -> dict:
    """RSS at start and after repeated bursts; idle CPU afterwards."""
    with Setup(impl, workdir) as setup:
        setup.start()
        time.sleep(2.0)
        server, client = setup.server_procs[0], setup.client_proc
        assert client is not None
        rss_start = (server.rss_kib(), client.rss_kib())
        deadline = time.monotonic() + params.budget
        rounds, lost, dup, rss_rounds, rss_immediate, last_round = 0, 0, 0, [], [], 0.0
        for r in range(params.resource_rounds):
            if time.monotonic() + last_round > deadline:
                break
            began = time.monotonic()
            result = _burst(setup, params.burst_files, 10 * 1024, f"r{r:02d}", params=params, deadline=deadline)
            last_round = time.monotonic() - began
            rounds += 1
            lost += result["lost"]
            dup += result["dup"]
            setup.clear()
            rss_immediate.append((server.rss_kib(), client.rss_kib()))
            time.sleep(SETTLE_SECONDS)
            rss_rounds.append((server.rss_kib(), client.rss_kib()))
        rss_end = rss_rounds[-1] if rss_rounds else rss_start
        time.sleep(2.0)  # let deletions settle before the idle window
        cpu_before = (server.cpu_seconds(), client.cpu_seconds())
        t0 = time.monotonic()
        time.sleep(params.idle_seconds)
        wall = time.monotonic() - t0
        cpu_after = (server.cpu_seconds(), client.cpu_seconds())
        idle = [100 * ((b or 0) - (a or 0)) / wall for a, b in zip(cpu_before, cpu_after, strict=True)]
        setup.check_alive()

        def growth(index: int, base: tuple) -> float | None:
            return (rss_end[index] - base[index]) / base[index] if base[index] and rss_end[index] else None

        first = rss_rounds[0] if rss_rounds else rss_start
        return {
            "rounds": rounds, "files_per_round": params.burst_files, "lost": lost, "dup": dup,
            "server_rss_start_mib": _mib(rss_start[0]), "server_rss_round1_mib": _mib(first[0]),
            "server_rss_end_mib": _mib(rss_end[0]),
            "client_rss_start_mib": _mib(rss_start[1]), "client_rss_round1_mib": _mib(first[1]),
            "client_rss_end_mib": _mib(rss_end[1]),
            "server_rss_growth": growth(0, rss_start), "client_rss_growth": growth(1, rss_start),
            "server_rss_growth_after_round1": growth(0, first), "client_rss_growth_after_round1": growth(1, first),
            "server_rss_rounds_mib": [_mib(r[0]) for r in rss_rounds],
            "client_rss_rounds_mib": [_mib(r[1]) for r in rss_rounds],
            "server_rss_rounds_unsettled_mib": [_mib(r[0]) for r in rss_immediate],
            "client_rss_rounds_unsettled_mib": [_mib(r[1]) for r in rss_immediate],
            "idle_s": wall, "server_idle_cpu_pct": idle[0], "client_idle_cpu_pct": idle[1],
        }


def _mib(kib: int | None) -> float | None:
    return kib / 1024 if kib else None


# --- 7. WAN -----------------------------------------------------------------------------------------

WAN_SINK_PORT = 19040


def wan(impl: Implementation, workdir: Path, params: Params) -> dict:
    """The server in its own network namespace behind a 25 ms each way, 100 Mbit/s link: a burst of
    100 KiB files to a file destination (only the bus and requests cross the link), then to an
    SFTP destination whose sshd sits on the client's side (the file data crosses it too)."""
    size, n = params.wan_kib * 1024, params.wan_files
    remote = Namespace()
    link = Link(remote)
    try:
        limit_s = link.measure_limit(WAN_SINK_PORT, n * size)
        result: dict = {"files": n, "kib": params.wan_kib, "link_mib_s": n * size / limit_s / MIB,
                        "rtt_ms": 2000 * link.delay}
        link.expose(SERVER_PUB_PORT, into_remote=True)
        link.expose(REQUEST_PORT, into_remote=True)
        deadline = time.monotonic() + params.budget
        with Setup(impl, workdir / "file", server_wrap=remote.wrap) as setup:
            setup.start()
            file = _burst(setup, n, size, "wanfile", params=params, deadline=deadline)
        result.update({f"file_{k}": v for k, v in file.items()})
        sshd = _start_sshd(workdir / "sshd")
        try:
            link.expose(sshd.port, into_remote=False)
            dest = workdir / "sftp-out"
            dest.mkdir(parents=True, exist_ok=True)
            with Setup(impl, workdir / "sftp", dest_dir=dest, transfer_req_timeout=60, server_wrap=remote.wrap,
                       **_sftp_setup(sshd, workdir, dest)) as setup:
                setup.start()
                logins = sshd.login_count()
                over_sftp = _burst(setup, n, size, "wansftp", params=params, deadline=time.monotonic() + params.budget)
                over_sftp["logins"] = sshd.login_count() - logins
        finally:
            sshd.stop()
        result.update({f"sftp_{k}": v for k, v in over_sftp.items()})
        if over_sftp.get("elapsed_s"):
            result["sftp_link_share"] = (over_sftp["delivered"] * size / over_sftp["elapsed_s"]) / (n * size / limit_s)
        return result
    finally:
        link.close()
        remote.close()


# --- 8. MQTT ----------------------------------------------------------------------------------------

def mqtt_latency(impl: Implementation, workdir: Path, params: Params) -> dict:
    """The latency files over a local Mosquitto (ours only): :mod:`benchmarks.mqtt_roles`."""
    from benchmarks import mqtt_roles

    return mqtt_roles.latency_scenario(impl, workdir, params)


def mqtt_burst(impl: Implementation, workdir: Path, params: Params) -> dict:
    """The burst over ZeroMQ and a local Mosquitto, 1 client and groups (ours only): :mod:`benchmarks.mqtt_roles`."""
    from benchmarks import mqtt_roles

    return mqtt_roles.burst_scenario(impl, workdir, params)


SCENARIOS: dict[str, Callable[[Implementation, Path, Params], dict]] = {
    "latency": latency, "burst": burst, "big": big, "sftp": sftp, "fanin": fanin, "resources": resources,
    "wan": wan, "mqtt_latency": mqtt_latency, "mqtt_burst": mqtt_burst,
}

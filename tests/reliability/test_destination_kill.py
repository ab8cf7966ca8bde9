"""kill -9 of the destination server in the middle of a stream of 500 files pushed by our server
at our client's request: an FTP server (pyftpdlib) and an S3 server (moto), each a subprocess
SIGKILLed after 100 deliveries and restarted on the same port about a second later (the SFTP
case is ``test_client_kill9.py``). The client (journal on, short retry delays) keeps retrying
the files that failed while the destination was away; after the restart every file arrives
exactly once (the client's published ``file`` messages and ``Delivered`` lines, the server's
``Pushed`` lines) and none is partial (checksums of what the destination holds).

moto keeps its state in memory and has no persistence option (``moto_server --help``), but it
can record every request it receives to a file (``MOTO_ENABLE_RECORDING``) and replay them
(``/moto-api/recorder/replay-recording``). The restarted moto replays the killed one's recording,
so the objects it had stored come back and all 500 objects are checked, not only those
delivered after the restart. A request is recorded before moto handles it: one the kill cut off
may come back with the replay although the server saw it fail; the server then pushes that
file again to the same key with the same content, which the exactly-once checks (counted on
our side, from messages and logs) do not mistake for a second delivery. A last line torn by the
kill is dropped before the replay.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from support.bus import BusRecorder, free_port, wait_until
from support.client import client_section
from support.files import write_file
from support.ini import write_ini
from support.processes import ClientProcess, LoggedProcess
from support.server import server_section

pytestmark = pytest.mark.timeout(120)

FILES = 500
KILL_AFTER = 100
"""Deliveries before the destination is killed."""
SEED = 77
HOST = "127.0.0.1"
FTP_USER, FTP_PASSWORD = "mover", "ftp-pw-77"
BUCKET = "trollmoves-kill"


def contents() -> dict[str, bytes]:
    rng = random.Random(SEED)
    # small: a moto recording line holds the body in base64 and must stay one write (see MotoProcess)
    return {f"f{i:03d}.dat": rng.randbytes(rng.randint(50, 2000)) for i in range(FILES)}


class DestinationProcess(LoggedProcess):
    """A destination server as a subprocess on a fixed port, SIGKILLed and restarted by the test."""

    def __init__(self, name: str, argv: list[str], port: int, log_path: Path, ready: Callable[[], bool],
                 env: dict[str, str] | None = None) -> None:
        self.name, self.port, self.ready = name, port, ready
        super().__init__(argv, log_path, env=env)

    def start(self) -> None:
        super().start()
        self.wait_ready(self.ready, timeout=30, interval=0.05)


def ftp_ready(port: int) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            with socket.create_connection((HOST, port), timeout=1) as sock:
                return sock.recv(64).startswith(b"220")
        except OSError:
            return False
    return ready


def http_ready(port: int) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # it answers
        except OSError:
            return False
    return ready


def start_ftpd(root: Path, port: int, log_path: Path) -> DestinationProcess:
    argv = [sys.executable, "-m", "pyftpdlib", "-i", HOST, "-p", str(port), "-u", FTP_USER, "-P", FTP_PASSWORD,
            "-d", str(root), "-w"]
    return DestinationProcess("pyftpdlib", argv, port, log_path, ftp_ready(port))


def start_moto(port: int, recording: Path, log_path: Path) -> DestinationProcess:
    moto = Path(sys.executable).with_name("moto_server")
    if not moto.exists():
        pytest.skip("moto_server is not installed (moto[server])")
    env = {"MOTO_ENABLE_RECORDING": "True", "MOTO_RECORDER_FILEPATH": str(recording)}
    return DestinationProcess("moto_server", [str(moto), "-H", HOST, "-p", str(port)], port, log_path,
                              http_ready(port), env=env)


def drop_torn_lines(recording: Path) -> int:
    """Keep the recorded requests that parse; return how many lines were dropped (a write cut by the kill)."""
    kept, dropped = [], 0
    for line in recording.read_text().splitlines():
        try:
            json.loads(line)
        except ValueError:
            dropped += 1
        else:
            kept.append(line + "\n")
    recording.write_text("".join(kept))
    return dropped


def moto_post(port: int, path: str) -> None:
    request = urllib.request.Request(f"http://{HOST}:{port}{path}", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=120) as reply:
        reply.read()


def client_results(recorder: BusRecorder) -> Counter:
    """uids of the ``file`` messages our client published (its results carry ``origin``)."""
    return Counter(str(m.data["uid"]) for m in list(recorder.messages)
                   if m.type == "file" and isinstance(m.data, dict) and "origin" in m.data
                   and str(m.data.get("uid", "")).startswith("f"))


def stream_with_destination_kill(tmp_path: Path, origin: Path, server_process: Callable, destination: str,
                                 dest: DestinationProcess, server_params: dict[str, object],
                                 client_extra: dict[str, object],
                                 while_down: Callable[[], None] = lambda: None,
                                 after_restart: Callable[[], None] = lambda: None) -> dict[str, object]:
    """Stream FILES files through our server and client to ``destination``; SIGKILL ``dest`` after
    KILL_AFTER deliveries, restart it, wait for every file. Returns the counts the tests assert on."""
    request_port = free_port()
    server = server_process(write_ini(tmp_path / "server.ini", {"srv": server_section(origin, request_port,
                                                                                       **server_params)}))
    client_port = free_port()
    config = write_ini(tmp_path / "client.ini", {"test": client_section(
        f"{HOST}:{server.pub_port}", destination, client_port, state_directory=tmp_path / "state",
        transfer_req_timeout=10, max_requests_in_flight=8, retry_delay=0.2, max_retry_delay=1, give_up_after=60,
        **client_extra)})
    client = ClientProcess(config, tmp_path / "client.log")
    recorder = BusRecorder([f"tcp://{HOST}:{client_port}"], ["/"])  # results and failures
    files = contents()
    stats: dict[str, object] = {"files": FILES}
    try:
        def probe() -> bool:  # the whole path works, and the recorder hears the client
            uid = f"probe{time.monotonic_ns()}.dat"
            write_file(origin, uid, b"probe")
            return bool(recorder.wait_for(lambda m: m.type == "file" and isinstance(m.data, dict)
                                            and m.data.get("uid") == uid, timeout=1.0))

        assert wait_until(probe, timeout=30, interval=0), client.log()[-3000:]

        def produce() -> None:  # paced, so that the kill lands while files are still coming
            for name, content in files.items():
                write_file(origin, name, content)
                time.sleep(0.005)

        producer = threading.Thread(target=produce)
        started = time.monotonic()
        producer.start()
        assert wait_until(lambda: sum(client_results(recorder).values()) >= KILL_AFTER, timeout=30), \
            client.log()[-3000:]
        assert dest.kill() == -signal.SIGKILL
        killed = time.monotonic()
        stats["delivered_at_kill"] = sum(client_results(recorder).values())
        # the outage is felt: pushes fail and the client schedules retries
        assert wait_until(lambda: "retrying in" in client.log(), timeout=20), client.log()[-3000:]
        while_down()
        time.sleep(1.0)
        dest.start()
        after_restart()
        stats["kill_at_s"], stats["down_s"] = round(killed - started, 2), round(time.monotonic() - killed, 2)
        producer.join(30)
        assert not producer.is_alive()
        assert wait_until(lambda: len(client_results(recorder)) >= FILES, timeout=45), \
            f"{len(client_results(recorder))} delivered\n{client.log()[-3000:]}"
        stats["seconds"] = round(time.monotonic() - started, 2)
        time.sleep(1.0)  # late duplicates would show up now
    finally:
        recorder.close()
        client.stop()

    results, lines = client_results(recorder), client.delivered()
    pushes = Counter(re.findall(r"Pushed \S+/(f\d+\.dat) to", server.log()))
    failures = [m for m in list(recorder.messages) if m.subject.startswith("/trollmoves/client/failed")]
    stats.update(delivered=len(results), lost=FILES - len(results),
                 duplicated_messages=sum(n - 1 for n in results.values() if n > 1),
                 duplicated_deliveries=sum(n - 1 for n in lines.values() if n > 1),
                 pushed_twice=sum(1 for n in pushes.values() if n > 1),
                 files_in_push_failed_lines=len(set(re.findall(r"push failed: put \S+/(f\d+\.dat) ", server.log()))),
                 retry_lines=client.log().count("retrying in"),  # rate-limited: not every retry is logged
                 given_up=len(failures) + client.log().count("; giving up: "))
    stats["results"], stats["lines"], stats["pushes"], stats["contents"] = results, lines, pushes, files
    return stats


def check_exactly_once(stats: dict[str, object], tmp_path: Path, name: str) -> dict[str, bytes]:
    files: dict[str, bytes] = stats.pop("contents")  # type: ignore[assignment]
    results: Counter = stats.pop("results")  # type: ignore[assignment]
    lines: Counter = stats.pop("lines")  # type: ignore[assignment]
    pushes: Counter = stats.pop("pushes")  # type: ignore[assignment]
    (tmp_path / f"{name}-summary.json").write_text(json.dumps(stats))
    print(json.dumps(stats))
    assert KILL_AFTER <= stats["delivered_at_kill"] < FILES  # the kill came mid-stream
    assert stats["files_in_push_failed_lines"] > 0 and stats["retry_lines"] > 0  # the outage was felt and retried
    assert set(results) == set(files)  # none lost
    assert [u for u, n in results.items() if n > 1] == []  # one result message per file
    assert set(lines) == set(files) and [u for u, n in lines.items() if n > 1] == []
    assert set(pushes) == set(files) and [u for u, n in pushes.items() if n > 1] == []  # pushed once each
    assert stats["given_up"] == 0
    return files


def test_ftp_destination_kill_9_mid_stream_every_file_once(tmp_path, dirs, server_process):
    origin, _ = dirs
    root = tmp_path / "ftp-root"
    (root / "out").mkdir(parents=True)
    port = free_port()
    ftpd = start_ftpd(root, port, tmp_path / "ftpd.log")
    try:
        stats = stream_with_destination_kill(
            tmp_path, origin, server_process, f"ftp://{HOST}:{port}/out/", ftpd,
            {"connection_parameters__retries": 2, "connection_parameters__retry_delay": 0.1,
             "connection_parameters__timeout": 5},
            {"login": f"{FTP_USER}:{FTP_PASSWORD}"})
    finally:
        ftpd.stop()
    files = check_exactly_once(stats, tmp_path, "ftp-kill9")
    out = root / "out"
    for name, content in files.items():  # none partial, none wrong
        assert hashlib.sha256((out / name).read_bytes()).digest() == hashlib.sha256(content).digest(), name
    # an upload cut by the kill leaves only a hidden temporary file, never a final name
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith((".", "probe"))) == sorted(files)
    assert FTP_PASSWORD not in (tmp_path / "server.log").read_text()


def test_s3_destination_kill_9_mid_stream_every_file_once(tmp_path, dirs, server_process):
    boto3 = pytest.importorskip("boto3")
    origin, _ = dirs
    port = free_port()
    recording = tmp_path / "moto-recording.jsonl"
    moto = start_moto(port, recording, tmp_path / "moto.log")
    endpoint = f"http://{HOST}:{port}"
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                      region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    replay: dict[str, object] = {}

    def while_down() -> None:
        replay["recorded_requests"] = len(recording.read_text().splitlines())
        replay["torn_lines_dropped"] = drop_torn_lines(recording)

    def after_restart() -> None:
        # the replay's own requests are not recorded again; the bucket and stored objects come back
        moto_post(port, "/moto-api/recorder/replay-recording")

    try:
        stats = stream_with_destination_kill(
            tmp_path, origin, server_process, f"s3://{BUCKET}/out/", moto,
            {"connection_parameters__endpoint_url": endpoint, "connection_parameters__key": "testing",
             "connection_parameters__secret": "testing", "connection_parameters__retries": 2,
             "connection_parameters__retry_delay": 0.1,
             "connection_parameters__config_kwargs__retries__max_attempts": 1},
            {}, while_down=while_down, after_restart=after_restart)
        stats.update(replay)
        assert replay["recorded_requests"] > stats["delivered_at_kill"]  # the recording covers the first run
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="out/")
                for o in page.get("Contents", [])]
        stored = {key.removeprefix("out/"): s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
                  for key in keys if not key.startswith("out/probe")}
        uploads = s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
    finally:
        moto.stop()
    files = check_exactly_once(stats, tmp_path, "s3-kill9")
    assert sorted(stored) == sorted(files)
    for name, content in files.items():  # none partial, none wrong
        assert hashlib.sha256(stored[name]).digest() == hashlib.sha256(content).digest(), name
    assert uploads == []

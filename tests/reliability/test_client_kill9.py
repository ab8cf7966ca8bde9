"""kill -9 of our client in the middle of a stream of 500 files from our server to an SFTP
destination, with the destination (a real sshd) down while the client restarts: after the restart
every file arrives exactly once, none partial (checksums), and the journal kept every file the
client had been told about."""

from __future__ import annotations

import hashlib
import json
import random
import re
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from support.bus import free_port, wait_until
from support.client import client_section
from support.files import write_file
from support.ini import write_ini
from support.processes import ClientProcess
from support.server import server_section
from trollmoves_roles.client.state import ChainState
from trollmoves_roles.state.journal import journal_path

testing = pytest.importorskip("trollmoves_ssh.testing")
pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(not testing.sshd_available(), reason="OpenSSH sshd is not installed")]

FILES = 500
SEED = 500


def contents() -> dict[str, bytes]:
    rng = random.Random(SEED)
    return {f"f{i:03d}.dat": rng.randbytes(rng.randint(50, 4000)) for i in range(FILES)}


def journal_counts(path: Path) -> tuple[int, int]:
    """(pending, delivered) files in the client's journal, read while it runs (WAL readers never block)."""
    state = ChainState.open(path, "test")
    try:
        return len(state.pending()), len(state.delivered_uids())
    finally:
        state.close()


def test_client_kill_9_mid_stream_with_destination_down_every_file_once(tmp_path, dirs, server_process):
    origin, _ = dirs
    out = tmp_path / "sftp-out"
    out.mkdir()
    sshd = testing.start_sshd(tmp_path / "sshd")
    params = {f"connection_parameters__{k}": v for k, v in sshd.mover_params(retries="2", retry_delay="0.1").items()}
    request_port = free_port()
    server = server_process(write_ini(tmp_path / "server.ini", {"srv": server_section(origin, request_port, **params)}))
    state = tmp_path / "state"
    config = write_ini(tmp_path / "client.ini", {"test": client_section(
        f"127.0.0.1:{server.pub_port}", f"sftp://127.0.0.1:{sshd.port}{out}/", free_port(), login=sshd.user,
        state_directory=state, transfer_req_timeout=10, max_requests_in_flight=8, retry_delay=0.2, max_retry_delay=1,
        give_up_after=90)})
    client = ClientProcess(config, tmp_path / "client.log")
    journal = journal_path(state, config, "client")
    files = contents()
    stats: dict[str, object] = {"files": FILES}
    try:
        def probe() -> bool:
            write_file(origin, f"probe{time.monotonic_ns()}.dat", b"probe")
            return wait_until(lambda: "Delivered probe" in client.log(), timeout=1.0)

        assert wait_until(probe, timeout=30, interval=0), client.log()[-3000:]
        started = time.monotonic()
        for name, content in files.items():
            write_file(origin, name, content)
        # every announcement reached the client and its journal before it dies: mid-stream of deliveries
        assert wait_until(lambda: sum(journal_counts(journal)) >= FILES + 1, timeout=30), journal_counts(journal)
        assert wait_until(lambda: sum(client.delivered().values()) >= 100, timeout=30)
        assert client.kill() == -signal.SIGKILL
        stats["delivered_before_kill"] = sum(client.delivered().values())
        stats["journal_at_kill_pending_delivered"] = journal_counts(journal)
        sshd.stop()  # the destination goes down too
        client.start()  # resumes from the journal; pushes fail until sshd is back
        assert wait_until(lambda: "retrying in" in client.log(), timeout=20), client.log()[-3000:]
        time.sleep(1.0)
        sshd.start()
        assert wait_until(lambda: len(set(client.delivered()) | client.republished()) >= FILES, timeout=60), \
            f"{len(client.delivered())} delivered\n{client.log()[-3000:]}"
        stats["seconds"] = round(time.monotonic() - started, 2)
        time.sleep(1.0)  # late duplicates would show up now
    finally:
        client.stop()
        sshd.stop()

    delivered, republished = client.delivered(), client.republished()
    pushes = Counter(re.findall(r"Pushed \S+/(f\d+\.dat) to", server.log()))
    stats.update(delivered=len(set(delivered) | republished), lost=FILES - len(set(delivered) | republished),
                 duplicated=sum(n - 1 for n in delivered.values() if n > 1), republished=len(republished),
                 result_published_twice=len(republished & set(delivered)),
                 transferred_twice_by_server=sum(1 for n in pushes.values() if n > 1),
                 resumed=re.findall(r"Resuming (\d+) file", client.log()),
                 retry_lines=client.log().count("retrying in"))
    (tmp_path / "client-kill9-summary.json").write_text(json.dumps(stats))
    print(json.dumps(stats))
    assert set(delivered) | republished == set(files)
    assert [name for name, n in delivered.items() if n > 1] == []  # fetched and delivered exactly once
    # a result published again after the restart: only files the killed run was finishing
    assert len(republished) <= 8
    for name, content in files.items():  # none partial, none wrong
        assert hashlib.sha256((out / name).read_bytes()).digest() == hashlib.sha256(content).digest(), name
    # a transfer cut by the outage may leave a hidden temporary file, never a file under a final name
    assert all(p.name.startswith(".") for p in out.iterdir() if not p.name.startswith(("f", "probe")))
    assert max(pushes.values()) <= 2  # only files in flight at the kill may have been transferred again

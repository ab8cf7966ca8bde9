"""Catching up after a restart with an upstream 0.19 server: it cannot list its announcements, so
our client says so once, loses what was announced while it was down (as upstream's client does)
and keeps delivering what comes next. Our ``info`` request's extra keys do not confuse it."""

from __future__ import annotations

import time

import pytest
from posttroll.message import Message
from support.bus import free_port, wait_until
from support.client import UpstreamServer, client_section
from support.files import write_file
from support.ini import write_ini
from support.processes import ClientProcess
from support.reqrep import request
from support.upstream import upstream_process  # noqa: F401 - fixture

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

NOTICE = "does not list its announcements (an upstream server?): files it announced while we were not listening " \
         "are lost"


def test_restarted_client_says_once_that_an_upstream_server_cannot_list(upstream_process, tmp_path):  # noqa: F811
    server = UpstreamServer(upstream_process, tmp_path / "srv")
    out = tmp_path / "out"
    config = write_ini(tmp_path / "client.ini", {"test": client_section(
        server.provider, f"{out}/", free_port(), state_directory=tmp_path / "state", reconcile_interval=1)})
    client = ClientProcess(config, tmp_path / "client.log")
    try:
        def probe() -> bool:
            write_file(server.inbox, f"probe{time.monotonic_ns()}.dat", b"probe")
            return wait_until(lambda: "Delivered probe" in client.run_log(), timeout=1.0)

        assert wait_until(probe, timeout=30, interval=0), client.log()[-3000:]
        assert client.stop() == 0
        missed = [f"f{i}.dat" for i in range(5)]
        for name in missed:
            write_file(server.inbox, name, b"announced while the client was down")

        def listed() -> set[str]:
            reply = request(server.request_address, Message("/test/data", "info", {"max_count": 100}))
            return {f.rsplit("/", 1)[-1] for f in reply.data["files"]} if reply is not None else set()

        assert wait_until(lambda: set(missed) <= listed(), timeout=20)
        client.start()
        assert wait_until(lambda: NOTICE in client.run_log(), timeout=20), client.run_log()[-3000:]
        write_file(server.inbox, "after.dat", b"announced after the restart")
        assert wait_until(lambda: "Delivered after.dat" in client.run_log(), timeout=20), client.run_log()[-3000:]
        time.sleep(2.5)  # more reconciliation rounds: the notice is not repeated
        log = client.run_log()
        assert log.count(NOTICE) == 1
        assert not any(f"Delivered {name}" in log for name in missed)  # lost, as with upstream's client
        assert (out / "after.dat").read_bytes() == b"announced after the restart"
        assert "Traceback" not in log and "Traceback" not in server.process.log()
    finally:
        client.stop()

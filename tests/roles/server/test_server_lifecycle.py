"""Stopping and reloading: signals, config changes on disk, pushes in flight."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from posttroll.message import Message
from support.bus import free_port, wait_until
from support.files import put_file
from support.ini import write_ini
from support.metrics import metrics
from support.reqrep import reply as request
from support.server import TOPIC, chain
from trollmoves_roles.server.service import Server, ServerOptions
from trollmoves_roles.transfers.movers import MoverCache

from trollmoves_core.exceptions import ConfigError
from trollmoves_core.file_mover import FileMover
from trollmoves_core.mover import Mover
from trollmoves_core.plugins import default_host

TROLLMOVES = str(Path(sys.executable).parent / "trollmoves")
NAME = "NOAA-19_202401020304.dat"


class Gate(FileMover):
    """A real file mover that holds each transfer until released."""

    def __init__(self, params=None):
        super().__init__({"mode": "copy"})
        self.open, self.started = threading.Event(), threading.Event()

    def _put_verified(self, local_path, target, progress, expected):  # every put of the file mover
        self.started.set()
        assert self.open.wait(10)
        super()._put_verified(local_path, target, progress, expected)


class OnlyMover(MoverCache):
    """Every push gets ``mover``."""

    def __init__(self, mover: Mover) -> None:
        super().__init__(default_host())
        self.mover = mover

    def get(self, uri: str, params: Mapping[str, Any] | None = None, *, params_key: str | None = None) -> Mover:
        return self.mover


def pong(address: str, timeout: float = 10.0) -> Message:
    return request(address, Message(TOPIC, "ping"), timeout)


def start_process(tmp_path: Path, config: Path) -> subprocess.Popen:
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - owned by the process for its life
    return subprocess.Popen([TROLLMOVES, "server", "-p", str(free_port()), "--bind", "127.0.0.1",
                             "--disable-backlog", str(config)], stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture
def process():
    started = []

    def track(proc):
        started.append(proc)
        return proc

    yield track
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_sigterm_stops_with_status_0(tmp_path, dirs, process):
    origin, _ = dirs
    port = free_port()
    config = write_ini(tmp_path / "s.ini", chain(origin, port))
    proc = process(start_process(tmp_path, config))
    assert wait_until(lambda: _answers(f"127.0.0.1:{port}"), timeout=20), (tmp_path / "server.log").read_text()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0, (tmp_path / "server.log").read_text()
    assert "Server stopped" in (tmp_path / "server.log").read_text()


def test_sighup_reloads_the_config(tmp_path, dirs, process):
    origin, _ = dirs
    port, new_port = free_port(), free_port()
    config = write_ini(tmp_path / "s.ini", chain(origin, port))
    proc = process(start_process(tmp_path, config))
    assert wait_until(lambda: _answers(f"127.0.0.1:{port}"), timeout=20)
    write_ini(config, chain(origin, new_port, station="st2"))
    proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: _answers(f"127.0.0.1:{new_port}"), timeout=20), (tmp_path / "server.log").read_text()
    assert pong(f"127.0.0.1:{new_port}").data == {"station": "st2"}
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    assert proc.wait(20) == 0


def test_config_change_on_disk_reloads(serve, dirs, tmp_path):
    origin, _ = dirs
    port = free_port()
    running = serve(chain(origin, port), watch_config=True)
    other = tmp_path / "in2"
    other.mkdir()
    sections = {**chain(origin, port), "second": {"origin": f"{other}/{{name}}.nc", "topic": "/test/two",
                                                  "request_port": free_port(), "request_address": "127.0.0.1"}}
    write_ini(running.config, sections)
    assert wait_until(lambda: "second" in running.server.chains, timeout=20)
    put_file(other / "x.nc")
    assert running.announced("x.nc").subject == "/test/two"
    assert pong(f"127.0.0.1:{port}").type == "pong"  # the unchanged chain kept running


def test_broken_new_config_is_rejected_and_the_old_one_kept(serve, dirs, caplog):
    origin, _ = dirs
    port = free_port()
    running = serve(chain(origin, port))
    running.config.write_text("[chain]\norigin = /d/{name}\ntopic = /t\nrequest_port = nine\n")
    assert running.server.reload() is False
    assert "Config reload rejected" in caplog.text and "request_port" in caplog.text
    assert pong(f"127.0.0.1:{port}").data == {"station": "st1"}
    put_file(origin / NAME)
    assert running.announced(NAME).data["uid"] == NAME


def test_reload_to_an_empty_config_is_rejected(serve, dirs, caplog):
    origin, _ = dirs
    port = free_port()
    running = serve(chain(origin, port))
    running.config.write_text("")
    assert running.server.reload() is False
    assert "defines no chain" in caplog.text
    assert pong(f"127.0.0.1:{port}").type == "pong"


def test_reload_lets_a_running_push_finish(serve, dirs):
    origin, out = dirs
    port = free_port()
    gate = Gate()
    running = serve(chain(origin, port), movers=OnlyMover(gate))
    message = running.announced(put_file(origin / NAME).name)
    with ThreadPoolExecutor(2) as pool:
        reply = pool.submit(request, f"127.0.0.1:{port}",
                            Message(TOPIC, "push", {**message.data, "destination": f"file://{out}/"}), 20)
        assert gate.started.wait(10)
        write_ini(running.config, chain(origin, port, station="st2"))
        reloading = pool.submit(running.server.reload)
        gate.open.set()
        assert reply.result(20).type == "file"
        assert reloading.result(20) is True
    assert (out / NAME).read_bytes() == b"payload\n"
    assert pong(f"127.0.0.1:{port}").data == {"station": "st2"}
    # files announced before the reload are still served
    reply = request(f"127.0.0.1:{port}", Message(TOPIC, "push", {**message.data, "destination": f"file://{out}/2/"}))
    assert reply.type == "file"


def test_stop_finishes_running_pushes(serve, dirs):
    origin, out = dirs
    port = free_port()
    gate = Gate()
    running = serve(chain(origin, port), movers=OnlyMover(gate))
    message = running.announced(put_file(origin / NAME).name)
    with ThreadPoolExecutor(2) as pool:
        reply = pool.submit(request, f"127.0.0.1:{port}",
                            Message(TOPIC, "push", {**message.data, "destination": f"file://{out}/"}), 20)
        assert gate.started.wait(10)
        running.server.request_stop()
        closing = pool.submit(running.server.close)
        gate.open.set()
        assert reply.result(20).type == "file"
        closing.result(20)
    assert (out / NAME).read_bytes() == b"payload\n"


def _answers(address: str) -> bool:
    try:
        return pong(address, timeout=0.5).type == "pong"
    except TimeoutError:
        return False


def test_sections_naming_different_buses_leave_nothing_open(serve, dirs, tmp_path):
    origin, _ = dirs
    metrics_port, state = free_port(), str(tmp_path / "state")
    sections = {"a": {**chain(origin, free_port())["chain"], "bus": "mqtt://127.0.0.1:1/a"},
                "b": {**chain(origin, free_port())["chain"], "bus": "mqtt://127.0.0.1:1/b"}}
    options = ServerOptions(port=free_port(), bind="127.0.0.1", metrics_port=metrics_port, state_directory=state)
    with pytest.raises(ConfigError, match=r"different buses \(\[a\], \[b\]\)"):
        Server(write_ini(tmp_path / "bad.ini", sections), options, host=default_host())
    # the metrics port, the journal and the process's history were not kept open
    running = serve(chain(origin, free_port()), metrics_port=metrics_port, state_directory=state)
    assert running.server.history is not None


def test_a_chain_removed_at_a_reload_leaves_no_health_gauges(serve, dirs, tmp_path):
    origin, _ = dirs
    other = tmp_path / "in2"
    other.mkdir()
    second = {"origin": f"{other}/{{name}}.nc", "topic": "/test/two", "request_port": free_port(),
              "request_address": "127.0.0.1"}
    running = serve({**chain(origin, free_port()), "second": second}, metrics_port=0, watch_config=True)
    url = running.server.metrics_server.url
    gauges = ("trollmoves_chain_pending", "trollmoves_chain_progress_age_seconds")
    assert all(f'{g}{{chain="second"}}' in metrics(url) for g in gauges)
    write_ini(running.config, chain(origin, running.server.chains["chain"].config.request_port))
    assert wait_until(lambda: set(running.server.chains) == {"chain"}, timeout=20)  # reloaded by the serve loop
    assert wait_until(lambda: not any(f'{g}{{chain="second"}}' in metrics(url) for g in gauges))
    after = metrics(url)
    assert not any(f'{g}{{chain="second"}}' in after for g in gauges)
    assert all(f'{g}{{chain="chain"}}' in after for g in gauges)

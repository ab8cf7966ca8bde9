"""The client's metrics against scripted servers: requests, deliveries, give-ups, bad messages,
the age of each provider's last heartbeat; and the version of what it sends."""

from __future__ import annotations

import pytest
from posttroll.message import Message
from support.bus import BusRecorder, free_port, wait_until
from support.client import InProcessClient, client_section, prime, results
from support.ini import write_ini
from support.scripted import Announcer, ScriptedServer, serve_everything
from trollmoves_roles.client.process import ClientProcess
from trollmoves_roles.protocol.messages import MESSAGE_VERSION

from trollmoves_core.exceptions import ConfigError
from trollmoves_core.plugins import default_host

pytestmark = pytest.mark.timeout(60)


def test_counts_peers_and_versions(tmp_path):
    server, announcer = ScriptedServer(), Announcer()
    port = free_port()
    config = write_ini(tmp_path / "client.ini", {"test": client_section(
        announcer.provider, f"{tmp_path}/out/", port, give_up_after=0, transfer_req_timeout=0.5,
        request_attempts=1)})
    recorder = BusRecorder([f"tcp://127.0.0.1:{port}"], ["/test/data", "/trollmoves/client/failed"])
    client = InProcessClient(config)
    metrics = client.process.metrics
    label = {"chain": "test"}
    try:
        prime(lambda name: announcer.announce(f"{name}.dat", server), recorder)
        before = {name: getattr(metrics, name).value(**label) for name in ("delivered", "requested", "announced")}
        durations = metrics.duration.count(**label)
        server.handler = lambda m: (Message(m.subject, "err", "refused") if m.type == "push"
                                    and m.data["uid"] == "bad.dat" else serve_everything(m))
        announcer.announce("good.dat", server)
        announcer.announce("bad.dat", server)
        announcer.publisher.send(Message("/test/data", "file", {"uid": "no-uri.dat",
                                                                "request_address": server.address}))
        assert recorder.wait_for(lambda m: m.type == "err", timeout=20)
        assert wait_until(lambda: results(recorder, "good"))
        assert wait_until(lambda: metrics.bad_input.value(**label) == 1)
        assert metrics.delivered.value(**label) == before["delivered"] + 1
        assert metrics.requested.value(**label) == before["requested"] + 2  # the refused push counts too
        assert metrics.failed.value(**label) == 1
        assert metrics.duration.count(**label) == durations + 1
        assert metrics.bytes.value(**label) == 0  # nothing really arrived: the scripted server writes no file
        assert wait_until(lambda: metrics.announced.value(**label) == before["announced"] + 1)
        assert 'trollmoves_queue_length 0' in metrics.render()

        provider = announcer.provider.removeprefix("tcp://")
        assert f'peer="{provider}"' not in metrics.render()
        beat = Message("/heartbeat/move_it_server", "beat", {"min_interval": 30})
        assert wait_until(lambda: (announcer.send(beat), f'peer="{provider}"' in metrics.render())[1])
    finally:
        client.stop()
        recorder.close()
        announcer.stop()
        server.stop()
    assert {m.version for m in server.requests} == {MESSAGE_VERSION}
    assert {m.version for m in recorder.messages} == {MESSAGE_VERSION}


def test_sections_naming_different_buses_leave_the_metrics_port_free(tmp_path):
    metrics_port = free_port()
    sections = {name: client_section("127.0.0.1:1", tmp_path / "out", free_port(), bus=f"mqtt://127.0.0.1:1/{name}")
                for name in ("a", "b")}
    with pytest.raises(ConfigError, match=r"different buses \(\[a\], \[b\]\)"):
        ClientProcess(write_ini(tmp_path / "bad.ini", sections), host=default_host(), metrics_port=metrics_port)
    good = ClientProcess(write_ini(tmp_path / "good.ini", {"a": client_section("127.0.0.1:1", tmp_path / "out",
                                                                               free_port())}),
                         host=default_host(), metrics_port=metrics_port)
    good.metrics_endpoint.stop()

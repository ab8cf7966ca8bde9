"""The client process: CLI exit codes, signals, reloads, publishers."""

from __future__ import annotations

import logging
import signal
import socket
import subprocess

import pytest
from support.bus import BusRecorder, free_port, wait_until
from support.client import InProcessClient, client_section, prime, results
from support.ini import write_ini
from support.processes import TROLLMOVES
from support.processes import ClientProcess as ClientSubprocess
from support.scripted import Announcer, ScriptedServer
from trollmoves_roles.client.chain import UidCache

pytestmark = pytest.mark.timeout(60)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(TROLLMOVES), *args], check=False, capture_output=True, text=True, timeout=30)


def test_bad_config_exits_2_with_one_line_naming_file_section_key(tmp_path):
    config = write_ini(tmp_path / "client.ini", {"chain1": {"providers": "h:1", "destination": "/o/",
                                                            "topic": "/t", "transfer_req_timeout": "soon"}})
    done = run_cli("client", str(config))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [f"trollmoves: error: {config}: [chain1] transfer_req_timeout: expected a number, got 'soon'"]


def test_missing_config_exits_2(tmp_path):
    done = run_cli("client", str(tmp_path / "missing.ini"))
    assert done.returncode == 2 and "missing.ini" in done.stderr


def test_sigterm_stops_cleanly_and_sighup_reloads(tmp_path):
    server, announcer = ScriptedServer(), Announcer()
    port = free_port()
    section = client_section(announcer.provider, f"{tmp_path}/out/", port)
    config = write_ini(tmp_path / "client.ini", {"test": section})
    client = ClientSubprocess(config, tmp_path / "client.log")
    recorder = BusRecorder([f"tcp://127.0.0.1:{port}"], ["/test/data"])
    try:
        prime(lambda name: announcer.announce(f"{name}.dat", server), recorder)
        write_ini(config, {"test": dict(section, destination=f"{tmp_path}/new/")})
        client.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "Chain changed; restarting it" in client.log())
        prime(lambda name: announcer.announce(f"{name}.dat", server), recorder)
        client.proc.send_signal(signal.SIGTERM)
        assert client.proc.wait(15) == 0
    finally:
        client.stop()
        recorder.close()
        announcer.stop()
        server.stop()
    uris = [m.data["uri"] for m in results(recorder, "probe")]
    assert uris[0].startswith(f"{tmp_path}/out/") and uris[-1].startswith(f"{tmp_path}/new/")
    assert "Received SIGTERM; stopping" in client.log()


def test_config_file_change_restarts_only_the_changed_chain_and_keeps_its_cache(tmp_path, caplog):
    server, announcer = ScriptedServer(), Announcer()
    port = free_port()
    sections = {"a": client_section(announcer.provider, f"{tmp_path}/a/", port),
                "b": client_section(announcer.provider, f"{tmp_path}/b/", port)}
    config = write_ini(tmp_path / "client.ini", sections)
    client = InProcessClient(config)
    recorder = BusRecorder([f"tcp://127.0.0.1:{port}"], ["/test/data"])
    try:
        prime(lambda name: announcer.announce(f"{name}.dat", server), recorder)
        announcer.announce("f1.dat", server)
        assert wait_until(lambda: len(results(recorder)) == 2)
        chain_a, chain_b = client.chain("a"), client.chain("b")
        sections["b"] = dict(sections["b"], destination=f"{tmp_path}/b2/")
        sections["c"] = client_section(announcer.provider, f"{tmp_path}/c/", port)
        write_ini(config, sections)
        assert wait_until(lambda: set(client.process.chains) == {"a", "b", "c"} and client.chain("b") is not chain_b)
        assert client.chain("a") is chain_a
        assert "f1.dat" in client.chain("b").cache
        del sections["c"]
        sections["b"]["req_timeout"] = "not a number"
        with caplog.at_level(logging.ERROR):
            write_ini(config, sections)
            assert wait_until(lambda: "Config reload failed" in caplog.text)
        assert set(client.process.chains) == {"a", "b", "c"}  # the bad file changed nothing
    finally:
        client.stop()
        recorder.close()
        announcer.stop()
        server.stop()


def test_publisher_without_nameservers_setting_never_multicasts_and_warns(tmp_path, caplog):
    announcer, port = Announcer(), free_port()
    section = client_section(announcer.provider, f"{tmp_path}/out/", port)
    del section["nameservers"]
    config = write_ini(tmp_path / "client.ini", {"test": section})
    with caplog.at_level(logging.WARNING):
        client = InProcessClient(config)
    try:
        publisher = client.chain("test").publisher
        assert publisher._registration is None and publisher.port == port
        assert "never multicasts" in caplog.text
    finally:
        client.stop()
        announcer.stop()


def test_chains_with_the_same_port_share_a_publisher_and_beat_per_chain(tmp_path):
    announcer, port = Announcer(), free_port()
    config = write_ini(tmp_path / "client.ini", {
        "one": client_section(announcer.provider, f"{tmp_path}/1/", port),
        "two": client_section(announcer.provider, f"{tmp_path}/2/", port)})
    recorder = BusRecorder([f"tcp://127.0.0.1:{port}"], ["/heartbeat/"])
    client = InProcessClient(config)
    try:
        assert client.chain("one").publisher is client.chain("two").publisher
        beats = recorder.wait_for(lambda m: m.type == "beat", count=2, timeout=10)
        assert {m.subject for m in beats} >= {"/heartbeat/move_it_one", "/heartbeat/move_it_two"}
        assert all(m.data == {"min_interval": 30} for m in beats)
    finally:
        client.stop()
        recorder.close()
        announcer.stop()


def test_publish_port_in_use_exits_2_naming_the_key(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = write_ini(tmp_path / "client.ini", {"c1": client_section("127.0.0.1:1", f"{tmp_path}/o/", port)})
        done = run_cli("client", str(config))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [  # no 'Stopping 0 chain(s)' before it
        f"trollmoves: error: {config}: [c1] publish_port: cannot publish on tcp://127.0.0.1:{port}: "
        "Address already in use"]


def test_nameserver_list_registers_with_those_hosts_only(tmp_path):
    port = free_port()
    config = write_ini(tmp_path / "client.ini", {"test": client_section("127.0.0.1:1", f"{tmp_path}/o/", port,
                                                                         nameservers="127.0.0.1")})
    client = InProcessClient(config)
    try:
        publisher = client.chain("test").publisher
        assert publisher._registration is not None and publisher.port == port
    finally:
        client.stop()


def test_uid_cache_is_bounded():
    cache = UidCache(size=3, initial=["a", "b", "c"])
    cache.add("d")
    cache.add("b")
    assert "a" not in cache and all(uid in cache for uid in "bcd") and len(cache) == 3
    cache.add("e")  # adding "b" again did not make it newer: it goes next
    assert "b" not in cache and all(uid in cache for uid in "cde")

"""Reloading the mirror's config: changed sections restart, bad files are refused, others keep running."""

from __future__ import annotations

import pytest
from posttroll.message import Message
from support.bus import BusRecorder, free_port, wait_until
from support.ini import write_ini
from support.mirror import (
    InProcessMirror,
    InternalServer,
    announce_until_mirrored,
    mirror_section,
    request,
    wait_heartbeat,
)

pytestmark = pytest.mark.timeout(120)


def topic_of(running, name: str) -> str | None:
    """The topic of a running section (None while it restarts: it is out of ``chains`` meanwhile)."""
    chain = running.mirror.chains.get(name)
    return None if chain is None else chain.config.topic


def test_reload_restarts_changed_section_keeps_others_refuses_bad_file(announcer, tmp_path):
    internal = InternalServer({"k.dat": b"kilo", "n.dat": b"november"})
    ports = {"a": free_port(), "b": free_port()}
    sections = {name: mirror_section(announcer.provider, port, topic=f"/{name}/data", working_directory=tmp_path)
                for name, port in ports.items()}
    config = write_ini(tmp_path / "mirror.ini", sections)
    running = InProcessMirror(config)
    recorder = BusRecorder([f"tcp://{running.provider}"], ["/"])
    try:
        wait_heartbeat(recorder)
        announce_until_mirrored(lambda: announcer.announce("k.dat", internal), recorder, "k.dat")
        kept = running.mirror.chains["b"]
        config.write_text("[a]\nproviders = broken\n")
        assert not running.mirror.reload()
        assert running.mirror.chains["b"] is kept
        sections["a"]["topic"] = "/a/renamed"
        write_ini(config, sections)
        assert wait_until(lambda: topic_of(running, "a") == "/a/renamed")  # the file watch
        assert running.mirror.chains["b"] is kept
        renamed = announce_until_mirrored(lambda: announcer.announce("n.dat", internal), recorder, "n.dat")

        def topics_of_n() -> set[str]:
            return {m.subject for m in list(recorder.messages) if m.data.get("uid") == "n.dat"}

        # the restarted section may subscribe after the other one re-announced: announce again (each
        # section re-announces a file once)
        wait_until(lambda: (announcer.announce("n.dat", internal), len(topics_of_n()) >= 2)[1], timeout=20,
                   interval=0.2)
        topics = topics_of_n()
        # the restarted section serves on its port again (rebound after the reload)
        reply = request(f"127.0.0.1:{ports['a']}", Message("/a/renamed", "push", {
            "uri": "/in/n.dat", "uid": "n.dat", "destination": f"file://{tmp_path}/out/"}))
    finally:
        running.stop()
        recorder.close()
        internal.stop()
    assert topics == {"/a/renamed", "/b/data"}
    assert renamed.data["request_address"] in (f"127.0.0.1:{ports['a']}", f"127.0.0.1:{ports['b']}")
    assert reply.type == "file", reply
    assert (tmp_path / "out" / "n.dat").read_bytes() == b"november"

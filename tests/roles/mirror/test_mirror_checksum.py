"""The mirror reads each staged copy back against the announced size and checksum: a bad copy is
discarded and never pushed on; the client's failure names expected vs found."""

from __future__ import annotations

import base64
import hashlib
import mmap
import os

import pytest
from support.bus import BusRecorder, free_port
from support.client import InProcessClient, OurServer, client_section
from support.files import write_file
from support.ini import write_ini
from support.mirror import InProcessMirror, mirror_section
from test_mirror_end_to_end import delivered

pytestmark = pytest.mark.timeout(180)


def test_file_changed_after_announcement_is_refused_by_the_mirror(tmp_path):
    server = OurServer(tmp_path / "srv")  # hard links: the internal server reads no data
    request_port, port, out = free_port(), free_port(), tmp_path / "out"
    staging = tmp_path / "staging"
    mirror = InProcessMirror(write_ini(tmp_path / "mirror.ini", {"mirror": mirror_section(
        server.provider, request_port, destination=f"file://{staging}/", remove_delay=0)}))
    client = InProcessClient(write_ini(tmp_path / "client.ini", {"test": client_section(
        mirror.provider, f"{out}/", port, topic="/mirror/data", processing_delay=2, give_up_after=5,
        retry_delay=0.5, max_retry_delay=1)}))
    recorder = BusRecorder([f"tcp://127.0.0.1:{port}"], ["/"])
    announced = BusRecorder([f"tcp://{mirror.provider}"], ["/mirror/data"])
    content = os.urandom(30_000)
    try:
        write_file(server.inbox, "probe.dat", b"probe")
        assert recorder.wait_for(lambda m: m.type == "file" and m.data.get("uid") == "probe.dat", timeout=30)
        path = write_file(server.inbox, "bad.dat", content)
        [message] = announced.wait_for(lambda m: m.data.get("uid") == "bad.dat", timeout=20)
        assert message.data["size"] == len(content)
        link = tmp_path / "elsewhere.dat"  # changed through another link: the watcher sees nothing
        os.link(path, link)
        with open(link, "r+b") as handle, mmap.mmap(handle.fileno(), 0) as mapped:
            mapped[100] ^= 0xFF
        [failure] = recorder.wait_for(lambda m: m.subject == "/trollmoves/client/failed/test", timeout=30)
    finally:
        client.stop()
        recorder.close()
        announced.close()
        mirror.stop()
        server.stop()
    value = base64.b64encode(hashlib.sha256(content).digest()).decode()
    assert "the staged copy of bad.dat does not match its announcement" in failure.data["error"]
    assert f"expected {value}" in failure.data["error"]
    assert "bad.dat" not in delivered(recorder, "bad")
    assert not (out / "bad.dat").exists()

"""The downloader verifies each download against the announced size and checksum."""

from __future__ import annotations

import base64
import hashlib
import logging

from test_downloader import remote_file


def _announced(content: bytes) -> dict[str, object]:
    return {"size": len(content),
            "integrity": {"method": "sha256", "value": base64.b64encode(hashlib.sha256(content).digest()).decode()}}


def test_download_matching_its_announcement_is_announced_with_size_and_checksum(harness, tmp_path):
    harness.start()
    content = b"orbit data" * 100
    source = remote_file(tmp_path, "good.nc", content)
    harness.send("file", {"uri": f"file://{source}", "uid": source.name, **_announced(content)})
    (message,) = harness.recorder.wait_for(lambda m: m.type == "file")
    assert message.data["size"] == len(content) and message.data["integrity"] == _announced(content)["integrity"]
    assert (harness.destination / "good.nc").read_bytes() == content


def test_corrupted_download_is_retried_discarded_and_never_announced(harness, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    downloader = harness.start()
    content = b"orbit data" * 100
    source = remote_file(tmp_path, "bad.nc", content[:-1] + b"X")  # corrupted at the source after announcing
    harness.send("file", {"uri": f"file://{source}", "uid": source.name, **_announced(content)})
    good = remote_file(tmp_path, "good.nc", b"good")
    harness.send("file", {"uri": str(good), "uid": "good.nc", **_announced(b"good")})
    harness.wait_idle(handled=2)
    announced = harness.recorder.wait_for(lambda m: m.type == "file")
    assert [m.data["uid"] for m in announced] == ["good.nc"]
    assert downloader.failed == 1
    assert "does not match its announcement" in caplog.text
    assert f"expected {_announced(content)['integrity']['value']}" in caplog.text
    assert "retrying" in caplog.text  # the mover fetched it again before giving up
    assert sorted(p.name for p in harness.destination.iterdir()) == ["good.nc"]

"""The dispatcher checks its source file against the announced size and checksum before delivering."""

from __future__ import annotations

import base64
import hashlib
import logging

from support.bus import wait_until
from test_dispatcher_delivery import TOPIC, file_data, local_target


def _announced(content: bytes) -> dict[str, object]:
    return {"size": len(content),
            "integrity": {"method": "sha256", "value": base64.b64encode(hashlib.sha256(content).digest()).decode()}}


def test_source_matching_its_announcement_is_delivered_with_size_and_checksum(harness, make_file, tmp_path):
    out = tmp_path / "out"
    harness.start({"local": local_target(out)}, warm_topic=TOPIC)
    source = make_file("n19_a.tif", b"pixels")
    harness.send(TOPIC + "/x", "file", file_data(source, **_announced(b"pixels")))
    (message,) = harness.recorder.wait_for(lambda m: m.type == "file")
    assert message.data["size"] == 6 and message.data["integrity"] == _announced(b"pixels")["integrity"]
    assert (out / "avhrr" / "NOAA-19" / "NOAA-19_202401020304_gs.tif").read_bytes() == b"pixels"


def test_source_changed_since_announced_is_not_delivered(harness, make_file, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    out = tmp_path / "out"
    harness.start({"local": local_target(out, connection_parameters={"mode": "copy"})}, warm_topic=TOPIC)
    truncated = make_file("n19_a.tif", b"pix")
    flipped = make_file("n19_b.tif", b"pixelz")
    good = make_file("n19_c.tif", b"pixels")
    harness.send(TOPIC + "/x", "file", file_data(truncated, product="a", **_announced(b"pixels")))
    harness.send(TOPIC + "/x", "file", file_data(flipped, product="b", **_announced(b"pixels")))
    harness.send(TOPIC + "/x", "file", file_data(good, product="c", **_announced(b"pixels")))
    announced = harness.recorder.wait_for(lambda m: m.type == "file")
    assert [m.data["product"] for m in announced] == ["c"]
    expected = _announced(b"pixels")["integrity"]["value"]
    assert wait_until(lambda: "size 3 bytes, expected 6" in caplog.text and f"expected {expected}" in caplog.text,
                      timeout=10), caplog.text
    assert sorted(p.name for p in (out / "avhrr" / "NOAA-19").iterdir()) == ["NOAA-19_202401020304_c.tif"]

"""A dispatcher target delivering into a served directory announces each file as a WNM."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from support.dispatcher import Harness
from trollmoves_mqtt.testing import Mosquitto
from trollmoves_wis2 import notification, publisher
from trollmoves_wis2.testing import NotificationRecorder

pytestmark = pytest.mark.timeout(120)

TOPIC = "/level2/viirs"
WIS2_TOPIC = "origin/a/wis2/se-smhi/data/core/weather/space-based-observations/{platform_name!l}/{sensor}"
BASE_URL = "https://data.example.org/l2"


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.stop()


def target(out: Path, broker: str, **extra: object) -> dict[str, object]:
    return {"host": "", "directory": f"{out}/{{platform_name}}", "publish_topic": "/dispatched/viirs",
            "dispatch_configs": [{"topics": [TOPIC]}], "wis2_broker": broker, "wis2_topic": WIS2_TOPIC,
            "wis2_base_url": BASE_URL, **extra}


def test_dispatched_file_is_announced(harness: Harness, broker: Mosquitto, tmp_path: Path) -> None:
    recorder = NotificationRecorder(broker.url(""))
    source = tmp_path / "in" / "viirs.h5"
    source.parent.mkdir()
    source.write_bytes(b"level 2 pixels")
    try:
        harness.start({"wis2": target(tmp_path / "out", broker.url(""))}, warm_topic=TOPIC)
        harness.send(TOPIC + "/x", "file", {"uri": str(source), "uid": source.name, "platform_name": "NOAA-20",
                                            "sensor": "viirs", "start_time": dt.datetime(2026, 12, 2, 5, 40)})
        found = recorder.wait(1)
    finally:
        recorder.close()
    assert len(found) == 1, "no WIS2 notification"
    n = found[0][1]
    link = notification.canonical_link(n)
    assert (link.href, link.length, link.type) == (f"{BASE_URL}/NOAA-20/viirs.h5", 14, "application/x-hdf5")
    assert (tmp_path / "out" / "NOAA-20" / "viirs.h5").read_bytes() == b"level 2 pixels"
    assert n.integrity_method == "sha256" and n.datetime == dt.datetime(2026, 12, 2, 5, 40, tzinfo=dt.UTC)


def test_dispatched_file_removed_is_announced_deleted(harness: Harness, broker: Mosquitto, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publisher, "SETTLE", 0.2)
    recorder = NotificationRecorder(broker.url(""))
    source = tmp_path / "in" / "removed.h5"
    source.parent.mkdir()
    source.write_bytes(b"level 2 pixels")
    delivered = tmp_path / "out" / "NOAA-20" / "removed.h5"
    try:
        harness.start({"wis2": target(tmp_path / "out", broker.url(""))}, warm_topic=TOPIC)
        harness.send(TOPIC + "/x", "file", {"uri": str(source), "uid": source.name, "platform_name": "NOAA-20",
                                            "sensor": "viirs", "start_time": dt.datetime(2026, 12, 2, 5, 40)})
        assert recorder.wait(1) and delivered.exists()
        delivered.unlink()
        found = recorder.wait(2)
    finally:
        recorder.close()
    assert [n.rel for _, n, _ in found] == ["canonical", "deletion"]
    assert found[0][0] == found[1][0] and found[0][1].data_id == found[1][1].data_id
    assert all(notification.validate(n.raw) == [] for _, n, _ in found)


def test_a_dispatcher_with_a_state_directory_remembers_what_it_announced(broker: Mosquitto, tmp_path: Path) -> None:
    """--state-directory reaches the targets' observers: after a restart a redelivered file is an update."""
    state = tmp_path / "state"
    state.mkdir()
    source = tmp_path / "in" / "again.h5"
    source.parent.mkdir()
    message = {"uri": str(source), "uid": source.name, "platform_name": "NOAA-20", "sensor": "viirs",
               "start_time": dt.datetime(2026, 12, 2, 5, 40)}
    recorder = NotificationRecorder(broker.url(""))
    try:
        for content in (b"first pixels", b"second pixels"):
            source.write_bytes(content)
            harness = Harness(tmp_path)  # the same config file: the same state file
            try:
                harness.start({"wis2": target(tmp_path / "out", broker.url(""))}, warm_topic=TOPIC,
                              state_directory=state)
                harness.send(TOPIC + "/x", "file", message)
                found = recorder.wait(1 if content.startswith(b"first") else 2)
            finally:
                harness.stop()
    finally:
        recorder.close()
    assert [n.rel for _, n, _ in found] == ["canonical", "update"]
    assert [p.name for p in state.glob("wis2-dispatcher-*.sqlite")], "no WIS2 state in the state directory"


def test_bad_wis2_topic_in_a_target_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "dispatch.yaml"
    body = target(tmp_path / "out", "mqtt://127.0.0.1:1883", wis2_topic="origin/a/wis2/se-smhi/data/core/rocks/x")
    config.write_text(yaml.safe_dump({"posttroll_subscriber": {"subscribe_addresses": ["tcp://127.0.0.1:9"],
                                                               "nameserver": False}, "wis2": body}))
    trollmoves = str(Path(sys.executable).with_name("trollmoves"))
    done = subprocess.run([trollmoves, "dispatcher", str(config)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "[wis2] wis2_topic:" in lines[0] and "'rocks'" in lines[0], done.stderr
    check = subprocess.run([trollmoves, "check", str(config)], capture_output=True, text=True, timeout=60,
                           check=False)
    assert "[wis2] wis2_topic:" in check.stdout + check.stderr and check.returncode != 0


def test_wis2_keys_in_a_target_without_the_plugin_exit_2_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "dispatch.yaml"
    config.write_text(yaml.safe_dump({"posttroll_subscriber": {"subscribe_addresses": ["tcp://127.0.0.1:9"],
                                                               "nameserver": False},
                                      "wis2": target(tmp_path / "out", "mqtt://127.0.0.1:9")}))
    trollmoves = str(Path(sys.executable).with_name("trollmoves"))
    env = {**os.environ, "TROLLMOVES_DISABLE_PLUGINS": "wis2"}
    done = subprocess.run([trollmoves, "dispatcher", str(config)], capture_output=True, text=True, timeout=60,
                          check=False, env=env)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "[wis2] wis2_" in lines[0] and "trollmoves-wis2 is installed but disabled" in lines[0]
    check = subprocess.run([trollmoves, "check", str(config)], capture_output=True, text=True, timeout=60,
                           check=False, env=env)
    assert "trollmoves-wis2 is installed but disabled" in check.stdout + check.stderr and check.returncode != 0

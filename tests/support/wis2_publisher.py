"""The wis2 delivery observer of a test chain ``c`` serving ``www`` on a real broker, the deliveries
the chain hands it, and the notifications that arrive about a file."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

from trollmoves_wis2 import notification
from trollmoves_wis2.publisher import Wis2Publisher
from trollmoves_wis2.testing import NotificationRecorder

from trollmoves_core.observer import Delivery

TOPIC = "origin/a/wis2/se-smhi/data/core/weather/space-based-observations/{platform_name!l}/viirs"
BASE_URL = "https://data.example.org/wis2"


def open_publisher(url: str, www: Path, *, chain: str = "c", **extra: str) -> Wis2Publisher:
    """The observer of chain ``chain`` (config ``c.ini`` beside ``www``) writing into ``www``."""
    keys = {"destination": f"{www}/", "wis2_broker": url, "wis2_topic": TOPIC, "wis2_base_url": BASE_URL, **extra}
    found = Wis2Publisher.open(keys, role="client", chain=chain, file=str(www.parent / "c.ini"))
    assert found is not None
    return found


def deliver(pub: Wis2Publisher, path: Path, content: bytes | None = None, **data: Any) -> None:
    """Hand ``pub`` the delivery of ``path`` (written with ``content`` first unless None)."""
    if content is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    pub.delivered(Delivery("client", "c", "new", "/viirs", "file",
                           {"platform_name": "NOAA-20", "uid": path.name, **data}, str(path)))


def arrived(recorder: NotificationRecorder, name: str, count: int = 1) -> list[notification.Notification]:
    """The notifications about ``name`` once there are ``count`` of them (all valid)."""
    found: list[notification.Notification] = []
    for _ in range(200):
        found = [n for _, n, _ in recorder.about(name)]
        if len(found) >= count:
            break
        recorder.wait(len(recorder.received) + 1, timeout=0.1)
    assert len(found) >= count, f"{len(found)} notifications about {name}, not {count}"
    assert all(notification.validate(n.raw) == [] for n in found) and recorder.invalid == []
    return found


def sha256(content: bytes) -> str:
    return base64.b64encode(hashlib.sha256(content).digest()).decode()

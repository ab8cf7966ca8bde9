"""Where the WIS2 subscriber writes a file: ``download_destination`` / ``layout``; nothing a
notification says writes outside ``download_destination``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from trollmoves_wis2 import notification
from trollmoves_wis2.errors import WnmError
from trollmoves_wis2.notification import canonical_link, parse
from trollmoves_wis2.subscriber.config import load_config
from trollmoves_wis2.subscriber.engine import Wis2Subscriber
from trollmoves_wis2.subscriber.layout import DEFAULT_LAYOUT, local_path
from trollmoves_wis2.subscriber.mapping import fields

from trollmoves_core.plugins import default_host

TOPIC = "origin/a/wis2/se-smhi/data/core/weather/space-based-observations/noaa-20/viirs"
DATASET = "wis2/se-smhi/data/core/weather/space-based-observations/noaa-20/viirs"
NAME = "SVM05_j01_d20261202_t0540_e0541.h5"


def wnm(data_id: str = f"{DATASET}/{NAME}", href: str = f"https://node.example/data/{NAME}",
        **properties: Any) -> dict[str, Any]:
    """A notification with inline content (no download needed)."""
    return notification.build(data_id, href, properties={
        "content": {"encoding": "utf-8", "value": "hello", "size": 5}, **properties})


def placed(doc: dict[str, Any], layout: str = DEFAULT_LAYOUT, root: str = "/data/wis2") -> str:
    parsed = parse(notification.encode(doc))
    return local_path(root, layout, parsed, canonical_link(parsed), fields(parsed, TOPIC))


def test_the_default_layout_is_the_data_id_dataset_and_the_link_name() -> None:
    assert placed(wnm()) == f"/data/wis2/{DATASET}/{NAME}"
    # the link gives the name (with its extension) where the data_id's last part has none
    assert placed(wnm(f"{DATASET}/WIGOS_0-20000-0-02185_20261202T0600", "https://n.example/d/W_02185.bufr4")) == \
        f"/data/wis2/{DATASET}/W_02185.bufr4"
    assert placed(wnm("opaque-id", "https://n.example/d/x.bufr4")) == "/data/wis2/x.bufr4"
    assert placed(wnm(f"{DATASET}/{NAME}", "https://n.example/get/")) == f"/data/wis2/{DATASET}/{NAME}"
    assert placed(wnm(), "{name}") == f"/data/wis2/{NAME}"


def test_a_layout_composes_topic_levels_and_times() -> None:
    doc = wnm()
    doc["properties"]["datetime"] = "2026-12-02T05:40:00Z"
    layout = "{centre_id}/{platform_name}/{sensor}/{start_time:%Y/%m/%d}/{name}"
    assert placed(doc, layout) == f"/data/wis2/se-smhi/noaa-20/viirs/2026/12/02/{NAME}"
    assert placed(doc, "{data_id}") == f"/data/wis2/{DATASET}/{NAME}"


HREF = "https://n.example/d/x.txt"


@pytest.mark.parametrize(("data_id", "href", "layout", "fault"), [
    ("../../evil.txt", "https://n.example/d/", DEFAULT_LAYOUT, "properties.data_id '../../evil.txt' has a '..' level"),
    (f"{DATASET}/../../../../../evil/x.txt", HREF, DEFAULT_LAYOUT, "has a '..' level"),
    ("/etc/evil/x.txt", HREF, DEFAULT_LAYOUT, "properties.data_id '/etc/evil/x.txt' is absolute"),
    ("wis2\\..\\..\\evil.txt", HREF, DEFAULT_LAYOUT, "holds a backslash"),
    ("wis2/a\0b/x.txt", HREF, DEFAULT_LAYOUT, "holds a NUL"),
    (f"{DATASET}/x.txt", "https://n.example/d/%2E%2E", DEFAULT_LAYOUT, "the file name '..' has a '..' level"),
    (f"{DATASET}/x.txt", "https://n.example/d/a%5C..%5Cevil.txt", DEFAULT_LAYOUT, "holds a backslash"),
    (f"{DATASET}/x.txt", "https://n.example/d/evil%00.txt", "{name}", "holds a NUL"),
    (f"{DATASET}/x.txt", "https://n.example/d/.evil.txt", "{name}", "is hidden"),
    (f"{DATASET}/x.txt", HREF, "{producer}/{name}", "'../../evil/x.txt', which has a '..' level"),
    (f"{DATASET}/x.txt", HREF, "{producer}{name}", "'../../evilx.txt', which has a '..' level"),
    (f"{DATASET}/x.txt", HREF, "{start_time:%Y}/{name}", "has no field 'start_time'"),
])
def test_a_notification_that_would_write_outside_is_refused_in_one_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, data_id: str, href: str, layout: str, fault: str) -> None:
    root = tmp_path / "deep" / "er" / "wis2-in"
    config = tmp_path / "wis2.yaml"
    config.write_text(yaml.safe_dump({
        "broker": "mqtt://127.0.0.1:9", "subscribe": ["origin/a/wis2/+/data/#"], "download_destination": str(root),
        "layout": layout, "publish_topic": "/wis2/in"}))
    subscriber = Wis2Subscriber(load_config(config), host=default_host(), workers=1)
    try:
        doc = wnm(data_id, href, producer="../../evil")
        with caplog.at_level(logging.INFO):
            assert subscriber.process(TOPIC, notification.encode(doc)) == "failed"
    finally:
        subscriber.pool.shutdown()
    [error] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert error.levelno == logging.ERROR and error.exc_info is None and "\n" not in error.getMessage()
    assert doc["id"] in error.getMessage() and fault in error.getMessage(), error.getMessage()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [config]  # nothing written, inside or out


def test_a_link_token_is_not_in_the_refusal() -> None:
    with pytest.raises(WnmError) as caught:
        placed(wnm(f"{DATASET}/x.txt", "https://cache.example/d/a%5Cb?sig=S3CRET"))
    assert "S3CRET" not in str(caught.value) and "sig=***" in str(caught.value)


@pytest.fixture
def two_datasets(tmp_path: Path) -> Iterator[Wis2Subscriber]:
    config = tmp_path / "wis2.yaml"
    config.write_text(yaml.safe_dump({
        "broker": "mqtt://127.0.0.1:9", "subscribe": ["origin/a/wis2/+/data/#"],
        "download_destination": str(tmp_path / "in"), "publish_topic": "/wis2/in"}))
    subscriber = Wis2Subscriber(load_config(config), host=default_host(), workers=1)
    yield subscriber
    subscriber.pool.shutdown()


def test_the_same_name_from_two_centres_lands_in_two_places(tmp_path: Path, two_datasets: Wis2Subscriber) -> None:
    for centre in ("se-smhi", "no-met"):
        doc = notification.build(f"wis2/{centre}/data/core/weather/surface-based-observations/synop/A_02185.bufr4",
                                 "https://n.example/A_02185.bufr4",
                                 properties={"content": {"encoding": "utf-8", "value": centre, "size": len(centre)}})
        topic = f"origin/a/wis2/{centre}/data/core/weather/surface-based-observations/synop"
        assert two_datasets.process(topic, notification.encode(doc)) == "delivered"
    for centre in ("se-smhi", "no-met"):
        path = tmp_path / "in" / "wis2" / centre / "data/core/weather/surface-based-observations/synop/A_02185.bufr4"
        assert path.read_text() == centre

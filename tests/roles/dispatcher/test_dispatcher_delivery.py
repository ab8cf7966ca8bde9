"""The dispatcher end to end on a real loopback bus: what gets delivered where, what is announced."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest

TOPIC = "/level2/avhrr"


def local_target(out: Path, **extra: object) -> dict[str, object]:
    return {
        "host": "",
        "directory": str(out) + "/{sensor}/{platform_name}",
        "filepattern": "{platform_name}_{start_time:%Y%m%d%H%M}_{product}.{format}",
        "publish_topic": "/dispatched/{sensor}",
        "aliases": {"product": {"green_snow": "gs", "true_color": "tc"}},
        "dispatch_configs": [{"topics": [TOPIC]}],
        **extra,
    }


def file_data(path: Path, **extra: object) -> dict[str, object]:
    return {"uri": str(path), "uid": path.name, "sensor": "avhrr", "platform_name": "NOAA-19",
            "start_time": dt.datetime(2024, 1, 2, 3, 4), "product": "green_snow", "format": "tif",
            "request_address": "127.0.0.1:9999", **extra}


def test_file_message_is_delivered_with_composed_path_and_announced(harness, make_file, tmp_path):
    out = tmp_path / "out"
    harness.start({"local": local_target(out)}, warm_topic=TOPIC)
    source = make_file("n19_a.tif", b"pixels")

    harness.send(TOPIC + "/x", "file", file_data(source, coverage=80))

    delivered = out / "avhrr" / "NOAA-19" / "NOAA-19_202401020304_gs.tif"
    announced = harness.recorder.wait_for(lambda m: m.type == "file")
    assert delivered.read_bytes() == b"pixels"
    assert len(announced) == 1
    message = announced[0]
    assert message.subject == "/dispatched/avhrr"
    assert message.version == "v1.2"  # as upstream's posttroll writes
    assert message.data["uri"] == str(delivered)
    assert message.data["uid"] == delivered.name
    # the original metadata travels on, except the upstream server's request address
    assert message.data["platform_name"] == "NOAA-19"
    assert message.data["product"] == "green_snow"  # aliases shape the name, not the metadata
    assert message.data["coverage"] == 80
    assert message.data["start_time"].replace(tzinfo=None) == dt.datetime(2024, 1, 2, 3, 4)
    assert "request_address" not in message.data
    assert not list((out / "avhrr" / "NOAA-19").glob(".*")), "temporary file left behind"


def test_dataset_message_delivers_every_file_and_announces_each(harness, make_file, tmp_path):
    out = tmp_path / "out"
    target = local_target(out, filepattern=None, directory=str(out) + "/{platform_name}")
    del target["filepattern"]
    harness.start({"local": target}, warm_topic=TOPIC)
    files = [make_file(f"seg_{i}.dat", f"segment {i}".encode()) for i in range(3)]

    harness.send(TOPIC, "dataset", {"platform_name": "Metop-B", "sensor": "avhrr",
                                    "dataset": [{"uri": str(f), "uid": f.name} for f in files]})

    announced = harness.recorder.wait_for(lambda m: m.type == "file", count=3)
    for i in range(3):
        assert (out / "Metop-B" / f"seg_{i}.dat").read_text() == f"segment {i}"
    assert sorted(m.data["uid"] for m in announced) == ["seg_0.dat", "seg_1.dat", "seg_2.dat"]
    assert all(m.data["platform_name"] == "Metop-B" and "dataset" not in m.data for m in announced)


def test_fsspec_keys_of_the_source_are_not_announced_for_the_copy(harness, make_file, tmp_path):
    """pytroll-watchers' messages carry ``filesystem`` and ``path``; a consumer trusting them
    (trollflow2, satpy's FSFile) would read the source instead of the delivered copy."""
    out = tmp_path / "out"
    target = local_target(out, directory=str(out) + "/{platform_name}")
    del target["filepattern"]
    harness.start({"local": target}, warm_topic=TOPIC)
    single = make_file("single.dat", b"one")
    members = [make_file(f"member_{i}.dat", b"m") for i in range(2)]
    local_fs = {"cls": "fsspec.implementations.local.LocalFileSystem", "protocol": "file", "args": []}

    harness.send(TOPIC, "file", {**file_data(single), "filesystem": local_fs, "path": str(single)})
    harness.send(TOPIC, "dataset", {"platform_name": "Metop-B", "sensor": "avhrr", "filesystem": local_fs,
                                    "dataset": [{"uri": str(f), "uid": f.name, "filesystem": local_fs,
                                                 "path": str(f)} for f in members]})

    announced = harness.recorder.wait_for(lambda m: m.type == "file", count=3)
    assert sorted(m.data["uri"] for m in announced) == sorted(
        [str(out / "NOAA-19" / "single.dat"), *(str(out / "Metop-B" / f.name) for f in members)])
    for message in announced:
        assert "filesystem" not in message.data and "path" not in message.data, message.data


def test_collection_message_is_split_like_a_dataset(harness, make_file, tmp_path):
    out = tmp_path / "out"
    target = {"directory": str(out), "publish_topic": "/dispatched", "dispatch_configs": [{"topics": [TOPIC]}]}
    harness.start({"local": target}, warm_topic=TOPIC)
    a, b = make_file("a.nc"), make_file("b.nc")

    harness.send(TOPIC, "collection", {"collection": [{"uri": str(a), "uid": a.name},
                                                      {"dataset": [{"uri": str(b), "uid": b.name}]}]})

    harness.recorder.wait_for(lambda m: m.type == "file", count=2)
    assert (out / "a.nc").exists() and (out / "b.nc").exists()


def test_conditions_select_targets(harness, make_file, tmp_path):
    config = {
        "big": {"directory": str(tmp_path / "big"), "publish_topic": "/big",
                "dispatch_configs": [{"topics": [TOPIC], "conditions": [
                    {"product": ["green_snow", "true_color"], "coverage": ">50",
                     "except": {"platform_name": "NOAA-15"}}]}]},
        "night": {"directory": str(tmp_path / "night"), "publish_topic": "/night",
                  "dispatch_configs": [{"topics": [TOPIC], "conditions": [{"daylight": "<30"}]}]},
    }
    harness.start(config, warm_topic=TOPIC)
    cases = {
        "match_big.tif": {"product": "true_color", "coverage": 75, "platform_name": "NOAA-19"},
        "too_small.tif": {"product": "true_color", "coverage": 20, "platform_name": "NOAA-19"},
        "excluded.tif": {"product": "true_color", "coverage": 90, "platform_name": "NOAA-15"},
        "night_only.tif": {"product": "overview", "coverage": 90, "daylight": 10},
        "no_daylight_key.tif": {"product": "overview"},
    }
    for name, metadata in cases.items():
        harness.send(TOPIC, "file", {"uri": str(make_file(name)), "uid": name, **metadata})
    harness.wait_idle(handled=len(cases))

    assert sorted(p.name for p in (tmp_path / "big").iterdir()) == ["match_big.tif"]
    assert sorted(p.name for p in (tmp_path / "night").iterdir()) == ["night_only.tif"]


def test_topics_select_dispatch_items_and_items_override_directory(harness, make_file, tmp_path):
    config = {"t": {"directory": str(tmp_path / "default"), "publish_topic": "/done",
                    "dispatch_configs": [{"topics": ["/level2/viirs"]},
                                         {"topics": ["/level3/"], "directory": str(tmp_path / "l3")}]}}
    harness.start(config, warm_topic="/level2/viirs")
    harness.send("/level2/viirs", "file", {"uri": str(make_file("v.nc")), "uid": "v.nc"})
    harness.send("/level3/cloud", "file", {"uri": str(make_file("c.nc")), "uid": "c.nc"})
    harness.send("/level2/avhrr", "file", {"uri": str(make_file("a.nc")), "uid": "a.nc"})  # not subscribed

    harness.recorder.wait_for(lambda m: m.type == "file", count=2)
    assert [p.name for p in (tmp_path / "default").iterdir()] == ["v.nc"]
    assert [p.name for p in (tmp_path / "l3").iterdir()] == ["c.nc"]


def test_bad_messages_are_skipped_and_the_next_good_one_is_served(harness, make_file, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    out = tmp_path / "out"
    config = {"t": {"directory": str(out) + "/{platform_name}", "publish_topic": "/done",
                    "dispatch_configs": [{"topics": [TOPIC]}]}}
    harness.start(config, warm_topic=TOPIC)
    gone = make_file("gone.nc")
    gone.unlink()

    harness.send(TOPIC, "file", {"uid": "no-uri.nc", "platform_name": "x"})
    harness.send(TOPIC, "file", {"uri": "gopher://far.example.org/x.nc", "uid": "x.nc", "platform_name": "x"})
    harness.send(TOPIC, "file", {"uri": str(gone), "uid": "gone.nc", "platform_name": "x"})
    harness.send(TOPIC, "file", {"uri": str(make_file("no_field.nc")), "uid": "no_field.nc"})
    harness.send(TOPIC, "dataset", {"dataset": "not a list", "platform_name": "x"})
    harness.source._publisher.send("pytroll://level2/avhrr file bob@host not-a-date v1.2 application/json {}")
    harness.send(TOPIC, "file", {"uri": str(make_file("good.nc")), "uid": "good.nc", "platform_name": "ok"})

    announced = harness.recorder.wait_for(lambda m: m.type == "file")
    assert [m.data["uid"] for m in announced] == ["good.nc"]
    assert (out / "ok" / "good.nc").exists()
    text = caplog.text
    assert "without 'uri'" in text
    assert "far.example.org" in text and "not on this host" in text
    assert "gone.nc" in text and "no such file" in text
    assert "no field 'platform_name'" in text
    assert "no list under 'dataset'" in text


def test_failed_push_is_logged_with_destination_and_cause_and_serving_goes_on(harness, make_file, tmp_path,
                                                                              caplog):
    caplog.set_level(logging.ERROR)
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where a directory should be")
    config = {"broken": {"directory": str(blocker / "sub"), "publish_topic": "/broken",
                         "connection_parameters": {"retries": 2, "retry_delay": 0.01},
                         "dispatch_configs": [{"topics": [TOPIC]}]},
              "fine": {"directory": str(tmp_path / "fine"), "publish_topic": "/fine",
                       "dispatch_configs": [{"topics": [TOPIC]}]}}
    dispatcher = harness.start(config, warm_topic=TOPIC)
    harness.send(TOPIC, "file", {"uri": str(make_file("f1.nc")), "uid": "f1.nc"})
    harness.send(TOPIC, "file", {"uri": str(make_file("f2.nc")), "uid": "f2.nc"})

    announced = harness.recorder.wait_for(lambda m: m.type == "file", count=2)
    harness.wait_idle(handled=2)
    assert sorted(m.subject for m in announced) == ["/fine", "/fine"]
    assert dispatcher.failed == 2 and dispatcher.delivered == 2
    failures = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 2
    assert all("target broken" in line and str(blocker / "sub") in line for line in failures)


def test_the_same_file_and_destination_is_pushed_once_per_message(harness, make_file, tmp_path):
    config = {"t": {"directory": str(tmp_path / "out"), "publish_topic": "/done",
                    "dispatch_configs": [{"topics": [TOPIC]}, {"topics": ["/level2/"]}]}}
    dispatcher = harness.start(config, warm_topic=TOPIC)
    harness.send(TOPIC, "file", {"uri": str(make_file("once.nc")), "uid": "once.nc"})
    harness.wait_idle(handled=1)
    assert dispatcher.delivered == 1


def test_without_publish_topic_files_are_delivered_and_not_announced(harness, make_file, tmp_path, caplog):
    caplog.set_level(logging.ERROR)
    config = {"quiet": {"directory": str(tmp_path / "q"), "dispatch_configs": [{"topics": [TOPIC]}]}}
    harness.start(config, warm_topic=TOPIC)
    harness.send(TOPIC, "file", {"uri": str(make_file("q.nc")), "uid": "q.nc"})
    harness.wait_idle(handled=1)
    assert (tmp_path / "q" / "q.nc").exists()
    assert "no publish_topic" in caplog.text
    assert not harness.recorder.of_type("file")


def test_publish_uri_url_announces_the_full_destination(harness, make_file, tmp_path):
    config = {"t": {"host": "file://", "directory": str(tmp_path / "u"), "publish_topic": "/u",
                    "publish_uri": "url", "dispatch_configs": [{"topics": [TOPIC]}]}}
    harness.start(config, warm_topic=TOPIC)
    harness.send(TOPIC, "file", {"uri": "file://localhost" + str(make_file("u.nc")), "uid": "u.nc"})
    (message,) = harness.recorder.wait_for(lambda m: m.type == "file")
    assert message.data["uri"] == f"file://{tmp_path / 'u' / 'u.nc'}"
    assert (tmp_path / "u" / "u.nc").exists()


@pytest.mark.parametrize("workers", [1, 3])
def test_many_files_all_arrive_with_a_bounded_pool(harness, make_file, tmp_path, workers):
    config = {"t": {"directory": str(tmp_path / "many"), "publish_topic": "/many",
                    "dispatch_configs": [{"topics": [TOPIC]}]}}
    dispatcher = harness.start(config, warm_topic=TOPIC, workers=workers)
    names = [f"f{i:03d}.nc" for i in range(40)]
    for name in names:
        harness.send(TOPIC, "file", {"uri": str(make_file(name, name.encode())), "uid": name})
    announced = harness.recorder.wait_for(lambda m: m.type == "file", count=len(names), timeout=30)
    assert sorted(m.data["uid"] for m in announced) == names
    assert all((tmp_path / "many" / n).read_bytes() == n.encode() for n in names)
    assert dispatcher.failed == 0

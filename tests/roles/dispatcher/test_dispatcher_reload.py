"""Editing the dispatch config while the dispatcher runs."""

from __future__ import annotations

import logging

from support.bus import wait_until

TOPIC = "/level2/avhrr"


def target(directory, topic=TOPIC, publish_topic="/done"):
    return {"directory": str(directory), "publish_topic": publish_topic, "dispatch_configs": [{"topics": [topic]}]}


def test_new_destination_and_topic_take_effect_without_restart(harness, make_file, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    dispatcher = harness.start({"first": target(tmp_path / "first")}, warm_topic=TOPIC)
    harness.send(TOPIC, "file", {"uri": str(make_file("before.nc")), "uid": "before.nc"})
    harness.recorder.wait_for(lambda m: m.type == "file")

    harness.write_config({"first": target(tmp_path / "first"),
                          "second": target(tmp_path / "second", publish_topic="/second"),
                          "viirs": target(tmp_path / "viirs", topic="/level2/viirs", publish_topic="/viirs")})
    assert wait_until(lambda: len(dispatcher.config.targets) == 3, timeout=15), "config was not reloaded"
    harness.warm_up("/level2/viirs")  # the new topic is subscribed now
    harness.send(TOPIC, "file", {"uri": str(make_file("after.nc")), "uid": "after.nc"})
    harness.send("/level2/viirs", "file", {"uri": str(make_file("v.nc")), "uid": "v.nc"})

    harness.recorder.wait_for(lambda m: m.type == "file", count=4)
    assert sorted(p.name for p in (tmp_path / "first").iterdir()) == ["after.nc", "before.nc"]
    assert [p.name for p in (tmp_path / "second").iterdir()] == ["after.nc"]
    assert [p.name for p in (tmp_path / "viirs").iterdir()] == ["v.nc"]
    assert "reloaded: targets first, second, viirs" in caplog.text


def test_broken_config_is_rejected_and_the_old_one_kept(harness, make_file, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    dispatcher = harness.start({"kept": target(tmp_path / "kept")}, warm_topic=TOPIC)
    original = dispatcher.config

    harness.write_config("kept: {directory: /x, dispatch_configs: [{topics: [/a]}\n")  # YAML syntax error
    def rejected() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage().startswith("New configuration rejected")]

    assert wait_until(rejected, timeout=15), "broken config was not noticed"
    harness.write_config({"kept": {"directory": str(tmp_path), "dispatch_configs": "nope"}})  # wrong shape
    assert wait_until(lambda: len(rejected()) >= 2, timeout=15)

    assert dispatcher.config is original
    harness.send(TOPIC, "file", {"uri": str(make_file("still.nc")), "uid": "still.nc"})
    harness.recorder.wait_for(lambda m: m.type == "file")
    assert (tmp_path / "kept" / "still.nc").exists()
    first, second = rejected()[:2]
    assert all(r.levelno == logging.ERROR and str(harness.config_path) in r.getMessage() for r in (first, second))
    assert "invalid YAML" in first.getMessage()
    assert "[kept] dispatch_configs: required" in second.getMessage()


def test_sighup_style_reload_request(harness, make_file, tmp_path):
    # not watching the file: only the explicit request may trigger the reload here
    dispatcher = harness.start({"a": target(tmp_path / "a")}, warm_topic=TOPIC, watch=False)
    harness.write_config({"b": target(tmp_path / "b")})
    dispatcher.request_reload()
    assert wait_until(lambda: [t.name for t in dispatcher.config.targets] == ["b"], timeout=10)

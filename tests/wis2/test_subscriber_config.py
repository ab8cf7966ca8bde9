"""The WIS2 subscriber's configuration: ``trollmoves check`` accepts a good one, a bad one is one
line naming the key and exits 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from trollmoves_wis2.subscriber.config import load_config

from trollmoves_core.cli import main
from trollmoves_core.exceptions import ConfigError


def write(tmp_path: Path, **changes: object) -> Path:
    settings = {
        "broker": "mqtts://everyone@127.0.0.1:8883?client_id=smhi-in",
        "subscribe": ["cache/a/wis2/+/data/core/weather/space-based-observations/noaa-20/viirs",
                      "origin/a/wis2/se-smhi/data/core/weather/#"],
        "download_destination": str(tmp_path / "in"), "publish_topic": "/wis2/viirs",
        "bbox": [5, 54, 32, 72], "parallel_downloads": 2,
    }
    for key, value in changes.items():
        if value is None:
            settings.pop(key, None)
        else:
            settings[key] = value
    path = tmp_path / "wis2-subscriber.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def test_a_good_config_loads_and_passes_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in").mkdir()
    path = write(tmp_path)
    config = load_config(path)
    assert config.broker.tls and config.broker.port == 8883 and config.broker.client_id == "smhi-in"
    assert config.subscribe[0].startswith("cache/a/wis2/+/") and config.bbox is not None
    assert config.keep_unlocated and config.parallel_downloads == 2 and config.remember == 100000
    assert config.layout == "{data_id_dir}/{name}"
    assert main(["check", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{path}: OK (checked as wis2-subscriber, 1 section(s))"


@pytest.mark.parametrize(("changes", "key", "fault"), [
    ({"broker": None}, "broker", "required"),
    ({"broker": "http://broker"}, "broker", "expected mqtt:// or mqtts://"),
    ({"broker": "mqtts://u:pw@broker"}, "broker", "password_file"),
    ({"broker": "mqtts://broker/trollmoves"}, "broker", "topic prefix"),
    ({"subscribe": None}, "subscribe", "required"),
    ({"subscribe": ["origin/a/wis2/se-smhi/data/co#re"]}, "subscribe", "wildcard"),
    ({"subscribe": ["satellite/#"]}, "subscribe", "origin or cache"),
    ({"download_destination": None}, "download_destination", "required"),
    ({"publish_topic": "wis2"}, "publish_topic", "starting with '/'"),
    ({"bbox": [1, 2, 3]}, "bbox", "west, south, east, north"),
    ({"parallel_downloads": 0}, "parallel_downloads", "at least 1"),
    ({"keep_unlocated": "perhaps"}, "keep_unlocated", "true or false"),
    ({"connection_parameters": [1]}, "connection_parameters", "mapping"),
    ({"download_destination": "/data/wis2/{centre_id}"}, "download_destination", "put the fields in layout"),
    ({"layout": "/data/{name}"}, "layout", "not an absolute one"),
    ({"layout": "{centre_id}/../{name}"}, "layout", "no '..' level"),
    ({"layout": "{centre_id}/"}, "layout", "end with the file name"),
    ({"layout": "{name"}, "layout", "invalid trollsift pattern"),
    ({"layout": 3}, "layout", "expected a template string"),
])
def test_a_bad_value_is_named(tmp_path: Path, changes: dict[str, object], key: str, fault: str) -> None:
    with pytest.raises(ConfigError, match=fault) as caught:
        load_config(write(tmp_path, **changes))
    assert caught.value.key == key


def test_the_role_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, bbox=[5, 54])
    assert main(["wis2-subscriber", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bbox" in err and "Traceback" not in err


def test_check_reports_an_unknown_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in").mkdir()
    path = write(tmp_path, bboxx=[5, 54, 32, 72])
    assert main(["check", str(path)]) == 0
    assert "bboxx: warning: unknown key, ignored; did you mean `bbox`?" in capsys.readouterr().out

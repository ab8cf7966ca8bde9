"""WIS2 topics: the levels the hierarchy fixes, filters, and the fields a topic gives a message."""

from __future__ import annotations

import pytest
from trollmoves_wis2.errors import WnmError
from trollmoves_wis2.topics import Topic, compose, fields_of, parse_topic, validate_filter, validate_topic

VIIRS = "origin/a/wis2/se-smhi/data/core/weather/space-based-observations/noaa-20/viirs"

VALID = [
    VIIRS,
    "cache/a/wis2/se-smhi/data/core/weather/space-based-observations/noaa-20/viirs",
    "origin/a/wis2/int-eumetsat/data/recommended/weather/space-based-observations/meteosat-10/seviri",
    "origin/a/wis2/fi-fmi/data/core/weather/surface-based-observations/synop",
    "origin/a/wis2/de-dwd-test/data/core/climate/experimental",
    "origin/a/wis2/se-smhi/data/core/cryosphere/space-based-observations",
    "origin/a/wis2/se-smhi/metadata",
    "origin/a/wis2/test/metadata",
    "origin/a/wis2/ca-eccc-msc/data/core/atmospheric-composition/experimental/aerosols",
    "origin/a/wis2/se-smhi/data/core/space-weather/experimental",
]


@pytest.mark.parametrize("topic", VALID)
def test_valid(topic: str) -> None:
    assert validate_topic(topic) == []
    assert str(parse_topic(topic)) == topic


INVALID = {
    "empty": ("", "topic: must be a non-empty string"),
    "channel": ("global/a/wis2/se-smhi/metadata", "channel 'global' must be origin or cache"),
    "version": ("origin/b/wis2/se-smhi/metadata", "version 'b' must be 'a'"),
    "system": ("origin/a/wis3/se-smhi/metadata", "system 'wis3' must be 'wis2'"),
    "centre-id without a dash": ("origin/a/wis2/smhi/metadata", "centre-id 'smhi' must be a centre id"),
    "centre-id uppercase": ("origin/a/wis2/SE-SMHI/metadata", "centre-id 'SE-SMHI' must be lowercase"),
    "notification type report": ("origin/a/wis2/se-smhi/report", "notification-type 'report' must be data or"),
    "metadata too deep": ("origin/a/wis2/se-smhi/metadata/core", "metadata topics end at the notification type"),
    "data policy": ("origin/a/wis2/se-smhi/data/open/weather/x", "data-policy 'open' must be core or recommended"),
    "discipline": ("origin/a/wis2/se-smhi/data/core/geology/x", "earth-system-discipline 'geology' must be one"),
    "data ends at discipline": ("origin/a/wis2/se-smhi/data/core/weather", "too short"),
    "data ends at policy": ("origin/a/wis2/se-smhi/data/core", "too short"),
    "ends at centre": ("origin/a/wis2/se-smhi", "too short"),
    "dot in a level": (VIIRS + "/v1.2", "level 11 'v1.2' must be lowercase"),
    "underscore": (VIIRS.replace("noaa-20", "noaa_20"), "level 9 'noaa_20' must be lowercase"),
    "uppercase sub-level": (VIIRS.replace("viirs", "VIIRS"), "level 10 'VIIRS' must be lowercase"),
    "double dash": (VIIRS.replace("noaa-20", "noaa--20"), "must be lowercase letters"),
    "empty level": (VIIRS + "//x", "level 11 '' must be lowercase"),
    "trailing slash": (VIIRS + "/", "level 11 '' must be lowercase"),
    "leading slash": ("/" + VIIRS, "must not start with '/'"),
    "wildcard +": (VIIRS.replace("viirs", "+"), "holds a wildcard (a topic to publish on may not)"),
    "wildcard #": ("origin/a/wis2/se-smhi/data/core/#", "holds a wildcard"),
    "space": (VIIRS.replace("noaa-20", "noaa 20"), "must be lowercase letters"),
}


@pytest.mark.parametrize(("topic", "problem"), INVALID.values(), ids=INVALID.keys())
def test_invalid(topic: str, problem: str) -> None:
    problems = validate_topic(topic)
    assert len(problems) == 1, problems
    assert problem in problems[0] and repr(topic) in problems[0]
    with pytest.raises(WnmError, match=r"^topic"):
        parse_topic(topic)


def test_every_bad_level_is_reported() -> None:
    problems = validate_topic("cache/b/wis2/SMHI/data/open/rocks/x")
    assert [p.split(": ")[1].split(" ")[0] for p in problems] == [
        "version", "centre-id", "data-policy", "earth-system-discipline"]


@pytest.mark.parametrize("topic_filter", [
    "origin/a/wis2/+/data/core/weather/#", "origin/a/wis2/#", "#", "+/a/wis2/+/metadata", VIIRS,
    "cache/a/wis2/+/data/+/weather/space-based-observations/+/viirs", "origin/a/wis2/se-smhi/data/core/+/+",
])
def test_valid_filters(topic_filter: str) -> None:
    assert validate_filter(topic_filter) == []


@pytest.mark.parametrize(("topic_filter", "problem"), [
    ("origin/a/wis2/#/data", "# may only be the last level"),
    ("origin/b/wis2/#", "version 'b' must be 'a'"),
    ("origin/a/wis2/se-smhi/data/core/weather/noaa+20", "holds a wildcard"),
    ("origin/a/wis2/+/data/core/weather", "too short"),
    ("origin/a/wis2/+/data/free/#", "data-policy 'free'"),
    ("origin/a/wis2/+/metadata/+", "metadata topics end"),
])
def test_invalid_filters(topic_filter: str, problem: str) -> None:
    problems = validate_filter(topic_filter)
    assert len(problems) == 1 and problem in problems[0] and "topic filter" in problems[0], problems


def test_parse_topic() -> None:
    assert parse_topic(VIIRS) == Topic("origin", "se-smhi", "data", "core", "weather",
                                       ("space-based-observations", "noaa-20", "viirs"))
    assert parse_topic("cache/a/wis2/fi-fmi/metadata") == Topic("cache", "fi-fmi", "metadata")


@pytest.mark.parametrize(("topic", "fields"), [
    (VIIRS, {"wis2_channel": "origin", "centre_id": "se-smhi", "notification_type": "data",
             "data_policy": "core", "discipline": "weather",
             "sub_discipline": "space-based-observations/noaa-20/viirs",
             "platform_name": "noaa-20", "sensor": "viirs"}),
    ("origin/a/wis2/se-smhi/data/recommended/cryosphere/space-based-observations/metop-b",
     {"wis2_channel": "origin", "centre_id": "se-smhi", "notification_type": "data",
      "data_policy": "recommended", "discipline": "cryosphere",
      "sub_discipline": "space-based-observations/metop-b", "platform_name": "metop-b"}),
    ("cache/a/wis2/fi-fmi/data/core/weather/surface-based-observations/synop",
     {"wis2_channel": "cache", "centre_id": "fi-fmi", "notification_type": "data", "data_policy": "core",
      "discipline": "weather", "sub_discipline": "surface-based-observations/synop"}),
    ("origin/a/wis2/fi-fmi/metadata", {"wis2_channel": "origin", "centre_id": "fi-fmi",
                                       "notification_type": "metadata"}),
])
def test_fields_of(topic: str, fields: dict[str, str]) -> None:
    assert fields_of(topic) == fields
    assert fields_of(parse_topic(topic)) == fields


def test_fields_of_an_invalid_topic() -> None:
    with pytest.raises(WnmError, match="version 'b'"):
        fields_of("origin/b/wis2/se-smhi/metadata")


TEMPLATE = "origin/a/wis2/se-smhi/data/core/weather/space-based-observations/{platform_name!l}/{sensor}"


def test_compose_from_message_fields() -> None:
    assert compose(TEMPLATE, {"platform_name": "NOAA-20", "sensor": "viirs", "other": 1}) == VIIRS


@pytest.mark.parametrize(("fields", "problem"), [
    ({"platform_name": "NOAA-20"}, "the message has no field 'sensor'"),
    ({"platform_name": "NOAA 20", "sensor": "viirs"}, "level 9 'noaa 20' must be lowercase"),
    ({"platform_name": "noaa-20", "sensor": "viirs/extra/+"}, "holds a wildcard"),
])
def test_compose_problems(fields: dict[str, str], problem: str) -> None:
    with pytest.raises(WnmError, match=problem):
        compose(TEMPLATE, fields)

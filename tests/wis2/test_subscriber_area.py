"""The subscriber's bounding box: points, polygons, the antimeridian, no geometry."""

from __future__ import annotations

import pytest
from trollmoves_wis2.subscriber.area import BoundingBox

NORDIC = BoundingBox.parse([5, 54, 32, 72])
PACIFIC = BoundingBox.parse([170, -50, -170, -30])  # crosses the antimeridian


def point(lon: float, lat: float) -> dict:
    return {"type": "Point", "coordinates": [lon, lat]}


def polygon(*corners: tuple[float, float]) -> dict:
    ring = [list(c) for c in corners]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


@pytest.mark.parametrize(("box", "geometry", "expected"), [
    (NORDIC, point(18.0, 59.3), True),                      # Stockholm
    (NORDIC, point(2.35, 48.85), False),                    # Paris: west and south of it
    (NORDIC, point(18.0, 75.0), False),                     # north of it
    (NORDIC, {"type": "Point", "coordinates": [5, 54, 120]}, True),  # on the corner, with a height
    (NORDIC, polygon((0, 50), (10, 50), (10, 56), (0, 56)), True),   # overlaps the south-west corner
    (NORDIC, polygon((-20, 30), (-10, 30), (-10, 40), (-20, 40)), False),
    (NORDIC, polygon((0, 50), (40, 50), (40, 80), (0, 80)), True),   # holds the whole box
    (PACIFIC, point(175, -40), True),
    (PACIFIC, point(-175, -40), True),
    (PACIFIC, point(0, -40), False),
    (PACIFIC, polygon((150, -45), (160, -45), (160, -35), (150, -35)), False),
    (PACIFIC, polygon((-169, -45), (-160, -45), (-160, -35), (-169, -35)), False),
    (PACIFIC, polygon((-171, -45), (-160, -45), (-160, -35), (-171, -35)), True),
])
def test_touches(box: BoundingBox, geometry: dict, expected: bool) -> None:
    assert box.touches(geometry) is expected


@pytest.mark.parametrize("geometry", [None, {}, {"type": "Point"}, {"type": "Point", "coordinates": []}])
def test_a_geometry_without_coordinates_is_unknown(geometry: object) -> None:
    assert NORDIC.touches(geometry) is None


@pytest.mark.parametrize(("value", "fault"), [
    ([5, 54, 32], "west, south, east, north"),
    ("5,54,32,72", "west, south, east, north"),
    ([5, 54, True, 72], "west, south, east, north"),
    ([5, 80, 32, 72], "south <= north"),
    ([5, 54, 200, 72], "-180..180"),
])
def test_bad_boxes_say_what_is_wrong(value: object, fault: str) -> None:
    with pytest.raises(ValueError, match=fault):
        BoundingBox.parse(value)

"""The subscriber's area filter: does a notification's GeoJSON geometry touch a bounding box?

A :class:`BoundingBox` is ``[west, south, east, north]`` in degrees (WGS 84, as WIS2 geometries
are); ``west > east`` crosses the antimeridian (``[170, -50, -170, -30]``). A ``Point`` touches
the box when it lies in it; a ``Polygon`` (or ``MultiPolygon``, ``LineString``...) when the box
around its coordinates overlaps it: a coarse test, which keeps a polygon whose corner only comes
near the box. A notification without a geometry (``null``) is kept or not as configured.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class BoundingBox:
    west: float
    south: float
    east: float
    north: float

    @classmethod
    def parse(cls, value: Any) -> BoundingBox:
        """The box of a config's ``[west, south, east, north]``; ValueError saying what is wrong."""
        if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 4 \
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            raise ValueError(f"expected [west, south, east, north] in degrees, got {value!r}")
        west, south, east, north = (float(v) for v in value)
        if not (-180 <= west <= 180 and -180 <= east <= 180):
            raise ValueError(f"west and east must be within -180..180 degrees, got {west:g} and {east:g}")
        if not -90 <= south <= north <= 90:
            raise ValueError(f"expected -90 <= south <= north <= 90 degrees, got south {south:g}, north {north:g}")
        return cls(west, south, east, north)

    def touches(self, geometry: Any) -> bool | None:
        """Whether the GeoJSON ``geometry`` touches the box; None when it gives no coordinates."""
        points = list(_coordinates(geometry.get("coordinates") if isinstance(geometry, dict) else None))
        if not points:
            return None
        south, north = min(p[1] for p in points), max(p[1] for p in points)
        if north < self.south or south > self.north:
            return False
        longitudes = [p[0] for p in points]
        return self._overlaps(min(longitudes), max(longitudes))

    def _overlaps(self, west: float, east: float) -> bool:
        """Whether the longitudes ``west..east`` (not crossing the antimeridian) meet the box's."""
        if self.west <= self.east:
            return west <= self.east and east >= self.west
        return east >= self.west or west <= self.east  # the box crosses the antimeridian


def _coordinates(value: Any) -> Iterator[tuple[float, float]]:
    """Every (longitude, latitude) in GeoJSON ``coordinates`` nested to any depth."""
    if isinstance(value, list | tuple):
        if len(value) >= 2 and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value[:2]):
            yield float(value[0]), float(value[1])
            return
        for item in value:
            yield from _coordinates(item)

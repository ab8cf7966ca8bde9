"""Fixtures for the downloader tests (helpers live in ``support.downloader``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.downloader import Harness
from support.movers import borrow


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.stop()


_s3 = borrow("s3")
if _s3 is not None:
    s3_server, s3, boto, bucket, s3_params = _s3.s3_server, _s3.s3, _s3.boto, _s3.bucket, _s3.s3_params

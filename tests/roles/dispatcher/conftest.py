"""Fixtures for the dispatcher tests (helpers live in ``support.dispatcher``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.dispatcher import Harness
from support.movers import borrow


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.stop()


@pytest.fixture
def make_file(tmp_path: Path) -> Callable[..., Path]:
    """Create a source file under ``tmp_path/in`` with some content."""

    def make(name: str, content: bytes = b"satellite bytes\n") -> Path:
        path = tmp_path / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return path

    return make


_s3 = borrow("s3")
if _s3 is not None:
    s3_server, s3, boto, bucket, s3_params = _s3.s3_server, _s3.s3, _s3.boto, _s3.bucket, _s3.s3_params

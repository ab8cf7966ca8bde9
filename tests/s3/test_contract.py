"""S3Mover against the shared mover contract, on a moto server."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from trollmoves_s3.mover import S3Mover

from trollmoves_core.testing import MoverContract


class TestS3Contract(MoverContract):
    @pytest.fixture
    def mover(self, mover: S3Mover) -> S3Mover:
        return mover

    @pytest.fixture
    def remote_dir(self, bucket: str) -> str:
        return f"s3://{bucket}/prefix/"

    @pytest.fixture
    def hashes_on_put(self) -> bool:
        return True

    @pytest.fixture
    def login_count(self, mover: S3Mover) -> Callable[[], int]:
        return lambda: mover.connections_opened

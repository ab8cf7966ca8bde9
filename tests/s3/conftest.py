"""The moto S3 server of :mod:`trollmoves_s3.testing` as fixtures, with a fresh bucket per test.

The server runs in this process for the whole session; its state is wiped after each test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from trollmoves_s3.mover import S3Mover
from trollmoves_s3.testing import BUCKET, CREDENTIALS, S3Server, start_server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A moto server on loopback."""
    pytest.importorskip("moto.server")
    server = start_server()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The endpoint, with dummy credentials in the environment; the server is wiped afterwards."""
    empty = tmp_path_factory.mktemp("aws") / "none"
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(empty),
                        "AWS_SHARED_CREDENTIALS_FILE": str(empty)}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    yield s3_server.endpoint
    s3_server.reset()


@pytest.fixture
def boto(s3: str) -> Any:
    """A plain boto3 client on the server, to check results independently of the mover."""
    boto3 = pytest.importorskip("boto3")
    return boto3.client("s3", endpoint_url=s3, aws_access_key_id="testing", aws_secret_access_key="testing",
                        region_name="us-east-1")


@pytest.fixture
def bucket(boto: Any) -> str:
    boto.create_bucket(Bucket=BUCKET)
    return BUCKET


@pytest.fixture
def s3_params(s3: str) -> dict[str, Any]:
    """Connection parameters for a mover on the test server."""
    return {"endpoint_url": s3, **CREDENTIALS, "retry_delay": 0.01}


@pytest.fixture
def mover(s3_params: dict[str, Any]) -> Iterator[S3Mover]:
    """An S3 mover on the test server."""
    with S3Mover(s3_params) as mover:
        yield mover

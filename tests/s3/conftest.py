"""Fixtures for the S3 mover tests: a moto server on 127.0.0.1, a fresh bucket per test.

The moto server runs in this process for the whole session; its state is wiped after each
test (``POST /moto-api/reset``). Helpers live in ``s3_support``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from s3_support import BUCKET, CREDENTIALS, HOST, moto_api


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """Endpoint URL of a moto server on loopback."""
    moto_server = pytest.importorskip("moto.server")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_server.ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
    server.start()
    yield f"http://{HOST}:{server.get_host_and_port()[1]}"
    server.stop()


@pytest.fixture
def s3(s3_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The endpoint, with dummy credentials in the environment; the server is wiped afterwards."""
    empty = tmp_path_factory.mktemp("aws") / "none"
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(empty),
                        "AWS_SHARED_CREDENTIALS_FILE": str(empty)}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    yield s3_server
    moto_api(s3_server, "reset")


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

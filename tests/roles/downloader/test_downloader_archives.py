"""Archive members of one bucket object, announced as pytroll-watchers does (``zip://m1.nc::s3://b/X.zip``),
on a real loopback bus and a moto S3 server."""

from __future__ import annotations

import io
import logging
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from support.downloader import OUT_TOPIC
from support.movers import require_mover

MEMBERS = {"m1.nc": b"first member", "sub/m2.nc": b"second member", "m3.nc": b"not announced"}


@pytest.fixture
def s3_setup(request: pytest.FixtureRequest) -> tuple[str, str, Any]:
    require_mover("s3")
    return request.getfixturevalue("s3"), request.getfixturevalue("bucket"), request.getfixturevalue("boto")


def archive_bytes(kind: str) -> bytes:
    buffer = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, content in MEMBERS.items():
                archive.writestr(name, content)
    else:
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for name, content in MEMBERS.items():
                info = tarfile.TarInfo(name)
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def s3_kwargs(endpoint: str) -> dict[str, Any]:
    return {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": endpoint}, "retries": 1}


def member_dataset(kind: str, bucket: str, key: str, members: list[str]) -> dict[str, Any]:
    """A dataset message as pytroll-watchers' bucket watcher announces the members of a zipped product."""
    def filesystem() -> dict[str, Any]:
        return {"cls": f"fsspec.implementations.{kind}.{kind.capitalize()}FileSystem", "protocol": kind,
                "args": [], "fo": f"{bucket}/{key}", "target_protocol": "s3", "target_options": {}}
    return {"platform_name": "Sentinel-3A", "dataset": [
        {"uri": f"{kind}://{name}::s3://{bucket}/{key}", "uid": f"{kind}://{name}", "filesystem": filesystem(),
         "path": name} for name in members]}


@pytest.mark.parametrize(("kind", "key"), [("zip", "products/S3A_X.zip"), ("tar", "products/S3A_X.tar.gz")])
def test_members_are_unpacked_from_one_download(harness, s3_setup, kind, key):
    endpoint, bucket, boto = s3_setup
    boto.put_object(Bucket=bucket, Key=key, Body=archive_bytes(kind))
    downloader = harness.start(bucket=bucket, s3_kwargs=s3_kwargs(endpoint))

    harness.send("dataset", member_dataset(kind, bucket, key, ["m1.nc", "sub/m2.nc"]))

    (message,) = harness.recorder.wait_for(lambda m: m.type == "dataset", timeout=30)
    destination = harness.destination
    assert (destination / "m1.nc").read_bytes() == b"first member"
    assert (destination / "sub" / "m2.nc").read_bytes() == b"second member"
    assert not (destination / "m3.nc").exists(), "a member nobody announced was unpacked"
    assert not (destination / Path(key).name).exists(), "the archive was kept although its members were asked for"
    assert not [p for p in destination.iterdir() if p.name.startswith(".")], "temporary files left"
    assert downloader.fetched == 1  # one download for both members
    assert message.subject == OUT_TOPIC and message.data["platform_name"] == "Sentinel-3A"
    assert message.data["dataset"] == [{"uri": str(destination / "m1.nc"), "uid": "m1.nc"},
                                       {"uri": str(destination / "sub" / "m2.nc"), "uid": "m2.nc"}]


def test_the_archive_is_delivered_when_members_are_not_to_be_unpacked(harness, s3_setup):
    fsspec = pytest.importorskip("fsspec")
    endpoint, bucket, boto = s3_setup
    body = archive_bytes("zip")  # once: zip entries carry the time they were written
    boto.put_object(Bucket=bucket, Key="S3A_X.zip", Body=body)
    downloader = harness.start(s3_kwargs=s3_kwargs(endpoint), unpack_members=False)

    harness.send("dataset", member_dataset("zip", bucket, "S3A_X.zip", ["m1.nc", "sub/m2.nc"]))
    harness.send("file", member_dataset("zip", bucket, "S3A_X.zip", ["m3.nc"])["dataset"][0])

    (dataset,) = harness.recorder.wait_for(lambda m: m.type == "dataset", timeout=30)
    (single,) = harness.recorder.wait_for(lambda m: m.type == "file", timeout=30)
    archive = harness.destination / "S3A_X.zip"
    assert archive.read_bytes() == body
    assert sorted(p.name for p in harness.destination.iterdir()) == ["S3A_X.zip"]
    assert downloader.fetched == 2  # once per message
    uris = [item["uri"] for item in dataset.data["dataset"]]
    assert uris == [f"zip://m1.nc::{archive}", f"zip://sub/m2.nc::{archive}"]
    assert [item["uid"] for item in dataset.data["dataset"]] == ["m1.nc", "m2.nc"]
    assert all("filesystem" not in item and "path" not in item for item in dataset.data["dataset"])
    assert single.data["uri"] == f"zip://m3.nc::{archive}"
    # what a consumer (satpy, trollflow2) does with such a uri: it reads the local copy
    with fsspec.open(uris[1], "rb") as member:
        assert member.read() == b"second member"


def test_uris_that_cannot_be_fetched_are_named_with_the_reason(harness, s3_setup, caplog):
    endpoint, bucket, boto = s3_setup
    boto.put_object(Bucket=bucket, Key="X.zip", Body=archive_bytes("zip"))
    caplog.set_level(logging.WARNING)
    downloader = harness.start(s3_kwargs=s3_kwargs(endpoint))

    harness.send("file", {"uri": f"reference://m1.nc::s3://{bucket}/X.zip", "uid": "a"})
    harness.send("file", {"uri": f"zip://m1.nc::zip://inner.zip::s3://{bucket}/X.zip", "uid": "b"})
    harness.send("file", {"uri": f"zip://../m1.nc::s3://{bucket}/X.zip", "uid": "c"})
    harness.send("file", {"uri": f"zip://absent.nc::s3://{bucket}/X.zip", "uid": "d"})
    harness.send("file", {"uri": f"simplecache::zip://m1.nc::s3://{bucket}/X.zip", "uid": "e"})

    (message,) = harness.recorder.wait_for(lambda m: m.type == "file", timeout=30)
    harness.wait_idle(handled=5)
    assert message.data["uri"] == str(harness.destination / "m1.nc")  # a cache prefix changes nothing
    text = caplog.text
    assert "invalid port" not in text
    assert f"cannot fetch reference://m1.nc::s3://{bucket}/X.zip: 'reference' in a chained URL is not handled" in text
    assert "an archive inside an archive (zip in zip) is not handled" in text
    assert "the archive member '../m1.nc' is not a relative path inside the archive" in text
    assert "no member 'absent.nc'" in text and "Download failed" in text
    assert downloader.failed == 1 and downloader.fetched == 1
    assert sorted(p.name for p in harness.destination.iterdir()) == ["m1.nc"]

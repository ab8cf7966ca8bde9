"""The S3 mover against a moto server: the shared contract, then S3 specifics."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from trollmoves_s3.mover import S3Mover
from trollmoves_s3.testing import CREDENTIALS, TcpProxy, moto_api, objects, pending_uploads

from trollmoves_core.exceptions import TransferError

MIB = 1024 * 1024
TROLLMOVES = str(Path(sys.executable).with_name("trollmoves"))


class _Stop(Exception):
    pass


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.nc"
    path.write_bytes(os.urandom(20 * MIB + 123))
    return path


# -- destination rule ----------------------------------------------------------------------

def test_trailing_slash_keeps_the_name(mover: S3Mover, bucket: str, boto: Any, tmp_path: Path) -> None:
    source = tmp_path / "file.nc"
    source.write_bytes(b"data")
    assert mover.put(source, f"s3://{bucket}/dir/") == f"s3://{bucket}/dir/file.nc"
    assert objects(boto, bucket) == ["dir/file.nc"]


def test_no_trailing_slash_renames(mover: S3Mover, bucket: str, boto: Any, tmp_path: Path) -> None:
    source = tmp_path / "file.nc"
    source.write_bytes(b"data")
    assert mover.put(source, f"s3://{bucket}/dir/new.nc") == f"s3://{bucket}/dir/new.nc"
    assert objects(boto, bucket) == ["dir/new.nc"]
    assert boto.get_object(Bucket=bucket, Key="dir/new.nc")["Body"].read() == b"data"


@pytest.mark.parametrize("suffix", ["/", ""])
def test_bucket_root_keeps_the_name(mover: S3Mover, bucket: str, boto: Any, tmp_path: Path, suffix: str) -> None:
    source = tmp_path / "file.nc"
    source.write_bytes(b"data")
    assert mover.put(source, f"s3://{bucket}{suffix}") == f"s3://{bucket}/file.nc"
    assert objects(boto, bucket) == ["file.nc"]


def test_content_type_is_guessed(mover: S3Mover, bucket: str, boto: Any, tmp_path: Path) -> None:
    source = tmp_path / "notes.txt"
    source.write_text("hello")
    mover.put(source, f"s3://{bucket}/")
    assert boto.head_object(Bucket=bucket, Key="notes.txt")["ContentType"] == "text/plain"


def test_get_without_object_name_is_a_clear_error(mover: S3Mover, bucket: str, tmp_path: Path) -> None:
    with pytest.raises(TransferError, match="no object name") as info:
        mover.get(f"s3://{bucket}/", tmp_path / "x")
    assert not info.value.transient


# -- multipart -----------------------------------------------------------------------------

def test_multipart_upload_is_byte_identical(s3_params: dict[str, Any], bucket: str, boto: Any, big_file: Path,
                                            tmp_path: Path) -> None:
    seen: list[int] = []
    with S3Mover({**s3_params, "multipart_chunksize": "5MiB", "max_concurrency": "3"}) as mover:
        mover.put(big_file, f"s3://{bucket}/dir/", progress=seen.append)
        back = mover.get(f"s3://{bucket}/dir/big.nc", tmp_path / "back.nc")
    assert Path(back).read_bytes() == big_file.read_bytes()
    assert sum(seen) == big_file.stat().st_size
    assert len(seen) == 5  # one report per part: 4 of 5 MiB and the rest
    assert boto.head_object(Bucket=bucket, Key="dir/big.nc")["ETag"].strip('"').endswith("-5")
    assert pending_uploads(boto, bucket) == []


def test_a_limited_multipart_upload_pays_for_each_part_before_it_goes(s3_params: dict[str, Any], bucket: str,
                                                                       boto: Any, big_file: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Paid once stored, the first max_concurrency parts would all leave ahead of the limit."""
    import s3fs

    from trollmoves_core.bwlimit import Limits, Schedule

    events: list[str] = []
    original = s3fs.S3FileSystem._call_s3

    async def recording(self: Any, method: str, *args: Any, **kwargs: Any) -> Any:
        if method == "upload_part":
            events.append(f"sent {kwargs['PartNumber']}")
        return await original(self, method, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", recording)
    paid = iter(range(1, 100))
    throttle = Limits().throttle([("test", Schedule.parse("10G"))], lambda _n: events.append(f"paid {next(paid)}"))
    with S3Mover({**s3_params, "multipart_chunksize": "5MiB", "max_concurrency": "3"}) as mover:
        mover.put(big_file, f"s3://{bucket}/dir/", progress=throttle)
        back = mover.get(f"s3://{bucket}/dir/big.nc", tmp_path / "back.nc")
    assert Path(back).read_bytes() == big_file.read_bytes()
    assert throttle.buckets[0].taken == big_file.stat().st_size
    for part in range(1, 6):
        assert events.index(f"paid {part}") < events.index(f"sent {part}"), events


def test_small_files_go_in_one_request(mover: S3Mover, bucket: str, boto: Any, tmp_path: Path) -> None:
    source = tmp_path / "small.dat"
    source.write_bytes(os.urandom(MIB))
    mover.put(source, f"s3://{bucket}/")
    assert "-" not in boto.head_object(Bucket=bucket, Key="small.dat")["ETag"]


def test_s3_use_multipart_sends_every_file_as_multipart(s3_params: dict[str, Any], bucket: str, boto: Any,
                                                        tmp_path: Path) -> None:
    source = tmp_path / "small.dat"
    source.write_bytes(b"tiny")
    with S3Mover({**s3_params, "s3_use_multipart": "true"}) as mover:
        mover.put(source, f"s3://{bucket}/")
    assert boto.head_object(Bucket=bucket, Key="small.dat")["ETag"].strip('"').endswith("-1")
    assert boto.get_object(Bucket=bucket, Key="small.dat")["Body"].read() == b"tiny"


@pytest.mark.parametrize("concurrency", [1, 4])
def test_interrupted_multipart_leaves_no_object_and_no_upload(s3_params: dict[str, Any], bucket: str, boto: Any,
                                                              big_file: Path, concurrency: int) -> None:
    def stop_after_first_part(_nbytes: int) -> None:
        raise _Stop("stopped by the test")

    with S3Mover({**s3_params, "multipart_chunksize": 5 * MIB, "max_concurrency": concurrency}) as mover, \
            pytest.raises(TransferError, match="stopped by the test") as info:
        mover.put(big_file, f"s3://{bucket}/dir/", progress=stop_after_first_part)
    assert not info.value.transient
    assert objects(boto, bucket) == []
    assert pending_uploads(boto, bucket) == []


def test_server_lost_mid_upload_leaves_no_object(s3: str, bucket: str, boto: Any, big_file: Path,
                                                 tmp_path: Path) -> None:
    moto_port = int(s3.rsplit(":", 1)[1])
    proxy = TcpProxy(moto_port)
    params = {"endpoint_url": proxy.url, **CREDENTIALS, "multipart_chunksize": "5MiB", "max_concurrency": 1,
              "retries": 2, "retry_delay": 0.01, "config_kwargs": {"retries": {"max_attempts": 1}}}
    with S3Mover(params) as mover:
        with pytest.raises(TransferError) as info:
            mover.put(big_file, f"s3://{bucket}/dir/", progress=lambda _n: proxy.cut())
        assert info.value.transient
        assert f"s3://{bucket}/dir/big.nc" in str(info.value)
        assert objects(boto, bucket) == []
        assert len(pending_uploads(boto, bucket)) == 1  # the abort could not reach the server either

        proxy = TcpProxy(moto_port, port=proxy.port)  # the server is back
        small = tmp_path / "small.dat"
        small.write_bytes(b"after the outage")
        mover.put(small, f"s3://{bucket}/dir/")
    proxy.cut()
    assert objects(boto, bucket) == ["dir/small.dat"]
    assert pending_uploads(boto, bucket) == []  # the next upload aborted the leftover


# -- errors --------------------------------------------------------------------------------

def test_missing_bucket_is_a_clear_permanent_error(mover: S3Mover, s3: str, tmp_path: Path) -> None:
    source = tmp_path / "a.nc"
    source.write_bytes(b"x")
    with pytest.raises(TransferError) as info:
        mover.put(source, "s3://no-such-bucket/dir/")
    assert not info.value.transient
    assert "NoSuchBucket: bucket 'no-such-bucket' does not exist" in str(info.value)
    assert "s3://no-such-bucket/dir/a.nc" in str(info.value)


def test_unreachable_endpoint_is_transient_and_retried(s3: str, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    proxy = TcpProxy(1)
    proxy.cut()  # nothing listens there any more
    source = tmp_path / "a.nc"
    source.write_bytes(b"x")
    params = {"endpoint_url": proxy.url, **CREDENTIALS, "retries": 3, "retry_delay": 0.01,
              "config_kwargs": '{"retries": {"max_attempts": 1}}'}
    with caplog.at_level(logging.WARNING, logger="trollmoves_core.retry"), S3Mover(params) as mover, \
            pytest.raises(TransferError) as info:
        mover.put(source, "s3://somebucket/a.nc")
    assert info.value.transient
    assert "s3://somebucket/a.nc" in str(info.value)
    assert "connect" in str(info.value).lower()
    assert len([r for r in caplog.records if "retrying" in r.getMessage()]) == 2


@pytest.fixture
def iam_user(s3: str, bucket: str) -> Iterator[tuple[str, str]]:
    """An IAM user allowed to use S3, with moto's request authentication switched on."""
    boto3 = pytest.importorskip("boto3")
    iam = boto3.client("iam", endpoint_url=s3, aws_access_key_id="testing", aws_secret_access_key="testing",
                       region_name="us-east-1")
    iam.create_user(UserName="mover")
    iam.put_user_policy(UserName="mover", PolicyName="s3", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    created = iam.create_access_key(UserName="mover")["AccessKey"]
    moto_api(s3, "reset-auth", b"0")
    try:
        yield created["AccessKeyId"], created["SecretAccessKey"]
    finally:
        moto_api(s3, "reset-auth", b"inf")


def test_credentials_are_checked(s3: str, bucket: str, iam_user: tuple[str, str], tmp_path: Path,
                                 caplog: pytest.LogCaptureFixture) -> None:
    key, secret = iam_user
    source = tmp_path / "a.nc"
    source.write_bytes(b"x")
    with S3Mover({"endpoint_url": s3, "key": key, "secret": secret}) as mover:
        mover.put(source, f"s3://{bucket}/")

    wrong_secret = "not-the-secret-" + secret[:8]
    caplog.set_level(logging.DEBUG)
    with S3Mover({"endpoint_url": s3, "key": key, "secret": wrong_secret}) as mover, \
            pytest.raises(TransferError) as info:
        mover.put(source, f"s3://{bucket}/")
    assert not info.value.transient
    assert "SignatureDoesNotMatch" in str(info.value)
    assert wrong_secret not in str(info.value)

    with S3Mover({"endpoint_url": s3, "aws_access_key_id": "AKIAUNKNOWN000000000",
                  "aws_secret_access_key": wrong_secret}) as mover, pytest.raises(TransferError) as info:
        mover.get(f"s3://{bucket}/a.nc", tmp_path / "back.nc")
    assert not info.value.transient
    assert "InvalidAccessKeyId" in str(info.value)
    assert not (tmp_path / "back.nc").exists()
    assert wrong_secret not in caplog.text
    assert secret not in caplog.text


def test_credentials_in_the_uri_are_used_and_never_shown(s3: str, bucket: str, iam_user: tuple[str, str],
                                                         tmp_path: Path) -> None:
    key, secret = iam_user
    quoted = urllib.parse.quote(secret, safe="")  # moto's secrets may hold "/"
    source = tmp_path / "a.nc"
    source.write_bytes(b"x")
    with S3Mover({"endpoint_url": s3}) as mover:
        assert mover.put(source, f"s3://{key}:{quoted}@{bucket}/") == f"s3://{key}@{bucket}/a.nc"
        with pytest.raises(TransferError) as info:
            mover.put(source, f"s3://{key}:wrong{quoted}@{bucket}/")
    assert "SignatureDoesNotMatch" in str(info.value)
    assert secret not in str(info.value) and quoted not in str(info.value)


# -- downloads -----------------------------------------------------------------------------

def test_get_reports_progress_per_chunk(mover: S3Mover, bucket: str, big_file: Path, tmp_path: Path,
                                        boto: Any) -> None:
    boto.upload_file(str(big_file), bucket, "big.nc")
    seen: list[int] = []
    back = mover.get(f"s3://{bucket}/big.nc", f"{tmp_path}/dl/", progress=seen.append)
    assert back == str(tmp_path / "dl" / "big.nc")
    assert sum(seen) == big_file.stat().st_size
    assert len(seen) > 10


def test_get_range(mover: S3Mover, bucket: str, boto: Any, tmp_path: Path) -> None:
    data = os.urandom(100_000)
    boto.put_object(Bucket=bucket, Key="r.dat", Body=data)
    assert Path(mover.get_range(f"s3://{bucket}/r.dat", str(tmp_path / "a"), 10, 1000)).read_bytes() == data[10:1000]
    assert Path(mover.get_range(f"s3://{bucket}/r.dat", str(tmp_path / "b"), 99_990)).read_bytes() == data[99_990:]
    assert Path(mover.get(f"s3://{bucket}/r.dat", tmp_path / "c")).read_bytes() == data  # no range left behind


def test_range_from_connection_params(s3_params: dict[str, Any], bucket: str, boto: Any, tmp_path: Path) -> None:
    data = os.urandom(5000)
    boto.put_object(Bucket=bucket, Key="r.dat", Body=data)
    with S3Mover({**s3_params, "range_start": "100", "range_end": "200"}) as mover:
        assert Path(mover.get(f"s3://{bucket}/r.dat", tmp_path / "a")).read_bytes() == data[100:200]


def test_range_past_the_end_is_a_permanent_error(mover: S3Mover, bucket: str, boto: Any, tmp_path: Path) -> None:
    boto.put_object(Bucket=bucket, Key="r.dat", Body=b"short")
    with pytest.raises(TransferError, match="InvalidRange") as info:
        mover.get_range(f"s3://{bucket}/r.dat", str(tmp_path / "a"), 100)
    assert not info.value.transient
    assert not (tmp_path / "a").exists()


# -- delete, connections -------------------------------------------------------------------

def test_delete_of_a_missing_key_succeeds_but_not_in_a_missing_bucket(mover: S3Mover, bucket: str) -> None:
    mover.delete(f"s3://{bucket}/never-there.nc")
    with pytest.raises(TransferError, match="NoSuchBucket"):
        mover.delete("s3://no-such-bucket/x.nc")


def test_one_filesystem_serves_every_bucket_and_survives_errors(mover: S3Mover, bucket: str, boto: Any,
                                                                tmp_path: Path) -> None:
    boto.create_bucket(Bucket="second-bucket")
    source = tmp_path / "a.nc"
    source.write_bytes(b"x")
    mover.put(source, f"s3://{bucket}/")
    with pytest.raises(TransferError):
        mover.get(f"s3://{bucket}/missing.nc", tmp_path / "m")
    mover.put(source, "s3://second-bucket/")
    assert mover.connections_opened == 1
    mover.close()
    mover.put(source, "s3://second-bucket/again/")
    assert mover.connections_opened == 2
    assert objects(boto, "second-bucket") == ["a.nc", "again/a.nc"]


@pytest.mark.parametrize("where", ["endpoint_url", "client_kwargs"])
def test_the_connection_line_names_the_endpoint_used(s3: str, bucket: str, tmp_path: Path, where: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    params: dict[str, Any] = {"endpoint_url": s3}
    if where == "client_kwargs":
        params = {"client_kwargs": params}
    source = tmp_path / "a.nc"
    source.write_bytes(b"x")
    with caplog.at_level(logging.DEBUG, logger="trollmoves_s3.mover"), S3Mover({**params, **CREDENTIALS}) as mover:
        mover.put(source, f"s3://{bucket}/")
    opened = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Opened an S3 connection")]
    assert opened == [f"Opened an S3 connection to {s3} (profile -)"]


def test_an_endpoint_in_client_kwargs_is_the_movers_endpoint(s3: str) -> None:
    """It keys the shared connections: two endpoints must not share one."""
    with S3Mover({"client_kwargs": {"endpoint_url": s3}, **CREDENTIALS}) as mover:
        assert mover.options.endpoint_url == s3


def test_connection_uptime_zero_closes_after_each_transfer(s3_params: dict[str, Any], bucket: str,
                                                           tmp_path: Path) -> None:
    source = tmp_path / "a.nc"
    source.write_bytes(b"x")
    with S3Mover({**s3_params, "connection_uptime": "0"}) as mover:
        mover.put(source, f"s3://{bucket}/")
        mover.put(source, f"s3://{bucket}/")
        assert mover.connections_opened == 2


def test_bad_botocore_settings_are_a_permanent_error(s3_params: dict[str, Any], bucket: str, tmp_path: Path) -> None:
    source = tmp_path / "a.nc"
    source.write_bytes(b"x")
    with S3Mover({**s3_params, "config_kwargs": '{"no_such_setting": 1}'}) as mover, \
            pytest.raises(TransferError, match="no_such_setting") as info:
        mover.put(source, f"s3://{bucket}/")
    assert not info.value.transient


def test_string_params_from_an_ini_file(s3: str, bucket: str, boto: Any, big_file: Path) -> None:
    params = {"endpoint_url": s3, "aws_access_key_id": "testing", "aws_secret_access_key": "testing",
              "region_name": "us-east-1", "use_ssl": "false", "multipart_threshold": "16MiB",
              "s3_multipart_chunksize": "6 MiB", "config_kwargs": "retries: {max_attempts: 2}",
              "s3_additional_kwargs": '{"StorageClass": "STANDARD_IA"}',
              "connection_uptime": "5", "ssh_key_filename": "/nonexistent/id_rsa", "passive": "yes"}
    with S3Mover(params) as mover:
        mover.put(big_file, f"s3://{bucket}/")
    head = boto.head_object(Bucket=bucket, Key="big.nc")
    assert head["ETag"].strip('"').endswith("-4")  # 20 MiB in parts of 6 MiB
    assert head["StorageClass"] == "STANDARD_IA"


# -- command line --------------------------------------------------------------------------

def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TROLLMOVES, *args], capture_output=True, text=True, timeout=60, check=False,
                          env=dict(os.environ))


def test_cli_move_and_get(s3: str, bucket: str, boto: Any, tmp_path: Path) -> None:
    source = tmp_path / "file.nc"
    source.write_bytes(b"over the command line")
    options = ["-o", f"endpoint_url={s3}", "-o", "key=testing", "-o", "secret=testing"]
    moved = _run("move", str(source), f"s3://{bucket}/dir/", *options)
    assert moved.returncode == 0, moved.stderr
    assert objects(boto, bucket) == ["dir/file.nc"]
    got = _run("get", f"s3://{bucket}/dir/file.nc", f"{tmp_path}/x/", *options)
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "x" / "file.nc").read_bytes() == b"over the command line"
    missing = _run("get", f"s3://{bucket}/dir/nothing.nc", f"{tmp_path}/x/", *options)
    assert missing.returncode == 1
    assert "NoSuchKey" in missing.stderr and "testing" not in missing.stderr


def test_cli_rejects_bad_s3_options(s3: str, tmp_path: Path) -> None:
    source = tmp_path / "file.nc"
    source.write_bytes(b"x")
    result = _run("move", str(source), "s3://bucket/", "-o", "multipart_chunksize=1MiB")
    assert result.returncode == 2
    assert "multipart_chunksize" in result.stderr


def test_plugins_lists_the_s3_mover() -> None:
    result = _run("plugins", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["trollmoves-s3"]["movers"] == ["s3"]
    assert rows["trollmoves-s3"]["error"] is None


def test_get_a_given_version(mover: S3Mover, bucket: str, boto: Any, tmp_path: Path) -> None:
    boto.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = boto.put_object(Bucket=bucket, Key="v.dat", Body=b"first")["VersionId"]
    boto.put_object(Bucket=bucket, Key="v.dat", Body=b"second")
    assert Path(mover.get(f"s3://{bucket}/v.dat?versionId={first}", tmp_path / "a")).read_bytes() == b"first"
    assert Path(mover.get(f"s3://{bucket}/v.dat", tmp_path / "b")).read_bytes() == b"second"


def test_multipart_with_a_checksum_algorithm(s3_params: dict[str, Any], bucket: str, boto: Any, big_file: Path,
                                             tmp_path: Path) -> None:
    params = {**s3_params, "multipart_chunksize": "5MiB", "s3_additional_kwargs": '{"ChecksumAlgorithm": "SHA256"}'}
    with S3Mover(params) as mover:
        mover.put(big_file, f"s3://{bucket}/")
        assert Path(mover.get(f"s3://{bucket}/big.nc", tmp_path / "back")).read_bytes() == big_file.read_bytes()
    head = boto.head_object(Bucket=bucket, Key="big.nc", ChecksumMode="ENABLED")
    assert head["ETag"].strip('"').endswith("-5")
    assert head.get("ChecksumSHA256")


@pytest.mark.parametrize("algorithm", [None, "SHA256"])
def test_every_part_carries_its_checksum(s3_params: dict[str, Any], bucket: str, boto: Any, big_file: Path,
                                         monkeypatch: pytest.MonkeyPatch, algorithm: str | None) -> None:
    """CRC32 as boto3's uploads unless s3_additional_kwargs asks for another, computed by the mover."""
    import base64
    import hashlib
    import zlib

    import s3fs

    sent: dict[int, str] = {}
    original = s3fs.S3FileSystem._call_s3

    async def recording(self: Any, method: str, *args: Any, **kwargs: Any) -> Any:
        if method == "upload_part":
            sent[kwargs["PartNumber"]] = kwargs[f"Checksum{algorithm or 'CRC32'}"]
        return await original(self, method, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", recording)
    params = {**s3_params, "multipart_chunksize": "5MiB"}
    if algorithm:
        params["s3_additional_kwargs"] = {"ChecksumAlgorithm": algorithm}
    with S3Mover(params) as mover:
        mover.put(big_file, f"s3://{bucket}/")
    data = big_file.read_bytes()
    for number in range(1, 6):
        part = data[(number - 1) * 5 * MIB:number * 5 * MIB]
        digest = hashlib.sha256(part).digest() if algorithm else zlib.crc32(part).to_bytes(4, "big")
        assert sent[number] == base64.b64encode(digest).decode()
    head = boto.head_object(Bucket=bucket, Key="big.nc", ChecksumMode="ENABLED")
    assert head.get(f"Checksum{algorithm or 'CRC32'}")  # the object keeps the parts' checksum


def test_profile_from_the_shared_credentials_file(s3: str, bucket: str, boto: Any, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text("[archive-test]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    source = tmp_path / "a.nc"
    source.write_bytes(b"x")
    with S3Mover({"endpoint_url": s3, "profile": "archive-test"}) as mover:
        mover.put(source, f"s3://{bucket}/")
    assert objects(boto, bucket) == ["a.nc"]
    with S3Mover({"endpoint_url": s3, "profile": "no-such-profile"}) as mover, \
            pytest.raises(TransferError, match="no-such-profile") as info:
        mover.put(source, f"s3://{bucket}/")
    assert not info.value.transient


def test_parts_go_without_checksums_when_the_store_wants_them_only_when_required(
        s3_params: dict[str, Any], bucket: str, big_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An older S3-compatible store refuses flexible checksums: botocore's own switch turns ours off too."""
    import s3fs

    calls: list[tuple[str, dict[str, Any]]] = []
    original = s3fs.S3FileSystem._call_s3

    async def recording(self: Any, method: str, *args: Any, **kwargs: Any) -> Any:
        calls.append((method, kwargs))
        return await original(self, method, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", recording)
    params = {**s3_params, "multipart_chunksize": "5MiB",
              "config_kwargs": {"request_checksum_calculation": "when_required"}}
    with S3Mover(params) as mover:
        mover.put(big_file, f"s3://{bucket}/")
    parts = [kwargs for method, kwargs in calls if method == "upload_part"]
    assert len(parts) == 5
    assert not any(key.startswith("Checksum") for kwargs in parts for key in kwargs)

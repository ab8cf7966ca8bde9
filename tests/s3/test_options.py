"""Connection parameters and error classification of the S3 mover (no server needed)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, ReadTimeoutError
from trollmoves_s3.errors import describe, is_transient
from trollmoves_s3.options import MIB, S3Options, part_size, to_size

from trollmoves_core.exceptions import ConfigError


def test_defaults() -> None:
    options = S3Options.from_params({})
    assert options.multipart_threshold == options.multipart_chunksize == 8 * MIB
    assert options.max_concurrency == 10
    assert options.fs_kwargs["config_kwargs"]["retries"] == {"max_attempts": 3, "mode": "standard"}
    # each upload's checksum lets the server check the bytes: no second hash of the body for the signature
    assert options.fs_kwargs["config_kwargs"]["s3"] == {"payload_signing_enabled": False}


def test_ini_strings_are_converted() -> None:
    options = S3Options.from_params({
        "endpoint_url": "http://127.0.0.1:9000", "anon": "yes", "use_ssl": "false", "requester_pays": "0",
        "default_block_size": "5MiB", "max_concurrency": "2", "multipart_threshold": "64 MB",
        "multipart_chunksize": "16MiB", "client_kwargs": '{"verify": false}',
        "config_kwargs": "retries: {max_attempts: 7}\nconnect_timeout: 3\ns3: {payload_signing_enabled: true}",
        "s3_additional_kwargs": '{"ACL": "bucket-owner-full-control"}', "profile": "archive",
        "region_name": "eu-north-1"})
    fs = options.fs_kwargs
    assert fs["anon"] is True and fs["use_ssl"] is False and fs["requester_pays"] is False
    assert fs["default_block_size"] == 5 * MIB
    assert options.multipart_threshold == 64_000_000 and options.multipart_chunksize == 16 * MIB
    assert fs["client_kwargs"] == {"verify": False, "region_name": "eu-north-1"}
    assert fs["config_kwargs"] == {"retries": {"max_attempts": 7}, "connect_timeout": 3,
                                   "s3": {"payload_signing_enabled": True}}
    assert fs["s3_additional_kwargs"] == {"ACL": "bucket-owner-full-control"}
    assert fs["profile"] == options.profile == "archive"
    assert fs["max_concurrency"] == options.max_concurrency == 2


def test_aliases_and_upstream_names() -> None:
    options = S3Options.from_params({"aws_access_key_id": "AK", "aws_secret_access_key": "SK", "aws_session_token": "T",
                             "s3_multipart_chunksize": "6MiB", "s3_use_multipart": "True", "s3_use_copy": "true"})
    assert (options.fs_kwargs["key"], options.fs_kwargs["secret"], options.fs_kwargs["token"]) == ("AK", "SK", "T")
    assert options.multipart_chunksize == 6 * MIB
    assert options.multipart_threshold == 0


def test_explicit_key_wins_over_alias() -> None:
    assert S3Options.from_params({"key": "mine", "aws_access_key_id": "other"}).access_key == "mine"


def test_keys_of_other_movers_are_ignored() -> None:
    options = S3Options.from_params({"ssh_key_filename": "/x", "connection_uptime": "5", "passive": "no",
                                     "mode": "copy"})
    assert set(options.fs_kwargs) == {"config_kwargs", "max_concurrency"}


@pytest.mark.parametrize(("params", "key"), [
    ({"multipart_chunksize": "1MiB"}, "multipart_chunksize"),
    ({"s3_multipart_chunksize": 1000}, "s3_multipart_chunksize"),
    ({"max_concurrency": "0"}, "max_concurrency"),
    ({"anon": "perhaps"}, "anon"),
    ({"multipart_threshold": "lots"}, "multipart_threshold"),
    ({"client_kwargs": "[1, 2]"}, "client_kwargs"),
    ({"config_kwargs": "{unclosed"}, "config_kwargs"),
    ({"asynchronous": "true"}, "asynchronous"),
    ({"session": "default"}, "session"),
    ({"range_start": "-1"}, "range_start"),
    ({"range_start": "10", "range_end": "10"}, "range_end"),
])
def test_bad_values_name_their_key(params: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        S3Options.from_params(params)
    assert info.value.key == key
    assert str(info.value).startswith(f"{key}: ")


def test_bad_mapping_does_not_echo_its_value() -> None:
    with pytest.raises(ConfigError) as info:
        S3Options.from_params({"client_kwargs": "- aws_secret_access_key: hunter2"})
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(("text", "size"), [("123", 123), ("8MiB", 8 * MIB), ("8 mb", 8_000_000), ("512k", 524288),
                                            ("1.5GiB", 3 * 512 * MIB), (42, 42)])
def test_sizes(text: str | int, size: int) -> None:
    assert to_size(text, "x") == size


def test_part_size_grows_for_huge_files() -> None:
    assert part_size(20 * MIB, 8 * MIB) == 8 * MIB
    assert part_size(200_000 * MIB, 8 * MIB) == 20 * MIB  # 10 000 parts at most


def _client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"message for {code}"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


@pytest.mark.parametrize(("code", "status"), [("NoSuchBucket", 404), ("NoSuchKey", 404), ("AccessDenied", 403),
                                              ("InvalidAccessKeyId", 403), ("SignatureDoesNotMatch", 403),
                                              ("InvalidRange", 416), ("404", 404)])
def test_permanent_server_replies(code: str, status: int) -> None:
    err = _client_error(code, status)
    assert not is_transient(err)
    wrapped = FileNotFoundError("translated by s3fs")
    wrapped.__cause__ = err
    assert not is_transient(wrapped)


@pytest.mark.parametrize(("code", "status"), [("SlowDown", 503), ("InternalError", 500), ("ServiceUnavailable", 503),
                                              ("RequestTimeout", 400), ("Whatever", 502), ("TooManyRequests", 429)])
def test_transient_server_replies(code: str, status: int) -> None:
    err = _client_error(code, status)
    assert is_transient(err)
    wrapped = OSError(16, "translated by s3fs")
    wrapped.__cause__ = err
    assert is_transient(wrapped)


def test_network_errors_are_transient_missing_credentials_not() -> None:
    assert is_transient(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert is_transient(ReadTimeoutError(endpoint_url="http://127.0.0.1:1"))
    assert is_transient(TimeoutError())
    assert not is_transient(NoCredentialsError())
    assert not is_transient(ValueError("bad"))


def test_descriptions_name_bucket_and_key() -> None:
    assert describe(_client_error("NoSuchBucket", 404), "b", "k") == "NoSuchBucket: bucket 'b' does not exist"
    assert describe(_client_error("NoSuchKey", 404), "b", "d/k") == "NoSuchKey: no object 'd/k' in bucket 'b'"
    assert describe(_client_error("SlowDown", 503), "b", "k") == "SlowDown (HTTP 503): message for SlowDown"
    assert "profile" in describe(NoCredentialsError(), "b", "k")

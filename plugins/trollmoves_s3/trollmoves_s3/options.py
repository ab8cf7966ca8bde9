"""Connection parameters of the S3 mover: the upstream allow-list, typed and checked.

One parameter dict serves every mover of a chain, so keys meant for other movers
(``ssh_key_filename``, ``passive``...) are ignored here. Values from INI files and ``-o`` are
strings: booleans, sizes and nested mappings given as JSON or YAML text are converted, and a
value that cannot be converted is a :class:`~trollmoves_core.exceptions.ConfigError` naming
the key.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from trollmoves_core.config import to_bool
from trollmoves_core.exceptions import ConfigError

LOG = logging.getLogger(__name__)

MIB = 1024 * 1024
MIN_PART_SIZE = 5 * MIB
"""S3 rejects multipart uploads whose parts, except the last, are smaller than this."""
MAX_PARTS = 10_000
"""S3's limit on the number of parts of one multipart upload."""

# Keys upstream 0.19 passes through to S3FileSystem, grouped by type.
_BOOL_KEYS = ("anon", "use_ssl", "requester_pays", "default_fill_cache", "version_aware", "cache_regions",
              "fixed_upload_size")
_STR_KEYS = ("endpoint_url", "key", "secret", "token", "default_cache_type")
_INT_KEYS = ("default_block_size",)
_MAPPING_KEYS = ("client_kwargs", "config_kwargs", "s3_additional_kwargs", "kwargs")
_ALIASES = {"aws_access_key_id": "key", "aws_secret_access_key": "secret", "aws_session_token": "token"}
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": MIB, "mb": 1000**2, "mib": MIB,
               "g": 1024**3, "gb": 1000**3, "gib": 1024**3}
_DEFAULT_BOTO_RETRIES = {"max_attempts": 3, "mode": "standard"}
"""Request-level retries inside botocore; whole transfers are retried by the mover on top."""


@dataclass(frozen=True)
class S3Options:
    """Everything the S3 mover needs from its connection parameters."""

    fs_kwargs: dict[str, Any] = field(default_factory=dict, repr=False)
    """Keyword arguments for ``s3fs.S3FileSystem`` (may hold secrets: never log them)."""
    endpoint_url: str | None = None
    profile: str | None = None
    region_name: str | None = None
    anon: bool = False
    multipart_threshold: int = 8 * MIB
    """Files of this size or larger are sent as a multipart upload."""
    multipart_chunksize: int = 8 * MIB
    """Size of each part but the last; raised when a file would need more than 10 000 parts."""
    max_concurrency: int = 10
    """Parts uploaded at once (s3fs' default, so upstream's); memory about ``(max_concurrency + 1) * chunksize``."""
    range_start: int | None = None
    range_end: int | None = None
    """Byte range for downloads, ``[range_start, range_end)`` like a Python slice."""

    @property
    def access_key(self) -> str | None:
        return self.fs_kwargs.get("key")

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> S3Options:
        """Read a mover's connection parameters; raise :class:`ConfigError` naming a bad key."""
        fs: dict[str, Any] = {}
        for alias, name in _ALIASES.items():
            if params.get(alias) is not None and params.get(name) is None:
                fs[name] = _text(params[alias], alias)
        for name in _STR_KEYS:
            if params.get(name) is not None:
                fs[name] = _text(params[name], name)
        for name in _BOOL_KEYS:
            if params.get(name) is not None:
                fs[name] = to_bool(params[name], key=name)
        for name in _INT_KEYS:
            if params.get(name) is not None:
                fs[name] = to_size(params[name], name)
        for name in _MAPPING_KEYS:
            if params.get(name) is not None:
                fs[name] = to_mapping(params[name], name)
        if to_bool(params.get("asynchronous", False), key="asynchronous"):
            raise ConfigError("not supported: the mover drives s3fs synchronously", key="asynchronous")
        session = params.get("session")
        if session is not None:
            if isinstance(session, str):
                raise ConfigError("expected an aiobotocore session object, not text; use 'profile' in config files",
                                  key="session")
            fs["session"] = session

        extra = dict(fs.pop("kwargs", {}))  # upstream's "kwargs": more S3FileSystem/AioSession arguments
        profile = _optional_text(params.get("profile"), "profile") or extra.pop("profile", None)
        if profile:
            fs["profile"] = profile
        fs.update({k: v for k, v in extra.items() if k not in fs})

        client_kwargs = dict(fs.get("client_kwargs", {}))
        region = _optional_text(params.get("region_name"), "region_name") or client_kwargs.get("region_name")
        if region:
            client_kwargs["region_name"] = region
        if client_kwargs:
            fs["client_kwargs"] = client_kwargs
        config_kwargs = dict(fs.get("config_kwargs", {}))
        config_kwargs.setdefault("retries", dict(_DEFAULT_BOTO_RETRIES))
        # botocore hashes every body for the signature over plain http (on s3fs' one event-loop thread,
        # so one part at a time); the checksum each upload carries already lets the server check the bytes.
        if isinstance(config_kwargs.get("s3", {}), Mapping):
            config_kwargs["s3"] = {"payload_signing_enabled": False, **config_kwargs.get("s3", {})}
        fs["config_kwargs"] = config_kwargs

        concurrency = to_size(params.get("max_concurrency", 10), "max_concurrency")
        if concurrency < 1:
            raise ConfigError("must be at least 1", key="max_concurrency")
        fs["max_concurrency"] = concurrency

        chunk_key = "multipart_chunksize" if params.get("multipart_chunksize") is not None else "s3_multipart_chunksize"
        chunksize = to_size(params.get(chunk_key, 8 * MIB), chunk_key)
        if chunksize < MIN_PART_SIZE:
            raise ConfigError(f"must be at least 5 MiB ({MIN_PART_SIZE} bytes), the S3 minimum part size, "
                              f"got {chunksize}", key=chunk_key)
        threshold = to_size(params.get("multipart_threshold", 8 * MIB), "multipart_threshold")
        if to_bool(params.get("s3_use_multipart", False), key="s3_use_multipart"):
            threshold = 0  # upstream's switch: every upload goes through the multipart API
        if threshold < 0:
            raise ConfigError("must not be negative", key="multipart_threshold")

        start = _optional_size(params.get("range_start"), "range_start")
        end = _optional_size(params.get("range_end"), "range_end")
        check_range(start, end)

        ignored = sorted(k for k in ("s3_use_copy",) if k in params)
        if ignored:
            LOG.debug("S3 mover: %s not needed, uploads are always atomic", ", ".join(ignored))
        endpoint = fs.get("endpoint_url") or client_kwargs.get("endpoint_url")
        return cls(fs_kwargs=fs, endpoint_url=endpoint, profile=fs.get("profile"),
                   region_name=region, anon=bool(fs.get("anon", False)), multipart_threshold=threshold,
                   multipart_chunksize=chunksize, max_concurrency=concurrency, range_start=start, range_end=end)


def check_range(start: int | None, end: int | None) -> None:
    """Reject a byte range that selects nothing or starts before the file."""
    if start is not None and start < 0:
        raise ConfigError(f"must not be negative, got {start}", key="range_start")
    if end is not None and end <= (start or 0):
        raise ConfigError(f"must be greater than range_start ({start or 0}), got {end}", key="range_end")


def part_size(file_size: int, chunksize: int) -> int:
    """The part size to use: ``chunksize``, grown when the file would need too many parts."""
    needed = -(-file_size // MAX_PARTS)
    return max(chunksize, needed)


def to_size(value: Any, key: str) -> int:
    """A byte count from an int or text such as ``8388608``, ``8MiB``, ``8 MB`` or ``512k``."""
    if isinstance(value, bool):
        raise ConfigError(f"expected a number, got {value!r}", key=key)
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(value))
    unit = match and _SIZE_UNITS.get(match.group(2).lower())
    if not match or unit is None:
        raise ConfigError(f"expected a size such as 8388608 or 8MiB, got {value!r}", key=key)
    return int(float(match.group(1)) * unit)


def to_mapping(value: Any, key: str) -> dict[str, Any]:
    """A dict from a mapping or from JSON/YAML text (``{"region_name": "eu-north-1"}``)."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str):
        if not value.strip():
            return {}
        try:
            loaded = json.loads(value)
        except ValueError:
            try:
                loaded = yaml.safe_load(value)
            except yaml.YAMLError:
                raise ConfigError("expected a mapping as JSON or YAML text, which this is not", key=key) from None
        if isinstance(loaded, Mapping):
            return dict(loaded)
    # the value itself is not shown: client_kwargs may hold credentials
    raise ConfigError(f"expected a mapping (or JSON/YAML text of one), got {type(value).__name__}", key=key)


def _text(value: Any, key: str) -> str:
    if isinstance(value, Mapping | list | tuple):
        raise ConfigError("expected text", key=key)
    return str(value)


def _optional_text(value: Any, key: str) -> str | None:
    return None if value is None or value == "" else _text(value, key)


def _optional_size(value: Any, key: str) -> int | None:
    return None if value is None or value == "" else to_size(value, key)

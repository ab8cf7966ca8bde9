"""The one-pass codec writes and reads exactly what posttroll's ``Message`` does."""

from __future__ import annotations

import datetime as dt

import pytest
from posttroll.message import Message, MessageError
from trollmoves_roles.protocol import codec
from trollmoves_roles.protocol.messages import MESSAGE_VERSION, versioned

WHEN = dt.datetime(2026, 12, 3, 13, 40, 18, 720644, tzinfo=dt.UTC)

DATA = [
    {"uid": "a.nc", "uri": "/data/a.nc", "filesize": 10240, "checksum": {"algorithm": "sha256", "hash": "ab" * 32}},
    {"start_time": WHEN, "naive": WHEN.replace(tzinfo=None), "nested": {"when": [WHEN, "x", [WHEN, 3]]}},
    {"dataset": [{"uid": "b", "uri": "/b", "t": "2026-12-03"}, {"uid": "c", "uri": "/c"}], "n": None, "f": 1.5},
    {"looks_like_dates": ["20261203", "2026-12-03T01:02", "2026W49", "1234", "12345", "é", ""],
     "wide_digits": "\uff12\uff10\uff12\uff16-01-01"},
    {"unicode": "sään tiedot ✓", "empty": {}, "list": [], "bool": True},
    "plain text",
    "",
]


def posttroll_message(data: object, atype: str = "file") -> Message:
    message = Message("/bench/data", atype, data, version=MESSAGE_VERSION)
    message.time = WHEN
    return message


@pytest.mark.parametrize("data", DATA)
def test_encode_writes_what_posttroll_writes(data: object) -> None:
    theirs = posttroll_message(data)
    ours = codec.make_message("/bench/data", "file", data)
    ours.time = WHEN
    assert codec.encode(ours) == versioned(theirs).encode()
    assert codec.encode(theirs) == versioned(theirs).encode()


@pytest.mark.parametrize("data", DATA)
def test_decode_reads_what_posttroll_reads(data: object) -> None:
    raw = posttroll_message(data).encode()
    theirs, ours = Message.decode(raw), codec.decode(raw.encode())
    assert vars(ours) == vars(theirs)


def test_decode_reads_an_older_version_without_timezone() -> None:
    raw = 'pytroll://a/b file user@host 2026-12-03T13:40:18.720644 v1.01 application/json {"t": "2026-12-03T01:02:03"}'
    assert vars(codec.decode(raw)) == vars(Message.decode(raw))


def test_encoded_messages_survive_a_round_trip() -> None:
    message = codec.make_message("/a/b", "push", {"uid": "a", "when": WHEN})
    back = codec.decode(codec.encode(message))
    assert (back.subject, back.type, back.sender, back.data, back.version) == \
        ("/a/b", "push", codec.SENDER, {"uid": "a", "when": WHEN}, MESSAGE_VERSION)


@pytest.mark.parametrize("raw", [
    b"not a message",
    b"pytroll://a file",
    b"pytroll://a file u@h 2026-12-03T13:40:18 v9.9",
    b"pytroll://a file u@h 2026-12-03T13:40:18 v1.2 application/json {not json",
    b"pytroll://a file u@h 2026-12-03T13:40:18 v1.2 image/png xyz",
])
def test_decode_rejects_what_posttroll_rejects(raw: bytes) -> None:
    with pytest.raises(MessageError):
        Message.decode(raw)
    with pytest.raises(MessageError):
        codec.decode(raw)


def test_bad_subject_type_and_data_raise_message_errors() -> None:
    with pytest.raises(MessageError):
        codec.make_message("", "file")
    with pytest.raises(MessageError):
        codec.make_message("/a", "")
    with pytest.raises(MessageError, match="not JSON serializable"):
        codec.encode(codec.make_message("/a", "file", {"x": object()}))

"""Received bus messages share their repeating strings."""

from __future__ import annotations

import datetime as dt

from posttroll.message import Message
from trollmoves_roles.protocol import compact
from trollmoves_roles.protocol.compact import compact_data, compact_message


def announcement(uid: str) -> Message:
    data = {"uid": uid, "uri": f"/data/{uid}", "request_address": "127.0.0.1:9010", "sensor": "avhrr",
            "start_time": dt.datetime(2026, 11, 25, 12), "dataset": [{"uid": uid, "uri": f"/data/{uid}"}]}
    return Message.decode(Message("/topic", "file", data).encode())


def test_two_messages_share_field_names_and_repeating_values_but_keep_their_own_data() -> None:
    first, second = compact_message(announcement("a.dat")), compact_message(announcement("b.dat"))
    assert first.data["uid"] == "a.dat" and second.data["uid"] == "b.dat"
    assert first.data["start_time"] == dt.datetime(2026, 11, 25, 12)
    key_a = next(k for k in first.data if k == "request_address")
    key_b = next(k for k in second.data if k == "request_address")
    assert key_a is key_b
    assert first.data["request_address"] is second.data["request_address"]
    assert first.data["sensor"] is second.data["sensor"]
    assert first.sender is second.sender and first.subject is second.subject
    nested_a, nested_b = first.data["dataset"][0], second.data["dataset"][0]
    assert next(iter(nested_a)) is next(iter(nested_b))  # nested field names too
    assert first.encode() != second.encode()


def test_the_shared_table_is_bounded(monkeypatch) -> None:
    monkeypatch.setattr(compact, "_shared", {})
    monkeypatch.setattr(compact, "SHARED_MAX", 10)
    for n in range(100):
        compact_data({f"field{n}": n})
    assert len(compact._shared) == 10
    assert compact_data({"new-field": 1}) == {"new-field": 1}

"""Seeded generators of hostile input: request payloads for a server's request socket and
messages for a bus a ``listen`` chain subscribes to. Every case is reproducible from its seed."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

from posttroll.message import Message

HEADER = "pytroll:/{subject} {atype} user@host 2024-01-02T03:04:05.000006+00:00 v1.2"
TYPES = ["push", "ping", "info", "ack", "file", "dataset", "collection", "beat", "", "PUSH", "del", "x" * 300]
TRAVERSALS = ["../../etc/passwd", "/etc/passwd", "/etc/../etc/shadow", "file:///etc/passwd", "//etc/passwd",
              "/proc/self/environ", "ssh://host/etc/passwd", "~/.ssh/id_rsa", "\x00/etc/passwd", "/" * 5000,
              "file://user:pass@host/../../x", "%2e%2e/%2e%2e/etc/passwd", "C:\\Windows\\system32", "."]
WEIRD_VALUES: list[object] = [None, 0, -1, 2**70, 3.5, float("1e308"), True, [], {}, [1, 2], {"a": None}, "",
                              "x" * 10000, "\udcff" if False else "\u202e\u0000", "2024-01-02", [{"uri": 5}]]


def _json(value: object) -> str:
    return json.dumps(value, allow_nan=True)


def _text(rng: random.Random, size: int) -> str:
    alphabet = "abc/._- \t\n{}[]\":,\\\x00éü☃" + "0123456789"
    return "".join(rng.choice(alphabet) for _ in range(size))


def request_payloads(seed: int, count: int, *, announced: str, topic: str, destination: str) -> Iterator[
        tuple[str, list[bytes]]]:
    """``count`` (kind, body frames) request payloads. ``announced`` is a real announced file:
    a few cases name it with hostile destinations or extra keys."""
    rng = random.Random(seed)
    subject = topic.lstrip("/")
    valid = Message(topic, "push", {"uri": announced, "uid": "x", "destination": destination}).encode()
    kinds = ["random bytes", "truncated", "unknown type", "invalid json", "wrong types", "missing keys",
             "traversal", "multi frame", "bad info", "deep nesting", "bad utf-8", "bad header", "big",
             "bad destination"]
    weights = [12, 12, 8, 10, 14, 8, 12, 4, 5, 2, 5, 6, 1, 1]
    for _ in range(count):
        kind = rng.choices(kinds, weights)[0]
        if kind == "random bytes":
            body = [rng.randbytes(rng.randint(0, 600))]
        elif kind == "truncated":
            body = [valid[: rng.randint(0, len(valid) - 1)].encode()]
        elif kind == "unknown type":
            atype = rng.choice([*TYPES[4:], _text(rng, 8).replace(" ", "").replace("\n", "") or "t"])
            body = [f"{HEADER.format(subject=subject, atype=atype)} application/json {{}}".encode()]
        elif kind == "invalid json":
            junk = rng.choice(['{"uri": ', "{'uri': 'x'}", '{"uri": "a",}', "[1, 2", "NaN", "{" * 50,
                               '{"uri": "\\ud800"}', _text(rng, 40)])
            body = [f"{HEADER.format(subject=subject, atype='push')} application/json {junk}".encode()]
        elif kind == "wrong types":
            data: object = rng.choice([
                {"uri": rng.choice(WEIRD_VALUES), "uid": "x", "destination": destination},
                {"uri": announced, "uid": rng.choice(WEIRD_VALUES), "destination": rng.choice(WEIRD_VALUES)},
                {"uri": announced, "destination": destination, "path": rng.choice(WEIRD_VALUES)},
                {"dataset": rng.choice(WEIRD_VALUES), "destination": destination},
                {"collection": [{"dataset": rng.choice(WEIRD_VALUES)}], "destination": destination},
                rng.choice(WEIRD_VALUES)])
            atype = rng.choice(["push", "ack", "info"])
            body = [f"{HEADER.format(subject=subject, atype=atype)} application/json {_json(data)}".encode()]
        elif kind == "missing keys":
            data = rng.choice([{}, {"uri": announced}, {"destination": destination}, {"uid": "x"},
                               {"dataset": [], "destination": destination}])
            body = [f"{HEADER.format(subject=subject, atype='push')} application/json {_json(data)}".encode()]
        elif kind == "traversal":
            uri = rng.choice(TRAVERSALS)
            if rng.random() < 0.5:
                uri = announced.rsplit("/", 1)[0] + "/" + uri
            data = {"uri": uri, "uid": "x", "destination": destination}
            body = [f"{HEADER.format(subject=subject, atype='push')} application/json {_json(data)}".encode()]
        elif kind == "multi frame":
            body = [valid.encode(), rng.randbytes(rng.randint(0, 50))]
        elif kind == "bad info":
            data = {"max_count": rng.choice([-1, "10", 2**64, None, 1.5, [], True])}
            body = [f"{HEADER.format(subject=subject, atype='info')} application/json {_json(data)}".encode()]
        elif kind == "deep nesting":
            depth = rng.choice([100, 2000, 50000])
            body = [f"{HEADER.format(subject=subject, atype='push')} application/json "
                    f"{'[' * depth}{']' * depth}".encode()]
        elif kind == "bad utf-8":
            body = [HEADER.format(subject=subject, atype="push").encode()
                    + b" application/json {\"uri\": \"\xff\xfe\"}"]
        elif kind == "bad header":
            body = [rng.choice([
                f"pytroll:/{subject} push user@host not-a-time v1.2".encode(),
                f"pytroll:/{subject} push user@host 2024-01-02T03:04:05 v9.9".encode(),
                f"pytroll:/{subject} push".encode(),
                b"pytroll://",
                f"pytroll:/{subject} push user@host 2024-01-02T03:04:05 v1.2 text/ascii".encode(),
                f"pytroll:/{subject} push user@host 2024-01-02T03:04:05 v1.2 binary/octet-stream \x00\x01".encode(),
                f"pytroll:/with space/{subject} push user@host 2024-01-02T03:04:05 v1.2".encode()])]
        elif kind == "big":  # large but under the request size limit
            data = {"uri": announced, "uid": "x", "destination": destination, "junk": "y" * rng.randint(10**5, 10**6)}
            body = [f"{HEADER.format(subject=subject, atype='push')} application/json {_json(data)}".encode()]
        else:  # "bad destination": the real file, to places no mover can write
            dest = rng.choice(["zzz://nowhere/", "file://", "ftp://", "s3://", "://", "file:///dev/null/x/",
                               destination + "\x00/"])
            data = {"uri": announced, "uid": "x", "destination": dest}
            body = [f"{HEADER.format(subject=subject, atype='push')} application/json {_json(data)}".encode()]
        yield kind, body


def bus_messages(seed: int, count: int, *, topic: str, local_file: str) -> Iterator[tuple[str, bytes]]:
    """``count`` (kind, raw message) for a bus: all start with the listened ``topic`` so they pass
    the subscription filter and reach the chain's code."""
    rng = random.Random(seed)
    prefix = f"pytroll:/{topic.lstrip('/')}"
    valid = Message(topic, "file", {"uri": local_file, "uid": "f.dat"}).encode()
    kinds = ["random tail", "truncated", "bad json", "wrong types", "not local", "traversal", "unknown type",
             "bad header", "dataset junk"]
    for _ in range(count):
        kind = rng.choice(kinds)
        if kind == "random tail":
            raw = prefix.encode() + rng.randbytes(rng.randint(0, 300))
        elif kind == "truncated":
            raw = valid[: rng.randint(len(prefix), len(valid) - 1)].encode()
        elif kind == "bad json":
            raw = f"{prefix}/x file user@host 2024-01-02T03:04:05 v1.2 application/json {{\"uri\": ".encode()
        elif kind == "wrong types":
            data = rng.choice([{"uri": rng.choice(WEIRD_VALUES)}, rng.choice(WEIRD_VALUES),
                               {"uri": local_file, "uid": rng.choice(WEIRD_VALUES)}])
            raw = f"{prefix}/x file user@host 2024-01-02T03:04:05 v1.2 application/json {_json(data)}".encode()
        elif kind == "not local":
            uri = rng.choice(["ssh://host/data/f.dat", "s3://bucket/f.dat", "http://[::1/x", "ftp://h/f",
                              "/nonexistent/f.dat"])
            raw = Message(topic, "file", {"uri": uri, "uid": "f"}).encode().encode()
        elif kind == "traversal":
            uri = local_file.rsplit("/", 1)[0] + "/" + rng.choice(TRAVERSALS)
            raw = Message(topic, "file", {"uri": uri, "uid": "f"}).encode().encode()
        elif kind == "unknown type":
            raw = Message(topic, rng.choice(["beat", "del", "zzz", "ack"]), {"uri": local_file}).encode().encode()
        elif kind == "bad header":
            raw = f"{prefix} file user@host yesterday v1.2 application/json {{}}".encode()
        else:
            data = {"dataset": rng.choice([*WEIRD_VALUES[:12], [{"uri": local_file}, {"uri": 7}]])}
            raw = f"{prefix}/x dataset user@host 2024-01-02T03:04:05 v1.2 application/json {_json(data)}".encode()
        yield kind, raw

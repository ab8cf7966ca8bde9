"""The floor of the burst's CPU per file: what bare Python costs for what a server and a client must
do per 10 KiB file on loopback, without the roles.

``python -m benchmarks.floor [--files 2000] [--features]``: two processes. The "server" publishes
one JSON announcement per file (PUB), answers each push on a ROUTER socket by hard-linking the
file under a temporary name and renaming it into the destination (what our file mover does by
default), and replies with the request's data; the "client" (SUB, DEALER, PUB) requests each
announced file, pipelined, and publishes a result per reply. ``--features`` adds what the roles
must do beyond that: a sha256 of the file at announce and of the copy on delivery, and one log
line per file on each side (to a file). No watcher, no thread hand-offs, no bookkeeping: the
difference to the ``burst`` scenario's CPU per file is what our layers cost.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import multiprocessing as mp
import os
import resource
import shutil
import tempfile
import time

import zmq

PUB, REQUESTS, RESULTS = "tcp://127.0.0.1:29010", "tcp://127.0.0.1:29092", "tcp://127.0.0.1:29020"
HEAD = "pytroll://bench/data {} root@host 2026-01-01T00:00:00 v1.2 application/json "
LOG = logging.getLogger("floor")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _log_to(path: str) -> None:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("[%(asctime)s %(levelname)-8s %(name)s] %(message)s"))
    logging.getLogger().handlers[:] = [handler]
    logging.getLogger().setLevel(logging.INFO)


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def server(src: str, n: int, features: bool, log: str, results: mp.Queue) -> None:
    _log_to(log)
    ctx = zmq.Context()
    pub, router = ctx.socket(zmq.PUB), ctx.socket(zmq.ROUTER)
    pub.bind(PUB)
    router.bind(REQUESTS)
    time.sleep(0.5)  # the client's SUB joins
    began = _cpu()
    names = sorted(os.listdir(src))
    poller = zmq.Poller()
    poller.register(router, zmq.POLLIN)
    announced = done = 0
    while done < n:
        if announced < len(names):
            path = os.path.join(src, names[announced])
            announced += 1
            data = {"uid": os.path.basename(path), "uri": path, "size": os.stat(path).st_size,
                    "request_address": REQUESTS[6:]}
            if features:
                data["integrity"] = {"method": "sha256", "value": _sha256(path)}
                LOG.info("announced %s", path)
            pub.send_string(HEAD.format("file") + json.dumps(data))
        events = dict(poller.poll(0 if announced < len(names) else 1000))
        while router in events:
            try:
                ident, empty, raw = router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            data = json.loads(raw.split(b" ", 6)[6])
            final = os.path.join(data["destination"], os.path.basename(data["uri"]))
            os.link(data["uri"], final + ".part")
            os.replace(final + ".part", final)
            if features:
                LOG.info("Pushed %s to %s", data["uri"], final)
            router.send_multipart([ident, empty, (HEAD.format("ack") + json.dumps(data)).encode()])
            done += 1
    results.put(("server", _cpu() - began))


def client(dst: str, n: int, features: bool, log: str, results: mp.Queue) -> None:
    _log_to(log)
    ctx = zmq.Context()
    sub, dealer, pub = ctx.socket(zmq.SUB), ctx.socket(zmq.DEALER), ctx.socket(zmq.PUB)
    sub.connect(PUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    dealer.connect(REQUESTS)
    pub.bind(RESULTS)
    poller = zmq.Poller()
    poller.register(sub, zmq.POLLIN)
    poller.register(dealer, zmq.POLLIN)
    began: float | None = None
    done = 0
    while done < n:
        events = dict(poller.poll(5000))
        if not events:
            raise SystemExit(f"floor client: no message for 5 s after {done} of {n} files")
        while sub in events:
            try:
                raw = sub.recv_string(zmq.NOBLOCK)
            except zmq.Again:
                break
            began = _cpu() if began is None else began
            data = json.loads(raw.split(" ", 6)[6])
            data["destination"] = dst
            dealer.send_multipart([b"", (HEAD.format("push") + json.dumps(data)).encode()])
        while dealer in events:
            try:
                _, raw_reply = dealer.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            data = json.loads(raw_reply.split(b" ", 6)[6])
            copy = os.path.join(dst, os.path.basename(data["uri"]))
            os.stat(copy)
            if features:
                if _sha256(copy) != data["integrity"]["value"]:
                    raise SystemExit(f"floor client: bad copy {copy}")
                LOG.info("Delivered %s to %s", data["uid"], copy)
            data["uri"] = copy
            pub.send_string(HEAD.format("file") + json.dumps(data))
            done += 1
    results.put(("client", _cpu() - (began or 0.0)))


def run(n: int, size: int, features: bool) -> dict[str, float]:
    """CPU seconds per file of each side (ms), for ``n`` files of ``size`` bytes."""
    work = tempfile.mkdtemp(prefix="trollmoves-floor-")
    try:
        src, dst = os.path.join(work, "in"), os.path.join(work, "out")
        os.mkdir(src)
        os.mkdir(dst)
        data = os.urandom(size)
        for k in range(n):
            with open(os.path.join(src, f"f{k:05d}.dat"), "wb") as f:
                f.write(data)
        results: mp.Queue = mp.Queue()
        sides = [mp.Process(target=client, args=(dst, n, features, os.path.join(work, "client.log"), results)),
                 mp.Process(target=server, args=(src, n, features, os.path.join(work, "server.log"), results))]
        for side in sides:
            side.start()
            time.sleep(0.3)
        for side in sides:
            side.join(120)
        figures = dict(results.get(timeout=5) for _ in sides)
        return {name: seconds / n * 1000 for name, seconds in figures.items()}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--kib", type=int, default=10)
    parser.add_argument("--features", action="store_true", help="sha256 on both sides and a log line per file")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for _ in range(args.repeats):
        ms = run(args.files, args.kib * 1024, args.features)
        print(f"server {ms['server']:.3f} ms/file, client {ms['client']:.3f} ms/file, "
              f"together {ms['server'] + ms['client']:.3f} ms/file")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

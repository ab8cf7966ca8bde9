"""``python -m benchmarks.wis2_subscriber``: the WIS2 subscriber on a local Mosquitto and nginx.

A burst of WIS2 notifications is published at once; measured from the first publish to the last
posttroll ``file`` message received: notifications/s, MiB/s, lost and duplicated, and the CPU
seconds of this process (the subscriber runs in it, in threads). Two kinds: inline content
(no download: the notification path alone) and HTTPS downloads from nginx.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import yaml
from posttroll.message import Message
from trollmoves_http.testing import Nginx
from trollmoves_mqtt.connection import Connection, unique_id
from trollmoves_mqtt.options import parse_bus_address
from trollmoves_mqtt.testing import Mosquitto
from trollmoves_roles.bus.posttroll import BusPublisher, Subscription
from trollmoves_wis2 import notification
from trollmoves_wis2.subscriber.config import load_config
from trollmoves_wis2.subscriber.engine import Wis2Subscriber

from trollmoves_core.plugins import default_host

TOPIC = "origin/a/wis2/se-bench/data/core/weather/space-based-observations/noaa-20/viirs"


def run(kind: str, count: int, size: int, workers: int, *, root: Path, broker: Mosquitto, nginx: Nginx) -> str:
    work = Path(tempfile.mkdtemp(dir=root, prefix=kind))
    served = nginx.root / work.name
    served.mkdir()
    docs = []
    for n in range(count):
        data = os.urandom(size)
        digest = ("sha256", base64.b64encode(hashlib.sha256(data).digest()).decode())
        name = f"f{n:06d}.dat"
        href = nginx.url(f"/{served.name}/{name}", tls=True)
        data_id = f"{TOPIC.removeprefix('origin/a/')}/{work.name}/{name}"
        if kind == "inline":
            content = {"encoding": "base64", "value": base64.b64encode(data).decode(), "size": size}
            docs.append(notification.build(data_id, href, integrity=digest, properties={"content": content}))
        else:
            (served / name).write_bytes(data)
            docs.append(notification.build(data_id, href, integrity=digest, length=size))
    config = work / "wis2.yaml"
    config.write_text(yaml.safe_dump({
        "broker": broker.url("", client_id=f"bench-{work.name}"), "subscribe": [TOPIC],
        "download_destination": str(work / "in"), "publish_topic": "/bench/wis2",
        "parallel_downloads": workers, "connection_parameters": {"ca_file": str(nginx.ca_file)}}))
    output = BusPublisher(0, bind="127.0.0.1", name="bench")
    received = Subscription([f"tcp://127.0.0.1:{output.port}"], ["/bench/wis2"])
    subscriber = Wis2Subscriber(load_config(config), host=default_host(), publisher=output)
    halt = threading.Event()
    thread = threading.Thread(target=subscriber.serve, args=(halt,), daemon=True)
    thread.start()
    sender = Connection(parse_bus_address(broker.url("")), unique_id("bench", "wnm"), role="bench node")
    warm = notification.build(f"{TOPIC.removeprefix('origin/a/')}/warm", "https://127.0.0.1:9/warm", rel="deletion")
    while not subscriber.outcomes["deletion"]:
        sender.publish(TOPIC, notification.encode(warm))
        time.sleep(0.2)
    while received.recv(0.2) is None:  # until the recorder hears the publisher
        output.send(Message("/bench/wis2", "beat", {}))
    while received.recv(0.2) is not None:
        pass
    cpu, start = time.process_time(), time.perf_counter()
    for doc in docs:
        sender.publish(TOPIC, notification.encode(doc))
    seen: Counter[str] = Counter()
    while sum(seen.values()) < count:
        message = received.recv(10.0)
        if message is None:
            break
        if message.type == "file":
            seen[message.data["uid"]] += 1
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    halt.set()
    thread.join(30)
    sender.close()
    received.close()
    output.stop()
    lost = count - len(seen)
    duplicated = sum(n - 1 for n in seen.values())
    return (f"{kind:8} {count:6d} x {size / 1024:7.0f} KiB, {workers} workers: {count / elapsed:8.1f} notifications/s, "
            f"{count * size / elapsed / 2**20:7.1f} MiB/s, lost {lost}, duplicated {duplicated}, "
            f"CPU {cpu:.2f} s for {elapsed:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="notifications per burst (default 2000)")
    parser.add_argument("--size", type=int, default=1024, help="bytes per inline file (default 1024)")
    parser.add_argument("--download-count", type=int, default=200, help="downloads per burst (default 200)")
    parser.add_argument("--download-size", type=int, default=1 << 20, help="bytes per download (default 1 MiB)")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wis2-bench-") as directory:
        root = Path(directory)
        with Mosquitto(root / "mosquitto") as broker, Nginx(root / "nginx") as nginx:
            servers = {"root": root, "broker": broker, "nginx": nginx}
            print(run("inline", args.count, args.size, args.workers, **servers), flush=True)
            if args.download_count:
                print(run("https", args.download_count, args.download_size, args.workers, **servers), flush=True)


if __name__ == "__main__":
    main()

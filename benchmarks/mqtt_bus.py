"""``python -m benchmarks.mqtt_bus``: the MQTT transport on a local Mosquitto, next to ZeroMQ.

Measures, for each transport, the request/reply round trip (p50/p99 of sequential requests
through a requester and a request inbox in two event loops) and a publish burst (messages/s
from the first publish to the last one received, lost count), each with this process's CPU time
per request or message (both ends run here; less noisy than the wall clock on a shared machine).
Transport level only: no files move; the roles' figures are in ``python -m benchmarks``.
"""

from __future__ import annotations

import argparse
import queue
import resource
import statistics
import tempfile
import time
from pathlib import Path

from posttroll.message import Message
from trollmoves_mqtt.testing import Mosquitto
from trollmoves_mqtt.transport import MqttTransport
from trollmoves_roles.bus.zeromq import ZeroMQTransport
from trollmoves_roles.testing import BusUnderTest, in_loop, running_loop, settle


class _Mqtt(BusUnderTest):
    def publish_address(self) -> str:
        return "-"

    def subscribe_address(self, publisher) -> str:
        return "-"

    def inbox_address(self) -> str:
        return "127.0.0.1:1"

    def request_address(self, inbox_address: str) -> str:
        return inbox_address


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def round_trips(bus: BusUnderTest, count: int) -> tuple[list[float], float]:
    """The round trips of ``count`` sequential requests, and the CPU seconds per request."""
    address = bus.inbox_address()
    inbox = bus.transport.request_inbox(address)
    times: list[float] = []
    with running_loop("server") as server_loop, running_loop("client") as loop:
        def answer() -> None:
            while (incoming := inbox.receive()) is not None:
                inbox.reply(incoming.token, Message("/r", "ack", {}))
        in_loop(server_loop, lambda: server_loop.register(inbox.pollable, answer))
        requester = in_loop(loop, lambda: bus.transport.requester(loop))
        replies: queue.Queue = queue.Queue()
        for n in range(count + 20):  # the first 20 warm up
            if n == 20:
                cpu = _cpu()
            start = time.perf_counter()
            in_loop(loop, lambda: requester.request(bus.request_address(address), Message("/r", "push", {}),
                                                    timeout=5.0, attempts=1, callback=lambda r, e: replies.put(e)))
            assert replies.get(timeout=10) is None
            times.append(time.perf_counter() - start)
        cpu = (_cpu() - cpu) / count
        in_loop(loop, requester.close)
        in_loop(server_loop, lambda: server_loop.unregister(inbox.pollable))
    inbox.close()
    return times[20:], cpu


def burst(bus: BusUnderTest, count: int) -> tuple[float, int, float]:
    """Messages/s of a burst of ``count``, how many were lost, and the CPU seconds per message."""
    publisher = bus.transport.publisher(bus.publish_address(), name="bench")
    subscriber = bus.transport.subscriber([bus.subscribe_address(publisher)], ["/bench"])
    settle(publisher, subscriber, "/bench")
    start, cpu = time.perf_counter(), _cpu()
    for n in range(count):
        publisher.send(Message("/bench/file", "file", {"n": n, "uri": f"/data/file{n:06d}.nc"}))
    got = 0
    while got < count:
        message = subscriber.recv(5.0)
        if message is None:
            break
        if message.type == "file":
            got += 1
    elapsed, cpu = time.perf_counter() - start, (_cpu() - cpu) / count
    publisher.stop()
    subscriber.close()
    return got / elapsed, count - got, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--burst", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, Mosquitto(Path(directory)) as broker:
        buses = {"zeromq": BusUnderTest(ZeroMQTransport()),
                 "mqtt": _Mqtt(MqttTransport.for_bus(broker.url(client_id="bench")))}
        print(f"{'transport':10} {'rtt p50 ms':>10} {'rtt p99 ms':>10} {'CPU us/req':>10} {'burst msg/s':>12} "
              f"{'lost':>5} {'CPU us/msg':>10}")
        for name, bus in buses.items():
            rtt, request_cpu = round_trips(bus, args.requests)
            rtt.sort()
            rate, lost, message_cpu = burst(bus, args.burst)
            p99 = rtt[int(len(rtt) * 0.99) - 1]
            print(f"{name:10} {statistics.median(rtt) * 1000:10.2f} {p99 * 1000:10.2f} {request_cpu * 1e6:10.0f} "
                  f"{rate:12.0f} {lost:5d} {message_cpu * 1e6:10.0f}")


if __name__ == "__main__":
    main()

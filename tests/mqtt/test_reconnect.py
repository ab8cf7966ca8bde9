"""The transport across a broker restart: paho reconnects by itself, sessions and queued
messages survive a SIGTERM of the broker (it saves them), and a stopped subscriber's session
queues what is published meanwhile."""

from __future__ import annotations

import logging
import queue
import signal
import subprocess
import sys

from posttroll.message import Message
from support.bus import free_port
from trollmoves_mqtt.transport import MqttTransport
from trollmoves_roles.testing import WAIT, in_loop, receive_until, running_loop, settle


def test_publishing_through_a_broker_restart_loses_nothing(fresh_broker, caplog):
    caplog.set_level(logging.INFO)
    transport = MqttTransport.for_bus(fresh_broker.url(client_id="restart"))
    publisher = transport.publisher("provider", name="restart")
    subscriber = transport.subscriber(["provider"], ["/restart"])
    try:
        settle(publisher, subscriber, "/restart")
        publisher.send(Message("/restart/file", "file", {"n": 0}))
        fresh_broker.stop()
        for n in range(1, 21):  # queued by paho while the broker is away
            publisher.send(Message("/restart/file", "file", {"n": n}))
        fresh_broker.start()
        publisher.send(Message("/restart/end", "end"))
        got = receive_until(subscriber, "end")
    finally:
        publisher.stop()
        subscriber.close()
    assert sorted({m.data["n"] for m in got if m.type == "file"}) == list(range(21))
    assert "lost the broker" in caplog.text and "connected to the broker" in caplog.text


def test_a_stopped_subscriber_gets_what_was_published_meanwhile(broker):
    transport = MqttTransport.for_bus(broker.url(client_id="persist"))
    publisher = transport.publisher("provider", name="persist")
    subscriber = transport.subscriber(["provider"], ["/persist"])
    settle(publisher, subscriber, "/persist")
    subscriber.close()
    try:
        for n in range(50):
            publisher.send(Message("/persist/file", "file", {"n": n}))
        publisher.send(Message("/persist/end", "end"))
        again = transport.subscriber(["provider"], ["/persist"])  # same client id: the session resumes
        try:
            got = receive_until(again, "end")
        finally:
            again.close()
    finally:
        publisher.stop()
    assert [m.data["n"] for m in got if m.type == "file"] == list(range(50))


def test_a_request_sent_while_the_broker_restarts_is_answered(fresh_broker):
    transport = MqttTransport.for_bus(fresh_broker.url(client_id="req-restart"))
    inbox = transport.request_inbox("127.0.0.1:1")
    try:
        with running_loop("server") as server_loop, running_loop("client") as loop:
            def answer() -> None:
                while (incoming := inbox.receive()) is not None:
                    inbox.reply(incoming.token, Message("/r", "ack", incoming.request.data))
            in_loop(server_loop, lambda: server_loop.register(inbox.pollable, answer))
            requester = in_loop(loop, lambda: transport.requester(loop))
            fresh_broker.stop()
            replies: queue.Queue = queue.Queue()
            in_loop(loop, lambda: requester.request("127.0.0.1:1", Message("/r", "push", {"n": 1}), timeout=2.0,
                                                    attempts=5, callback=lambda r, e: replies.put((r, e))))
            fresh_broker.start()
            reply, error = replies.get(timeout=WAIT * 2)
            in_loop(loop, requester.close)
            in_loop(server_loop, lambda: server_loop.unregister(inbox.pollable))
    finally:
        inbox.close()
    assert error is None and reply.data == {"n": 1}


_TAKE_ONE_AND_DIE = """
import os, signal, sys, time
from trollmoves_mqtt.transport import MqttTransport
subscriber = MqttTransport.for_bus(sys.argv[1]).subscriber(["provider"], ["/acked"])
print("ready", flush=True)
message = subscriber.recv(60)
time.sleep(1)  # a handler busy long enough for an acknowledgment to reach the broker
print("took", message.data["n"], flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # before it is done (before a client journals the message)
"""


def test_a_message_taken_by_a_process_killed_before_handling_it_comes_back(broker, tmp_path):
    from support.broker import wait_subscribed

    bus = broker.url(prefix=f"acked{free_port()}", client_id=f"taker{free_port()}")
    transport = MqttTransport.for_bus(bus)
    taker = subprocess.Popen([sys.executable, "-c", _TAKE_ONE_AND_DIE, bus], stdout=subprocess.PIPE, text=True)
    publisher = transport.publisher("provider", name="acked")
    try:
        assert taker.stdout.readline() == "ready\n"
        wait_subscribed(broker, transport.bus.client_id)
        publisher.send(Message("/acked/file", "file", {"n": 1}))
        assert taker.stdout.readline() == "took 1\n"
        assert taker.wait(20) == -signal.SIGKILL
        again = transport.subscriber(["provider"], ["/acked"])  # the same session, resumed
        try:
            publisher.send(Message("/acked/end", "end"))
            got = receive_until(again, "end")
        finally:
            again.close()
    finally:
        publisher.stop()
        if taker.poll() is None:
            taker.kill()
        taker.stdout.close()
    assert [m.data["n"] for m in got if m.type == "file"] == [1]

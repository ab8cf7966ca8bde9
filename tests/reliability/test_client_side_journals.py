"""The dispatcher's and downloader's journals of unfinished messages: what a killed run left
half done is finished after the restart, and what it had delivered is not delivered again.

A killed run is reproduced exactly by its journal: records written by :class:`PendingMessages`
as the services write them (a message with some parts done), then the service starts on it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yaml
from posttroll.message import Message
from support.bus import BusRecorder, wait_until
from trollmoves_roles.bus.posttroll import BusPublisher
from trollmoves_roles.dispatcher.engine import Dispatcher, _part
from trollmoves_roles.downloader.config import DownloaderConfig
from trollmoves_roles.downloader.engine import ANNOUNCED, Downloader
from trollmoves_roles.state.journal import journal_path
from trollmoves_roles.state.pending import PendingMessages

from trollmoves_core.plugins import default_host

pytestmark = pytest.mark.timeout(60)

TOPIC = "/test/in"


class Running:
    """A service's ``serve(halt)`` in a thread."""

    def __init__(self, service: Dispatcher | Downloader) -> None:
        self.service = service
        self.halt = threading.Event()
        self.thread = threading.Thread(target=service.serve, args=(self.halt,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.halt.set()
        self.thread.join(15)
        assert not self.thread.is_alive()


def files(tmp_path: Path, *names: str) -> list[Path]:
    directory = tmp_path / "in"
    directory.mkdir(exist_ok=True)
    paths = []
    for name in names:
        path = directory / name
        path.write_bytes(f"content of {name}\n".encode())
        paths.append(path)
    return paths


def test_dispatcher_resumes_unfinished_transfers_and_skips_delivered_ones(tmp_path):
    a, b = files(tmp_path, "a.nc", "b.nc")
    source = BusPublisher(0, bind="127.0.0.1", name="source")
    config = tmp_path / "dispatch.yaml"
    config.write_text(yaml.safe_dump({
        "posttroll_subscriber": {"subscribe_addresses": [f"tcp://127.0.0.1:{source.port}"], "nameserver": False},
        "one": {"directory": str(tmp_path / "one"), "dispatch_configs": [{"topics": [TOPIC]}]},
        "two": {"directory": str(tmp_path / "two"), "dispatch_configs": [{"topics": [TOPIC]}]}}))
    state = tmp_path / "state"
    message = Message(TOPIC, "dataset", {"dataset": [{"uri": str(a), "uid": a.name}, {"uri": str(b), "uid": b.name}]})

    # the killed run: it had planned four transfers and delivered one (a.nc to "one")
    planner = Dispatcher(config, nameservers=[], watch=False, host=default_host())
    transfers = planner.plan(message)
    assert len(transfers) == 4
    delivered = next(t for t in transfers if t.target.name == "one" and t.source == str(a))
    journal = PendingMessages.open(state, config, "dispatcher")
    key = journal.add(message, [_part(t) for t in transfers])
    journal.done(key, _part(delivered), True)
    journal.close()
    planner.pool.shutdown()

    service = Dispatcher(config, nameservers=[], watch=False, host=default_host(),
                         pending=PendingMessages.open(state, config, "dispatcher"))
    running = Running(service)
    try:
        assert wait_until(lambda: service.delivered >= 3 and service.pool.pending == 0, timeout=20)
    finally:
        running.stop()
        source.stop()
    assert not (tmp_path / "one" / "a.nc").exists()  # delivered by the killed run: not repeated
    assert (tmp_path / "one" / "b.nc").read_bytes() == b"content of b.nc\n"
    assert (tmp_path / "two" / "a.nc").exists() and (tmp_path / "two" / "b.nc").exists()
    assert service.delivered == 3
    reopened = PendingMessages.open(state, config, "dispatcher")
    try:
        assert reopened.pending() == []  # finished: nothing to resume next time
    finally:
        reopened.close()


def test_dispatcher_journals_each_message_until_its_transfers_ran(tmp_path):
    (a,) = files(tmp_path, "a.nc")
    source = BusPublisher(0, bind="127.0.0.1", name="source")
    config = tmp_path / "dispatch.yaml"
    config.write_text(yaml.safe_dump({
        "posttroll_subscriber": {"subscribe_addresses": [f"tcp://127.0.0.1:{source.port}"], "nameserver": False},
        "one": {"directory": str(tmp_path / "one"), "dispatch_configs": [{"topics": [TOPIC]}]}}))
    pending = PendingMessages.open(tmp_path / "state", config, "dispatcher")
    service = Dispatcher(config, nameservers=[], watch=False, host=default_host(), pending=pending)
    gate = threading.Event()
    original = service.run_transfer
    service.run_transfer = lambda t: (gate.wait(10), original(t))[1]  # type: ignore[method-assign]
    running = Running(service)
    try:
        assert wait_until(lambda: (source.send(Message(TOPIC, "file", {"uri": str(a), "uid": "a.nc"})),
                                   service.handled)[1], timeout=10, interval=0.1)
        assert len(PendingMessages(pending.journal).pending()) >= 1  # on disk while the transfer runs
        gate.set()
        assert wait_until(lambda: service.pool.pending == 0 and not pending.journal.count(), timeout=20)
    finally:
        gate.set()
        running.stop()
        source.stop()
    assert (tmp_path / "one" / "a.nc").exists()


def test_downloader_resumes_fetches_only_what_is_missing_and_announces_once(tmp_path):
    a, b = files(tmp_path, "a.nc", "b.nc")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "a.nc").write_bytes(b"content of a.nc\n")  # fetched by the killed run
    source = BusPublisher(0, bind="127.0.0.1", name="source")
    output = BusPublisher(0, bind="127.0.0.1", name="output")
    recorder = BusRecorder([f"tcp://127.0.0.1:{output.port}"], ["/local"])
    config = DownloaderConfig(file=str(tmp_path / "downloader.yaml"), subscribe_topics=(TOPIC,),
                              publish_topic="/local", download_destination=downloads,
                              subscriber_addresses=(f"tcp://127.0.0.1:{source.port}",), subscribe_nameservers=())
    state = tmp_path / "state"
    message = Message(TOPIC, "dataset", {"dataset": [{"uri": str(a), "uid": a.name}, {"uri": str(b), "uid": b.name}]})
    journal = PendingMessages.open(state, config.file, "downloader")
    key = journal.add(message, [str(a), str(b), ANNOUNCED])
    journal.done(key, str(a), str(downloads / "a.nc"))
    journal.close()
    a.unlink()  # gone at the source: only the journal says it is here already

    assert wait_until(lambda: (output.send(Message("/local/warm", "beat")), recorder.messages)[1], timeout=10)
    service = Downloader(config, publisher=output, nameservers=[], host=default_host(),
                         pending=PendingMessages.open(state, config.file, "downloader"))
    running = Running(service)
    try:
        announced = recorder.wait_for(lambda m: m.type == "dataset", timeout=20)
    finally:
        running.stop()
        recorder.close()
        source.stop()
        output.stop()
    assert len(announced) == 1
    assert [d["uri"] for d in announced[0].data["dataset"]] == [str(downloads / "a.nc"), str(downloads / "b.nc")]
    assert (downloads / "b.nc").read_bytes() == b"content of b.nc\n"
    assert service.fetched == 1 and service.failed == 0
    assert journal_path(state, config.file, "downloader").exists()
    reopened = PendingMessages.open(state, config.file, "downloader")
    try:
        assert reopened.pending() == []
    finally:
        reopened.close()

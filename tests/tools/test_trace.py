"""``trollmoves trace``: a real server and client (subprocesses with journals) move files, then
the history of one file is read back from their journals, as a table and as JSON."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from support.bus import free_port, wait_until
from support.client import client_section
from support.files import write_file
from support.ini import write_ini
from support.processes import TROLLMOVES, ClientProcess
from support.server import ServerProcess, server_section
from trollmoves_roles.state.history import History, query

pytestmark = pytest.mark.timeout(120)


def trace(*args: object, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TROLLMOVES, "trace", *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=60, check=False)


@pytest.fixture
def runtime(tmp_path, monkeypatch) -> dict[str, str]:
    """A private runtime directory (where histories are indexed), for the roles and for trace."""
    import os

    directory = tmp_path / "run"
    directory.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(directory))
    return dict(os.environ)


@pytest.fixture
def moved(tmp_path, runtime):
    """Server and client with journals; ``f1.dat`` delivered and then deleted at the server (ack)."""
    origin, out = tmp_path / "in", tmp_path / "out"
    origin.mkdir()
    server_config = write_ini(tmp_path / "server.ini", {"srv": server_section(origin, free_port(), delete=True,
                                                                              remove_delay=0)})
    server = ServerProcess(server_config, tmp_path / "server.log", "--state-directory", str(tmp_path / "s-state"))
    client_config = write_ini(tmp_path / "client.ini", {"test": client_section(
        f"127.0.0.1:{server.pub_port}", f"{out}/", free_port(), state_directory=tmp_path / "c-state")})
    client = ClientProcess(client_config, tmp_path / "client.log")
    try:
        def probe() -> bool:
            name = f"probe{time.monotonic_ns()}"
            write_file(origin, f"{name}.dat", b"probe")
            return wait_until((out / f"{name}.dat").exists, timeout=1.0)

        assert wait_until(probe, timeout=30, interval=0), client.log()[-3000:]
        write_file(origin, "f1.dat", b"x" * 1234)
        assert wait_until(lambda: (out / "f1.dat").exists() and not (origin / "f1.dat").exists(), timeout=30), \
            server.log()[-3000:]

        def complete() -> bool:  # history is written in batches: wait for the last events to land
            found = trace("f1.dat", "--json", env=runtime)
            events = {e["event"] for e in json.loads(found.stdout)["events"]} if found.returncode == 0 else set()
            return {"deleted", "published"} <= events

        assert wait_until(complete, timeout=20, interval=0.2), trace("f1.dat", env=runtime)
        yield {"server": server, "client": client, "server_config": server_config, "client_config": client_config,
               "out": out, "origin": origin, "tmp": tmp_path}
    finally:
        client.stop()
        server.stop()


def test_trace_shows_the_whole_history_of_a_moved_file(moved, runtime):
    result = trace("f1.dat", env=runtime)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:5] == ["TIME", "ROLE", "CHAIN", "EVENT", "FILE"]
    rows = [line.split() for line in lines[1:]]
    steps = [(row[1], row[3]) for row in rows]
    # in the order it happened, from both journals
    for step in [("server", "announced"), ("client", "received"), ("client", "requested"), ("server", "requested"),
                 ("server", "pushed"), ("client", "delivered"), ("client", "published"), ("server", "deleted")]:
        assert step in steps, (step, result.stdout)
    assert steps.index(("server", "announced")) < steps.index(("server", "pushed")) < steps.index(
        ("client", "delivered")) < steps.index(("client", "published"))
    assert not any("probe" in line for line in lines)
    pushed = next(line for line in lines if " pushed " in line)
    assert str(moved["out"] / "f1.dat") in pushed and "1234" in pushed and " s " in pushed
    delivered = next(line for line in lines if " delivered " in line)
    assert "127.0.0.1:" in delivered and "test" in delivered

    # the same file found by its path at the origin, or where it was delivered
    for spelling in (moved["origin"] / "f1.dat", moved["out"] / "f1.dat"):
        again = trace(spelling, env=runtime)
        assert again.returncode == 0 and again.stdout == result.stdout


def test_trace_json_configs_and_since(moved, runtime):
    result = trace("f1.dat", "--json", env=runtime)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["query"] == "f1.dat" and document["since"] is None and len(document["journals"]) == 2
    events = document["events"]
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)
    keys = {"time", "when", "role", "chain", "event", "uid", "name", "path", "peer", "destination", "seconds",
            "size", "detail", "journal"}
    assert all(set(e) == keys for e in events)
    pushed = next(e for e in events if e["event"] == "pushed")
    assert pushed["role"] == "server" and pushed["chain"] == "srv" and pushed["size"] == 1234
    assert pushed["path"] == str(moved["origin"] / "f1.dat") and pushed["seconds"] >= 0
    assert pushed["destination"].endswith(str(moved["out"] / "f1.dat"))  # the URI the server pushed to
    requested = next(e for e in events if e["event"] == "requested" and e["role"] == "server")
    assert "127.0.0.1" in requested["peer"]

    # only the journals of the configs given: the client's (its state_directory) or the server's (its index entry)
    only_client = json.loads(trace("f1.dat", moved["client_config"], "--json", env=runtime).stdout)
    assert {e["role"] for e in only_client["events"]} == {"client"}
    only_server = json.loads(trace("f1.dat", moved["server_config"], "--json", env=runtime).stdout)
    assert {e["role"] for e in only_server["events"]} == {"server"}

    # --since: a duration or an ISO time; later than the events: nothing, exit 1
    assert trace("f1.dat", "--since", "1h", env=runtime).returncode == 0
    later = trace("f1.dat", "--since", time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() + 60)),
                  env=runtime)
    assert later.returncode == 1 and "no history of 'f1.dat'" in later.stderr
    cut = events[len(events) // 2]["time"]
    iso = json.loads(trace("f1.dat", "--json", "--since", events[len(events) // 2]["when"], env=runtime).stdout)
    assert iso["events"] and all(e["time"] >= cut - 0.001 for e in iso["events"])
    assert len(iso["events"]) < len(events)


def test_trace_after_the_roles_stopped_and_by_state_directory(moved, runtime, tmp_path):
    moved["client"].stop()
    moved["server"].stop()
    assert trace("f1.dat", env=runtime).returncode == 0  # the history outlives the processes
    empty_runtime = dict(runtime, XDG_RUNTIME_DIR=str(tmp_path / "elsewhere"))
    nothing = trace("f1.dat", env=empty_runtime)
    assert nothing.returncode == 2 and "--state-directory" in nothing.stderr and "Traceback" not in nothing.stderr
    by_directory = trace("f1.dat", "--json", "--state-directory", tmp_path / "s-state", env=empty_runtime)
    assert {e["role"] for e in json.loads(by_directory.stdout)["events"]} == {"server"}


def test_trace_bad_usage_is_one_line(runtime, tmp_path):
    bad = trace("f1.dat", "--since", "yesterday-ish", env=runtime)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--since" in bad.stderr


def test_history_is_pruned_by_age_and_count(tmp_path):
    path = tmp_path / "j.sqlite"
    history = History(path, "server", days=1, max_events=5, flush_seconds=60)
    try:
        for i in range(8):
            history.record("announced", chain="c", path=f"/data/f{i}.dat")
        assert history.flush() == 8
        assert history.prune() == 3  # beyond the newest 5
        assert [e.uid for e in query(path, "f2.dat")] == []
        assert [e.uid for e in query(path, "f3.dat")] == ["f3.dat"]
        assert history.prune(now=time.time() + 86400 + 10) == 5  # all older than a day by then
        assert query(path, "f7.dat") == []
        history.record("pushed", chain="c", path="/data/f7.dat", destination="/out/f7.dat", seconds=0.5, size=3)
        history.record("push failed", chain="c", path="/data/f7.dat", destination="ftp://u:pw1@h/out/",
                       detail="cannot reach ftp://u:pw1@h/out/f7.dat")
    finally:
        history.close()  # writes what is queued
    event, failed = query(path, "/out/f7.dat")
    assert (event.event, event.role, event.destination, event.seconds, event.size) == \
        ("pushed", "server", "/out/f7.dat", 0.5, 3)
    assert "pw1" not in failed.destination + failed.detail and "u:***@h" in failed.detail
    assert query(path, "f7.dat", since=event.time + 1) == []


def test_history_options_are_checked(tmp_path):
    config = write_ini(tmp_path / "client.ini", {"test": client_section("127.0.0.1:9", f"{tmp_path}/", free_port())})
    result = subprocess.run([TROLLMOVES, "client", config, "--history-days", "-1"], capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 2 and "--history-days" in result.stderr and "Traceback" not in result.stderr


def test_history_file_size_per_event(tmp_path):
    """Not a speed test: the size each event costs on disk, the figure docs/tools.md gives."""
    path = tmp_path / "j.sqlite"
    history = History(path, "client", flush_seconds=60)
    for i in range(20000):
        history.record("delivered", chain="chain", uid=f"H-000-MSG4__-MSG4________-_________-EPI______-{i:012d}-__",
                       peer="127.0.0.1:9010", destination=f"/data/out/hrit/file{i}", seconds=0.123, size=123456)
    history.close()
    import sqlite3

    db = sqlite3.connect(path)
    pages = db.execute("PRAGMA page_count").fetchone()[0] * db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    assert 100 < pages / 20000 < 400, pages / 20000


def test_trace_shows_failures_retries_and_giving_up(tmp_path, runtime):
    """A destination under a plain file: every push fails; the client retries, then gives up."""
    origin, blocker = tmp_path / "in", tmp_path / "plain-file"
    origin.mkdir()
    blocker.write_bytes(b"")
    server_config = write_ini(tmp_path / "server.ini", {"srv": server_section(origin, free_port())})
    server = ServerProcess(server_config, tmp_path / "server.log", "--state-directory", str(tmp_path / "s-state"))
    client_config = write_ini(tmp_path / "client.ini", {"test": client_section(
        f"127.0.0.1:{server.pub_port}", f"{blocker}/sub/", free_port(), state_directory=tmp_path / "c-state",
        retry_delay=0.2, max_retry_delay=0.5, give_up_after=3, create_target_directory=False)})
    client = ClientProcess(client_config, tmp_path / "client.log")
    try:
        def given_up() -> bool:  # a new file until one reaches the client (slow joiner) and is given up
            write_file(origin, f"g{time.monotonic_ns()}.dat", b"doomed")
            return wait_until(lambda: "Could not get a working source" in client.log(), timeout=8)

        assert wait_until(given_up, timeout=60, interval=0), client.log()[-3000:]
        name = next(line.split("Could not get a working source for ")[1].split()[0]
                    for line in client.log().splitlines() if "Could not get a working source" in line)

        def events() -> list[dict]:
            found = trace(name, "--json", env=runtime)
            return json.loads(found.stdout)["events"] if found.returncode == 0 else []

        assert wait_until(lambda: any(e["event"] == "failed" for e in events()), timeout=10, interval=0.2)
        seen = [(e["role"], e["event"]) for e in events()]
        for step in [("server", "announced"), ("client", "received"), ("client", "requested"),
                     ("server", "push failed"), ("client", "request failed"), ("client", "retry"),
                     ("client", "failed")]:
            assert step in seen, (step, seen)
        assert ("client", "delivered") not in seen and ("server", "pushed") not in seen
        failed = next(e for e in events() if e["event"] == "push failed")
        assert "directory" in failed["detail"].lower(), failed
        retry = next(e for e in events() if e["event"] == "retry")
        assert retry["detail"].startswith("round 1 in ")
    finally:
        client.stop()
        server.stop()


def test_a_dispatcher_with_a_journal_keeps_history(tmp_path, runtime):
    """The dispatcher (in-process, on a real loopback bus) with --state-directory: its deliveries and
    failures are in its journal's history, which trace reads."""
    from support.dispatcher import Harness
    from trollmoves_roles.dispatcher.engine import Dispatcher
    from trollmoves_roles.state import history
    from trollmoves_roles.state.pending import PendingMessages

    from trollmoves_core.plugins import default_host

    topic = "/level2/avhrr"
    out, blocker, source = tmp_path / "out", tmp_path / "plain-file", tmp_path / "in" / "n19.tif"
    source.parent.mkdir()
    source.write_bytes(b"pixels")
    blocker.write_bytes(b"")
    harness = Harness(tmp_path)
    config = harness.write_config({
        "local": {"host": "", "directory": str(out), "dispatch_configs": [{"topics": [topic]}]},
        "broken": {"host": "", "directory": f"{blocker}/sub", "dispatch_configs": [{"topics": [topic]}]}})
    pending = PendingMessages.open(tmp_path / "state", config, "dispatcher")
    try:
        dispatcher = Dispatcher(config, publisher=harness.output, workers=2, watch=False, host=default_host(),
                                nameservers=[], pending=pending)
        harness.dispatcher = dispatcher
        harness.serve(dispatcher, lambda: harness.warm_up(topic))
        harness.send(topic, "file", {"uri": str(source), "uid": source.name})

        def events() -> list[dict]:
            found = trace("n19.tif", "--json", env=runtime)
            return json.loads(found.stdout)["events"] if found.returncode == 0 else []

        assert wait_until(lambda: len(events()) >= 2, timeout=20, interval=0.2)
        by_chain = {e["chain"]: e for e in events()}
        assert by_chain["local"]["event"] == "dispatched" and by_chain["local"]["size"] == 6
        assert by_chain["local"]["destination"].endswith(str(out / "n19.tif"))
        assert by_chain["broken"]["event"] == "dispatch failed" and by_chain["broken"]["detail"]
        assert {e["role"] for e in events()} == {"dispatcher"}
    finally:
        harness.stop()
        pending.close()
    assert history.current() is None  # closed with the journal: record() writes nowhere now

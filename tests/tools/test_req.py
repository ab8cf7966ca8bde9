"""``trollmoves req`` against upstream trollmoves 0.19's server, run as a black box."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from posttroll.message import Message
from support.bus import free_port, wait_until
from trollmoves_roles.tools.req import normalise_address, parse_extra, request

from trollmoves_core.cli import main

pytestmark = pytest.mark.interop


@pytest.fixture
def upstream_server(tmp_path: Path, upstream_process):
    """An upstream server watching ``in/`` with one announced file, ``NOAA-19_202401020304.dat``."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    port = free_port()
    config = tmp_path / "server.ini"
    config.write_text(f"""[chain]
origin = {inbox}/{{platform_name}}_{{start_time:%Y%m%d%H%M}}.dat
topic = /test/data
request_port = {port}
request_address = 127.0.0.1
station = st1
""")
    process = upstream_process("move_it_server.py", ["-p", str(free_port()), "--disable-backlog", str(config)])
    address = f"127.0.0.1:{port}"
    assert wait_until(lambda: _ask(address, "ping", timeout=0.5) is not None, timeout=30), process.log()
    announced = inbox / "NOAA-19_202401020304.dat"
    announced.write_bytes(b"payload\n")
    assert wait_until(lambda: "NOAA-19_202401020304.dat" in _info_files(address), timeout=20), process.log()
    return address, announced, process


def _ask(address: str, atype: str, data: object = "", timeout: float = 2.0,
         topic: str = "/test/data") -> Message | None:
    """One request with the library function under test; the decoded reply or None."""
    return request(f"tcp://{address}", Message(topic, atype, data).encode(), timeout=timeout,
                   retries=0).message


def _info_files(address: str, topic: str = "/test/data") -> str:
    reply = _ask(address, "info", {"max_count": 10}, topic=topic)
    return json.dumps(reply.data) if reply is not None else ""


def run_req(capsys, *args: str) -> tuple[int, str, str]:
    status = main(["req", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_ping_prints_the_station(upstream_server, capsys) -> None:
    address, _, _ = upstream_server
    status, out, _ = run_req(capsys, address, "ping", "--timeout", "5")
    assert status == 0
    assert json.loads(out) == {"station": "st1"}


def test_ping_accepts_tcp_urls(upstream_server, capsys) -> None:
    address, _, _ = upstream_server
    status, out, _ = run_req(capsys, f"tcp://{address}", "ping", "--timeout", "5", "--raw")
    assert status == 0
    assert out.startswith("pytroll:/") and " pong " in out and '"station": "st1"' in out


def test_info_lists_announced_files(upstream_server, capsys) -> None:
    address, announced, _ = upstream_server
    status, out, _ = run_req(capsys, address, "info", "--topic", "/test/data", "--max-count", "5")
    assert status == 0
    reply = json.loads(out)
    assert reply["max_count"] == 5
    assert any(entry.endswith("/" + announced.name) for entry in reply["files"])
    assert "uptime" in reply


def test_info_topic_filters(upstream_server, capsys) -> None:
    address, _, _ = upstream_server
    status, out, _ = run_req(capsys, address, "info", "--topic", "/elsewhere")
    assert status == 0
    assert json.loads(out)["files"] == []


def test_push_to_a_file_destination(upstream_server, capsys, tmp_path: Path) -> None:
    address, announced, _ = upstream_server
    outbox = tmp_path / "out"
    status, out, err = run_req(capsys, address, "push", "--topic", "/test/data", "--uri", str(announced),
                               "--destination", f"file://{outbox}/", "--extra", "platform_name=NOAA-19",
                               "--extra", "orbit:=123")
    assert status == 0, err
    reply = json.loads(out)
    assert reply["uri"] == str(announced)
    assert reply["uid"] == announced.name
    assert reply["orbit"] == 123 and reply["platform_name"] == "NOAA-19"
    assert (outbox / announced.name).read_bytes() == b"payload\n"


def test_push_of_a_missing_file_is_an_err_reply(upstream_server, capsys, tmp_path: Path) -> None:
    address, announced, _ = upstream_server
    missing = announced.with_name("NOAA-19_202401020305.dat")
    status, out, err = run_req(capsys, address, "push", "--uri", str(missing),
                               "--destination", f"file://{tmp_path}/out/")
    assert status == 1
    assert out == ""
    assert "err reply" in err and "No such file or directory" in err and str(missing) in err
    assert not (tmp_path / "out" / missing.name).exists()


def test_push_outside_origin_is_refused(upstream_server, capsys, tmp_path: Path) -> None:
    address, _, _ = upstream_server
    secret = tmp_path / "secret.txt"
    secret.write_text("no\n")
    status, _, err = run_req(capsys, address, "push", "--uri", str(secret), "--destination", f"file://{tmp_path}/o/")
    assert status == 1
    assert "not reachable" in err
    assert not (tmp_path / "o").exists()


def test_no_server_times_out_after_the_retries(capsys) -> None:
    port = free_port()
    status, out, err = run_req(capsys, f"127.0.0.1:{port}", "ping", "--timeout", "0.3", "--retries", "2")
    assert status == 1
    assert out == ""
    assert f"no reply from tcp://127.0.0.1:{port} after 3 attempts" in err


def test_console_script_exit_status_and_bounded_timeout(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "trollmoves"
    done = subprocess.run([str(script), "req", f"127.0.0.1:{free_port()}", "info", "--timeout", "0.2",
                           "--retries", "1"], check=False, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 1
    assert "after 2 attempts" in done.stderr


@pytest.mark.parametrize("args, message", [
    (["nohost", "ping"], "expected host:port"),
    (["127.0.0.1:99999", "ping"], "expected host:port"),
    (["127.0.0.1:1", "push", "--uri", "/a"], "push needs --uri PATH and --destination URL"),
    (["127.0.0.1:1", "ping", "--uri", "/a"], "--uri: only for push"),
    (["127.0.0.1:1", "ping", "--max-count", "3"], "--max-count: only for info"),
    (["127.0.0.1:1", "ping", "--topic", "x"], "starts with '/'"),
    (["127.0.0.1:1", "push", "--uri", "/a", "--destination", "/b", "--extra", "novalue"], "expected key=value"),
    (["127.0.0.1:1", "push", "--uri", "/a", "--destination", "/b", "--extra", "n:={"], "invalid JSON"),
    (["127.0.0.1:1", "ping", "--timeout", "0"], "--timeout must be positive"),
])
def test_usage_errors_exit_2_without_sending(capsys, args: list[str], message: str) -> None:
    status, out, err = run_req(capsys, *args)
    assert status == 2
    assert message in err
    assert out == ""


def test_argparse_usage_errors_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["req", "127.0.0.1:1", "dance"])
    assert info.value.code == 2


def test_address_and_extra_parsing() -> None:
    assert normalise_address("h:1") == "tcp://h:1"
    assert normalise_address("tcp://h:2") == "tcp://h:2"
    assert normalise_address("[::1]:3") == "tcp://[::1]:3"
    assert parse_extra(["a=1", "b:=1", "c:=[1, 2]", "d=x=y"]) == {"a": "1", "b": 1, "c": [1, 2], "d": "x=y"}


@pytest.fixture
def our_server(tmp_path: Path):
    """Factory: start ``trollmoves server`` with one chain on ``in/`` plus ``extra`` INI lines."""
    started = []

    def start(extra: str = "") -> tuple[str, Path]:
        inbox = tmp_path / "in"
        inbox.mkdir(exist_ok=True)
        port = free_port()
        config = tmp_path / f"server{len(started)}.ini"
        config.write_text(f"[chain]\norigin = {inbox}/{{name}}.dat\ntopic = /test/ours\nrequest_port = {port}\n"
                          f"request_address = 127.0.0.1\nstation = ours\n{extra}")
        log = open(tmp_path / f"server{len(started)}.log", "wb")  # noqa: SIM115 - closed at teardown
        process = subprocess.Popen([str(Path(sys.executable).parent / "trollmoves"), "server", str(config), "-p",
                                    str(free_port()), "--bind", "127.0.0.1", "--disable-backlog"],
                                   stdout=log, stderr=subprocess.STDOUT)
        started.append((process, log))
        address = f"127.0.0.1:{port}"
        assert wait_until(lambda: _can_connect(port), timeout=30), (tmp_path / f"server{len(started) - 1}.log")
        return address, inbox

    yield start
    for process, log in started:
        process.terminate()
        process.wait(30)
        log.close()


def _can_connect(port: int) -> bool:
    import socket
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_ping_and_push_against_our_server(our_server, tmp_path: Path, capsys) -> None:
    address, inbox = our_server()
    outbox = tmp_path / "out"
    assert wait_until(lambda: _ask(address, "ping", timeout=0.5) is not None, timeout=30)
    announced = inbox / "a1.dat"
    announced.write_bytes(b"ours\n")
    assert wait_until(lambda: "a1.dat" in _info_files(address, "/test/ours"), timeout=20)
    status, out, _ = run_req(capsys, address, "ping")
    assert (status, json.loads(out)) == (0, {"station": "ours"})
    status, out, err = run_req(capsys, address, "push", "--topic", "/test/ours", "--uri", str(announced),
                               "--destination", f"file://{outbox}/")
    assert status == 0, err
    assert (outbox / "a1.dat").read_bytes() == b"ours\n"
    status, _, err = run_req(capsys, address, "push", "--uri", str(inbox / "never.dat"),
                             "--destination", f"file://{outbox}/")
    assert status == 1 and "err reply" in err and "never.dat" in err


def test_curve_server_answers_only_admitted_keys(our_server, tmp_path: Path, capsys) -> None:
    keys, admitted = tmp_path / "keys", tmp_path / "admitted"
    for name in ("server", "client", "stranger"):
        assert main(["keys", str(keys), name]) == 0
    admitted.mkdir()
    (admitted / "client.key").write_bytes((keys / "client.key").read_bytes())
    address, _ = our_server(f"server_secret_key_file = {keys}/server.key_secret\n"
                            f"clients_public_keys_directory = {admitted}\n")
    capsys.readouterr()
    with_key = ["--curve-server-key", str(keys / "server.key"), "--timeout", "5"]
    assert wait_until(lambda: main(["req", address, "ping", "--curve-secret-key", str(keys / "client.key_secret"),
                                    *with_key, "--retries", "0"]) == 0, timeout=10)
    assert '"station": "ours"' in capsys.readouterr().out
    for curve in (["--curve-secret-key", str(keys / "stranger.key_secret"), *with_key[:2]], []):
        status, out, err = run_req(capsys, address, "ping", *curve, "--retries", "0", "--timeout", "1")
        assert status == 1 and out == "" and "no reply" in err


def test_allowed_clients_refuses_other_addresses(our_server, capsys) -> None:
    address, _ = our_server("allowed_clients = 10.11.12.0/24\n")
    status, _, err = run_req(capsys, address, "ping", "--retries", "0", "--timeout", "1")
    assert status == 1 and "no reply" in err
    allowed, _ = our_server("allowed_clients = 127.0.0.1\n")
    assert wait_until(lambda: _ask(allowed, "ping", timeout=1) is not None, timeout=20)

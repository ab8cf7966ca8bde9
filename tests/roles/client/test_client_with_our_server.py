"""Our client against our server (``trollmoves server``): end to end, bursts, two servers."""

from __future__ import annotations

from collections import Counter

import pytest
from support.bus import BusRecorder, free_port, wait_until
from support.client import InProcessClient, client_section, prime, results, start_client, write_all
from support.files import payload, write_file
from support.ini import write_ini

pytestmark = pytest.mark.timeout(180)


def test_files_moved_end_to_end_in_order_push_ack_file(servers, tmp_path):
    server = servers("srv")
    client, recorder, out = start_client(tmp_path, server.provider)
    contents = {f"f{i}.dat": payload(i) for i in range(20)}
    try:
        prime(lambda name: write_file(server.inbox, f"{name}.dat", b"probe"), recorder)
        write_all(contents, server.inbox)
        assert len(recorder.wait_for(lambda m: m in results(recorder), count=20, timeout=30)) == 20
    finally:
        client.stop()
        recorder.close()
    assert all((out / name).read_bytes() == content for name, content in contents.items())
    for name in contents:
        mine = [m for m in recorder.messages if m.data.get("uid") == name]
        assert [m.type for m in mine] == ["push", "ack", "file"]
        assert mine[2].data["origin"] == server.request_address and mine[2].data["uri"] == str(out / name)


def test_burst_of_200_exactly_once(servers, tmp_path):
    server = servers("srv")
    client, recorder, out = start_client(tmp_path, server.provider, max_requests_in_flight=8)
    contents = {f"f{i:03d}.dat": payload(i) for i in range(200)}
    try:
        prime(lambda name: write_file(server.inbox, f"{name}.dat", b"probe"), recorder)
        write_all(contents, server.inbox)
        wait_until(lambda: len(results(recorder)) >= 200, timeout=90)
    finally:
        client.stop()
        recorder.close()
    assert Counter(m.data["uid"] for m in results(recorder)) == Counter(contents.keys())
    assert all((out / name).read_bytes() == content for name, content in contents.items())


def test_same_file_from_two_servers_fetched_once_other_acked(servers, tmp_path):
    # both servers delete what they pushed or were acked for: the loser's copy goes only on our ack
    pair = [servers(name, extra={"delete": "True", "remove_delay": "0"}) for name in ("a", "b")]
    client, recorder, out = start_client(tmp_path, " ".join(s.provider for s in pair))
    contents = {f"f{i}.dat": payload(i) for i in range(10)}
    try:
        prime(lambda name: write_file(pair[0].inbox, f"{name}.dat", b"probe"), recorder)
        write_all(contents, *(server.inbox for server in pair))
        wait_until(lambda: len(results(recorder)) >= 10, timeout=30)
        assert wait_until(lambda: not any((s.inbox / n).exists() for s in pair for n in contents), 30)
    finally:
        client.stop()
        recorder.close()
    assert Counter(m.data["uid"] for m in recorder.of_type("push") if m.data["uid"][0] == "f") == \
        Counter(contents.keys())
    assert Counter(m.data["uid"] for m in results(recorder)) == Counter(contents.keys())
    assert all((out / name).read_bytes() == content for name, content in contents.items())


def test_result_names_the_backup_host_the_server_failed_over_to(servers, tmp_path):
    # the primary, 127.0.0.2, refuses connections (the FTP server listens on 127.0.0.1 only)
    ftp_testing = pytest.importorskip("trollmoves_ftp.testing")
    ftp = ftp_testing.start_server(tmp_path / "ftp-root")
    (ftp.root / "up").mkdir()
    server = servers("srv", extra={"connection_parameters__retry_delay": "0.01"})
    port = free_port()
    login = f"{ftp_testing.USER}:{ftp_testing.PASSWORD}"
    config = write_ini(tmp_path / "client.ini", {"test": client_section(
        server.provider, f"ftp://127.0.0.2:{ftp.port}/up/", port, login=login, backup_targets="127.0.0.3 127.0.0.1",
        create_target_directory="false")})
    client = InProcessClient(config)
    recorder = BusRecorder([f"tcp://127.0.0.1:{port}"], ["/test/data"])
    try:
        prime(lambda name: write_file(server.inbox, f"{name}.dat", b"probe"), recorder)
        write_file(server.inbox, "f1.dat", b"one")
        assert wait_until(lambda: results(recorder), timeout=30)
    finally:
        client.stop()
        recorder.close()
        ftp.stop()
    assert (ftp.root / "up" / "f1.dat").read_bytes() == b"one"
    result = results(recorder)[0]
    # 127.0.0.1 is this host, so the uri is the path (as upstream writes it); 127.0.0.2 would be kept
    assert result.data["uri"] == "/up/f1.dat", result.data
    assert ftp_testing.PASSWORD not in result.encode()

"""The server INI: every upstream key, typed values, warnings for unknown keys, one-line errors."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from support.ini import write_ini
from trollmoves_roles.server.config import load_config

from trollmoves_core.exceptions import ConfigError

TROLLMOVES = [str(Path(sys.executable).parent / "trollmoves")]


def test_full_upstream_section(tmp_path, caplog):
    config = write_ini(tmp_path / "s.ini", {
        "DEFAULT": {"station": "st1", "info": "sensor=foo;platforms=a,b", "request_address": "127.0.0.1"},
        "chain": {"origin": "/data/in/{platform_name}_{start_time:%Y%m%d%H%M}.dat", "topic": "/test/data",
                  "request_port": 19092, "delete": "True", "remove_delay": 5, "watchdog_timeout": 0.5,
                  "compression": "bzip", "working_directory": tmp_path, "publish_port": 0,
                  "ssh_key_filename": "/home/u/.ssh/id_rsa",
                  "connection_parameters__connection_uptime": 20,
                  "connection_parameters__client_kwargs__endpoint_url": "http://127.0.0.1:9000",
                  "connection_parameters__use_tmp_on_transfer": "true"},
        "nothing": {"topic": "/x"},
    })
    with caplog.at_level(logging.WARNING):
        chains = load_config(config)
    assert list(chains) == ["chain"]
    chain = chains["chain"]
    assert chain.info == {"sensor": "foo", "platforms": ["a", "b"]}
    assert chain.station == "st1"
    assert (chain.request_port, chain.request_address) == (19092, "127.0.0.1")
    assert (chain.delete, chain.remove_delay, chain.watchdog_timeout) == (True, 5.0, 0.5)
    assert chain.compression == "bz2"
    assert chain.connection_params == {"ssh_key_filename": "/home/u/.ssh/id_rsa", "connection_uptime": "20",
                                       "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"},
                                       "use_tmp_on_transfer": True}
    messages = [r.getMessage() for r in caplog.records]
    assert any("ssh_key_filename: deprecated" in m for m in messages)
    assert any("[nothing]" in m and "neither origin nor listen" in m for m in messages)
    assert not any("unknown key" in m for m in messages)


def test_unknown_key_is_a_warning_naming_file_section_key(tmp_path, caplog):
    config = write_ini(tmp_path / "s.ini", {"c": {"origin": "/d/{name}", "topic": "/t", "orgin_typo": "x"}})
    with caplog.at_level(logging.WARNING):
        load_config(config)
    assert f"{config}: [c] orgin_typo: unknown key" in caplog.text


def test_standalone_and_listen_chains(tmp_path):
    config = write_ini(tmp_path / "s.ini", {
        "sa": {"origin": "/d/{name}.tar", "topic": "/t", "unpack": "tar"},
        "ls": {"listen": "/other", "topic": "/t2", "request_port": 9999, "addresses": "tcp://127.0.0.1:1 h:2"}})
    chains = load_config(config)
    assert chains["sa"].standalone and chains["sa"].unpack == "tar"
    assert chains["ls"].listen == "/other" and chains["ls"].listen_addresses == ("tcp://127.0.0.1:1", "h:2")


@pytest.mark.parametrize("section, key, fragment", [
    ({"topic": "/t"}, None, None),  # no origin: skipped, not an error
    ({"origin": "/d/{name}", "topic": "/t", "request_port": "abc"}, "request_port", "expected an integer"),
    ({"origin": "/d/{name}", "topic": "/t", "request_port": "70000"}, "request_port", "1-65535"),
    ({"origin": "/d/{name}"}, "topic", "required key is missing"),
    ({"origin": "/d/{name}", "topic": "no-slash"}, "topic", "must start with '/'"),
    ({"origin": "relative/{name}", "topic": "/t"}, "origin", "absolute"),
    ({"origin": "/d/{name", "topic": "/t"}, "origin", "trollsift"),
    ({"origin": "/d/{name}", "topic": "/t", "compression": "rar"}, "compression", "expected one of"),
    ({"origin": "/d/{name}", "topic": "/t", "compression": "xrit"}, "prog", "xRITDecompress"),
    ({"origin": "/d/{name}", "topic": "/t", "delete": "maybe"}, "delete", "true/false"),
    ({"origin": "/d/{name}", "topic": "/t", "remove_delay": "-1"}, "remove_delay", "negative"),
    ({"origin": "/d/{name}", "topic": "/t", "info": "novalue"}, "info", "key=value"),
    ({"origin": "/d/{name}", "topic": "/t", "unpack": "rar"}, "unpack", "expected one of"),
    ({"listen": "/x", "topic": "/t"}, "addresses", "addresses"),
])
def test_bad_values_raise_config_error_naming_the_key(tmp_path, section, key, fragment):
    config = write_ini(tmp_path / "s.ini", {"c": section})
    if key is None:
        assert load_config(config) == {}
        return
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert (info.value.file, info.value.section, info.value.key) == (str(config), "c", key)
    assert fragment in str(info.value)


def test_two_chains_on_one_request_port(tmp_path):
    config = write_ini(tmp_path / "s.ini", {"a": {"origin": "/d/{n}", "topic": "/t", "request_port": 9100},
                                            "b": {"origin": "/e/{n}", "topic": "/t", "request_port": 9100}})
    with pytest.raises(ConfigError, match=r"\[b\] request_port: port 9100 is already used by \[a\]"):
        load_config(config)


def test_cli_bad_config_exits_2_with_one_line(tmp_path):
    config = write_ini(tmp_path / "bad.ini", {"chain": {"origin": "/d/{name}", "topic": "/t",
                                                        "request_port": "nine"}})
    result = subprocess.run([*TROLLMOVES, "server", "--bind", "127.0.0.1", "-p", "0", str(config)],
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [f"trollmoves: error: {config}: [chain] request_port: expected an integer, got 'nine'"]


def test_cli_config_without_any_chain_exits_2_with_one_line(tmp_path):
    config = write_ini(tmp_path / "typo.ini", {"chain": {"orgin": f"{tmp_path}/{{name}}", "topic": "/t"}})
    result = subprocess.run([*TROLLMOVES, "server", "--bind", "127.0.0.1", "-p", "0", str(config)],
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"trollmoves: error: {config}: no chain defined: no section has origin or listen (one section per chain)")
    assert "Server running" not in result.stderr


def test_cli_missing_config_exits_2(tmp_path):
    result = subprocess.run([*TROLLMOVES, "server", "-p", "0", str(tmp_path / "none.ini")],
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "none.ini" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cli_publish_port_in_use_exits_2(tmp_path):
    import socket

    config = write_ini(tmp_path / "s.ini", {"chain": {"origin": f"{tmp_path}/{{name}}", "topic": "/t"}})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([*TROLLMOVES, "server", "--bind", "127.0.0.1", "-p", str(port), str(config)],
                                check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"trollmoves: error: {config}: cannot publish on tcp://127.0.0.1:{port}: Address already in use"]


def test_cli_request_port_in_use_is_said_with_the_config_and_no_stopped_line(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_ini(tmp_path / "s.ini", {"chain": {"origin": f"{tmp_path}/{{name}}", "topic": "/t",
                                                          "request_port": port}})
        result = subprocess.run([*TROLLMOVES, "server", "--bind", "127.0.0.1", "-p", "0", str(config)],
                                check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "stopped" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"trollmoves: error: {config}: [chain] request_port: cannot listen on tcp://127.0.0.1:{port}: "
        "Address already in use")

"""The shipped example configs pass ``trollmoves check`` and load with the roles' own readers."""

from __future__ import annotations

import importlib
import inspect
import os
import re
from pathlib import Path

import pytest

from trollmoves_core.check import check_file
from trollmoves_core.plugins import default_host

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONFIGS = sorted(p for p in (EXAMPLES / "configs").iterdir() if p.is_file())
"""One per role; the MQTT examples (configs/mqtt/) have their own tests in tests/mqtt."""
ROLE_LOADERS = {
    "server.ini": ("trollmoves_roles.server.config", "load_config"),
    "client.ini": ("trollmoves_roles.client.config", "load_client_config"),
    "mirror.ini": ("trollmoves_roles.mirror.config", "load_mirror_config"),
    "dispatcher.yaml": ("trollmoves_roles.dispatcher.config", "load_config"),
    "s3downloader.yaml": ("trollmoves_roles.downloader.config", "load_config"),
}


def localised(config: Path, tmp_path: Path) -> Path:
    """The example with /var/lib/trollmoves moved under ``tmp_path`` and its directories made."""
    text = config.read_text().replace("/var/lib/trollmoves", str(tmp_path / "var"))
    for match in re.finditer(re.escape(str(tmp_path / "var")) + r"[^\s{'\"]*", text):
        directory = match.group(0)
        (Path(directory) if directory.endswith("/") or "{" not in directory else Path(directory).parent).mkdir(
            parents=True, exist_ok=True)
    copy = tmp_path / config.name
    copy.write_text(text)
    return copy


def test_there_are_examples_for_each_role() -> None:
    assert [p.name for p in CONFIGS] == ["client.ini", "dispatcher.yaml", "mirror.ini", "s3downloader.yaml",
                                           "server.ini"]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_example_passes_check(config: Path, tmp_path: Path) -> None:
    report = check_file(str(localised(config, tmp_path)), default_host())
    assert report.errors() == []
    assert [p for p in report.problems if "cannot run here" not in p.message] == []


@pytest.mark.parametrize("config", sorted((EXAMPLES / "configs" / "mqtt").glob("*.ini")), ids=lambda p: p.name)
def test_mqtt_example_passes_check(config: Path, tmp_path: Path) -> None:
    report = check_file(str(localised(config, tmp_path)), default_host())
    assert report.errors() == []


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_examples_stay_on_loopback(config: Path) -> None:
    text = config.read_text()
    hosts = set(re.findall(r"(?:tcp|ftp|sftp|http)://(?:[^@/\s]+@)?([^:/\s]+)", text))
    hosts |= set(re.findall(r"^\s*providers\s*=\s*(.*)$", text, re.M)[0].split() if "providers" in text else [])
    assert {h.split(":")[0] for h in hosts} <= {"127.0.0.1"}
    assert "nameservers = false" in text or "providers" not in text


@pytest.mark.parametrize("name", sorted(ROLE_LOADERS))
def test_example_loads_with_the_role_reader(name: str, tmp_path: Path) -> None:
    module_name, function = ROLE_LOADERS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        pytest.skip(f"{module_name} is not available")
    reader = getattr(module, function)
    # the dispatcher checks its targets' schemes against the movers of the host it is given
    extra = (default_host(),) if "host" in inspect.signature(reader).parameters else ()
    loaded = reader(localised(EXAMPLES / "configs" / name, tmp_path), *extra)
    if name != "s3downloader.yaml":
        assert len(getattr(loaded, "targets", loaded)) == 2  # chains or targets


UPSTREAM = Path(os.environ.get("TROLLMOVES_UPSTREAM_EXAMPLES", "/work/shared/reference/upstream-examples"))
"""Upstream trollmoves' own example configs, read where they are (never copied into the project)."""
UPSTREAM_CONFIGS = sorted(p for p in UPSTREAM.glob("*") if p.suffix in (".ini", ".yaml")
                          and not p.name.endswith(("log_config.yaml", "remove_it.ini"))) if UPSTREAM.is_dir() else []
UPSTREAM_GAPS = {
    "ex__move_it_client.ini": "two sections of the same name, which upstream's reader refuses too",
    "ex__move_it_mirror.ini": "three sections share one request_port; the mirror binds one socket per section",
}


def upstream_localised(config: Path, tmp_path: Path) -> Path:
    """A copy of an upstream example under ``tmp_path``, its origin directories moved there and made."""
    def move(match: re.Match[str]) -> str:
        origin = f"{tmp_path}{match.group(2)}"
        head = origin.split("{", 1)[0]
        Path(head if head.endswith("/") else os.path.dirname(head)).mkdir(parents=True, exist_ok=True)
        return match.group(1) + origin

    copy = tmp_path / config.name
    copy.write_text(re.sub(r"^(origin\s*=\s*)(/\S+)", move, config.read_text(), flags=re.M))
    return copy


@pytest.mark.parametrize("config", [pytest.param(p, marks=pytest.mark.xfail(reason=UPSTREAM_GAPS[p.name], strict=True))
                                    if p.name in UPSTREAM_GAPS else p for p in UPSTREAM_CONFIGS],
                         ids=lambda p: p.name)
def test_upstream_example_passes_check(config: Path, tmp_path: Path) -> None:
    report = check_file(str(upstream_localised(config, tmp_path)), default_host())
    assert report.errors() == [], [str(p) for p in report.problems]


UNITS = sorted((EXAMPLES / "systemd").glob("*.service"))


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_units_run_a_shipped_config_with_valid_arguments(unit: Path) -> None:
    from trollmoves_core.cli import build_parser

    lines = dict(line.split("=", 1) for line in unit.read_text().splitlines()
                 if line.startswith(("ExecStart=", "ExecStartPre=", "User=")))
    argv = lines["ExecStart"].split()
    assert argv[0] == "/opt/trollmoves/bin/trollmoves"
    role, config = argv[1], argv[2]
    assert unit.name == f"trollmoves-{role}.service"
    assert (EXAMPLES / "configs" / Path(config).name).exists()
    assert lines["ExecStartPre"].split()[1:] == ["check", "--quiet", config]
    host = default_host()
    if role not in host.roles.classes:
        pytest.skip(f"role {role} is not installed")
    args = build_parser(host).parse_args(argv[1:])
    assert args.command == role


LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_units_bind_to_loopback_as_the_examples_say(unit: Path, tmp_path: Path) -> None:
    from trollmoves_core.cli import build_parser

    argv = next(line for line in unit.read_text().splitlines() if line.startswith("ExecStart=")).split("=", 1)[1]
    host = default_host()
    role = argv.split()[1]
    if role not in host.roles.classes:
        pytest.skip(f"role {role} is not installed")
    args = vars(build_parser(host).parse_args(argv.split()[1:]))
    binds = {name: value for name, value in args.items() if name.endswith("bind")}
    if role == "client":  # the client binds where its config's bind_address says
        from trollmoves_roles.client.config import load_client_config

        chains = load_client_config(localised(EXAMPLES / "configs" / "client.ini", tmp_path))
        binds = {name: chain.bind_address for name, chain in chains.items()}
    assert binds, f"{unit.name}: no bind option to check"
    assert set(binds.values()) <= LOOPBACK, binds

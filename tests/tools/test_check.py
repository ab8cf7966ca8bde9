"""``trollmoves check``: role detection, each role's checks (asked through ``Role.check``), the
key rules (upstream's keys pass, unknown keys warn, misplaced restricting keys fail)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import ClassVar

import pytest

from trollmoves_core import check, default_plugins, hookimpl
from trollmoves_core.check import check_file, detect_role
from trollmoves_core.cli import main
from trollmoves_core.exceptions import ConfigError
from trollmoves_core.plugins import PluginHost, load_plugins
from trollmoves_core.role import Role
from trollmoves_core.schema import Findings, ini_keys


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "in"
    path.mkdir()
    return path


@pytest.fixture
def core_only():
    """A plugin host with only the core's own plugin: file mover, no roles."""
    return load_plugins(entry_points=False, extra=[default_plugins])


@pytest.fixture
def roles():
    """A plugin host with the core's plugin and trollmoves-roles: file mover only, every role."""
    hooks = pytest.importorskip("trollmoves_roles.hooks")
    return load_plugins(entry_points=False, extra=[default_plugins, hooks])


def lines(report) -> list[str]:
    return [str(p) for p in report.problems]


def run_check(host, *argv: str) -> int:
    parser = argparse.ArgumentParser()
    check.add_arguments(parser)
    return check.run(parser.parse_args(list(argv)), host)


# -- detection ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, text, role", [
    ("s.ini", "[a]\norigin = /x/{a}\ntopic = /t\n", "server"),
    ("s.ini", "[a]\nlisten = /t\ntopic = /u\n", "server"),
    ("c.ini", "[a]\nproviders = h:1\ndestination = /o/\n", "client"),
    ("m.ini", "[a]\nproviders = h:1\norigin = /x/{a}\n", "mirror"),
    ("d.yaml", "t:\n  host: ''\n  dispatch_configs: []\n", "dispatcher"),
    ("d.yml", "target_defaults: {}\n", "dispatcher"),
    ("d.conf", "t:\n  directory: /out\n", "dispatcher"),  # not INI, so read as YAML
    ("s3.yaml", "bucket: b\nsubscribe-topic: /t\n", "downloader"),
])
def test_role_is_detected_from_the_file(tmp_path: Path, name: str, text: str, role: str) -> None:
    assert detect_role(write(tmp_path / name, text)) == role


@pytest.mark.parametrize("name, text", [("x.ini", "[a]\nfoo = 1\n"), ("x.yaml", "- 1\n- 2\n")])
def test_undetectable_file_asks_for_role(tmp_path: Path, name: str, text: str) -> None:
    with pytest.raises(ConfigError, match="give --role"):
        detect_role(write(tmp_path / name, text))


def test_undetectable_file_exits_2_with_one_line(tmp_path: Path, capsys) -> None:
    path = write(tmp_path / "x.ini", "[a]\nfoo = 1\n")
    assert main(["check", path]) == 2
    # the core asks the installed roles (Role.recognises): it knows no role's keys itself
    assert capsys.readouterr().out == f"{path}: cannot tell the role (no installed role recognises its " \
                                      "sections); give --role\n"


# -- server ------------------------------------------------------------------------------

def test_valid_server_config_passes(tmp_path: Path, inbox: Path, capsys) -> None:
    path = write(tmp_path / "server.ini", f"""[DEFAULT]
request_address = 127.0.0.1

[eumetcast]
origin = {inbox}/{{platform_name}}_{{start_time:%Y%m%d%H%M}}.dat
topic = /test/data
request_port = 19092
station = st1
info = sensor=foo;platforms=a,b
delete = false
remove_delay = 30
connection_parameters__connection_uptime = 20
""")
    assert main(["check", path]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{path}: OK (checked as server, 1 section(s))"


def test_server_problems_are_named_by_file_section_and_key(tmp_path: Path, inbox: Path, roles) -> None:
    afile = inbox / "plain.txt"
    afile.write_text("x")
    path = write(tmp_path / "server.ini", f"""[DEFAULT]
bogus_default = 1

[one]
origin = {inbox}/{{name}}.dat
topic = /a
request_port = 9092
delte = true
remove_delay = soon

[two]
origin = /nonexistent-dir-for-check/{{name}}.dat
topic = nope
request_port = 9092
delete = maybe

[three]
origin = {inbox}/{{x:%Y.dat
topic = /c
request_port = 70000

[four]
origin = relative/{{name}}.dat

[five]
origin = {afile}/{{name}}
topic = /e

[six]
topic = /f
""")
    report = check_file(path, roles)
    assert report.role == "server"
    assert lines(report) == [
        f"{path}: [DEFAULT] bogus_default: warning: unknown key, ignored",
        f"{path}: [one] delte: warning: unknown key, ignored; did you mean `delete`?",
        f"{path}: [one] remove_delay: expected a number, got 'soon'",
        f"{path}: [two] topic: must start with '/', got 'nope'",
        f"{path}: [two] origin: warning: directory /nonexistent-dir-for-check does not exist yet; the chain "
        "starts watching when it appears",
        f"{path}: [two] delete: expected true/false, got 'maybe'",
        f"{path}: [two] request_port: port 9092 is already used by [one]",
        f"{path}: [three] origin: invalid trollsift pattern '{inbox}/{{x:%Y.dat': unmatched '{{' in format spec",
        f"{path}: [three] request_port: expected a port number 1-65535, got 70000",
        f"{path}: [four] topic: required key is missing",
        f"{path}: [four] origin: must be an absolute path pattern, got 'relative/{{name}}.dat'",
        f"{path}: [five] origin: {afile} is not a directory",
        f"{path}: [six] warning: neither origin nor listen: this section is skipped",
    ]
    assert len(report.errors()) == 9


def test_without_the_role_the_file_cannot_be_checked(tmp_path: Path, inbox: Path, core_only) -> None:
    path = write(tmp_path / "server.ini", f"[a]\norigin = {inbox}/{{n}}\ntopic = /t\n")
    assert lines(check_file(path, core_only, "server")) == [
        f"{path}: cannot check this file here: no role 'server': pip install trollmoves-roles"]
    with pytest.raises(ConfigError,
                       match=r"give --role, or install the roles: pip install trollmoves-roles trollmoves-wis2$"):
        check_file(path, core_only)


def test_unreadable_config_is_one_error(tmp_path: Path, roles) -> None:
    report = check_file(str(tmp_path / "missing.ini"), roles, "server")
    assert lines(report) == [f"{tmp_path}/missing.ini: no such file"]
    broken = write(tmp_path / "broken.ini", "[a]\norigin = /x\n  [b\nno equals sign here\n")
    report = check_file(broken, roles, "server")
    assert len(report.errors()) == 1 and "line" in lines(report)[0]


# -- client ------------------------------------------------------------------------------

def test_client_metadata_keys_warn_and_strict_fails(tmp_path: Path, capsys) -> None:
    path = write(tmp_path / "client.ini", f"""[c]
providers = 127.0.0.1:9010 127.0.0.1:9011/other/topic
destination = file://{tmp_path}/out/{{platform_name}}/
topic = /test/data
publish_port = 19020
nameservers = false
sensor = avhrr
""")
    assert main(["check", path]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{path}: [c] sensor: warning: not a client option; it only overwrites message metadata of the "
                   "same name", f"{path}: OK, 1 warning(s) (checked as client, 1 section(s))"]
    assert main(["check", "--strict", "-q", path]) == 2


def test_client_destination_without_plugin_gives_install_hint(tmp_path: Path, roles) -> None:
    path = write(tmp_path / "client.ini", """[c]
providers = localhost:abc
destination = sftp://user@host/data/{platform_name}/
heartbeat = nah
req_timeout = 1s
""")
    # the server does the push: the client host needs no sftp mover, so only a warning
    assert lines(check_file(path, roles, "client"))[:4] == [
        f"{path}: [c] providers: expected host:port, got 'localhost:abc'",
        f"{path}: [c] destination: warning: no mover for 'sftp://': pip install trollmoves-ssh; not needed by "
        "this client: the server does the push",
        f"{path}: [c] req_timeout: expected a number, got '1s'",
        f"{path}: [c] heartbeat: expected true/false, got 'nah'",
    ]


@pytest.mark.parametrize("settings, multicast", [
    ("", True), ("nameservers = false\n", True), ("nameservers = false\npublish_port = 0\n", True),
    ("nameservers = false\npublish_port = 9020\n", False), ("nameservers = ns1 ns2\n", False),
])
def test_client_settings_upstream_would_multicast_with_warn(tmp_path: Path, roles, settings: str,
                                                           multicast: bool) -> None:
    path = write(tmp_path / "client.ini", f"[c]\nproviders = h:1\ndestination = /o/\ntopic = /t\n{settings}")
    report = check_file(path, roles, "client")
    assert report.errors() == []
    assert any("multicast" in p.message and p.key == "nameservers" for p in report.problems) is multicast


def test_client_required_keys_and_bad_destination_pattern(tmp_path: Path, roles) -> None:
    path = write(tmp_path / "client.ini", "[c]\ntopic = /t\n\n[d]\nproviders = h:1\ndestination = /o/{a}}/\n")
    found = lines(check_file(path, roles, "client"))
    assert f"{path}: [c] providers: required key is missing" in found
    assert f"{path}: [c] destination: required key is missing" in found
    assert f"{path}: [d] destination: invalid trollsift pattern '/o/{{a}}}}/': Single '}}' encountered in " \
           "format string" in found


def test_passwords_are_never_printed(tmp_path: Path, roles) -> None:
    path = write(tmp_path / "client.ini", "[c]\nproviders = h:1\ndestination = ftp://bob:s3cret@h/{a/\n"
                                          "login = bob:s3cret\n\n[d]\nproviders = h:1\n"
                                          "destination = ftp://bob:s3cret@h:{port}/{a/\n")
    found = "\n".join(lines(check_file(path, roles, "client")))
    assert "invalid trollsift pattern 'ftp://bob@h/{a/'" in found
    assert "invalid trollsift pattern 'ftp://bob@h:{port}/{a/'" in found
    assert "s3cret" not in found


def test_mirror_gets_server_and_client_checks(tmp_path: Path, inbox: Path, roles) -> None:
    path = write(tmp_path / "mirror.ini", f"""[m]
providers = 127.0.0.1:9010
destination = s4://bucket/
client_topic = /up
origin = {inbox}/{{name}}
topic = /down
request_port = x
""")
    report = check_file(path, roles)
    assert report.role == "mirror"
    assert lines(report)[:2] == [f"{path}: [m] request_port: expected an integer, got 'x'",
                                 f"{path}: [m] destination: no mover for 's4://' (known: file); for any "
                                 "filesystem fsspec knows: pip install trollmoves-fsspec"]


def test_server_security_keys_protect_a_mirrors_request_socket(tmp_path: Path, inbox: Path, roles) -> None:
    """The mirror's request sockets take the server's allow-list and CURVE keys; a bad entry is an error."""
    body = f"[m]\nproviders = 127.0.0.1:9010\norigin = {inbox}/{{name}}\ntopic = /t\nrequest_port = 9011\n"
    path = write(tmp_path / "mirror.ini", body + "allowed_clients = 10.0.0.0/8\n")
    assert lines(check_file(path, roles)) == []
    bad = write(tmp_path / "bad.ini", body + "allowed_clients = 10.0.0.0/33\n")
    assert [line for line in lines(check_file(bad, roles)) if "allowed_clients" in line]


# -- dispatcher and downloader -----------------------------------------------------------

DISPATCHER = """posttroll_subscriber:
  subscribe_addresses: [tcp://127.0.0.1:9010]
  nameserver: false
target_defaults:
  connection_parameters: {connection_uptime: 20}
local:
  host: ""
  directory: OUT/{sensor}
  filepattern: '{platform_name}_{start_time:%Y%m%d%H%M}.dat'
  publish_topic: /dispatched/{sensor}
  dispatch_configs:
    - topics: [/level2/avhrr]
      conditions: [{sensor: avhrr}]
"""


def test_valid_dispatcher_config_passes(tmp_path: Path, roles) -> None:
    path = write(tmp_path / "dispatch.yaml", DISPATCHER.replace("OUT", str(tmp_path)))
    report = check_file(path, roles)
    assert report.role == "dispatcher"
    assert report.errors() == []
    assert report.sections == 1


def test_dispatcher_problems(tmp_path: Path, roles) -> None:
    path = write(tmp_path / "dispatch.yaml", DISPATCHER.replace("OUT", str(tmp_path)) + """ftp_site:
  host: ftp://user:secret@ftp.example.com
  directory: /in/{sensor
  colour: blue
  dispatch_configs:
    - topics: []
      filepattern: x
      hots: sftp://x
    - 3
idle:
  host: s3://bucket
""")
    found = lines(check_file(path, roles))
    assert found[:7] == [
        f"{path}: [ftp_site] colour: warning: unknown key, ignored",
        f"{path}: [ftp_site] host: no mover for 'ftp://': pip install trollmoves-ftp",
        f"{path}: [ftp_site] directory: invalid trollsift pattern '/in/{{sensor': expected '}}' before end of string",
        f"{path}: [ftp_site] dispatch_configs[0].hots: warning: unknown key, ignored; did you mean `host`?",
        f"{path}: [ftp_site] dispatch_configs[0].topics: required: a list of topics",
        f"{path}: [ftp_site] dispatch_configs[1]: expected a mapping with topics",
        f"{path}: [idle] host: no mover for 's3://': pip install trollmoves-s3",
    ]
    # the dispatcher refuses to start without dispatch_configs, so check says so as an error
    assert f"{path}: [idle] dispatch_configs: required: a list of items with 'topics'" in found
    assert "secret" not in "\n".join(found)


def test_downloader_problems(tmp_path: Path, roles) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    path = write(tmp_path / "s3dl.yaml", f"""subscribe-topic: /level1/s3
download_destination: {tmp_path}/a-file/sub
s3_kwargs: [a]
logging: {{logging_mode: DEBUG}}
servces: x
""")
    found = lines(check_file(path, roles))
    assert found[:6] == [
        f"{path}: servces: warning: unknown key, ignored; did you mean `services`?",
        f"{path}: publish-topic: required key is missing",
        f"{path}: bucket: warning: not set: upstream's s3downloader requires it (trollmoves fetches each "
        "message's uri)",
        f"{path}: logging: warning: not used by trollmoves: configure logging with -l FILE or -c LOGCONFIG.yaml",
        f"{path}: download_destination: directory {tmp_path}/a-file/sub does not exist",
        f"{path}: s3_kwargs: expected a mapping",
    ]
    with_bucket = write(tmp_path / "b.yaml", "subscribe-topic: /a\npublish-topic: /b\nbucket: x\n"
                        f"download_destination: {tmp_path}\nparallel_downloads: 2\n")
    assert lines(check_file(with_bucket, roles))[0] == \
        f"{with_bucket}: bucket: no mover for 's3://': pip install trollmoves-s3"
    creatable = write(tmp_path / "c.yaml", "subscribe-topic: /a\npublish-topic: /b\n"
                      f"download_destination: {tmp_path}/new/sub\n")
    assert f"{creatable}: download_destination: warning: directory {tmp_path}/new/sub does not exist yet; " \
        "the downloader creates it" in lines(check_file(creatable, roles))


# -- the key rules ------------------------------------------------------------------------

@pytest.mark.parametrize("name, text", [
    ("dispatch.yaml", "t:\n  host: ''\n  directory: OUT\n  nameserver: localhost\n  subscribe_addresses: []\n"
                      "  dispatch_configs:\n    - topics: [/foo]\n"),
    ("server.ini", "[s]\norigin = OUT/{name}\ntopic = /t\norigin_inotify_base_dir_skip_levels = -2\n"
                   "publisher_port = 9010\n"),
    ("s3dl.yaml", "subscribe-topic: [/yuhu]\npublish-topic: /idnt\nbucket: b\ndownload_destination: OUT\n"
                  "endpoint_url: https://s3.example.com\naccess_key: ak\nsecret_key: sk\n"),
])
def test_keys_upstream_reads_or_tolerates_pass_even_strict(tmp_path: Path, name: str, text: str, capsys) -> None:
    path = write(tmp_path / name, text.replace("OUT", str(tmp_path)))
    assert main(["check", "--strict", path]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith(f"{path}: OK")


def test_an_unknown_key_warns_with_a_suggestion_and_strict_fails(tmp_path: Path, inbox: Path, capsys) -> None:
    path = write(tmp_path / "server.ini", f"[s]\norigin = {inbox}/{{name}}\ntopic = /t\nstaton = st1\n")
    assert main(["check", path]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: [s] staton: warning: unknown key, ignored; did you mean `station`?",
        f"{path}: OK, 1 warning(s) (checked as server, 1 section(s))"]
    assert main(["check", "--strict", "-q", path]) == 2


def test_conditions_one_level_off_in_a_dispatcher_target_is_an_error(tmp_path: Path, capsys) -> None:
    path = write(tmp_path / "dispatch.yaml", f"""t:
  directory: {tmp_path}
  dispatch_configs:
    - topics: [/a]
  conditions:
    - sensor: avhrr
""")
    assert main(["check", "-q", path]) == 2
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: [t] conditions: belongs in a dispatch_configs item; ignored here it would widen what is done, "
        "so it is refused"]


def test_a_config_without_any_chain_is_an_error(tmp_path: Path, inbox: Path, capsys) -> None:
    path = write(tmp_path / "server.ini", f"[s]\norgin = {inbox}/{{name}}\ntopic = /t\n")
    assert main(["check", "--role", "server", path]) == 2
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: [s] orgin: warning: unknown key, ignored; did you mean `origin`?",
        f"{path}: [s] warning: neither origin nor listen: this section is skipped",
        f"{path}: no chain defined: no section has origin or listen (one section per chain)",
        f"{path}: 1 error(s), 2 warning(s) (checked as server, 1 section(s))"]


def test_a_client_does_not_need_the_movers_of_the_servers_pushes(tmp_path: Path, roles) -> None:
    path = write(tmp_path / "client.ini", "[c]\nproviders = 127.0.0.1:9010\ndestination = ftp://h/in/\n"
                                          "topic = /t\nnameservers = false\npublish_port = 9020\n")
    assert run_check(roles, "-q", path) == 0
    assert run_check(roles, "-q", "--strict", path) == 2


@pytest.mark.parametrize("settings, key", [
    ("providers = primary_client:<publish_port>\ndestination = /o/\n", "providers"),  # hot spare, unfilled
    ("providers = h:1\ndestination = /o/{a}}/\n", "destination"),
])
def test_one_line_per_problem(tmp_path: Path, roles, settings: str, key: str) -> None:
    path = write(tmp_path / "client.ini", f"[c]\ntopic = /t\nnameservers = false\npublish_port = 9020\n{settings}")
    report = check_file(path, roles)
    assert [p.key for p in report.problems] == [key], lines(report)


def test_the_roles_loader_warnings_are_findings_said_once(tmp_path: Path, inbox: Path, capsys) -> None:
    path = write(tmp_path / "server.ini", f"[s]\norigin = {inbox}/{{name}}\ntopic = /t\nstaton = st1\n"
                                          "connection_uptime = 20\n")
    assert main(["check", path]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"{path}: [s] staton: warning: unknown key, ignored; did you mean `station`?",
        f"{path}: [s] connection_uptime: warning: deprecated, write connection_parameters__connection_uptime instead",
        f"{path}: OK, 2 warning(s) (checked as server, 1 section(s))"]
    assert err == ""


# -- the roles' extension point: Role.check ---------------------------------------------

class PickyServer(Role):
    NAME = "server"
    seen: ClassVar[list[str]] = []

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("config")

    @classmethod
    def run(cls, args: argparse.Namespace, host: PluginHost) -> int:
        return 0

    @classmethod
    def recognises(cls, content) -> int:
        return int("origin" in (ini_keys(content) or ()))

    @classmethod
    def check(cls, path: str, host) -> Findings:
        cls.seen.append(path)
        out = Findings(path, sections=1)
        out.add("must be low or high", "a", "priority")
        out.add("too long", "a", "station")
        return out


class BrokenChecks(PickyServer):
    NAME = "client"

    @classmethod
    def recognises(cls, content) -> int:
        return int("providers" in (ini_keys(content) or ()))

    @classmethod
    def check(cls, path: str, host) -> Findings:
        raise RuntimeError("bug in the role")


class RolesPlugin:
    @hookimpl
    def trollmoves_register_roles(self) -> list[type[Role]]:
        return [PickyServer, BrokenChecks]


def test_check_asks_the_role(tmp_path: Path, inbox: Path, capsys) -> None:
    host = load_plugins(entry_points=False, extra=[default_plugins, RolesPlugin()])
    path = write(tmp_path / "server.ini", f"[a]\norigin = {inbox}/{{n}}\ntopic = /t\npriority = urgent\n")
    assert run_check(host, path) == 2
    assert PickyServer.seen == [path]
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: [a] priority: must be low or high",
        f"{path}: [a] station: too long",
        f"{path}: 2 error(s) (checked as server, 1 section(s))",
    ]


def test_a_failing_role_check_is_reported_not_raised(tmp_path: Path, core_only) -> None:
    host = load_plugins(entry_points=False, extra=[default_plugins, RolesPlugin()])
    path = write(tmp_path / "client.ini", f"[c]\nproviders = h:1\ndestination = {tmp_path}/\nnameservers = false\n"
                                          "publish_port = 9020\n")
    assert lines(check_file(path, host)) == [
        f"{path}: the client role's own checks failed: RuntimeError: bug in the role"]


def test_unknown_role_name_is_a_usage_error(tmp_path: Path, core_only) -> None:
    path = write(tmp_path / "x.ini", "[a]\n")
    with pytest.raises(ConfigError, match="no checks for role 'remover'"):
        check_file(path, core_only, "remover")


@pytest.mark.parametrize("name", ["server.ini", "dispatch.yaml"])
def test_a_file_that_is_not_utf8_is_one_error(tmp_path: Path, capsys, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"[s]\norigin = /d\xe9j\xe0/{name}\n" if name.endswith(".ini") else b"t: \xff\n")
    assert main(["check", "-q", str(path)]) == 2
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{path}: not UTF-8 text: byte ") and line.endswith("save it as UTF-8)")


def test_a_logging_config_is_checked_as_one(tmp_path: Path, capsys) -> None:
    """What -c takes: upstream's example names a handler it does not define."""
    path = write(tmp_path / "log_config.yaml", "version: 1\nformatters:\n  pytroll: {format: '%(message)s'}\n"
                 "handlers:\n  console: {class: logging.StreamHandler, formatter: pytroll}\n"
                 f"  file: {{class: logging.FileHandler, filename: {tmp_path}/nowhere/a.log, formatter: plain}}\n"
                 "root:\n  level: DEBUG\n  handlers: [console, monitor]\n")
    assert main(["check", path]) == 2
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: root names handler 'monitor', which 'handlers' does not define",
        f"{path}: handler 'file' names formatter 'plain', which 'formatters' does not define",
        f"{path}: handler 'file': the directory of {tmp_path}/nowhere/a.log does not exist",
        f"{path}: 3 error(s) (checked as logging config (-c), 2 section(s))"]
    good = write(tmp_path / "good.yaml", "version: 1\nhandlers:\n  h: {class: logging.StreamHandler}\n"
                 "root: {handlers: [h]}\n")
    assert main(["check", "-q", good]) == 0


def test_a_bus_the_role_could_not_use_is_reported_as_it_would_be(tmp_path: Path, inbox: Path, roles) -> None:
    path = write(tmp_path / "server.ini", f"""[a]
origin = {inbox}/{{name}}.dat
topic = /t
request_port = 9301
bus = mqtt://127.0.0.1:1/a

[b]
origin = {inbox}/{{name}}.dat
topic = /u
request_port = 9302
bus = mqtt://127.0.0.1:1/b
""")
    assert lines(check_file(path, roles, "server")) == [
        f"{path}: bus: sections name different buses ([a], [b]): one process uses one bus"]
    # without the plugin for the bus's scheme (the host has no MQTT transport here)
    path = write(tmp_path / "client.ini", "[c]\nproviders = h:1\ndestination = /o/\ntopic = /t\nbus = mqtt://h:1/x\n")
    found = check_file(path, roles, "client")
    assert [str(p) for p in found.errors()] == [f"{path}: bus: no transport for 'mqtt://': pip install trollmoves-mqtt"]

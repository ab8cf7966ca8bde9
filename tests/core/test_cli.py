"""The trollmoves launcher, run as a real subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.terminal import frames, run_on_terminal

from trollmoves_core.plugins import default_host

TROLLMOVES = str(Path(sys.executable).with_name("trollmoves"))


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TROLLMOVES, *args], capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, **(env or {})})


def test_plugins_table_lists_every_distribution() -> None:
    result = run("plugins")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["distribution", "version", "movers", "transports", "watchers", "roles", "observers",
                               "commands"]
    core = next(line for line in lines if line.startswith("trollmoves-core"))
    assert "file" in core and "watchdog, polling, inotify" in core
    assert core.endswith("plugins, move, get, check")
    roles = next(line for line in lines if line.startswith("trollmoves-roles"))
    assert "client, dispatcher, downloader, mirror, server  " in roles and roles.endswith("keys, req, status, trace")
    for dist in ("trollmoves-ftp", "trollmoves-ssh", "trollmoves-s3", "trollmoves-roles"):
        assert any(line.startswith(dist) for line in lines), dist


def test_plugins_json() -> None:
    result = run("plugins", "--json")
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["trollmoves-core"]["movers"] == ["file"]
    assert rows["trollmoves-roles"]["transports"] == ["tcp", "ipc", "inproc"]
    assert "trollmoves_register_watchers" in rows["trollmoves-core"]["hooks"]
    assert rows["trollmoves-core"]["error"] is None
    assert rows["trollmoves-core"]["commands"] == ["plugins", "move", "get", "check"]
    assert "trollmoves_register_commands" in rows["trollmoves-core"]["hooks"]
    assert rows["trollmoves-roles"]["commands"] == ["keys", "req", "status", "trace"]
    assert "keys" not in rows["trollmoves-roles"]["roles"]
    assert rows["trollmoves-wis2"]["observers"] == ["wis2"]
    assert "trollmoves_register_delivery_observers" in rows["trollmoves-wis2"]["hooks"]


def test_version_lists_plugins() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("trollmoves-core ")
    assert "trollmoves-roles" in result.stdout


def test_move_copies_and_exits_zero(tmp_path: Path) -> None:
    src = tmp_path / "in.dat"
    src.write_bytes(b"payload")
    result = run("move", str(src), f"file://{tmp_path}/out/", "-o", "mode=copy")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "in.dat").read_bytes() == b"payload"


def test_get_fetches_to_a_local_directory(tmp_path: Path) -> None:
    src = tmp_path / "remote" / "in.dat"
    src.parent.mkdir()
    src.write_bytes(b"payload")
    result = run("get", f"file://{src}", f"{tmp_path}/local/")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "local" / "in.dat").read_bytes() == b"payload"


def test_move_of_missing_file_exits_one_with_one_line(tmp_path: Path) -> None:
    result = run("move", str(tmp_path / "nope.dat"), f"{tmp_path}/out/")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"trollmoves: put {tmp_path}/nope.dat to file://{tmp_path}/out/nope.dat failed: no such local file"]


def test_unknown_scheme_exits_two_with_install_hint(tmp_path: Path) -> None:
    src = tmp_path / "in.dat"
    src.write_bytes(b"x")
    result = run("move", str(src), "sftp://host/dir/", env={"TROLLMOVES_DISABLE_PLUGINS": "ssh"})
    assert result.returncode == 2
    assert result.stderr.strip() == ("trollmoves: error: no mover for 'sftp://': trollmoves-ssh is installed but "
                                     "disabled (TROLLMOVES_DISABLE_PLUGINS names 'ssh')")


@pytest.mark.parametrize("argv, kind", [(("server", "x.ini"), "role 'server'"),
                                        (("keys", "dir", "name"), "command 'keys'"),
                                        (("req",), "command 'req'"), (("status", "x.ini"), "command 'status'")])
def test_a_disabled_role_or_command_exits_two_saying_so(argv, kind) -> None:
    result = run(*argv, env={"TROLLMOVES_DISABLE_PLUGINS": "roles"})
    assert result.returncode == 2
    assert result.stderr.strip() == (f"trollmoves: error: no {kind}: trollmoves-roles is installed but disabled "
                                     "(TROLLMOVES_DISABLE_PLUGINS names 'roles')")


def test_the_wis2_subscriber_role_without_its_plugin_names_the_package() -> None:
    result = run("wis2-subscriber", "x.yaml", env={"TROLLMOVES_DISABLE_PLUGINS": "wis2"})
    assert result.returncode == 2
    assert result.stderr.strip() == ("trollmoves: error: no role 'wis2-subscriber': trollmoves-wis2 is installed "
                                     "but disabled (TROLLMOVES_DISABLE_PLUGINS names 'wis2')")


def test_plugins_lists_what_is_disabled() -> None:
    result = run("plugins", env={"TROLLMOVES_DISABLE_PLUGINS": "ftp"})
    assert result.returncode == 0
    (row,) = [line for line in result.stdout.splitlines() if line.startswith("trollmoves-ftp ")]
    assert row.rstrip().endswith("DISABLED (TROLLMOVES_DISABLE_PLUGINS)") and "ftps" not in row
    shown = json.loads(run("plugins", "--json", env={"TROLLMOVES_DISABLE_PLUGINS": "ftp"}).stdout)
    assert [(p["name"], p["disabled"]) for p in shown if p["disabled"]] == [("trollmoves-ftp", True)]


def test_core_commands_register_like_a_plugin_and_go_with_it() -> None:
    result = run("move", "a", "b", env={"TROLLMOVES_DISABLE_PLUGINS": "core"})
    assert result.returncode == 2
    assert "invalid choice: 'move'" in result.stderr


PLUGIN_WITH_ROLE_AND_COMMAND = """
import argparse
from trollmoves_core import hookimpl
from trollmoves_core.command import Command
from trollmoves_core.role import Role

class Echo(Command):
    NAME = "echo-schemes"
    HELP = "print the schemes the host has movers for"

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--status", type=int, default=0)

    @classmethod
    def run(cls, args, host):
        print("command:", ",".join(sorted(host.movers.classes)))
        return args.status

class Idle(Role):
    NAME = "idle"
    HELP = "a role that returns at once"

    @classmethod
    def add_arguments(cls, parser):
        pass

    @classmethod
    def run(cls, args, host):
        print("role:", sorted(host.watchers.classes)[0])
        return 3

@hookimpl(specname="trollmoves_register_commands")
def commands():
    return Echo

@hookimpl
def trollmoves_register_roles():
    return [Idle]
"""


def test_third_party_command_and_role_run_with_the_launchers_host(tmp_path: Path) -> None:
    (tmp_path / "tm_test_echo.py").write_text(PLUGIN_WITH_ROLE_AND_COMMAND)
    info = tmp_path / "trollmoves_echo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: trollmoves-echo\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[trollmoves]\necho = tm_test_echo\n")
    env = {"PYTHONPATH": str(tmp_path)}
    command = run("echo-schemes", "--status", "4", env=env)
    # the launcher's host, not a second one: the command sees exactly the movers this environment installs
    schemes = ",".join(sorted(default_host().movers.classes))
    assert "file" in schemes and (command.returncode, command.stdout.splitlines()) == (4, [f"command: {schemes}"])
    role = run("idle", env=env)
    assert (role.returncode, role.stdout.splitlines()) == (3, ["role: inotify"])
    listing = run("plugins", env=env)
    row = next(line for line in listing.stdout.splitlines() if line.startswith("trollmoves-echo"))
    assert row.split() == ["trollmoves-echo", "1.0", "idle", "echo-schemes"]


def test_bad_connection_params_file_exits_two(tmp_path: Path) -> None:
    src = tmp_path / "in.dat"
    src.write_bytes(b"x")
    params = tmp_path / "params.yaml"
    params.write_text("mode: [unclosed\n")
    result = run("move", str(src), f"{tmp_path}/out/", "--connection-params", str(params))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert f"{params}: line 2: invalid YAML" in result.stderr


def test_bad_option_syntax_exits_two(tmp_path: Path) -> None:
    result = run("move", str(tmp_path), f"{tmp_path}/out/", "-o", "novalue")
    assert result.returncode == 2
    assert "expected key=value, got 'novalue'" in result.stderr


@pytest.mark.parametrize("command", ["plugins", "move", "get", "check", "keys", "req", "status", "trace"])
def test_every_command_has_help(command: str) -> None:
    result = run(command, "--help")
    assert result.returncode == 0
    assert "--verbose" in result.stdout


def test_failed_get_never_shows_the_password(tmp_path: Path) -> None:
    from support.bus import free_port

    result = run("get", f"ftp://user:s3cret@127.0.0.1:{free_port()}/x.dat", f"{tmp_path}/", "-o", "retries=1")
    assert result.returncode == 1
    assert "ftp://user@127.0.0.1" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout


RATE = re.compile(r"\d (B|KiB|MiB|GiB)/s")


@pytest.mark.parametrize("without_rich", [False, True], ids=["rich", "plain"])
def test_progress_on_a_terminal_shows_share_and_size_of_a_copy(tmp_path: Path, without_rich: bool) -> None:
    src = tmp_path / "in.dat"
    src.write_bytes(b"c" * 3 * 2**20)
    status, drawn = run_on_terminal("move", str(src), f"{tmp_path}/out/", "-o", "mode=copy",
                                    without_rich=without_rich)
    assert status == 0, drawn
    assert "in.dat" in drawn
    assert ("100.0%" if without_rich else "100%") in drawn
    assert "3.0/3.0 MiB" in drawn
    assert RATE.search(frames(drawn)[-1]) and "linked" not in drawn


@pytest.mark.parametrize("without_rich", [False, True], ids=["rich", "plain"])
def test_progress_on_a_terminal_says_linked_for_a_hard_link(tmp_path: Path, without_rich: bool) -> None:
    src = tmp_path / "in.dat"
    src.write_bytes(b"h" * 2**20)
    status, drawn = run_on_terminal("move", str(src), f"{tmp_path}/out/", without_rich=without_rich)
    assert status == 0, drawn
    assert os.path.samefile(src, tmp_path / "out" / "in.dat")
    assert "linked" in frames(drawn)[-1] and "/s" not in frames(drawn)[-1]


@pytest.mark.parametrize("without_rich", [False, True], ids=["rich", "plain"])
def test_progress_of_a_get_shows_the_share_from_the_start(tmp_path: Path, without_rich: bool) -> None:
    src = tmp_path / "remote" / "in.dat"
    src.parent.mkdir()
    src.write_bytes(b"g" * 2**20)
    status, drawn = run_on_terminal("get", f"file://{src}", f"{tmp_path}/local/", without_rich=without_rich)
    assert status == 0, drawn
    first, last = frames(drawn)[0], frames(drawn)[-1]
    assert "%" in first and "/1.0 MiB" in first and "/?" not in first
    assert ("100.0%" if without_rich else "100%") in last and "1.0/1.0 MiB" in last and RATE.search(last)
    assert "linked" not in last


def test_progress_of_a_get_of_unknown_size_learns_it_at_the_end(tmp_path: Path, monkeypatch) -> None:
    import io

    from trollmoves_core import progress

    monkeypatch.setattr(progress, "_rich_progress", lambda stream: None)
    drawn = io.StringIO()
    bar = progress.ProgressBar("memory://box/in.dat", drawn)
    bar.advance(1536)
    bar._draw(0.0)
    bar.finish(str(tmp_path / "in.dat"))
    first, last = drawn.getvalue().strip().lstrip("\r").split("\r")
    assert first.startswith("in.dat  1.5 KiB/?  ") and "%" not in first
    assert last.startswith("in.dat  100.0%  1.5/1.5 KiB  ") and last.endswith("/s")


def test_units_are_binary_everywhere() -> None:
    from trollmoves_core.units import human_bytes, human_progress

    assert [human_bytes(n) for n in (0, 1023, 1024, 3 * 2**20, 5 * 2**30)] == \
        ["0 B", "1023 B", "1.0 KiB", "3.0 MiB", "5.0 GiB"]
    assert human_progress(0, None) == "0 B/?"
    assert human_progress(2**19, 2**20) == "0.5/1.0 MiB"
    assert human_progress(10, 100) == "10/100 B"


def test_no_log_line_after_the_bar_on_a_terminal(tmp_path: Path) -> None:
    src = tmp_path / "in.dat"
    src.write_bytes(b"l" * 2**20)
    status, drawn = run_on_terminal("move", str(src), f"{tmp_path}/out/")
    assert status == 0, drawn
    assert "INFO" not in drawn and "->" not in drawn
    piped = run("move", str(src), f"{tmp_path}/out2/")
    assert piped.returncode == 0 and f"{src} -> file://{tmp_path}/out2/in.dat" in piped.stderr


def test_no_progress_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    src = tmp_path / "in.dat"
    src.write_bytes(b"n" * 2**20)
    result = run("move", str(src), f"{tmp_path}/out/", "-o", "mode=copy")
    assert result.returncode == 0, result.stderr
    assert "MiB" not in result.stderr and "\r" not in result.stderr and "\x1b" not in result.stderr


def run_in(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TROLLMOVES, *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd)


def test_plain_names_are_local_paths_like_cp(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(b"b" * 1000)
    moved = run_in(tmp_path, "move", "big.bin", "renamed.bin")
    assert moved.returncode == 0, moved.stderr
    assert (tmp_path / "renamed.bin").read_bytes() == b"b" * 1000
    assert (tmp_path / "big.bin").exists()  # move copies, as upstream's does
    got = run_in(tmp_path, "get", "renamed.bin", "copy.bin")
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "copy.bin").read_bytes() == b"b" * 1000


def test_relative_directory_is_under_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"f")
    result = run_in(tmp_path, "move", "f", "out2/")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out2" / "f").read_bytes() == b"f"
    assert f"file://{tmp_path}/out2/f" in result.stderr


@pytest.mark.parametrize("dest", ["existing", "file://{tmp}/existing"])
def test_an_existing_directory_receives_the_file_under_its_name(tmp_path: Path, dest: str) -> None:
    (tmp_path / "f").write_bytes(b"f")
    (tmp_path / "existing").mkdir()
    result = run_in(tmp_path, "move", "f", dest.format(tmp=tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "existing" / "f").read_bytes() == b"f"
    got = run_in(tmp_path, "get", "f", "existing")
    assert got.returncode == 0, got.stderr


@pytest.mark.parametrize(("command", "args"), [("move", ("f", "file://out3/")), ("get", ("file://out3/f", "x"))])
def test_a_file_uri_with_a_host_that_reads_as_a_directory_is_refused(tmp_path: Path, command: str,
                                                                      args: tuple[str, str]) -> None:
    (tmp_path / "f").write_bytes(b"f")
    result = run_in(tmp_path, command, *args)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "trollmoves: error: 'file://out3/' reads as host 'out3' and path '/': a file:// URI takes an absolute path "
        "(file:///path); write a plain path for one relative to the working directory"] if command == "move" \
        else len(result.stderr.splitlines()) == 1 and "reads as host 'out3'" in result.stderr
    assert not Path("/f").exists() or Path("/f").stat().st_size != 1


def test_the_local_side_must_be_local(tmp_path: Path) -> None:
    moved = run_in(tmp_path, "move", "sftp://host/x", "y")
    assert moved.returncode == 2 and moved.stderr.splitlines() == [
        "trollmoves: error: SRC 'sftp://host/x' must be a local path (a plain path or file:///path)"]
    got = run_in(tmp_path, "get", "x", "sftp://user:pw@host/y")
    assert got.returncode == 2 and "DEST 'sftp://user@host/y' must be a local path" in got.stderr


def test_move_help_says_it_copies_and_explains_src_and_dest() -> None:
    result = run("move", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "'move' copies: the source is kept (unlike rclone's move)" in text
    assert "SRC the local file to send" in text and "DEST where it goes" in text
    get = " ".join(run("get", "--help").stdout.split())
    assert "SRC the file to fetch" in get and "DEST the local path to write" in get


def test_bare_trollmoves_prints_a_short_usage_to_stderr() -> None:
    result = run()
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == ["usage: trollmoves [-h] [--version] COMMAND ...",
                                          "trollmoves: error: a command is required; trollmoves --help lists them"]


def test_a_reader_that_goes_away_is_no_traceback() -> None:
    """``trollmoves plugins | head -1``: the pipe is closed before the listing is written."""
    read, write = os.pipe()
    os.close(read)  # nobody will read: every write gets EPIPE
    try:
        done = subprocess.run([TROLLMOVES, "plugins"], stdout=write, stderr=subprocess.PIPE, text=True, timeout=60,
                              check=False)
    finally:
        os.close(write)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert done.returncode == 141

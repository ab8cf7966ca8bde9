"""The trollmoves launcher, run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TROLLMOVES = str(Path(sys.executable).with_name("trollmoves"))


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TROLLMOVES, *args], capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, **(env or {})})


def test_plugins_table_lists_every_distribution() -> None:
    result = run("plugins")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["distribution", "version", "movers", "transports", "watchers", "roles", "commands"]
    core = next(line for line in lines if line.startswith("trollmoves-core"))
    assert "file" in core and "watchdog, polling, inotify" in core
    assert core.endswith("plugins, move, get, check")
    roles = next(line for line in lines if line.startswith("trollmoves-roles"))
    assert roles.endswith("client, dispatcher, downloader, mirror, server  keys, req, status")
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
    assert rows["trollmoves-roles"]["commands"] == ["keys", "req", "status"]
    assert "keys" not in rows["trollmoves-roles"]["roles"]


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
    assert (command.returncode, command.stdout.splitlines()) == (4, ["command: file,ftp,ftps,s3,scp,sftp,ssh"])
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


@pytest.mark.parametrize("command", ["plugins", "move", "get", "check", "keys", "req", "status"])
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


def run_on_terminal(*args: str, without_rich: bool = False) -> tuple[int, str]:
    """Run the launcher with stderr on a pseudo-terminal; return its exit status and what it drew there."""
    import pty

    code = "import sys\nfrom trollmoves_core.cli import main\nsys.exit(main(sys.argv[1:]))"
    if without_rich:
        code = "import sys\nsys.modules['rich'] = None\n" + code  # every `import rich...` now fails
    controller, terminal = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "160"}
    with subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=terminal, env=env) as proc:
        os.close(terminal)
        drawn = b""
        try:
            while chunk := os.read(controller, 65536):
                drawn += chunk
        except OSError:  # EIO: the child closed the terminal
            pass
        finally:
            os.close(controller)
    return proc.returncode, drawn.decode(errors="replace")


def frames(drawn: str) -> list[str]:
    """The frames of the bar, each redrawn over the previous on its line, before the log lines."""
    return drawn.split("\r\n", 1)[0].lstrip("\r").split("\r")


@pytest.mark.parametrize("without_rich", [False, True], ids=["rich", "plain"])
def test_progress_on_a_terminal_shows_share_and_size_of_a_copy(tmp_path: Path, without_rich: bool) -> None:
    src = tmp_path / "in.dat"
    src.write_bytes(b"c" * 3 * 2**20)
    status, drawn = run_on_terminal("move", str(src), f"{tmp_path}/out/", "-o", "mode=copy",
                                    without_rich=without_rich)
    assert status == 0, drawn
    assert "in.dat" in drawn
    assert ("100.0%" if without_rich else "100%") in drawn
    assert ("3.0 MiB" if without_rich else "3.0/3.0 MiB") in drawn
    assert "MiB/s" in frames(drawn)[-1] and "linked" not in drawn


@pytest.mark.parametrize("without_rich", [False, True], ids=["rich", "plain"])
def test_progress_on_a_terminal_says_linked_for_a_hard_link(tmp_path: Path, without_rich: bool) -> None:
    src = tmp_path / "in.dat"
    src.write_bytes(b"h" * 2**20)
    status, drawn = run_on_terminal("move", str(src), f"{tmp_path}/out/", without_rich=without_rich)
    assert status == 0, drawn
    assert os.path.samefile(src, tmp_path / "out" / "in.dat")
    assert "linked" in frames(drawn)[-1] and "/s" not in frames(drawn)[-1]


def test_progress_of_a_get_learns_the_size_at_the_end(tmp_path: Path) -> None:
    src = tmp_path / "remote" / "in.dat"
    src.parent.mkdir()
    src.write_bytes(b"g" * 2**20)
    status, drawn = run_on_terminal("get", f"file://{src}", f"{tmp_path}/local/")
    assert status == 0, drawn
    first, last = frames(drawn)[0], frames(drawn)[-1]
    assert "0/? bytes" in first and "%" not in first
    assert "100%" in last and "1.0/1.0 MiB" in last and "MiB/s" in last and "linked" not in last


def test_no_progress_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    src = tmp_path / "in.dat"
    src.write_bytes(b"n" * 2**20)
    result = run("move", str(src), f"{tmp_path}/out/", "-o", "mode=copy")
    assert result.returncode == 0, result.stderr
    assert "MiB" not in result.stderr and "\r" not in result.stderr and "\x1b" not in result.stderr


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

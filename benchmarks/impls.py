"""The two implementations under comparison and how to start their server and client."""

from __future__ import annotations

import functools
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UPSTREAM_VENV = REPO / ".venv-upstream"
OURS_VENV = REPO / ".venv"
BASELINE_VENV = REPO / ".venv-baseline"
"""Ours at an earlier revision (``scripts/baseline-venv REV``), to compare a change before/after in one run."""


@dataclass(frozen=True)
class Implementation:
    """A way to run ``server`` and ``client`` from one venv, with upstream's flags."""

    name: str
    venv: Path
    by_default: bool = True
    """Run when no ``--impl`` is given."""
    server_extra: tuple[tuple[str, str], ...] = ()
    """Keys added to every server section (our servers' options)."""
    scenarios: tuple[str, ...] = ()
    """The only scenarios it runs in (empty: all)."""

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def server_argv(self, config: Path, port: int) -> list[str]:
        raise NotImplementedError

    def client_argv(self, config: Path) -> list[str]:
        raise NotImplementedError

    def unavailable(self) -> str | None:
        """Why this implementation cannot run here, or None."""
        raise NotImplementedError


class Upstream(Implementation):
    """trollmoves 0.19.0 from PyPI in ``.venv-upstream`` (``scripts/upstream-venv``), a black box."""

    def server_argv(self, config: Path, port: int) -> list[str]:
        return [str(self.python), str(self.venv / "bin" / "move_it_server.py"), "-p", str(port),
                "--disable-backlog", str(config)]

    def client_argv(self, config: Path) -> list[str]:
        return [str(self.python), str(self.venv / "bin" / "move_it_client.py"), str(config)]

    def unavailable(self) -> str | None:
        if not (self.venv / ".installed-0.19.0").exists():
            return "no .venv-upstream with trollmoves 0.19.0 (run scripts/upstream-venv; needs PyPI)"
        return None


class Ours(Implementation):
    """``trollmoves server|client`` from ``.venv``, bound to loopback (where the role has ``--bind``)."""

    def server_argv(self, config: Path, port: int) -> list[str]:
        return [*self._role("server"), "-p", str(port), "--disable-backlog", str(config)]

    def client_argv(self, config: Path) -> list[str]:
        return [*self._role("client"), str(config)]

    def _role(self, role: str) -> list[str]:
        argv = [str(self.venv / "bin" / "trollmoves"), role]
        return [*argv, "--bind", "127.0.0.1"] if _has_option(tuple(argv), "--bind") else argv

    def unavailable(self) -> str | None:
        if not (self.venv / "bin" / "trollmoves").exists():
            return f"no {self.venv.name}/bin/trollmoves (run make venv, or scripts/baseline-venv REV)"
        try:
            out = subprocess.run([str(self.venv / "bin" / "trollmoves"), "plugins", "--json"], capture_output=True,
                                 text=True, timeout=60, check=True).stdout
            roles = _roles(json.loads(out))
        except (subprocess.SubprocessError, OSError, ValueError) as err:
            return f"`trollmoves plugins --json` failed: {err}"
        missing = {"server", "client"} - roles
        if missing:
            return f"roles not registered yet: {', '.join(sorted(missing))}"
        return None


@functools.cache
def _has_option(argv: tuple[str, ...], option: str) -> bool:
    try:
        help_text = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=60, check=False).stdout
    except (subprocess.SubprocessError, OSError):
        return False
    return option in help_text.split()


def _roles(listing: object) -> set[str]:
    """Role names from ``trollmoves plugins --json``, whatever its exact shape."""
    found: set[str] = set()
    if isinstance(listing, dict):
        for key, value in listing.items():
            if key == "roles" and isinstance(value, list | dict):
                found.update(str(v) for v in value)
            else:
                found |= _roles(value)
    elif isinstance(listing, list):
        for item in listing:
            found |= _roles(item)
    return found


@dataclass(frozen=True)
class OursJournalled(Ours):
    """Ours with journals (server ``--state-directory``, client ``state_directory`` in every section, next
    to the config), with the file history (``trollmoves trace``) on or off: what the history costs."""

    history: bool = True

    def server_argv(self, config: Path, port: int) -> list[str]:
        argv = super().server_argv(config, port)
        return [*argv[:-1], *self._journal_options(config), argv[-1]]

    def client_argv(self, config: Path) -> list[str]:
        import configparser

        ini = configparser.RawConfigParser(interpolation=None)
        ini.read(config)
        for section in ini.sections():
            ini.set(section, "state_directory", str(config.parent / "state"))
        journalled = config.with_name(f"{config.stem}-journalled.ini")
        with open(journalled, "w") as out:
            ini.write(out)
        return [*self._role("client"), *self._journal_options(None), str(journalled)]

    def _journal_options(self, config: Path | None) -> list[str]:
        state = [] if config is None else ["--state-directory", str(config.parent / "state")]
        return [*state, "--history-max-events", "1000000" if self.history else "0"]


IMPLEMENTATIONS: list[Implementation] = [Upstream("upstream", UPSTREAM_VENV), Ours("ours", OURS_VENV),
                                         Ours("ours-checksum-none", OURS_VENV, server_extra=(("checksum", "none"),),
                                              scenarios=("big",)),
                                         Ours("baseline", BASELINE_VENV, by_default=False),
                                         OursJournalled("ours-journal", OURS_VENV, False, history=True),
                                         OursJournalled("ours-journal-nohistory", OURS_VENV, False, history=False)]


def package_versions(impl: Implementation) -> dict[str, str]:
    """Python and key package versions inside the implementation's venv."""
    code = ("import importlib.metadata as m, json, platform\n"
            "names = ['trollmoves', 'trollmoves-core', 'trollmoves-roles', 'posttroll', 'pyzmq', 'watchdog',"
            " 'trollsift', 'paramiko']\n"
            "out = {'python': platform.python_version()}\n"
            "for n in names:\n"
            "    try: out[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: pass\n"
            "import zmq; out['libzmq'] = zmq.zmq_version()\n"
            "print(json.dumps(out))\n")
    try:
        out = subprocess.run([str(impl.python), "-c", code], capture_output=True, text=True, timeout=60, check=True,
                             cwd="/")  # not the repo: its *.egg-info would show up in the upstream venv
        return json.loads(out.stdout)
    except (subprocess.SubprocessError, OSError, ValueError) as err:
        return {"error": str(err)}

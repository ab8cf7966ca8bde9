"""The core's own plugin: the file mover, the watchers and the commands, registered like any other's."""

from __future__ import annotations

from trollmoves_core import hookimpl
from trollmoves_core.cli import BUILTIN_COMMANDS
from trollmoves_core.command import Command
from trollmoves_core.file_mover import FileMover
from trollmoves_core.mover import Mover
from trollmoves_core.watchers.base import Watcher
from trollmoves_core.watchers.inotify import InotifyWatcher
from trollmoves_core.watchers.polling import PollingWatcher
from trollmoves_core.watchers.watchdog_watcher import WatchdogWatcher


@hookimpl
def trollmoves_register_movers() -> list[type[Mover]]:
    return [FileMover]


@hookimpl
def trollmoves_register_watchers() -> list[type[Watcher]]:
    return [WatchdogWatcher, PollingWatcher, InotifyWatcher]


@hookimpl
def trollmoves_register_commands() -> list[type[Command]]:
    return list(BUILTIN_COMMANDS)

"""The core's own plugin: the file mover and the watchers, registered like any other."""

from __future__ import annotations

from trollmoves_core import hookimpl
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

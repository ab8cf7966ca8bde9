"""The role contract: a long-running process started as ``trollmoves NAME CONFIG``."""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from trollmoves_core.plugins import PluginHost


class Role(ABC):
    """Base class of roles (server, client, mirror, dispatcher, downloader...).

    The launcher builds one subcommand per registered role: it calls
    :meth:`add_arguments` on the subcommand's parser, configures logging, then calls
    :meth:`run` with the parsed arguments and the plugin host (the movers and watchers to
    use), and exits with its return value. One-shot tools are a
    :class:`~trollmoves_core.command.Command` instead.

    Optional, for ``trollmoves check`` (see :mod:`trollmoves_core.check`): a role may define
    a classmethod ``check_config(path) -> list[str]`` returning its own problems with the
    config file, one ``file: [section] key: problem`` line each (an empty list when all is
    well), and ``EXTRA_CONFIG_KEYS``, the config keys it accepts beyond upstream
    trollmoves' own, so the generic unknown-key check does not report them.
    """

    NAME: ClassVar[str]
    """Subcommand name (``trollmoves NAME``)."""
    HELP: ClassVar[str] = ""
    """One line shown in ``trollmoves --help``."""

    @classmethod
    @abstractmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add the role's options and positional arguments to its subcommand parser."""

    @classmethod
    @abstractmethod
    def run(cls, args: argparse.Namespace, host: PluginHost) -> int:
        """Run until stopped (SIGTERM/SIGINT); return the process exit status.

        Raise :class:`~trollmoves_core.exceptions.ConfigError` for a bad configuration: the
        launcher prints its message as one line and exits with status 2.
        """

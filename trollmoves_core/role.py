"""The role contract: a long-running process started as ``trollmoves NAME CONFIG``."""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from trollmoves_core.plugins import PluginHost
    from trollmoves_core.schema import Findings


class Role(ABC):
    """Base class of roles (server, client, mirror, dispatcher, downloader...).

    The launcher builds one subcommand per registered role: it calls
    :meth:`add_arguments` on the subcommand's parser, configures logging, then calls
    :meth:`run` with the parsed arguments and the plugin host (the movers and watchers to
    use), and exits with its return value. One-shot tools are a
    :class:`~trollmoves_core.command.Command` instead.

    ``trollmoves check CONFIG`` asks the role the file is for through :meth:`check`; a role
    declares its keys with :class:`~trollmoves_core.schema.Schema` tables, read by both its
    loader and its check.
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

    @classmethod
    def recognises(cls, content: Any) -> int:
        """How surely a config file with ``content`` is this role's: 0 not at all, more the surer
        (a mirror's file is also a client's, so the mirror answers higher). ``content`` is a dict
        of section name → :class:`~trollmoves_core.config.Section` for an INI file, the loaded
        data for YAML. ``trollmoves check`` without ``--role`` asks every role. The default is 0.
        """
        return 0

    @classmethod
    def check(cls, path: str, host: PluginHost) -> Findings:
        """Every problem with the config file at ``path`` without starting anything, one
        :class:`~trollmoves_core.schema.Problem` per location; ``host`` tells which movers are
        installed. The default finds nothing; errors must be what would stop :meth:`run`.
        """
        from trollmoves_core.schema import Findings

        return Findings(path)

"""The command contract: a one-shot subcommand, ``trollmoves NAME [args]``, that does its job and exits."""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from trollmoves_core.plugins import PluginHost


class Command(ABC):
    """Base class of one-shot commands (``plugins``, ``move``, ``keys``, ``req``...).

    The launcher builds one subcommand per registered command: it calls
    :meth:`add_arguments` on the subcommand's parser, configures logging, then calls
    :meth:`run` with the parsed arguments and the plugin host, and exits with its return
    value. Unlike a :class:`~trollmoves_core.role.Role`, a command is not a long-running
    process: the launcher sets up no idle memory trimming for it.
    """

    NAME: ClassVar[str]
    """Subcommand name (``trollmoves NAME``)."""
    HELP: ClassVar[str] = ""
    """One line shown in ``trollmoves --help``."""
    DESCRIPTION: ClassVar[str | None] = None
    """The subcommand's ``--help`` text; ``HELP`` when None."""

    @classmethod
    @abstractmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add the command's options and positional arguments to its subcommand parser."""

    @classmethod
    @abstractmethod
    def run(cls, args: argparse.Namespace, host: PluginHost) -> int:
        """Do the job once; return the process exit status (0 success, 1 failure, 2 usage).

        Raise :class:`~trollmoves_core.exceptions.ConfigError` (or
        :class:`~trollmoves_core.exceptions.UnknownPluginError`) for bad input: the launcher
        prints its message as one line and exits with status 2.
        """

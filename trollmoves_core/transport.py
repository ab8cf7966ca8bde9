"""The registration contract of bus transports.

A transport carries the roles' messages (announcements, results, requests and their replies)
over one kind of bus. The core only registers transports by the address schemes they serve;
what a transport must do is defined by the plugin whose roles use it
(``trollmoves_roles.bus.transport.MessageTransport`` for trollmoves-roles).
"""

from __future__ import annotations

from typing import ClassVar


class Transport:
    """Base class of every transport a plugin registers."""

    NAME: ClassVar[str]
    """A short unique name, shown by ``trollmoves plugins`` (``"zeromq"``)."""
    SCHEMES: ClassVar[tuple[str, ...]]
    """The bus address schemes it serves (``("tcp",)``)."""

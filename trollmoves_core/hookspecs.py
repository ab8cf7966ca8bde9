"""Hook specifications: the contract between the trollmoves core and its plugins.

Every hook returns classes, not instances: the core instantiates (or runs) them when a user
asks for the scheme, watcher, role or command they provide. Each class subclasses the matching base class and
declares a unique ``NAME``; two plugins claiming the same name (or URI scheme) is an error
that names both when that name is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

from trollmoves_core import PROJECT_NAME

if TYPE_CHECKING:
    from trollmoves_core.command import Command
    from trollmoves_core.mover import Mover
    from trollmoves_core.observer import DeliveryObserver
    from trollmoves_core.role import Role
    from trollmoves_core.transport import Transport
    from trollmoves_core.watchers.base import Watcher

_spec = pluggy.HookspecMarker(PROJECT_NAME)


@_spec
def trollmoves_register_movers() -> type[Mover] | list[type[Mover]]:
    """Register movers, one class per transfer protocol.

    Each class subclasses :class:`trollmoves_core.mover.Mover` and declares ``NAME`` and
    ``SCHEMES``, the URI schemes it serves (``("sftp",)``). ``trollmoves move``, and every
    role, pick the mover by the scheme of the destination (or source) URI.

    :returns: a mover class or a list of them.
    """


@_spec
def trollmoves_register_watchers() -> type[Watcher] | list[type[Watcher]]:
    """Register directory-watching backends.

    Each class subclasses :class:`trollmoves_core.watchers.base.Watcher` and declares
    ``NAME`` (``"watchdog"``, ``"polling"``), the value a config uses to choose it. A
    watcher reports each file once, when it is complete.

    :returns: a watcher class or a list of them.
    """


@_spec
def trollmoves_register_transports() -> type[Transport] | list[type[Transport]]:
    """Register bus transports, one class per kind of message bus.

    Each class subclasses :class:`trollmoves_core.transport.Transport` (for the roles of
    trollmoves-roles: ``trollmoves_roles.bus.transport.MessageTransport``) and declares
    ``NAME`` and ``SCHEMES``, the bus address schemes it serves (``("mqtt", "mqtts")``).
    Roles pick the transport by the scheme of their bus address; ``tcp://`` (and upstream's
    plain ``host:port``) is posttroll over ZeroMQ.

    :returns: a transport class or a list of them.
    """


@_spec
def trollmoves_register_roles() -> type[Role] | list[type[Role]]:
    """Register roles: long-running processes started as ``trollmoves NAME CONFIG``.

    Each class subclasses :class:`trollmoves_core.role.Role`, declares ``NAME`` and
    ``HELP``, adds its command-line options in ``add_arguments`` and runs in ``run`` until
    stopped. One-shot tools register with :func:`trollmoves_register_commands` instead.

    :returns: a role class or a list of them.
    """


@_spec
def trollmoves_register_commands() -> type[Command] | list[type[Command]]:
    """Register commands: one-shot tools run as ``trollmoves NAME [args]`` that exit when done.

    Each class subclasses :class:`trollmoves_core.command.Command`, declares ``NAME`` and
    ``HELP``, adds its command-line options in ``add_arguments`` and does its job in
    ``run(args, host)``, returning the exit status. The core's own ``plugins``, ``move``,
    ``get`` and ``check`` are registered through this hook.

    :returns: a command class or a list of them.
    """


@_spec
def trollmoves_register_delivery_observers() -> type[DeliveryObserver] | list[type[DeliveryObserver]]:
    """Register delivery observers: told about each file a role delivers, replaces or removes.

    Each class subclasses :class:`trollmoves_core.observer.DeliveryObserver`, declares ``NAME``
    and ``KEYS``, the chain config keys it reads (they join the role's schema, so the loader and
    ``trollmoves check`` accept them). A role opens an observer for each chain that sets one of
    its keys and calls ``delivered`` once per file after publishing the result.

    :returns: an observer class or a list of them.
    """


__all__ = ["trollmoves_register_commands", "trollmoves_register_delivery_observers", "trollmoves_register_movers",
           "trollmoves_register_roles", "trollmoves_register_transports", "trollmoves_register_watchers"]

"""Hook implementations of the trollmoves-roles plugin."""

from __future__ import annotations

import importlib

from trollmoves_core import hookimpl
from trollmoves_core.command import Command
from trollmoves_core.role import Role
from trollmoves_core.transport import Transport

ROLES = {
    # role name: "module:class"; modules are imported when the launcher asks for roles.
    "client": "trollmoves_roles.client.role:ClientRole",
    "dispatcher": "trollmoves_roles.dispatcher.role:DispatcherRole",
    "downloader": "trollmoves_roles.downloader.role:DownloaderRole",
    "mirror": "trollmoves_roles.mirror.role:MirrorRole",
    "server": "trollmoves_roles.server.role:ServerRole",
}

COMMANDS = {
    # command name: "module:class", imported the same way.
    "keys": "trollmoves_roles.tools.keys:KeysTool",
    "req": "trollmoves_roles.tools.req:RequestTool",
    "status": "trollmoves_roles.tools.status:StatusTool",
    "trace": "trollmoves_roles.tools.trace:TraceTool",
}


def _import(targets: dict[str, str]) -> list[type]:
    classes = []
    for target in targets.values():
        module, _, name = target.partition(":")
        classes.append(getattr(importlib.import_module(module), name))
    return classes


@hookimpl
def trollmoves_register_roles() -> list[type[Role]]:
    return _import(ROLES)


@hookimpl
def trollmoves_register_commands() -> list[type[Command]]:
    return _import(COMMANDS)


@hookimpl
def trollmoves_register_transports() -> list[type[Transport]]:
    from trollmoves_roles.bus.zeromq import ZeroMQTransport
    return [ZeroMQTransport]

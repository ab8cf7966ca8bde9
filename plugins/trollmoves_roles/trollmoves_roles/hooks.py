"""Hook implementations of the trollmoves-roles plugin."""

from __future__ import annotations

import importlib

from trollmoves_core import hookimpl
from trollmoves_core.role import Role

ROLES = {
    # role name: "module:class"; modules are imported when the launcher asks for roles.
    "client": "trollmoves_roles.client.role:ClientRole",
    "req": "trollmoves_roles.tools.req:RequestTool",
    "dispatcher": "trollmoves_roles.dispatcher.role:DispatcherRole",
    "downloader": "trollmoves_roles.downloader.role:DownloaderRole",
    "mirror": "trollmoves_roles.mirror.role:MirrorRole",
    "server": "trollmoves_roles.server.role:ServerRole",
    "keys": "trollmoves_roles.tools.keys:KeysTool",
    "status": "trollmoves_roles.tools.status:StatusTool",
}


@hookimpl
def trollmoves_register_roles() -> list[type[Role]]:
    classes = []
    for target in ROLES.values():
        module, _, name = target.partition(":")
        classes.append(getattr(importlib.import_module(module), name))
    return classes

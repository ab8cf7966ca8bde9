"""Hook implementations of the trollmoves-wis2 plugin."""

from __future__ import annotations

from trollmoves_core import hookimpl
from trollmoves_core.role import Role


@hookimpl
def trollmoves_register_roles() -> list[type[Role]]:
    from trollmoves_wis2.subscriber.role import Wis2SubscriberRole

    return [Wis2SubscriberRole]

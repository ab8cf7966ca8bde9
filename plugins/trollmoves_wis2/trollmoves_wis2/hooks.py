"""Hook implementations of the trollmoves-wis2 plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trollmoves_core import hookimpl

if TYPE_CHECKING:
    from trollmoves_core.observer import DeliveryObserver
    from trollmoves_core.role import Role


@hookimpl
def trollmoves_register_delivery_observers() -> list[type[DeliveryObserver]]:
    from trollmoves_wis2.publisher import Wis2Publisher

    return [Wis2Publisher]


@hookimpl
def trollmoves_register_roles() -> list[type[Role]]:
    from trollmoves_wis2.subscriber.role import Wis2SubscriberRole

    return [Wis2SubscriberRole]

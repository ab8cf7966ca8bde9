"""Hook implementations of the trollmoves-mqtt plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trollmoves_core import hookimpl

if TYPE_CHECKING:
    from trollmoves_core.transport import Transport


@hookimpl
def trollmoves_register_transports() -> list[type[Transport]]:
    from trollmoves_mqtt.transport import MqttTransport

    return [MqttTransport]

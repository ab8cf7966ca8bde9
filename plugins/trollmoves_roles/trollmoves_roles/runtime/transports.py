"""Which transport carries a role's bus traffic: the one the host has for its bus address's scheme."""

from __future__ import annotations

from trollmoves_core.plugins import PluginHost
from trollmoves_roles.bus.transport import MessageTransport

DEFAULT_SCHEME = "tcp"
"""Addresses without a scheme (``host:port``, upstream's form) are posttroll over ZeroMQ."""


def bus_scheme(address: str | None) -> str:
    """The transport scheme of a bus address (``tcp`` for ``host:port`` and for none)."""
    if not address or "://" not in address:
        return DEFAULT_SCHEME
    return address.split("://", 1)[0].lower()


def transport_for(host: PluginHost, address: str | None = None) -> MessageTransport:
    """A transport for ``address``'s scheme; UnknownPluginError (with the package to install) when
    no installed plugin serves it."""
    return host.transports.get(bus_scheme(address)).for_bus(address)

"""Which transport carries a role's bus traffic: the one serving the scheme of its bus address."""

from __future__ import annotations

import functools

from trollmoves_core.exceptions import ConfigError
from trollmoves_roles.bus.transport import MessageTransport
from trollmoves_roles.bus.zeromq import ZeroMQTransport

DEFAULT_SCHEME = "tcp"
"""Addresses without a scheme (``host:port``, upstream's form) are posttroll over ZeroMQ."""


def bus_scheme(address: str | None) -> str:
    """The transport scheme of a bus address (``tcp`` for ``host:port`` and for none)."""
    if not address or "://" not in address:
        return DEFAULT_SCHEME
    return address.split("://", 1)[0].lower()


@functools.cache
def transport_for(scheme: str = DEFAULT_SCHEME) -> MessageTransport:
    """The (shared) transport serving ``scheme``; a ConfigError when none does."""
    if scheme in ZeroMQTransport.SCHEMES:
        return ZeroMQTransport()
    raise ConfigError(f"no transport for {scheme}:// addresses")

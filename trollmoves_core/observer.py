"""The delivery-observer contract: plugins told about each file a role delivers, replaces or removes.

A role that delivers files to a place of its own (the client's and the dispatcher's destinations)
opens one observer per chain from that chain's config keys (:meth:`DeliveryObserver.open`), tells
it about every file once the result is published (:meth:`DeliveryObserver.delivered`) and closes it
with the chain. The observer's keys (:attr:`DeliveryObserver.KEYS`) join the role's schema, so
the role's loader and ``trollmoves check`` accept them. A chain that sets none of them gets no
observer. The first user is trollmoves-wis2, which announces deliveries as WIS2 notifications.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from trollmoves_core.checksum import Digest
from trollmoves_core.schema import Key

Change = Literal["new", "update", "deletion"]


@dataclass(frozen=True)
class Delivery:
    """One file a role delivered (``new``; ``update`` when it replaced one it had delivered) or
    removed (``deletion``): the published result message (``subject``, ``type``, ``data``, the
    file's own dict merged over the message's other keys), the file's final ``path`` (on this host,
    or on the destination host of a remote dispatcher target), and its size and checksum when known
    (None only for a local file, which the observer may measure itself)."""

    role: str
    chain: str
    change: Change
    subject: str
    type: str
    data: Mapping[str, Any]
    path: str
    digest: Digest | None = None


class DeliveryObserver:
    """Base class of delivery observers. Subclasses declare :attr:`NAME` and :attr:`KEYS`."""

    NAME: ClassVar[str]
    """A short unique name, shown by ``trollmoves plugins`` (``"wis2"``)."""
    KEYS: ClassVar[tuple[Key, ...]] = ()
    """The config keys of a chain this observer reads (``origin="ours"``); setting any opens it."""

    @classmethod
    def open(cls, keys: Mapping[str, str], *, role: str, chain: str, file: str) -> DeliveryObserver | None:
        """The observer of one chain whose config has ``keys`` (all of them, strings), or None when
        the chain sets none of :attr:`KEYS`. Raise ConfigError (naming file, chain and key) for a
        bad value or a broker that refuses us: the role exits 2 at start. ``trollmoves check``
        calls :meth:`problems` instead, which connects nowhere.

        An observer that keeps state across restarts keeps it in the chain's ``state_directory``
        key when set (the client's), in a file of its own named from ``role``, ``chain`` and ``file``;
        without that key it keeps its state in memory."""
        raise NotImplementedError

    @classmethod
    def problems(cls, keys: Mapping[str, str]) -> dict[str, str]:
        """Key → why its value is wrong, checked without connecting anywhere (``trollmoves check``)."""
        return {}

    def delivered(self, delivery: Delivery) -> None:
        """Called in the chain's thread once per file; must return quickly and never raise."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop: send what is still queued if it can, release connections."""

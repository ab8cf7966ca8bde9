"""Connection parameters of the fsspec mover: the storage options of the filesystem.

Every connection parameter but the mover's own (``retries``, ``retry_delay``,
``connection_uptime``) goes to the filesystem's constructor, so a destination's options are
those its fsspec implementation documents (``base_url`` for ``webdav://``, ``token`` for
``gcs://``, ``account_name`` for ``abfs://``...). Values from INI files and ``-o`` are text:
where the constructor's default is a bool, an int or a float, text is converted to that type
(a bad value is a :class:`~trollmoves_core.exceptions.ConfigError` naming the key); other
values pass as they are. A constructor without ``**kwargs`` gets only the keys it names, so
one parameter dict can also serve other movers. :data:`ADAPTERS` reshape what one
implementation needs (webdav4: credentials out of ``base_url``).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from trollmoves_core.config import to_bool
from trollmoves_core.exceptions import ConfigError

LOG = logging.getLogger(__name__)

MOVER_KEYS = frozenset({"retries", "retry_delay", "connection_uptime"})
"""Read by the :class:`~trollmoves_core.mover.Mover` base class, never passed to a filesystem."""


def storage_options(params: Mapping[str, Any], fs_class: type) -> dict[str, Any]:
    """The keyword arguments for ``fs_class(...)`` from a mover's connection parameters."""
    options = _typed_options(params, fs_class)
    adapt = ADAPTERS.get(f"{fs_class.__module__}.{fs_class.__qualname__}")
    return adapt(options) if adapt is not None else options


def webdav_options(options: dict[str, Any]) -> dict[str, Any]:
    """webdav4: credentials in ``base_url`` (``https://user:pw@host/dav/``) become ``auth``, since
    the base URL also goes into the ``Destination`` header of a MOVE, where servers refuse them;
    an ``auth`` given as a list (YAML ``[user, password]``) becomes the tuple httpx takes."""
    if isinstance(options.get("auth"), list):
        options["auth"] = tuple(options["auth"])
    base = options.get("base_url")
    if isinstance(base, str):
        parts = urlsplit(base)
        if parts.username is not None:
            options["base_url"] = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
            options.setdefault("auth", (unquote(parts.username), unquote(parts.password or "")))
    return options


ADAPTERS = {"webdav4.fsspec.WebdavFileSystem": webdav_options}
"""Implementations whose options need reshaping beyond type conversion, and how."""


def _typed_options(params: Mapping[str, Any], fs_class: type) -> dict[str, Any]:
    accepted = inspect.signature(fs_class.__init__).parameters
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    options: dict[str, Any] = {}
    for key, value in params.items():
        if key in MOVER_KEYS:
            continue
        if key not in accepted and not open_ended:
            LOG.debug("%s takes no %r: not passed", fs_class.__name__, key)
            continue
        default = accepted[key].default if key in accepted else inspect.Parameter.empty
        options[key] = _typed(value, default, key)
    return options


def _typed(value: Any, default: Any, key: str) -> Any:
    """``value`` as the type of ``default`` when it is text and the default a bool or a number."""
    if not isinstance(value, str) or default is None or default is inspect.Parameter.empty:
        return value
    if isinstance(default, bool):
        return to_bool(value, key=key)
    for kind in (int, float):
        if isinstance(default, kind):
            try:
                return kind(value)
            except ValueError:
                raise ConfigError(f"expected {'an integer' if kind is int else 'a number'}, got {value!r}",
                                  key=key) from None
    return value

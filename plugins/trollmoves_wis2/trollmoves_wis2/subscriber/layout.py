"""Where the file of a WIS2 notification lands: ``download_destination`` / the ``layout`` template.

``layout`` is a trollsift template of the file's path below ``download_destination``, filled from
the fields of the ``file`` message announcing it (:func:`trollmoves_wis2.subscriber.mapping.fields`:
``data_id``, ``centre_id``, ``sub_discipline``, ``platform_name``, ``start_time``...) and two more:

``name``
    the file name: the last part of the link's path, else of the ``data_id``;
``data_id_dir``
    the ``data_id`` without its last part (``wis2/se-smhi/data/core/weather/...``: WIS2 makes
    ``data_id`` the topic without its channel and version plus a local name, so this is the dataset).

The default, :data:`DEFAULT_LAYOUT` (``{data_id_dir}/{name}``), keeps the datasets apart: the
same file name from two centres or two datasets lands in two places. ``{name}`` writes every
file straight into the destination.

Nothing a notification says writes outside ``download_destination``: a ``data_id`` or a file
name that is absolute, has a ``..`` level, a NUL or a backslash is refused (:class:`WnmError`
naming it), and so is a composed path with a ``..`` level, a NUL or a backslash (a template field
such as ``producer`` is free text too). Empty and ``.`` levels are dropped; the file name must not
be hidden (hidden names are the partial files).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from trollmoves_core.schema import pattern_problem
from trollmoves_core.uri import redact
from trollmoves_wis2.errors import WnmError, fill
from trollmoves_wis2.notification import Link, Notification

DEFAULT_LAYOUT = "{data_id_dir}/{name}"
"""The datasets apart, as their ``data_id`` says: ``<root>/wis2/<centre-id>/data/core/.../<name>``."""


def layout_problem(layout: str) -> str | None:
    """Why ``layout`` cannot be a layout (not a trollsift pattern, absolute, a ``..`` level, no file
    name), None when it can."""
    problem = pattern_problem(layout)
    if problem:
        return problem
    if layout.startswith("/"):
        return "must be a path below download_destination, not an absolute one"
    if ".." in layout.split("/") or "\\" in layout or "\0" in layout:
        return "must stay below download_destination: no '..' level, NUL or backslash"
    if layout.endswith("/"):
        return "must end with the file name, such as {name}"
    return None


def file_name(notification: Notification, link: Link) -> str:
    """The last part of the link's path, else of the ``data_id``; WnmError when neither gives a name
    that can be written here (``..``, a NUL, a backslash, a hidden name)."""
    name, where = posixpath.basename(unquote(urlsplit(link.href).path)), f"the link {redact(link.href)!r}"
    if name in ("", "."):
        name, where = posixpath.basename(notification.data_id.rstrip("/")), "properties.data_id"
    if name in ("", "."):
        raise WnmError(f"no file name in properties.data_id {notification.data_id!r} nor in the link "
                       f"{redact(link.href)!r}")
    problem = _unsafe(name) or ("is hidden (partial files are)" if name.startswith(".") else None)
    if problem:
        raise WnmError(f"{where}: the file name {name!r} {problem}: refused")
    return name


def local_path(root: str | os.PathLike[str], layout: str, notification: Notification, link: Link,
               fields: Mapping[str, Any]) -> str:
    """The path below ``root`` where the data of ``notification`` is written: ``layout`` filled from
    ``fields`` (the ``file`` message's), ``name`` and ``data_id_dir``; WnmError naming what is at fault."""
    data_id = notification.data_id
    problem = "is absolute" if data_id.startswith("/") else _unsafe(data_id)
    if problem:
        raise WnmError(f"properties.data_id {data_id!r} {problem}: refused, it would write outside "
                       "download_destination")
    values = {**fields, "name": file_name(notification, link),
              "data_id_dir": posixpath.dirname(data_id.rstrip("/"))}
    relative = fill(layout, values, "layout")
    problem = _unsafe(relative)
    if problem:
        raise WnmError(f"layout {layout!r} gives {relative!r}, which {problem}: refused")
    levels = [level for level in relative.split("/") if level not in ("", ".")]
    if not levels or levels[-1].startswith("."):
        raise WnmError(f"layout {layout!r} gives {relative!r}: no file name, or a hidden one: refused")
    return os.path.join(root, *levels)


def _unsafe(text: str) -> str | None:
    """Why ``text`` could lead outside a directory (or is no path at all), None when it cannot."""
    if "\0" in text:
        return "holds a NUL"
    if "\\" in text:
        return "holds a backslash"
    if ".." in text.split("/"):
        return "has a '..' level"
    return None

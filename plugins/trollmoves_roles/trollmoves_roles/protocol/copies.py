"""The data of a message announcing delivered copies (the dispatcher's and the downloader's results).

The received data is copied with each delivered file's ``uri`` and ``uid`` replaced by the copy's,
and without the keys that describe the source: ``filesystem`` and ``path`` (fsspec-style
messages: a consumer trusting them would read the source) and ``request_address``/``destination``
(a client would take the result for a server's announcement).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trollmoves_roles.protocol.messages import REMOVED_ON_PUBLISH

SOURCE_ONLY_KEYS = ("filesystem", "path", *REMOVED_ON_PUBLISH)
"""Keys of a received message that describe the source, wrong for a delivered copy."""


@dataclass(frozen=True)
class Copy:
    """Where one announced file was delivered, as its result message names it."""

    uri: str
    uid: str


def copy_data(data: Any, copies: Mapping[str, Copy]) -> Any:
    """``data`` with each file dict (at any depth) whose ``uri`` is in ``copies`` pointing at its copy,
    and the :data:`SOURCE_ONLY_KEYS` removed at every level."""
    if isinstance(data, list):
        return [copy_data(item, copies) for item in data]
    if not isinstance(data, dict):
        return data
    result = {k: copy_data(v, copies) for k, v in data.items() if k not in SOURCE_ONLY_KEYS}
    uri = data.get("uri")
    if isinstance(uri, str) and uri in copies:
        result["uri"] = copies[uri].uri
        result["uid"] = copies[uri].uid
    return result

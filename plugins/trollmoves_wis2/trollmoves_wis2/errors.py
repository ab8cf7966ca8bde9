"""How a WIS2 notification or topic that breaks the rules is reported: one line naming the field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trollmoves_core.exceptions import TrollmovesError


class WnmError(TrollmovesError, ValueError):
    """A WIS2 notification message (or topic) is not valid; the text names the field at fault."""


def fill(template: str, fields: Mapping[str, Any], what: str) -> str:
    """The trollsift ``template`` (the ``what`` key: ``topic``, ``data_id``, ``layout``) filled
    from ``fields``; WnmError naming the key and the field missing or at fault."""
    import trollsift

    try:
        return trollsift.compose(template, dict(fields)) if "{" in template else template
    except KeyError as err:
        raise WnmError(f"{what} {template!r}: the message has no field {err}") from None
    except (ValueError, TypeError) as err:
        raise WnmError(f"{what} {template!r}: {err}") from None

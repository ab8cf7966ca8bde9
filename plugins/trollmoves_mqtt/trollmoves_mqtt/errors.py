"""What went wrong reaching a broker, in one line that names the broker and never a password.

A refused login and an untrusted certificate are fatal (the configuration is wrong: retrying
cannot help); a broker that is down or unreachable is not (paho retries with a growing delay).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

from trollmoves_mqtt.options import BusAddress

_AUTH_CODES = {134, 135}
"""CONNACK "Bad user name or password" and "Not authorized" (Mosquitto 2.0 answers 135 for both)."""


@dataclass(frozen=True)
class Problem:
    text: str
    fatal: bool


def connect_problem(err: BaseException, bus: BusAddress) -> Problem:
    """Why connecting to ``bus`` raised ``err``."""
    if isinstance(err, ssl.SSLCertVerificationError):
        hint = ("give the CA that signed it with ?ca_file=PATH" if bus.verify else "")
        return Problem(f"the broker {bus}'s TLS certificate is not trusted: {err.verify_message or err}"
                       + (f"; {hint}" if hint else ""), fatal=True)
    if isinstance(err, ssl.SSLError):
        return Problem(f"TLS with the broker {bus} failed: {err.reason or err} (is it an mqtts:// listener?)",
                       fatal=True)
    if isinstance(err, ValueError):
        return Problem(f"cannot connect to the broker {bus}: {err}", fatal=True)
    reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return Problem(f"cannot reach the broker {bus}: {reason}", fatal=False)


def refusal(reason_code: Any, bus: BusAddress) -> str:
    """The line for a CONNACK that refused us."""
    text = f"the broker {bus} refused the connection: {reason_code}"
    if getattr(reason_code, "value", None) in _AUTH_CODES:
        who = f"user {bus.username!r}" if bus.username else "anonymous clients"
        text += f" (check {who} and the password_file; the broker may not allow {who})"
    return text

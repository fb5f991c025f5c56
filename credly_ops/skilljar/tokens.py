"""When a v2 access token must be renewed: pure functions over the token and the clock.

Skilljar's access token is a JWT whose ``exp`` claim says when it expires.  The payload is read
without checking the signature: the token is our own, just received over TLS from Skilljar,
and nothing here trusts it for anything but "when should I ask again".  When the token is not a
readable JWT, the grant's ``expires_in`` says it; when neither does, :data:`FALLBACK_LIFETIME`.
When both speak and disagree by more than :data:`CLOCK_SKEW_LIMIT` — our clock and Skilljar's
differ — ``expires_in`` wins: it is a duration, so no clock is compared.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

#: renew this many seconds before the token expires
REFRESH_MARGIN = 60.0
#: the lifetime assumed for a token that says nothing about its expiry
FALLBACK_LIFETIME = 300.0
#: how far ``exp`` may stray from ``now + expires_in`` before the clocks are taken to differ
CLOCK_SKEW_LIMIT = 120.0


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim (seconds since the epoch) of a JWT, or ``None`` if it has none."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[1]:
        return None
    payload = parts[1]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims: Any = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(claims, dict):
        return None
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
        return None
    return float(exp)


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value) and value > 0:
        return float(value)
    return None


def renew_at(token: str, expires_in: Any, now: float) -> float:
    """The moment (epoch seconds) to ask for a new token: a minute before it expires.

    A token that lives less than two margins is renewed half-way through its life instead, so a
    very short-lived token is still used at least once.
    """
    expiry = jwt_expiry(token)
    lifetime = _seconds(expires_in)
    if lifetime is not None and (
        expiry is None or abs(expiry - (now + lifetime)) > CLOCK_SKEW_LIMIT
    ):
        expiry = now + lifetime
    elif expiry is None:
        expiry = now + FALLBACK_LIFETIME
    remaining = expiry - now
    if remaining <= 2 * REFRESH_MARGIN:
        return now + max(remaining, 0.0) / 2
    return expiry - REFRESH_MARGIN

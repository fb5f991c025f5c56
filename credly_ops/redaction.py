"""Secrets masked in one way everywhere: one mask (:data:`MASK`), every form in which a token can
travel (itself and its HTTP Basic encodings, :func:`secret_forms`), and ``Authorization`` header
values.

* :func:`scrub` — a text (an error message, a log line) with the secret in any form masked;
* :func:`redact` — the same for several secrets' forms at once (the logging filter's core);
* :func:`mask_secret` — how a configured token is shown (Settings, ``credly-ops config``): the
  mask and, for a long token, its last four characters so an operator can tell tokens apart.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "********"
NOT_SET = "(not set)"
#: a token this short is shown as the mask alone (its last four would give too much away)
SHORT_SECRET = 8
_AUTH_HEADER = re.compile(
    r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(basic|bearer)\s+[A-Za-z0-9+/=._-]+"
)


def secret_forms(secret: str) -> list[str]:
    """The secret and the encodings in which it could travel (HTTP Basic, form-encoded),
    longest first."""
    if not secret:
        return []
    forms = {secret, quote_plus(secret), quote(secret, safe="")}
    for raw in (f"{secret}:", secret):
        forms.add(base64.b64encode(raw.encode()).decode())
    return sorted(forms, key=len, reverse=True)


def redact(text: str, forms: Iterable[str]) -> str:
    """``text`` with each of ``forms`` and any ``Authorization`` header value masked."""
    for form in forms:
        if form:
            text = text.replace(form, MASK)
    return _AUTH_HEADER.sub(lambda m: m.group(1) + m.group(2) + " " + MASK, text)


def scrub(text: str, secret: str) -> str:
    """``text`` with ``secret`` masked in every form it could travel in."""
    return redact(text, secret_forms(secret))


def mask_secret(secret: str) -> str:
    """How a configured token is shown: ``(not set)``, the mask, or the mask and its last four."""
    if not secret:
        return NOT_SET
    if len(secret) <= SHORT_SECRET:
        return MASK
    return MASK + secret[-4:]

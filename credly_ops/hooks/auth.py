"""Who may deliver: the sender proves it knows the webhook secret (reference §5: no signature).

Skilljar lets a webhook carry HTTP Basic credentials and extra headers, so either proves it:
Basic with any user name and the secret as password, or ``X-Webhook-Secret: <secret>``.  Both
are compared in constant time.  Without a configured secret nothing authenticates.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping

WEBHOOK_HEADER = "x-webhook-secret"


def authenticated(headers: Mapping[str, str], secret: str | None) -> bool:
    """Whether ``headers`` (names lower-case, as Starlette gives them) carry ``secret``."""
    if not secret:
        return False
    expected = secret.encode("utf-8")
    offered = headers.get(WEBHOOK_HEADER)
    header_ok = offered is not None and hmac.compare_digest(_raw(offered), expected)
    password = basic_password(headers.get("authorization"))
    basic_ok = password is not None and hmac.compare_digest(password, expected)
    return header_ok or basic_ok


def basic_password(value: str | None) -> bytes | None:
    """The password of an ``Authorization: Basic …`` value, or ``None``."""
    if not value:
        return None
    scheme, _, encoded = value.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    _, colon, password = decoded.partition(b":")
    return password if colon else None


def _raw(value: str) -> bytes:
    """A header value's bytes (Starlette decodes headers as Latin-1, which loses nothing)."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")

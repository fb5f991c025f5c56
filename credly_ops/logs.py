"""Logging with the secrets (Credly token, Skilljar client secret) masked at the logging layer.

:class:`RedactingFilter` rewrites every record that passes a handler: each secret itself, its
HTTP Basic form (``base64("secret:")`` and ``base64("secret")``), its form-encoded form and any
``Authorization`` header value are replaced by a mask before anything is formatted or written.
A filter masks the secrets it was made with and every secret :func:`protect` names, before or
after — so a client made later (the Skilljar one) adds its secret to the filters already
installed.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "********"
_AUTH_HEADER = re.compile(
    r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(basic|bearer)\s+[A-Za-z0-9+/=._-]+"
)


def secret_forms(secret: str) -> list[str]:
    """The token and the encodings in which it could travel."""
    if not secret:
        return []
    forms = {secret, quote_plus(secret), quote(secret, safe="")}
    for raw in (f"{secret}:", secret):
        forms.add(base64.b64encode(raw.encode()).decode())
    return sorted(forms, key=len, reverse=True)


_protected_lock = threading.Lock()
_protected: list[str] = []


def protect(secret: str) -> None:
    """Mask ``secret`` (in every form of :func:`secret_forms`) in every redacting filter."""
    forms = secret_forms(secret)
    if not forms:
        return
    global _protected
    with _protected_lock:
        merged = set(_protected) | set(forms)
        _protected = sorted(merged, key=len, reverse=True)


def protected_forms() -> list[str]:
    """Every form of every secret named to :func:`protect` (longest first)."""
    return _protected


def redact(text: str, secrets: Iterable[str]) -> str:
    for form in secrets:
        if form:
            text = text.replace(form, MASK)
    return _AUTH_HEADER.sub(lambda m: m.group(1) + m.group(2) + " " + MASK, text)


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message, arguments and exception text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._forms: list[str] = []
        for secret in secrets:
            self._forms.extend(secret_forms(secret))

    def filter(self, record: logging.LogRecord) -> bool:
        forms = [*self._forms, *_protected]
        message = record.getMessage()
        cleaned = redact(message, forms)
        if record.exc_info and record.exc_info[1] is not None:
            formatter = logging.Formatter()
            exc_text = formatter.formatException(record.exc_info)
            record.exc_text = redact(exc_text, forms)
            record.exc_info = None
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


def install_redaction(
    secrets: Iterable[str], logger: logging.Logger | None = None
) -> RedactingFilter:
    """Attach one redacting filter to every handler of ``logger`` (root by default) and to the
    logger itself, so records from any library are cleaned before they are written."""
    target = logger or logging.getLogger()
    flt = RedactingFilter(list(secrets))
    target.addFilter(flt)
    for handler in target.handlers:
        handler.addFilter(flt)
    return flt

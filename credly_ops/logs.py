"""Logging with the secrets (Credly token, Skilljar client secret) masked at the logging layer.

:class:`RedactingFilter` rewrites every record that passes a handler: each secret itself, its
HTTP Basic form (``base64("secret:")`` and ``base64("secret")``), its form-encoded form and any
``Authorization`` header value are replaced by the one mask of :mod:`credly_ops.redaction`
before anything is formatted or written. A filter masks the secrets it was made with and every
secret :func:`protect` names, before or after — so a client made later (the Skilljar one) adds
its secret to the filters already installed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from credly_ops.redaction import MASK, redact, secret_forms

__all__ = [
    "MASK",
    "RedactingFilter",
    "install_redaction",
    "protect",
    "protected_forms",
    "redact",
    "secret_forms",
]

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

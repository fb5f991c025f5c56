"""Logging with the Credly token masked at the logging layer.

:class:`RedactingFilter` rewrites every record that passes a handler: the token itself, its
HTTP Basic form (``base64("token:")`` and ``base64("token")``) and any ``Authorization``
header value are replaced by the one mask of :mod:`credly_ops.redaction` before anything is
formatted or written.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from credly_ops.redaction import MASK, redact, secret_forms

__all__ = ["MASK", "RedactingFilter", "install_redaction", "redact", "secret_forms"]


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message, arguments and exception text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._forms: list[str] = []
        for secret in secrets:
            self._forms.extend(secret_forms(secret))

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, self._forms)
        if record.exc_info and record.exc_info[1] is not None:
            formatter = logging.Formatter()
            exc_text = formatter.formatException(record.exc_info)
            record.exc_text = redact(exc_text, self._forms)
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

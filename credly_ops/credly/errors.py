"""Every way a call to Credly can fail, as one tree.

The first split answers the question a caller must ask before sending again::

    CredlyError
    ├── NotSent                    never reached Credly: safe to send again
    │   └── ConnectFailed          DNS, refused, TLS, connect timeout
    ├── OutcomeUnknown             the request left; Credly may have processed it
    │   ├── AnswerTimedOut         no answer in time (read/write/pool timeout)
    │   └── ConnectionLost         the connection dropped mid-answer
    └── CredlyStatusError          Credly answered with an error status (``.status``,
        │                          ``.message`` from ``data.message``, ``.metadata``)
        ├── BadRequest             400
        ├── InvalidToken           401: the token is wrong or revoked
        ├── Forbidden              403: the token cannot reach this organization
        ├── NotFound               404
        ├── Gone                   410
        ├── ValidationFailed       422: final, never retried
        │   ├── DuplicateBadge         the recipient already holds this template's badge
        │   ├── TemplateNotIssuable    the template is archived or draft
        │   └── AlreadyReplaced        ``.current_badge_id`` is the live badge
        ├── RateLimited            429 (``.retry_after`` seconds, when Credly said)
        └── ServerError            5xx: for a POST the outcome is unknown too

Messages never carry the API token: it is not in any URL and never formatted into text.
``NotSent``, ``OutcomeUnknown`` and ``CredlyStatusError`` carry the markers of
:mod:`credly_ops.retry`, which decides from them whether to send again.
"""

from __future__ import annotations

from typing import Any

from credly_ops.retry import ErrorAnswer, OutcomeNotKnown, RequestNotSent


class CredlyError(Exception):
    """Base of every error raised by the Credly client."""

    #: short stable code for ledgers and reports
    kind: str = "credly_error"
    #: whether sending the same request again may be right (after a look-up for POSTs)
    retryable: bool = False


class NotSent(CredlyError, RequestNotSent):
    kind = "network"
    retryable = True


class ConnectFailed(NotSent):
    kind = "network"


class OutcomeUnknown(CredlyError, OutcomeNotKnown):
    kind = "outcome_unknown"
    retryable = True


class AnswerTimedOut(OutcomeUnknown):
    kind = "timeout"


class ConnectionLost(OutcomeUnknown):
    kind = "network"


class CredlyStatusError(CredlyError, ErrorAnswer):
    kind = "http_error"
    status: int = 0

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        metadata: dict[str, Any] | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        self.message = message
        if status is not None:
            self.status = status
        self.metadata = metadata or {}
        self.method = method
        self.path = path
        where = f" ({method} {path})" if method else ""
        super().__init__(f"Credly answered {self.status}{where}: {message}")


class BadRequest(CredlyStatusError):
    kind = "bad_request"
    status = 400


class InvalidToken(CredlyStatusError):
    kind = "invalid_token"
    status = 401


class Forbidden(CredlyStatusError):
    kind = "forbidden"
    status = 403


class NotFound(CredlyStatusError):
    kind = "not_found"
    status = 404


class Gone(CredlyStatusError):
    kind = "gone"
    status = 410


class ValidationFailed(CredlyStatusError):
    kind = "validation_failed"
    status = 422


class DuplicateBadge(ValidationFailed):
    kind = "duplicate"


class TemplateNotIssuable(ValidationFailed):
    kind = "template_inactive"


class AlreadyReplaced(ValidationFailed):
    kind = "already_replaced"

    @property
    def current_badge_id(self) -> str | None:
        value = self.metadata.get("current_badge_id")
        return str(value) if value else None


class RateLimited(CredlyStatusError):
    kind = "rate_limited"
    status = 429
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class ServerError(CredlyStatusError):
    kind = "server_error"
    retryable = True


_BY_STATUS: dict[int, type[CredlyStatusError]] = {
    400: BadRequest,
    401: InvalidToken,
    403: Forbidden,
    404: NotFound,
    410: Gone,
    422: ValidationFailed,
    429: RateLimited,
}

# 422 messages are Rails validation sentences; these fragments pick the subclass.
_VALIDATION_HINTS: tuple[tuple[str, type[ValidationFailed]], ...] = (
    ("already been replaced", AlreadyReplaced),
    ("already been issued", DuplicateBadge),
    ("already issued", DuplicateBadge),
    ("duplicate", DuplicateBadge),
    ("archived", TemplateNotIssuable),
    ("draft", TemplateNotIssuable),
    ("not active", TemplateNotIssuable),
)


def error_for_status(
    status: int,
    message: str,
    *,
    metadata: dict[str, Any] | None = None,
    retry_after: float | None = None,
    method: str = "",
    path: str = "",
) -> CredlyStatusError:
    """The most specific error class for an error answer."""
    kw: dict[str, Any] = {"metadata": metadata, "method": method, "path": path}
    if status == 429:
        return RateLimited(message, retry_after=retry_after, status=status, **kw)
    if status >= 500:
        return ServerError(message, status=status, **kw)
    if status == 422:
        lowered = message.lower()
        for fragment, cls in _VALIDATION_HINTS:
            if fragment in lowered:
                return cls(message, status=status, **kw)
    cls_for = _BY_STATUS.get(status, CredlyStatusError)
    return cls_for(message, status=status, **kw)

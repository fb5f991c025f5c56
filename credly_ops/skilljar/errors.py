"""Every way a call to Skilljar can fail, as one tree.

The client reads (enrollments, courses) and asks for tokens; nothing it sends changes Skilljar,
so the first split only says whether an answer came back::

    SkilljarError
    ├── NotSent                    never reached Skilljar (retried for reads)
    │   └── ConnectFailed          DNS, refused, TLS, connect timeout
    ├── OutcomeUnknown             the request left, no usable answer came back (retried for reads)
    │   ├── AnswerTimedOut         no answer in time (read/write/pool timeout)
    │   └── ConnectionLost         the connection dropped mid-answer, or the answer was garbled
    ├── UnexpectedAnswer           a success answer whose shape the client cannot read
    │                              (no JSON:API ``data`` list, a cursor that repeats, no token)
    └── SkilljarStatusError        Skilljar answered with an error status (``.status``,
        │                          ``.message`` from JSON:API ``errors[].detail``/``title``)
        ├── CredentialsRejected    400/401/403 on ``POST /v2/auth/token``: the client id or
        │                          secret is wrong or was rotated; never retried
        ├── BadRequest             400: a filter Skilljar does not accept
        ├── Unauthorized           401 even with a fresh token
        ├── Forbidden              403: the API client lacks a scope (``enrollments:read``,
        │                          ``courses:read``) or the plan has no API
        ├── NotFound               404
        ├── RateLimited            429 (``.retry_after`` seconds, when Skilljar said)
        └── ServerError            5xx

The retry decisions come from :mod:`credly_ops.retry` (the same ones as the Credly client's):
``NotSent``, ``OutcomeUnknown`` and ``SkilljarStatusError`` carry its markers.  Messages never
carry the client secret or a token: neither is in any URL, and Skilljar's own error text is
scrubbed before it is kept.
"""

from __future__ import annotations

from credly_ops.retry import ErrorAnswer, OutcomeNotKnown, RequestNotSent


class SkilljarError(Exception):
    """Base of every error raised by the Skilljar client."""

    #: short stable code for reports and the audit
    kind: str = "skilljar_error"


class NotSent(SkilljarError, RequestNotSent):
    kind = "network"


class ConnectFailed(NotSent):
    kind = "network"


class OutcomeUnknown(SkilljarError, OutcomeNotKnown):
    kind = "outcome_unknown"


class AnswerTimedOut(OutcomeUnknown):
    kind = "timeout"


class ConnectionLost(OutcomeUnknown):
    kind = "network"


class UnexpectedAnswer(SkilljarError):
    kind = "unexpected_answer"


class SkilljarStatusError(SkilljarError, ErrorAnswer):
    kind = "http_error"
    status: int = 0

    def __init__(
        self, message: str, *, status: int | None = None, method: str = "", path: str = ""
    ) -> None:
        self.message = message
        if status is not None:
            self.status = status
        self.method = method
        self.path = path
        where = f" ({method} {path})" if method else ""
        super().__init__(f"Skilljar answered {self.status}{where}: {message}")


class CredentialsRejected(SkilljarStatusError):
    """The token grant was refused: say so plainly, and do not ask again with the same values."""

    kind = "credentials_rejected"

    def __init__(self, message: str, *, status: int | None = None, **kw: str) -> None:
        super().__init__(
            f"the Skilljar client id or client secret is wrong or was rotated ({message})",
            status=status,
            **kw,
        )


class BadRequest(SkilljarStatusError):
    kind = "bad_request"
    status = 400


class Unauthorized(SkilljarStatusError):
    kind = "unauthorized"
    status = 401


class Forbidden(SkilljarStatusError):
    kind = "forbidden"
    status = 403


class NotFound(SkilljarStatusError):
    kind = "not_found"
    status = 404


class RateLimited(SkilljarStatusError):
    kind = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: str) -> None:
        self.retry_after = retry_after
        super().__init__(message, status=429, **kw)


class ServerError(SkilljarStatusError):
    kind = "server_error"


_BY_STATUS: dict[int, type[SkilljarStatusError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
}


def error_for_status(
    status: int,
    message: str,
    *,
    retry_after: float | None = None,
    method: str = "",
    path: str = "",
) -> SkilljarStatusError:
    """The most specific error class for an error answer of the API (not of the token grant)."""
    if status == 429:
        return RateLimited(message, retry_after=retry_after, method=method, path=path)
    if status >= 500:
        return ServerError(message, status=status, method=method, path=path)
    cls = _BY_STATUS.get(status, SkilljarStatusError)
    return cls(message, status=status, method=method, path=path)

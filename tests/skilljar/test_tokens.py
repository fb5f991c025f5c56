"""When a token is renewed, and how Skilljar's errors feed the shared retry decisions."""

from __future__ import annotations

import base64
import json

import pytest

from credly_ops import retry
from credly_ops.skilljar.errors import (
    AnswerTimedOut,
    BadRequest,
    ConnectFailed,
    ConnectionLost,
    CredentialsRejected,
    Forbidden,
    NotFound,
    RateLimited,
    ServerError,
    SkilljarError,
    Unauthorized,
    UnexpectedAnswer,
    error_for_status,
)
from credly_ops.skilljar.tokens import FALLBACK_LIFETIME, REFRESH_MARGIN, jwt_expiry, renew_at

NOW = 1_800_000_000.0


def jwt(claims: object) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJIUzI1NiJ9.{payload}.sig"


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (jwt({"exp": 1_800_003_600}), 1_800_003_600.0),
        (jwt({"exp": 1_800_003_600.5, "sub": "x"}), 1_800_003_600.5),
        (jwt({"sub": "x"}), None),
        (jwt({"exp": "soon"}), None),
        (jwt({"exp": True}), None),
        (jwt([1, 2, 3]), None),
        ("opaque-token", None),
        ("a.b", None),
        ("a..c", None),
        ("a.!!!.c", None),
        ("a." + base64.urlsafe_b64encode(b"\xff\xfe").decode() + ".c", None),
        ("", None),
    ],
)
def test_jwt_expiry(token: str, expected: float | None) -> None:
    assert jwt_expiry(token) == expected


@pytest.mark.parametrize(
    ("token", "expires_in", "expected"),
    [
        (jwt({"exp": NOW + 3600}), None, NOW + 3600 - REFRESH_MARGIN),
        (jwt({"exp": NOW + 3600}), 3590, NOW + 3600 - REFRESH_MARGIN),  # exp wins when close
        (jwt({"exp": NOW + 3600}), "3600", NOW + 3600 - REFRESH_MARGIN),
        # the clocks differ (exp already past, or far off): the duration wins
        (jwt({"exp": NOW - 7200}), 3600, NOW + 3600 - REFRESH_MARGIN),
        (jwt({"exp": NOW + 86400}), 3600, NOW + 3600 - REFRESH_MARGIN),
        ("opaque", 1800, NOW + 1800 - REFRESH_MARGIN),
        ("opaque", "1800", NOW + 1800 - REFRESH_MARGIN),
        ("opaque", None, NOW + FALLBACK_LIFETIME - REFRESH_MARGIN),
        ("opaque", "never", NOW + FALLBACK_LIFETIME - REFRESH_MARGIN),
        ("opaque", -5, NOW + FALLBACK_LIFETIME - REFRESH_MARGIN),
        ("opaque", float("nan"), NOW + FALLBACK_LIFETIME - REFRESH_MARGIN),
        ("opaque", True, NOW + FALLBACK_LIFETIME - REFRESH_MARGIN),
        # a very short-lived token is used for half its life
        (jwt({"exp": NOW + 60}), None, NOW + 30),
        # an already expired one with nothing else to go by is renewed at once
        (jwt({"exp": NOW - 5}), None, NOW),
        (jwt({"exp": NOW - 5}), "garbage", NOW),
    ],
)
def test_renew_at(token: str, expires_in: object, expected: float) -> None:
    assert renew_at(token, expires_in, NOW) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("exc", "attempt", "expected"),
    [
        (ConnectFailed("refused"), 1, True),
        (AnswerTimedOut("slow"), 1, True),
        (ConnectionLost("eof"), 4, True),
        (ConnectionLost("eof"), 5, False),
        (RateLimited("slow down"), 1, True),
        (ServerError("boom", status=503), 1, True),
        (ServerError("boom", status=501), 1, False),
        (BadRequest("no"), 1, False),
        (Unauthorized("no"), 1, False),
        (Forbidden("no"), 1, False),
        (NotFound("no"), 1, False),
        (CredentialsRejected("no", status=401), 1, False),
        (UnexpectedAnswer("shape"), 1, False),
        (SkilljarError("other"), 1, False),
    ],
)
def test_skilljar_errors_drive_the_shared_retry_decision(
    exc: SkilljarError, attempt: int, expected: bool
) -> None:
    assert retry.should_retry("GET", None, exc, attempt) is expected


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequest),
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (429, RateLimited),
        (500, ServerError),
        (503, ServerError),
    ],
)
def test_error_for_status(status: int, cls: type[SkilljarError]) -> None:
    error = error_for_status(status, "words", method="GET", path="/v2/courses/")
    assert type(error) is cls
    assert error.status == status
    assert str(error) == f"Skilljar answered {status} (GET /v2/courses/): words"

"""The retry decisions, as tables that include garbage input."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from credly_ops import retry
from credly_ops.credly.client import CredlyClient
from credly_ops.credly.errors import (
    AnswerTimedOut,
    BadRequest,
    ConnectFailed,
    ConnectionLost,
    CredlyError,
    DuplicateBadge,
    InvalidToken,
    NotFound,
    NotSent,
    RateLimited,
    ServerError,
    ValidationFailed,
)

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


class _Widest(random.Random):
    """Draws the top of every backoff window, so a wait shows the window itself."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_the_numbers_live_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """Change a number in retry.py and the decisions and the client follow: no copy elsewhere."""
    monkeypatch.setattr(retry, "RETRY_AFTER_CAP", 7.0)
    monkeypatch.setattr(retry, "BASE_BACKOFF", 0.1)
    monkeypatch.setattr(retry, "MAX_BACKOFF", 0.3)
    monkeypatch.setattr(retry, "MAX_ATTEMPTS", 2)
    monkeypatch.setattr(retry, "CONNECT_TIMEOUT", 1.5)
    monkeypatch.setattr(retry, "READ_TIMEOUT", 2.5)
    assert retry.parse_retry_after("100") == 7.0
    assert retry.backoff(1, 100.0, random.Random(0)) == 7.0
    assert [retry.backoff(n, None, _Widest()) for n in (1, 2, 3)] == [0.1, 0.2, 0.3]

    calls: list[httpx.Request] = []

    def unavailable(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503, json={"message": "down"})

    waits: list[float] = []
    client = CredlyClient(
        base_url="http://127.0.0.1:9/v1",
        org_id="org",
        token="tok",
        transport=httpx.MockTransport(unavailable),
        sleep=waits.append,
        rng=_Widest(),
    )
    with client, pytest.raises(ServerError):
        client.get_organization()
    assert len(calls) == 2 and waits == [0.1]
    timeout = client._http.timeout
    assert (timeout.connect, timeout.read, timeout.write, timeout.pool) == (1.5, 2.5, 2.5, 2.5)


# ---------------------------------------------------------------- parse_retry_after

RETRY_AFTER_TABLE: list[tuple[str | None, float | None]] = [
    (None, None),
    ("", None),
    ("   ", None),
    ("\t\n", None),
    ("abc", None),
    ("-5", None),
    ("-0", None),
    ("+5", None),
    ("1e9", None),
    ("1E3", None),
    ("nan", None),
    ("inf", None),
    ("Infinity", None),
    ("0x10", None),
    ("5 s", None),
    ("5s", None),
    ("1,5", None),
    ("1.", None),
    (".5", None),
    ("٣", None),  # a non-ASCII digit
    ("null", None),
    ("Wed, 32 May 2024 12:00:30 GMT", None),  # impossible date
    ("Wed, 01 Foo 2024 12:00:30 GMT", None),  # no such month
    ("Wed, 01 May 2024 25:61:00 GMT", None),
    ("0", 0.0),
    ("7", 7.0),
    (" 7 ", 7.0),
    ("1.5", 1.5),
    ("60", 60.0),
    ("61", 60.0),
    ("3600", 60.0),
    ("9" * 400, 60.0),
    ("Wed, 01 May 2024 12:00:30 GMT", 30.0),  # future HTTP-date
    ("  Wed, 01 May 2024 12:00:30 GMT  ", 30.0),
    ("Wed, 01 May 2024 11:00:00 GMT", 0.0),  # past HTTP-date: go now
    ("Wed, 01 May 2024 12:00:00 GMT", 0.0),
    ("Wed, 01 May 2024 13:00:00 GMT", 60.0),  # far future: capped
    ("Wed, 01 May 2024 14:00:10 +0200", 10.0),  # zone honoured
    ("Wed, 01 May 2024 12:00:05", 5.0),  # no zone: UTC
]


@pytest.mark.parametrize(("value", "expected"), RETRY_AFTER_TABLE)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    result = retry.parse_retry_after(value, now=NOW)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


def test_parse_retry_after_naive_now_is_utc() -> None:
    naive = NOW.replace(tzinfo=None)
    assert retry.parse_retry_after("Wed, 01 May 2024 12:00:20 GMT", now=naive) == 20.0


def test_parse_retry_after_other_zone_now() -> None:
    plus_two = NOW.astimezone(timezone(timedelta(hours=2)))
    assert retry.parse_retry_after("Wed, 01 May 2024 12:00:20 GMT", now=plus_two) == 20.0


def test_parse_retry_after_defaults_to_the_clock() -> None:
    soon = datetime.now(UTC) + timedelta(seconds=40)
    header = soon.strftime("%a, %d %b %Y %H:%M:%S GMT")
    result = retry.parse_retry_after(header)
    assert result is not None
    assert 35.0 <= result <= 40.0


# ---------------------------------------------------------------- should_retry

SHOULD_RETRY_TABLE: list[tuple[str, int | None, BaseException | None, int, bool]] = [
    # never sent: any method, until the attempts run out
    ("GET", None, ConnectFailed("refused"), 1, True),
    ("POST", None, ConnectFailed("refused"), 1, True),
    ("PUT", None, NotSent("dns"), 4, True),
    ("POST", None, ConnectFailed("refused"), 5, False),
    ("GET", None, ConnectFailed("refused"), 5, False),
    ("GET", None, ConnectFailed("refused"), 99, False),
    # outcome unknown: reads only
    ("GET", None, AnswerTimedOut("slow"), 1, True),
    ("get", None, ConnectionLost("eof"), 2, True),
    (" HEAD ", None, AnswerTimedOut("slow"), 1, True),
    ("POST", None, AnswerTimedOut("slow"), 1, False),
    ("PUT", None, ConnectionLost("eof"), 1, False),
    ("DELETE", None, AnswerTimedOut("slow"), 1, False),
    # 429 is not processed: any method
    ("GET", None, RateLimited("slow down"), 1, True),
    ("POST", None, RateLimited("slow down"), 1, True),
    ("POST", 429, None, 4, True),
    ("POST", 429, None, 5, False),
    # 5xx: reads only
    ("GET", None, ServerError("boom", status=503), 1, True),
    ("GET", 500, None, 1, True),
    ("GET", 502, None, 3, True),
    ("GET", 504, None, 4, True),
    ("GET", 408, None, 1, True),
    ("POST", None, ServerError("boom", status=500), 1, False),
    ("POST", 503, None, 1, False),
    ("GET", 501, None, 1, False),
    # final answers
    ("GET", None, NotFound("no"), 1, False),
    ("GET", None, InvalidToken("no"), 1, False),
    ("GET", None, BadRequest("no"), 1, False),
    ("POST", None, DuplicateBadge("dup"), 1, False),
    ("POST", None, ValidationFailed("bad"), 1, False),
    ("GET", 200, None, 1, False),
    ("GET", 404, None, 1, False),
    # garbage
    ("GET", None, None, 1, False),
    ("", None, AnswerTimedOut("slow"), 1, False),
    ("BREW", 503, None, 1, False),
    ("GET", None, ValueError("not ours"), 1, False),
    ("GET", None, CredlyError("shape"), 1, False),
    ("GET", -1, None, 1, False),
    ("GET", None, AnswerTimedOut("slow"), 0, True),
]


@pytest.mark.parametrize(("method", "status", "exc", "attempt", "expected"), SHOULD_RETRY_TABLE)
def test_should_retry(
    method: str, status: int | None, exc: BaseException | None, attempt: int, expected: bool
) -> None:
    assert retry.should_retry(method, status, exc, attempt) is expected


def test_should_retry_status_argument_wins_over_the_error() -> None:
    # A status passed explicitly is the answer that was seen.
    assert retry.should_retry("GET", 404, ServerError("boom", status=503), 1) is False


def test_should_retry_respects_a_smaller_budget() -> None:
    assert retry.should_retry("GET", 503, None, 1, max_attempts=2) is True
    assert retry.should_retry("GET", 503, None, 2, max_attempts=2) is False
    assert retry.should_retry("GET", 503, None, 1, max_attempts=1) is False


# ---------------------------------------------------------------- backoff

BACKOFF_WINDOWS = [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (6, 16.0), (7, 30.0), (50, 30.0)]


@pytest.mark.parametrize(("attempt", "window"), BACKOFF_WINDOWS)
def test_backoff_is_full_jitter_within_a_capped_window(attempt: int, window: float) -> None:
    rng = random.Random(attempt)
    draws = [retry.backoff(attempt, None, rng) for _ in range(400)]
    assert all(0.0 <= d <= window for d in draws)
    # full jitter: the draws spread over the whole window, not just its top
    assert min(draws) < window * 0.1
    assert max(draws) > window * 0.9


@pytest.mark.parametrize("attempt", [0, -3, 10_000, 2**62])
def test_backoff_survives_odd_attempt_numbers(attempt: int) -> None:
    wait = retry.backoff(attempt, None, random.Random(1))
    assert 0.0 <= wait <= retry.MAX_BACKOFF


BACKOFF_RETRY_AFTER = [
    (7.0, 7.0),
    (0.0, 0.0),
    (59.5, 59.5),
    (60.0, 60.0),
    (3600.0, 60.0),
    (float("inf"), None),
    (float("nan"), None),
    (-5.0, 0.0),
]


@pytest.mark.parametrize(("retry_after", "expected"), BACKOFF_RETRY_AFTER)
def test_backoff_honours_retry_after_up_to_the_cap(
    retry_after: float, expected: float | None
) -> None:
    wait = retry.backoff(3, retry_after, random.Random(0))
    if expected is None:  # not a usable number: the jittered window applies
        assert 0.0 <= wait <= 2.0
    else:
        assert wait == expected


def test_backoff_is_reproducible_with_a_seeded_rng() -> None:
    first = [retry.backoff(n, None, random.Random(42)) for n in range(1, 6)]
    second = [retry.backoff(n, None, random.Random(42)) for n in range(1, 6)]
    assert first == second

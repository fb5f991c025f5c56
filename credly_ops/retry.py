"""Every retry number in one place, and the retry decisions as small pure functions.

Shared by every HTTP client of the product (Credly and Skilljar), so both wait and give up
alike.  A client asks three questions after a failed attempt:

* :func:`should_retry` — may this request be sent again *as it is*?  Reads (GET) are retried on
  anything transient; writes (POST, PUT, DELETE) only when the server surely did not process
  them (the request never left, or the server answered 429).  A write whose outcome is unknown
  is never resent blindly: the client looks the result up first.
* :func:`parse_retry_after` — how long did the server ask us to wait?
* :func:`backoff` — how long do we wait before the next attempt?

A client's error tree tells these functions what happened to an attempt by deriving from the
three markers below — :class:`RequestNotSent`, :class:`OutcomeNotKnown` and
:class:`ErrorAnswer` — so this module knows no client's errors.
"""

from __future__ import annotations

import math
import random
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

#: attempts per request, the first one included
MAX_ATTEMPTS = 5
#: the first backoff window in seconds; it doubles with each attempt
BASE_BACKOFF = 0.5
#: the largest backoff window in seconds
MAX_BACKOFF = 30.0
#: the longest wait a ``Retry-After`` header can ask for; larger values are cut to this
RETRY_AFTER_CAP = 60.0
#: seconds to open a connection
CONNECT_TIMEOUT = 5.0
#: seconds to wait for an answer (also used for writing the request and for a pooled connection)
READ_TIMEOUT = 30.0

#: methods that may be resent whatever happened to the previous attempt
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: answers worth another attempt of an idempotent request
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

_DELAY_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")


class RequestNotSent(Exception):
    """Marker: the request never reached the server (safe to send again)."""


class OutcomeNotKnown(Exception):
    """Marker: the request left; the server may have processed it."""


class ErrorAnswer(Exception):
    """Marker: the server answered with an error status (``.status``)."""

    status: int = 0


def _status_of(status: int | None, exc: BaseException | None) -> int | None:
    if status is not None:
        return status
    if isinstance(exc, ErrorAnswer):
        return exc.status
    return None


def should_retry(
    method: str,
    status: int | None,
    exc: BaseException | None,
    attempt: int,
    *,
    max_attempts: int = MAX_ATTEMPTS,
) -> bool:
    """Whether the request may be sent again unchanged after attempt number ``attempt`` (1-based).

    ``status`` is the answer's status (or ``None`` when there was no answer); ``exc`` is the error
    raised for the attempt.  Any method is resent when the request never reached the server
    (:class:`RequestNotSent`) or it answered 429 (a throttled request is not processed).  Only
    idempotent methods are resent after an unknown outcome (timeout, lost connection) or a
    5xx/408 answer.
    """
    if attempt >= max_attempts:
        return False
    if isinstance(exc, RequestNotSent):
        return True
    code = _status_of(status, exc)
    if code == 429:
        return True
    idempotent = method.strip().upper() in IDEMPOTENT_METHODS
    if isinstance(exc, OutcomeNotKnown):
        return idempotent
    if code is None:
        return False
    return idempotent and code in RETRY_STATUSES


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header value in seconds, at most :data:`RETRY_AFTER_CAP`.

    Accepts delay-seconds (``"7"``, also ``"1.5"``) and an HTTP-date; a date already past gives
    ``0.0`` and a date without a zone is taken as UTC.  Anything else — empty, negative, signs,
    exponents, non-ASCII digits, words, impossible dates — gives ``None`` (the caller then uses its
    own backoff).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _DELAY_SECONDS.fullmatch(text):
        seconds = float(text)
        return min(seconds, RETRY_AFTER_CAP)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    reference = now if now is not None else datetime.now(UTC)
    if reference.tzinfo is None:
        reference = reference.replace(tzinfo=UTC)
    seconds = (when - reference).total_seconds()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


def backoff(attempt: int, retry_after: float | None, rng: random.Random) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    When the server said how long to wait (``retry_after``), that wait is used as is, cut to
    :data:`RETRY_AFTER_CAP`.  Otherwise: capped exponential backoff with full jitter, a uniform
    draw from ``[0, min(MAX_BACKOFF, BASE_BACKOFF * 2 ** (attempt - 1))]``.
    """
    if retry_after is not None and math.isfinite(retry_after):
        return min(max(retry_after, 0.0), RETRY_AFTER_CAP)
    exponent = min(max(attempt, 1) - 1, 32)
    window = min(MAX_BACKOFF, BASE_BACKOFF * (2.0**exponent))
    return rng.uniform(0.0, window)

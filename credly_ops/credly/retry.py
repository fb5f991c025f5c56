"""The retry numbers and decisions the Credly client uses: those of :mod:`credly_ops.retry`,
shared with the Skilljar client so both wait and give up alike."""

from credly_ops.retry import (
    BASE_BACKOFF,
    CONNECT_TIMEOUT,
    IDEMPOTENT_METHODS,
    MAX_ATTEMPTS,
    MAX_BACKOFF,
    READ_TIMEOUT,
    RETRY_AFTER_CAP,
    RETRY_STATUSES,
    backoff,
    parse_retry_after,
    should_retry,
)

__all__ = [
    "BASE_BACKOFF",
    "CONNECT_TIMEOUT",
    "IDEMPOTENT_METHODS",
    "MAX_ATTEMPTS",
    "MAX_BACKOFF",
    "READ_TIMEOUT",
    "RETRY_AFTER_CAP",
    "RETRY_STATUSES",
    "backoff",
    "parse_retry_after",
    "should_retry",
]

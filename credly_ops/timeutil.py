"""Time in one place: every timestamp in credly_ops is an aware UTC ``datetime``.

Credly answers with ISO-8601 UTC and milliseconds (``2014-04-01T14:41:00.000Z``) and is sent
``%Y-%m-%d %H:%M:%S %z`` (its documented request format).  These helpers convert both ways and
are lenient on input, strict on output.  :func:`ago` says how long ago a moment was, as the app
and the command line show it.
"""

from __future__ import annotations

from datetime import UTC, datetime

CREDLY_REQUEST_FORMAT = "%Y-%m-%d %H:%M:%S %z"


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC; aware ones are converted to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_credly_time(text: str) -> datetime:
    """Parse any timestamp form Credly sends or accepts; raises ``ValueError`` when none fits."""
    raw = text.strip()
    if not raw:
        raise ValueError("empty timestamp")
    candidate = raw.replace("Z", "+00:00") if raw.endswith("Z") else raw
    try:
        return as_utc(datetime.fromisoformat(candidate))
    except ValueError:
        pass
    for fmt in (CREDLY_REQUEST_FORMAT, "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %I:%M:%S %p"):
        try:
            return as_utc(datetime.strptime(raw, fmt))
        except ValueError:
            continue
    raise ValueError(f"not a timestamp: {raw[:40]!r}")


def format_credly_request(value: datetime) -> str:
    """The form our client always sends: ``2024-05-01 09:41:00 +0000``."""
    return as_utc(value).strftime(CREDLY_REQUEST_FORMAT)


def format_credly_response(value: datetime) -> str:
    """The form Credly answers with: ``2024-05-01T09:41:00.000Z``."""
    v = as_utc(value)
    return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}Z"


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago ``moment`` was: ``never``, ``just now`` (under 90 seconds, or in the
    future), ``12 min ago`` (under 90 minutes), ``5 h ago`` (under two days), ``3 days ago``."""
    if moment is None:
        return "never"
    seconds = max(((now or utcnow()) - moment).total_seconds(), 0.0)
    if seconds < 90:
        return "just now"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172_800:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86_400:.0f} days ago"


def answer_time(value: object) -> object:
    """A time as an API answer gives it, for a tolerant model's validator: missing, empty or
    ``false`` (Credly's "never expires") is ``None``; a datetime is put in UTC; text is parsed
    (Credly's formats and ISO-8601); anything else is left for the model to refuse."""
    if value is None or value == "" or value is False:
        return None
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, str):
        return parse_credly_time(value)
    return value

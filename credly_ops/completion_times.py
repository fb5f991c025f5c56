"""Completion times: the formats a completion file's time cell may use (see
:mod:`credly_ops.completions` for the rules), and :class:`TimeReader`, which reads the times
of one file with a cache of the days and clocks it has already seen.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from credly_ops.completion_cells import preview
from credly_ops.timeutil import as_utc

_DATE_HINT = "use 2024-05-01, 2024-05-01 09:41:00, 2024-05-01T09:41:00Z or 05/01/2024 (month first)"

#: a time cell that gives a day and no time of day (``2024-05-01``, ``05/01/2024``, ``… UTC``)
_BARE_DATE = re.compile(
    r"(?:[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}|[0-9]{8}|[0-9]{1,2}/[0-9]{1,2}/(?:[0-9]{4}|[0-9]{2}))"
    r"\s*(?:Z|UTC|GMT)?",
    re.IGNORECASE,
)
_ZONE = r"\s*(?:(?P<utc>Z|UTC|GMT)|(?P<sign>[+-])(?P<oh>[0-9]{2}):?(?P<om>[0-9]{2}))?"
_CLOCK = (
    r"(?:(?:T|\s+)(?P<H>[0-9]{1,2}):(?P<M>[0-9]{2})"
    r"(?::(?P<S>[0-9]{2})(?:[.,](?P<f>[0-9]+))?)?\s*(?P<ampm>[AaPp][Mm])?)?"
)
_ISO_TIME = re.compile(
    r"(?P<y>[0-9]{4})-(?P<m>[0-9]{1,2})-(?P<d>[0-9]{1,2})" + _CLOCK + _ZONE, re.IGNORECASE
)
_US_TIME = re.compile(
    r"(?P<m>[0-9]{1,2})/(?P<d>[0-9]{1,2})/(?P<y>[0-9]{4}|[0-9]{2})" + _CLOCK + _ZONE,
    re.IGNORECASE,
)


def parse_completed_at(value: str) -> datetime:
    """Parse a completion time (formats: :mod:`credly_ops.completions`) to aware UTC.

    Raises ``ValueError`` with a sentence that quotes the value.
    """
    text = value.strip()
    if not text:
        raise ValueError("The completion time is missing.")
    moment = _us_time(text) if "/" in text else iso_time(text)
    return moment if moment is not None else parse_time_by_pattern(value)


def iso_time(text: str) -> datetime | None:
    """An ISO 8601 time (``Z``, ``UTC`` and ``GMT`` read as +00:00) in UTC, or ``None``."""
    iso = text[:-3].rstrip() if text[-3:].upper() in ("UTC", "GMT") else text
    if iso[-1:] in ("Z", "z"):
        iso = iso[:-1] + "+00:00"
    try:
        return as_utc(datetime.fromisoformat(iso))
    except (ValueError, OverflowError):
        return None


def _us_time(text: str) -> datetime | None:
    day, spaced, clock = text.partition(" ")
    midnight = us_day(day)
    if midnight is None:
        return None
    offset = us_clock(clock) if spaced else _MIDNIGHT
    return None if offset is None else midnight + offset


_MIDNIGHT = timedelta(0)
#: a cache miss (``None`` is a cached answer: the cell is not that shape)
_UNSEEN: Any = object()


def us_day(text: str) -> datetime | None:
    """``5/1/2024``, ``05/01/2024`` or ``5/1/24`` as midnight UTC; ``None`` for anything else.

    With :func:`us_clock`, the quick path for the shapes most US exports write; what either
    refuses goes to :func:`parse_time_by_pattern`, which reads it or words the error, and what
    they accept they read exactly as it does.
    """
    parts = text.split("/")
    if len(parts) != 3:
        return None
    month, dom, year = parts
    if len(year) == 2:
        year = "20" + year
    if not (0 < len(month) < 3 and 0 < len(dom) < 3 and len(year) == 4):
        return None
    digits = month + dom + year
    if not (digits.isascii() and digits.isdigit()):
        return None
    try:
        # fromisoformat is several times quicker than building the datetime from its parts
        return datetime.fromisoformat(f"{year}-{month:0>2}-{dom:0>2}T00:00+00:00")
    except ValueError:
        return None


def us_clock(text: str) -> timedelta | None:
    """``9:41``, ``09:41`` or ``09:41:07`` as the time since midnight; ``None`` otherwise."""
    parts = text.split(":")
    if not (len(parts) in (2, 3) and 0 < len(parts[0]) < 3):
        return None
    if not all(len(part) == 2 for part in parts[1:]):
        return None
    digits = "".join(parts)
    if not (digits.isascii() and digits.isdigit()):
        return None
    hours, minutes, seconds = int(parts[0]), int(parts[1]), int(parts[2]) if len(parts) == 3 else 0
    if hours > 23 or minutes > 59 or seconds > 59:
        return None
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def parse_time_by_pattern(value: str) -> datetime:
    """Read a time by the patterns (``fromisoformat`` aside) the completions rules list.

    Raises ``ValueError`` with a sentence that quotes the value.
    """
    text = value.strip()
    match = _ISO_TIME.fullmatch(text) or _US_TIME.fullmatch(text)
    if match is None:
        raise ValueError(
            f"'{preview(value)}' is not a date and time this reader understands; {_DATE_HINT}."
        )
    parts = match.groupdict()
    year = int(parts["y"])
    if len(parts["y"]) == 2:
        year += 2000
    hour = int(parts["H"] or 0)
    ampm = parts["ampm"]
    try:
        if ampm:
            if not 1 <= hour <= 12:
                raise ValueError(f"hour {hour} does not go with {ampm.upper()}")
            hour = hour % 12 + (12 if ampm.lower() == "pm" else 0)
        fraction = parts["f"] or ""
        tz = UTC
        if parts["sign"]:
            offset = timedelta(hours=int(parts["oh"]), minutes=int(parts["om"]))
            tz = timezone(-offset if parts["sign"] == "-" else offset)
        moment = datetime(
            year,
            int(parts["m"]),
            int(parts["d"]),
            hour,
            int(parts["M"] or 0),
            int(parts["S"] or 0),
            int(fraction[:6].ljust(6, "0")) if fraction else 0,
            tzinfo=tz,
        )
        return moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"'{preview(value)}' is not a real date and time ({exc}).") from None


class TimeReader:
    """The completion times of one file, each distinct day and clock of a US time parsed once.

    Most exports write a handful of distinct days and at most 86,400 distinct clocks, so a
    100,000-row file costs two dictionary look-ups and an addition per row. Cells no quick path
    reads (and every error) are remembered whole.
    """

    __slots__ = ("_bare", "_clocks", "_days", "_now", "_others")

    def __init__(self, now: datetime) -> None:
        self._now = now
        self._days: dict[str, datetime | None] = {}
        self._clocks: dict[str, timedelta | None] = {}
        self._others: dict[str, datetime | str] = {}
        self._bare: dict[str, bool] = {}

    def date_only(self, text: str) -> bool:
        """Whether a cell this reader read as a time gave a day and no time of day (it is then
        midnight UTC of that day). A time with an offset but no clock is a definite moment."""
        if ":" in text:
            return False
        known = self._bare.get(text)
        if known is None:
            known = self._bare[text] = _BARE_DATE.fullmatch(text) is not None
        return known

    def __call__(self, text: str) -> datetime | str:
        """The parsed time of a trimmed cell, or the sentence saying why not."""
        moment: datetime | None = None
        if "/" in text:
            day, spaced, clock = text.partition(" ")
            midnight = self._days.get(day, _UNSEEN)
            if midnight is _UNSEEN:
                midnight = self._days[day] = us_day(day)
            if midnight is not None:
                offset: timedelta | None = _MIDNIGHT
                if spaced:
                    offset = self._clocks.get(clock, _UNSEEN)
                    if offset is _UNSEEN:
                        offset = self._clocks[clock] = us_clock(clock)
                if offset is not None:
                    moment = midnight + offset
        elif text:
            moment = iso_time(text)
        if moment is None:
            known = self._others.get(text)
            if known is None:
                known = self._others[text] = self._parse(text)
            return known
        return moment if moment <= self._now else self._future(text)

    def _parse(self, text: str) -> datetime | str:
        try:
            moment = parse_completed_at(text)
        except ValueError as exc:
            return str(exc)
        return moment if moment <= self._now else self._future(text)

    def _future(self, text: str) -> str:
        return (
            f"'{preview(text)}' is in the future (it is now {self._now:%Y-%m-%d %H:%M} UTC); "
            "a completion cannot happen later than now."
        )

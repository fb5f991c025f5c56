"""What the funnel looks at (:class:`FunnelFilter`: a date range on a basis, a course, a
template, an email domain, the moment pending badges are looked at) and how a filter becomes
SQL conditions with named parameters (:class:`Where`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any, Literal, get_args

from credly_ops import timeutil
from credly_ops.store import to_db_time

DateBasis = Literal["completion", "issue"]


class FunnelError(ValueError):
    """A filter that cannot be used (the message says which field and why)."""


@dataclass(frozen=True)
class FunnelFilter:
    """What the funnel looks at: a date range, a course, a template, an email domain.

    ``since`` and ``until`` are inclusive UTC days; either may be left open.  ``now`` is the
    moment pending badges are looked at (``None``: when the filter is first prepared).
    """

    since: date | None = None
    until: date | None = None
    by: DateBasis = "completion"
    course_id: str | None = None
    template_id: str | None = None
    domain: str | None = None
    now: datetime | None = None

    def __post_init__(self) -> None:
        if self.by not in get_args(DateBasis):
            raise FunnelError(f"by must be 'completion' or 'issue', not {self.by!r}")
        for name in ("since", "until"):
            value = getattr(self, name)
            if isinstance(value, datetime):
                object.__setattr__(self, name, timeutil.as_utc(value).date())
            elif value is not None and not isinstance(value, date):
                raise FunnelError(f"{name} must be a date")
        if self.since and self.until and self.since > self.until:
            raise FunnelError(f"since ({self.since}) is after until ({self.until})")
        for name in ("course_id", "template_id"):
            object.__setattr__(self, name, (getattr(self, name) or "").strip() or None)
        domain = (self.domain or "").strip().lower().lstrip("@")
        object.__setattr__(self, "domain", domain or None)
        if self.now is not None:
            object.__setattr__(self, "now", timeutil.as_utc(self.now))

    def at(self, now: datetime) -> FunnelFilter:
        return replace(self, now=now)

    def window(self) -> tuple[datetime | None, datetime | None]:
        """The date range as naive UTC moments: [start, end)."""
        start = datetime.combine(self.since, time()) if self.since else None
        end = datetime.combine(self.until + timedelta(days=1), time()) if self.until else None
        return start, end

    def previous(self, today: date | None = None) -> FunnelFilter | None:
        """The period of equal length just before this one (``None`` without a start).

        An open end is taken as ``today`` (default: the day of ``now``)."""
        if self.since is None:
            return None
        until = self.until or today or (self.now or timeutil.utcnow()).date()
        days = (until - self.since).days + 1
        return replace(
            self, since=self.since - timedelta(days=days), until=self.since - timedelta(days=1)
        )

    def describe(self) -> dict[str, str | None]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "by": self.by,
            "course_id": self.course_id,
            "template_id": self.template_id,
            "domain": self.domain,
        }


class Where:
    """Conditions and their named parameters, built from a filter."""

    def __init__(self, flt: FunnelFilter) -> None:
        start, end = flt.window()
        self.flt = flt
        self.params: dict[str, Any] = {}
        if start is not None:
            self.params["start"] = start
        if end is not None:
            self.params["end"] = end
        if flt.course_id:
            self.params["course"] = flt.course_id
        if flt.template_id:
            self.params["template"] = flt.template_id
        if flt.domain:
            self.params["at_domain"] = "@" + flt.domain
        if flt.now is not None:
            self.params["now"] = to_db_time(flt.now)

    def range(self, column: str) -> list[str]:
        out = []
        if "start" in self.params:
            out.append(f"{column} >= $start")
        if "end" in self.params:
            out.append(f"{column} < $end")
        return out

    def domain(self, column: str) -> list[str]:
        return [f"suffix(lower({column}), $at_domain)"] if self.flt.domain else []

    def course_and_template(self) -> list[str]:
        """The course and template conditions on rows that carry both columns."""
        out = []
        if self.flt.course_id:
            out.append("course_id = $course")
        if self.flt.template_id:
            out.append("template_id = $template")
        return out

    @staticmethod
    def join(conditions: list[str]) -> str:
        return " AND ".join(conditions) if conditions else "TRUE"

    def used(self, sql: str) -> dict[str, Any]:
        """Only the parameters the SQL names (DuckDB refuses unused ones)."""
        return {k: v for k, v in self.params.items() if f"${k}" in sql}

"""The funnel's headline numbers, each one function over a source (a store or an open cursor)
and a filter, read from the tables :func:`~.prepare.prepare` leaves behind;
:func:`summary` gathers them all in one unit of work.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import duckdb
import pandas as pd

from credly_ops.funnel.filter import FunnelFilter
from credly_ops.funnel.prepare import prepare
from credly_ops.funnel.sql import Source, cursor
from credly_ops.links import DERIVED_REASONS as LINK_DERIVED_REASONS
from credly_ops.reminders import PHASES, REMINDER_OFFSETS

#: skip reasons the funnel derives from completions and rules (see :mod:`credly_ops.links`)
DERIVED_REASONS: tuple[str, ...] = LINK_DERIVED_REASONS


@dataclass(frozen=True)
class CompletionCounts:
    completions: int
    eligible: int


@dataclass(frozen=True)
class BadgeStates:
    issued: int
    accepted: int
    pending: int
    rejected: int
    revoked: int


@dataclass(frozen=True)
class IssuedOutside:
    """Badges no known completion earned (the native integration, by hand in Credly, or
    before the first sync): counted beside the funnel, never in it."""

    issued: int
    accepted: int

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted / self.issued if self.issued else None


@dataclass(frozen=True)
class TimeToAccept:
    accepted: int
    median_hours: float | None
    p90_hours: float | None


@dataclass(frozen=True)
class RemindersSent:
    total: int
    badges: int

    @property
    def per_badge(self) -> float | None:
        return self.total / self.badges if self.badges else None


@dataclass(frozen=True)
class FunnelSummary:
    """Every headline number for one filter (what ``credly-ops funnel --json`` prints)."""

    filter: FunnelFilter
    as_of: datetime
    completions: int
    eligible: int
    issued: int
    accepted: int
    pending: int
    pending_by_reminders: dict[str, int]
    rejected: int
    revoked: int
    failed: int
    skipped: dict[str, int]
    reminders_sent: int
    reminders_per_badge: float | None
    acceptance_rate: float | None
    accepted_by_phase: dict[str, int]
    median_hours_to_accept: float | None
    p90_hours_to_accept: float | None
    renewed: int = 0
    blocked_retakes: int = 0
    issued_outside: int = 0
    accepted_outside: int = 0

    @property
    def outside_acceptance_rate(self) -> float | None:
        return self.accepted_outside / self.issued_outside if self.issued_outside else None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "completions": self.completions,
            "eligible": self.eligible,
            "issued": self.issued,
            "accepted": self.accepted,
            "pending": self.pending,
            "pending_by_reminders": dict(self.pending_by_reminders),
            "rejected": self.rejected,
            "revoked": self.revoked,
            "failed": self.failed,
            "skipped": dict(self.skipped),
            "reminders_sent": self.reminders_sent,
            "reminders_per_badge": _round(self.reminders_per_badge, 4),
            "acceptance_rate": _round(self.acceptance_rate, 6),
            "median_hours_to_accept": _round(self.median_hours_to_accept, 2),
            "p90_hours_to_accept": _round(self.p90_hours_to_accept, 2),
            "renewed": self.renewed,
            "blocked_retakes": self.blocked_retakes,
            "issued_outside": self.issued_outside,
            "accepted_outside": self.accepted_outside,
            "outside_acceptance_rate": _round(self.outside_acceptance_rate, 6),
            "as_of": self.as_of.isoformat(),
            "filter": self.filter.describe(),
        }
        for phase in PHASES:
            out[f"accepted_{phase}"] = self.accepted_by_phase[phase]
        return out


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _all_badges(cur: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    cur.execute("SELECT * FROM fn_all")
    row = cur.fetchone()
    names = [d[0] for d in cur.description or ()]
    return dict(zip(names, row or (), strict=False))


def _int(value: Any) -> int:
    return 0 if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)


def completion_counts(source: Source, flt: FunnelFilter) -> CompletionCounts:
    """Stages 1 and 2: completions, and those eligible for a badge."""
    with cursor(source) as cur:
        prepare(cur, flt)
        row = cur.execute(
            "SELECT coalesce(sum(n), 0), coalesce(sum(n) FILTER (WHERE eligible), 0) FROM fn_c"
        ).fetchone()
    assert row is not None
    return CompletionCounts(int(row[0]), int(row[1]))


def badge_states(source: Source, flt: FunnelFilter) -> BadgeStates:
    """Stage 3 and where badges are now: issued (a chain counts once) by the live end's state."""
    with cursor(source) as cur:
        prepare(cur, flt)
        row = _all_badges(cur)
    return BadgeStates(
        *(_int(row.get(k)) for k in ("issued", "accepted", "pending", "rejected", "revoked"))
    )


def pending_by_reminders(source: Source, flt: FunnelFilter) -> dict[str, int]:
    """Pending badges split by the reminders sent so far: ``{"0": …, "1": …, "2": …}``."""
    with cursor(source) as cur:
        prepare(cur, flt)
        row = _all_badges(cur)
    return {str(n): _int(row.get(f"pending_{n}")) for n in range(len(REMINDER_OFFSETS) + 1)}


def acceptance_rate(source: Source, flt: FunnelFilter) -> float | None:
    """Accepted ÷ issued (``None`` when nothing was issued)."""
    states = badge_states(source, flt)
    return states.accepted / states.issued if states.issued else None


def quantiles(value: Any) -> tuple[float | None, float | None]:
    if value is None or not hasattr(value, "__len__") or len(value) != 2:
        return None, None
    median, p90 = list(value)
    return (None if median is None else float(median)), (None if p90 is None else float(p90))


def time_to_accept(source: Source, flt: FunnelFilter) -> TimeToAccept:
    """Median and 90th percentile of the hours from sending to acceptance."""
    with cursor(source) as cur:
        prepare(cur, flt)
        row = _all_badges(cur)
    median, p90 = quantiles(row.get("hours_quantiles"))
    return TimeToAccept(_int(row.get("accepted")), median, p90)


def acceptance_by_reminders(source: Source, flt: FunnelFilter) -> dict[str, int]:
    """Accepted badges by when: before the first reminder, between them, after the second."""
    with cursor(source) as cur:
        prepare(cur, flt)
        row = _all_badges(cur)
    return {phase: _int(row.get(f"accepted_{phase}")) for phase in PHASES}


def reminders_total(source: Source, flt: FunnelFilter) -> RemindersSent:
    """Reminder emails Credly sent for the issued badges (every badge of a chain), and how
    many chains they were for."""
    with cursor(source) as cur:
        prepare(cur, flt)
        row = _all_badges(cur)
    return RemindersSent(_int(row.get("reminders_sent")), _int(row.get("issued")))


def failed_to_issue(source: Source, flt: FunnelFilter) -> int:
    """Completions whose latest issue attempt failed (and that have no badge)."""
    with cursor(source) as cur:
        prepare(cur, flt)
        row = cur.execute("SELECT count(*) FROM fn_l").fetchone()
    return int(row[0]) if row else 0


def blocked_retakes(source: Source, flt: FunnelFilter) -> int:
    """Eligible completions a template's one-badge-per-student setting keeps from a badge
    (the student already has a live one): a side exit, not "eligible, not issued"."""
    return _outcome_count(source, flt, "blocked_retake")


def renewed(source: Source, flt: FunnelFilter) -> int:
    """Completions that renewed a badge (counted among the issued, once each)."""
    with cursor(source) as cur:
        prepare(cur, flt)
        row = cur.execute(
            "SELECT coalesce(sum(renewed), 0) FROM fn_g WHERE course_id IS NOT NULL"
        ).fetchone()
    return int(row[0]) if row else 0


def issued_outside(source: Source, flt: FunnelFilter) -> IssuedOutside:
    """Badge chains no known completion earned, and how many of them were accepted."""
    with cursor(source) as cur:
        prepare(cur, flt)
        row = cur.execute("SELECT issued, accepted FROM fn_out").fetchone()
    return IssuedOutside(_int(row[0]), _int(row[1])) if row else IssuedOutside(0, 0)


def _outcome_count(source: Source, flt: FunnelFilter, outcome: str) -> int:
    with cursor(source) as cur:
        prepare(cur, flt)
        row = cur.execute(
            "SELECT coalesce(sum(n), 0) FROM fn_c WHERE outcome = ?", [outcome]
        ).fetchone()
    return int(row[0]) if row else 0


def skipped_by_reason(source: Source, flt: FunnelFilter) -> dict[str, int]:
    """Completions that will not get a badge, by reason code (largest first): each
    completion once, by its latest decision (the reasons derived from the rules, then the
    ledger's skips of completions without a badge)."""
    with cursor(source) as cur:
        prepare(cur, flt)
        rows = cur.execute(
            """
            SELECT link_reason, sum(n)::BIGINT FROM fn_c WHERE outcome = 'skipped'
            GROUP BY 1 ORDER BY 2 DESC, 1
            """
        ).fetchall()
    return {str(reason): int(count) for reason, count in rows}


def summary(source: Source, flt: FunnelFilter) -> FunnelSummary:
    """Every headline number, in one unit of work."""
    with cursor(source) as cur:
        resolved = prepare(cur, flt)
        comps = completion_counts(cur, resolved)
        states = badge_states(cur, resolved)
        timing = time_to_accept(cur, resolved)
        reminders = reminders_total(cur, resolved)
        outside = issued_outside(cur, resolved)
        return FunnelSummary(
            filter=flt,
            as_of=cast(datetime, resolved.now),
            completions=comps.completions,
            eligible=comps.eligible,
            issued=states.issued,
            accepted=states.accepted,
            pending=states.pending,
            pending_by_reminders=pending_by_reminders(cur, resolved),
            rejected=states.rejected,
            revoked=states.revoked,
            failed=failed_to_issue(cur, resolved),
            skipped=skipped_by_reason(cur, resolved),
            reminders_sent=reminders.total,
            reminders_per_badge=reminders.per_badge,
            acceptance_rate=acceptance_rate(cur, resolved),
            accepted_by_phase=acceptance_by_reminders(cur, resolved),
            median_hours_to_accept=timing.median_hours,
            p90_hours_to_accept=timing.p90_hours,
            renewed=renewed(cur, resolved),
            blocked_retakes=blocked_retakes(cur, resolved),
            issued_outside=outside.issued,
            accepted_outside=outside.accepted,
        )


def summary_rows(result: FunnelSummary) -> list[dict[str, Any]]:
    """The summary as (measure, value) rows, for a CSV or a text table."""
    rows: list[dict[str, Any]] = []
    for key, value in result.as_json().items():
        if isinstance(value, Mapping):
            rows.extend({"measure": f"{key}.{k}", "value": v} for k, v in value.items())
        else:
            rows.append({"measure": key, "value": value})
    return rows


def acceptance_rates(frame: pd.DataFrame) -> pd.Series:
    """Accepted ÷ issued for every row of a table (``NaN`` where nothing was issued)."""
    issued = frame["issued"].where(frame["issued"] > 0)
    return (frame["accepted"] / issued).astype("float64")

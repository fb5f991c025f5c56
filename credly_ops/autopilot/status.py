"""Where automatic issuing stands: what ``autopilot status``, the Autopilot page and the
sidebar line show.

* **state**: ``off`` (Skilljar is not configured: ``missing`` says what), ``paused`` (and why),
  ``shadow`` or ``running``;
* **worker**: ``host:pid`` of a worker whose heartbeat is fresh (none: nothing runs cycles);
* **last / next cycle**; **lag**: the age of the oldest Skilljar completion not yet decided
  (in the current mode; manual-only courses are not waiting, so they never count);
* **today** (UTC day): issued, updated, skipped, failed — in shadow mode, what shadow mode
  decided today — and the reasons.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb

from credly_ops import ledger
from credly_ops.autopilot import records
from credly_ops.autopilot.state import AutopilotState, state_in
from credly_ops.config import SkilljarNotConfigured, SkilljarSettings
from credly_ops.store import Store, from_db_time, to_db_time
from credly_ops.timeutil import utcnow

TODAY_KEYS = ("issued", "updated", "skipped", "failed")


@dataclass(frozen=True)
class AutopilotStatus:
    state: AutopilotState
    configured: bool
    missing: str | None
    worker: str | None
    last_cycle_at: datetime | None
    next_cycle_at: datetime | None
    lag_seconds: float | None
    today: dict[str, int]
    reasons_today: dict[str, int]
    #: how the last cycle ended: ok, paused, unavailable, error
    last_cycle_outcome: str | None = None
    #: automatic rows decided and still to send (held by a pause or a crash)
    waiting: int = 0
    checked_at: datetime = field(default_factory=utcnow)

    @property
    def mode(self) -> str:
        """``off``, ``paused``, ``shadow`` or ``running``."""
        if not self.configured:
            return "off"
        if self.state.paused:
            return "paused"
        return "shadow" if self.state.shadow else "running"

    def sentence(self) -> str:
        """One line for the sidebar."""
        if self.mode == "off":
            return f"Automatic issuing: off (Skilljar not configured: missing {self.missing})"
        if self.mode == "paused":
            return f"Automatic issuing: paused — {self.state.pause_reason or 'no reason given'}"
        head = "shadow mode (nothing sent)" if self.mode == "shadow" else "running"
        worker = "" if self.worker else "; no worker running"
        return (
            f"Automatic issuing: {head}{worker} · today {self.today.get('issued', 0):,} issued, "
            f"{self.today.get('failed', 0):,} failed"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "state": self.mode,
            "paused": self.state.paused,
            "pause_reason": self.state.pause_reason,
            "paused_at": self.state.paused_at.isoformat() if self.state.paused_at else None,
            "paused_by": self.state.paused_by,
            "shadow": self.state.shadow,
            "cap_per_hour": self.state.cap_per_hour,
            "configured": self.configured,
            "missing": self.missing,
            "worker": self.worker,
            "last_cycle_at": self.last_cycle_at.isoformat() if self.last_cycle_at else None,
            "last_cycle_outcome": self.last_cycle_outcome,
            "next_cycle_at": self.next_cycle_at.isoformat() if self.next_cycle_at else None,
            "lag_seconds": None if self.lag_seconds is None else round(self.lag_seconds, 1),
            "waiting": self.waiting,
            "today": dict(self.today),
            "reasons_today": dict(self.reasons_today),
        }


_FINAL_LIVE = (
    "(l.status IN ('succeeded', 'skipped', 'invalid') OR (l.status = 'failed' AND "
    "coalesce(l.error_class, '') NOT IN (SELECT unnest(?::VARCHAR[]))))"
)


def _oldest_waiting(cur: duckdb.DuckDBPyConnection, shadow: bool) -> datetime | None:
    row = cur.execute(
        "SELECT min(c.completed_at) FROM completions c WHERE c.source = ? "
        "AND NOT EXISTS (SELECT 1 FROM badge_rules r WHERE r.course_id = c.course_id "
        "AND r.automatic = FALSE) AND NOT EXISTS (SELECT 1 FROM autopilot_decisions d "
        "LEFT JOIN ledger l ON l.job_id = d.job_id AND l.row_no = d.row_no "
        f"WHERE d.completion_id = c.id AND d.shadow = ? AND (d.shadow OR {_FINAL_LIVE}))",
        [records.SOURCE_SKILLJAR, shadow, sorted(ledger.RETRYABLE_CLASSES)],
    ).fetchone()
    return from_db_time(row[0]) if row else None


def _today(
    cur: duckdb.DuckDBPyConnection, shadow: bool, since: datetime
) -> tuple[dict[str, int], dict[str, int]]:
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    if shadow:
        rows = cur.execute(
            "SELECT CASE outcome WHEN 'issue' THEN 'issued' WHEN 'update' THEN 'updated' "
            "ELSE 'skipped' END, reason, count(*) FROM autopilot_decisions "
            "WHERE shadow AND decided_at >= ? GROUP BY ALL",
            [to_db_time(since)],
        ).fetchall()
    else:
        rows = cur.execute(
            f"SELECT CASE WHEN o = 'invalid' THEN 'skipped' ELSE o END, r, n FROM ("
            f"SELECT {ledger.OUTCOME_SQL} AS o, {ledger.REASON_SQL} AS r, count(*) AS n "
            "FROM ledger WHERE job_id IN (SELECT id FROM jobs WHERE kind = ?) "
            "AND status IN ('succeeded', 'failed', 'skipped', 'invalid') AND updated_at >= ? "
            "GROUP BY ALL)",
            [ledger.JOB_KIND_AUTOMATIC, to_db_time(since)],
        ).fetchall()
    for outcome, reason, n in rows:
        counts[str(outcome)] += int(n)
        reasons[str(reason)] += int(n)
    ordered = dict(sorted(reasons.items(), key=lambda item: (-item[1], item[0])))
    return {k: counts.get(k, 0) for k in TODAY_KEYS}, ordered


def autopilot_status(
    store: Store,
    *,
    skilljar: SkilljarSettings | SkilljarNotConfigured,
    now: datetime | None = None,
) -> AutopilotStatus:
    moment = now or utcnow()
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    with store.session() as cur:
        state = state_in(cur)
        worker = records.live_worker(cur, moment)
        last_at, last_outcome = records.last_cycle(cur)
        oldest = _oldest_waiting(cur, state.shadow)
        today, reasons = _today(cur, state.shadow, midnight)
        waiting = records.rows_waiting(cur)
    missing = None
    if isinstance(skilljar, SkilljarNotConfigured):
        missing = " and ".join(skilljar.missing)
    lag = None if oldest is None else max((moment - oldest).total_seconds(), 0.0)
    return AutopilotStatus(
        state=state,
        configured=skilljar.configured,
        missing=missing,
        worker=None if worker is None else worker.runner,
        last_cycle_at=last_at,
        next_cycle_at=None if worker is None else worker.next_cycle_at,
        lag_seconds=lag,
        today=today,
        reasons_today=reasons,
        last_cycle_outcome=last_outcome,
        waiting=waiting,
        checked_at=moment,
    )


def recent_decisions(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    """The latest automatic decisions, live and shadow, newest first: the completion, what
    became of it (live: the ledger row's outcome now; shadow: ``would_issue`` …), the badge."""
    with store.session() as cur:
        rows = cur.execute(
            f"WITH l AS (SELECT job_id, row_no, {ledger.OUTCOME_SQL} AS report, "
            f"{ledger.REASON_SQL} AS why, badge_id, updated_at FROM ledger WHERE job_id IN "
            "(SELECT DISTINCT job_id FROM autopilot_decisions WHERE NOT shadow)) "
            "SELECT coalesce(l.updated_at, d.decided_at) AS moment, d.shadow, d.email, "
            "d.course_id, d.completed_at, CASE WHEN d.shadow THEN (CASE d.outcome "
            "WHEN 'issue' THEN 'would_issue' WHEN 'update' THEN 'would_update' ELSE d.outcome END) "
            "ELSE l.report END, CASE WHEN d.shadow THEN d.reason ELSE l.why END, "
            "coalesce(l.badge_id, d.matched_badge_id), d.job_id, d.row_no "
            "FROM autopilot_decisions d LEFT JOIN l ON l.job_id = d.job_id AND "
            "l.row_no = d.row_no ORDER BY moment DESC, d.job_id DESC, d.row_no DESC LIMIT ?",
            [limit],
        ).fetchall()
    return [
        {
            "at": from_db_time(r[0]),
            "mode": "shadow" if r[1] else "live",
            "email": r[2] or "",
            "course_id": r[3] or "",
            "completed_at": from_db_time(r[4]),
            "outcome": r[5] or "",
            "reason": r[6] or "",
            "badge_id": r[7] or "",
            "job_id": r[8],
            "row": int(r[9]),
        }
        for r in rows
    ]


def failures(store: Store, limit: int = 200) -> list[dict[str, Any]]:
    """Automatic rows that failed, newest first, and whether the next cycle sends them again."""
    with store.session() as cur:
        rows = cur.execute(
            "SELECT l.updated_at, l.email, l.course_id, l.completed_at, l.error_class, "
            "l.error_message, l.job_id, l.row_no FROM ledger l JOIN jobs j ON j.id = l.job_id "
            "WHERE j.kind = ? AND l.status = ? ORDER BY l.updated_at DESC LIMIT ?",
            [ledger.JOB_KIND_AUTOMATIC, ledger.ROW_FAILED, limit],
        ).fetchall()
    return [
        {
            "at": from_db_time(r[0]),
            "email": r[1] or "",
            "course_id": r[2] or "",
            "completed_at": from_db_time(r[3]),
            "error": r[4] or "credly_error",
            "message": r[5] or "",
            "retried_next_cycle": (r[4] or "") in ledger.RETRYABLE_CLASSES,
            "job_id": r[6],
            "row": int(r[7]),
        }
        for r in rows
    ]


def lag_text(seconds: float | None) -> str:
    """A lag as people read it."""
    if seconds is None:
        return "nothing waiting"
    return str(timedelta(seconds=int(seconds)))

"""What automatic issuing keeps beside the ledger: which completion each decision was about,
the workers' heartbeats and the cycles they ran (tables ``autopilot_decisions``,
``autopilot_workers``, ``autopilot_cycles``, schema migration 7).

**Decided** (live mode): a completion has a row in ``autopilot_decisions`` pointing at a ledger
row of an ``automatic`` job. That row is final (succeeded, skipped, invalid, or failed with a
final error class), or still in hand: planned or in flight in an unfinished job (a pause, a
crash), or failed with a retryable class; those are sent by the next cycle, never decided
twice. Shadow decisions (``shadow = TRUE``) carry their outcome themselves and never count as
decided for live mode.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from credly_ops import ledger
from credly_ops.issuance.plan import PlannedRow
from credly_ops.models import Completion, SuccessStatus
from credly_ops.runners import runner_is_gone, this_runner
from credly_ops.store import Store, from_db_time, to_db_time
from credly_ops.timeutil import utcnow

SOURCE_SKILLJAR = "skilljar"

_DECISION_COLUMNS = (
    "job_id",
    "row_no",
    "completion_id",
    "shadow",
    "decided_at",
    "email",
    "course_id",
    "template_id",
    "completed_at",
    "outcome",
    "reason",
    "issued_at",
    "expires_at",
    "matched_badge_id",
)
_STATUSES = {s.value for s in SuccessStatus}


@dataclass(frozen=True)
class Undecided:
    completion_id: str
    completion: Completion


def undecided(cur: duckdb.DuckDBPyConnection, *, shadow: bool) -> list[Undecided]:
    """Skilljar completions with no decision of this mode yet, oldest first; completions of a
    manual-only rule's course are left out (bulk issue handles them)."""
    rows = cur.execute(
        "SELECT c.id, c.email, c.first_name, c.last_name, c.course_id, c.course_title, "
        "c.completed_at, c.status, c.score FROM completions c WHERE c.source = ? "
        "AND NOT EXISTS (SELECT 1 FROM autopilot_decisions d WHERE d.completion_id = c.id "
        "AND d.shadow = ?) AND NOT EXISTS (SELECT 1 FROM badge_rules r "
        "WHERE r.course_id = c.course_id AND r.automatic = FALSE) "
        "ORDER BY c.completed_at, c.id",
        [SOURCE_SKILLJAR, shadow],
    ).fetchall()
    out: list[Undecided] = []
    for number, r in enumerate(rows, start=1):
        completed_at = from_db_time(r[6])
        if completed_at is None:
            continue
        out.append(
            Undecided(
                str(r[0]),
                Completion(
                    email=r[1] or "",
                    first_name=r[2] or "",
                    last_name=r[3] or "",
                    course_id=r[4] or "",
                    course_title=r[5] or "",
                    completed_at=completed_at,
                    status=SuccessStatus(r[7]) if r[7] in _STATUSES else None,
                    score=r[8],
                    row=number,
                ),
            )
        )
    return out


def insert_decisions(
    cur: duckdb.DuckDBPyConnection,
    job_id: str,
    rows: Sequence[PlannedRow],
    completion_ids: Mapping[int, str],
    *,
    shadow: bool,
    decided_at: datetime,
) -> None:
    """One decision per plan row (``completion_ids``: row number → completion id)."""
    records = [
        (
            job_id,
            r.row,
            completion_ids[r.row],
            shadow,
            to_db_time(decided_at),
            r.email,
            r.course_id,
            r.template_id,
            to_db_time(r.completed_at),
            r.outcome,
            r.reason,
            to_db_time(r.issued_at),
            to_db_time(r.expires_at),
            r.target_badge_id if r.outcome == "update" else r.matched_badge_id,
        )
        for r in rows
    ]
    frame = pd.DataFrame.from_records(records, columns=list(_DECISION_COLUMNS))
    for column in ("decided_at", "completed_at", "issued_at", "expires_at"):
        frame[column] = pd.to_datetime(frame[column])
    for column in ("template_id", "matched_badge_id"):
        frame[column] = frame[column].astype("object")
    frame["shadow"] = frame["shadow"].astype(bool)
    columns = ", ".join(_DECISION_COLUMNS)
    cur.register("incoming_decisions", frame)
    try:
        cur.execute(
            f"INSERT INTO autopilot_decisions ({columns}) SELECT {columns} FROM incoming_decisions"
        )
    finally:
        cur.unregister("incoming_decisions")


def jobs_with_retryable(cur: duckdb.DuckDBPyConnection) -> list[str]:
    """Automatic jobs holding failures of a retryable class."""
    rows = cur.execute(
        "SELECT DISTINCT l.job_id FROM ledger l JOIN jobs j ON j.id = l.job_id WHERE j.kind = ? "
        "AND l.status = ? AND l.error_class IN (SELECT unnest(?::VARCHAR[])) ORDER BY 1",
        [ledger.JOB_KIND_AUTOMATIC, ledger.ROW_FAILED, sorted(ledger.RETRYABLE_CLASSES)],
    ).fetchall()
    return [str(r[0]) for r in rows]


def jobs_to_run(cur: duckdb.DuckDBPyConnection) -> list[str]:
    """Automatic jobs with rows still to send, oldest first."""
    rows = cur.execute(
        "SELECT j.id FROM jobs j WHERE j.kind = ? AND EXISTS (SELECT 1 FROM ledger l "
        "WHERE l.job_id = j.id AND l.status IN (?, ?)) ORDER BY j.created_at, j.id",
        [ledger.JOB_KIND_AUTOMATIC, *ledger.PENDING_ROW_STATES],
    ).fetchall()
    return [str(r[0]) for r in rows]


def rows_waiting(cur: duckdb.DuckDBPyConnection) -> int:
    """Automatic rows decided and still to send (held by a pause, or by a crash)."""
    row = cur.execute(
        "SELECT count(*) FROM ledger l JOIN jobs j ON j.id = l.job_id WHERE j.kind = ? "
        "AND l.status IN (?, ?)",
        [ledger.JOB_KIND_AUTOMATIC, *ledger.PENDING_ROW_STATES],
    ).fetchone()
    return int(row[0]) if row else 0


def tally_since(cur: duckdb.DuckDBPyConnection, since: datetime) -> list[tuple[str, str, int]]:
    """(report outcome, reason, rows) of automatic rows that ended since ``since``."""
    rows = cur.execute(
        f"SELECT {ledger.OUTCOME_SQL} AS outcome, {ledger.REASON_SQL} AS reason, count(*) "
        "FROM ledger WHERE job_id IN (SELECT id FROM jobs WHERE kind = ?) "
        "AND status IN (?, ?, ?, ?) AND updated_at >= ? GROUP BY ALL",
        [
            ledger.JOB_KIND_AUTOMATIC,
            ledger.ROW_SUCCEEDED,
            ledger.ROW_FAILED,
            ledger.ROW_SKIPPED,
            ledger.ROW_INVALID,
            to_db_time(since),
        ],
    ).fetchall()
    return [(str(o), str(r), int(n)) for o, r, n in rows]


# -- workers and cycles ----------------------------------------------------------------------

#: a worker whose heartbeat is older than this is gone
WORKER_STALE_AFTER = timedelta(seconds=ledger.STALE_AFTER_SECONDS)


def beat(store: Store, *, next_cycle_at: datetime | None = None, stopped: bool = False) -> None:
    """This process's heartbeat as an automatic-issuing worker."""
    now = to_db_time(utcnow())
    with store.transaction() as cur:
        cur.execute(
            "INSERT INTO autopilot_workers (runner, started_at, heartbeat_at, next_cycle_at, "
            "stopped_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (runner) DO UPDATE SET "
            "heartbeat_at = excluded.heartbeat_at, "
            "next_cycle_at = coalesce(excluded.next_cycle_at, autopilot_workers.next_cycle_at), "
            "stopped_at = excluded.stopped_at",
            [this_runner(), now, now, to_db_time(next_cycle_at), now if stopped else None],
        )


@dataclass(frozen=True)
class Worker:
    runner: str
    heartbeat_at: datetime
    next_cycle_at: datetime | None


def live_worker(cur: duckdb.DuckDBPyConnection, now: datetime) -> Worker | None:
    """The most recent worker whose heartbeat is fresh and whose process is not gone."""
    rows = cur.execute(
        "SELECT runner, heartbeat_at, next_cycle_at FROM autopilot_workers "
        "WHERE stopped_at IS NULL AND heartbeat_at >= ? ORDER BY heartbeat_at DESC",
        [to_db_time(now - WORKER_STALE_AFTER)],
    ).fetchall()
    for runner, beat_at, next_at in rows:
        if runner_is_gone(runner):
            continue
        at = from_db_time(beat_at)
        assert at is not None
        return Worker(str(runner), at, from_db_time(next_at))
    return None


def start_cycle(store: Store, *, shadow: bool) -> str:
    cycle_id = f"cycle-{utcnow():%Y%m%d%H%M%S}-{uuid.uuid4().hex[:6]}"
    with store.transaction() as cur:
        cur.execute(
            "INSERT INTO autopilot_cycles (id, runner, started_at, shadow, outcome) "
            "VALUES (?, ?, ?, ?, 'running')",
            [cycle_id, this_runner(), to_db_time(utcnow()), shadow],
        )
    return cycle_id


def finish_cycle(store: Store, cycle_id: str, outcome: str, result: Mapping[str, Any]) -> None:
    with store.transaction() as cur:
        cur.execute(
            "UPDATE autopilot_cycles SET finished_at = ?, outcome = ?, result = ? WHERE id = ?",
            [to_db_time(utcnow()), outcome, json.dumps(dict(result), default=str), cycle_id],
        )


def last_cycle(cur: duckdb.DuckDBPyConnection) -> tuple[datetime | None, str | None]:
    """When the last finished cycle ended, and how."""
    row = cur.execute(
        "SELECT finished_at, outcome FROM autopilot_cycles WHERE finished_at IS NOT NULL "
        "ORDER BY finished_at DESC LIMIT 1"
    ).fetchone()
    return (None, None) if row is None else (from_db_time(row[0]), str(row[1]))

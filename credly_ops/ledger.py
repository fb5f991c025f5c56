"""The ledger: jobs and their rows — the one module that writes them.

One piece on purpose: it is the single owner of every statement that writes ``jobs`` and
``ledger`` (the claims, the decisions, the results), so no other module can write them a second
way.

Every job that sends something to Credly (a bulk issue, a single re-issue from the Student
preview) is a row of ``jobs`` and one ``ledger`` row per input row. This module owns their
columns, the mapping between ledger rows and the engine's values, and every statement that
writes them; the runner (:mod:`credly_ops.issuance.run`), the job API
(:mod:`credly_ops.issuance.jobs`) and the support actions call these functions inside their
own units of work (each function takes the caller's cursor).

**Job status**: ``planned`` → ``running`` → ``done`` | ``done_with_failures`` | ``interrupted``.
A ``running`` job's runner refreshes ``heartbeat_at`` every :data:`HEARTBEAT_SECONDS`; a job
whose heartbeat is older than :data:`STALE_AFTER_SECONDS` has lost its runner (the process died)
and may be taken over; one with a fresh heartbeat is running, here or in another process, and
is never run twice.

**Row status**: rows that send start ``planned``, move to ``in_flight`` (committed before the
request goes out) and end ``succeeded`` (with the badge id) or ``failed`` (with the error class,
a :attr:`CredlyError.kind <credly_ops.credly.errors.CredlyError.kind>`); rows that send nothing
are ``skipped`` (``badge_id`` names the badge that decided the skip, when one did) or
``invalid``. A row is decided again just before it is sent; ``planned_outcome`` and
``planned_reason`` keep what the plan a person saw said, so a report can tell which rows changed
decision since, and why (the row's ``outcome`` and ``reason`` are the latest decision).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from credly_ops.links import relink
from credly_ops.models import normalize_email
from credly_ops.runners import runner_is_gone, this_runner
from credly_ops.store import from_db_time, to_db_time

JOB_KIND_BULK = "bulk_issue"
JOB_KIND_REISSUE = "reissue"
#: automatic issuing's jobs (credly_ops.autopilot): one per cycle that took new completions in
JOB_KIND_AUTOMATIC = "automatic"
#: automatic issuing in shadow mode: a record of what it would have sent; never run
JOB_KIND_SHADOW = "automatic_shadow"
#: the kinds of job that send rows through the runner
RUNNABLE_KINDS: tuple[str, ...] = (JOB_KIND_BULK, JOB_KIND_REISSUE, JOB_KIND_AUTOMATIC)

JOB_PLANNED = "planned"
JOB_RUNNING = "running"
JOB_DONE = "done"
JOB_DONE_WITH_FAILURES = "done_with_failures"
JOB_INTERRUPTED = "interrupted"
#: a job in one of these states may still send rows
UNFINISHED_JOB_STATES: tuple[str, ...] = (JOB_PLANNED, JOB_RUNNING, JOB_INTERRUPTED)

ROW_PLANNED = "planned"
ROW_IN_FLIGHT = "in_flight"
ROW_SUCCEEDED = "succeeded"
ROW_FAILED = "failed"
ROW_SKIPPED = "skipped"
ROW_INVALID = "invalid"
#: ledger rows still to send
PENDING_ROW_STATES: tuple[str, ...] = (ROW_PLANNED, ROW_IN_FLIGHT)

#: error classes worth sending again; every other class (invalid_token, template_inactive,
#: duplicate, validation_failed, forbidden, …) is final
RETRYABLE_CLASSES: frozenset[str] = frozenset(
    {"network", "timeout", "outcome_unknown", "server_error", "rate_limited", "interrupted"}
)

#: how often a running job refreshes ``jobs.heartbeat_at``
HEARTBEAT_SECONDS = 5.0
#: a ``running`` job whose heartbeat is older than this has lost its runner
STALE_AFTER_SECONDS = 30.0
#: longest error message kept in the ledger
MESSAGE_LIMIT = 500

#: the ledger's columns, in the order :func:`insert_rows` writes them
LEDGER_COLUMNS: tuple[str, ...] = (
    "job_id",
    "row_no",
    "key",
    "email",
    "first_name",
    "last_name",
    "course_id",
    "course_title",
    "completed_at",
    "date_only",
    "success_status",
    "template_id",
    "outcome",
    "reason",
    "flags",
    "issued_at",
    "expires_at",
    "target_badge_id",
    "status",
    "badge_id",
    "error_class",
    "error_message",
    "attempts",
    "planned_outcome",
    "planned_reason",
    "updated_at",
)
_TIME_COLUMNS = ("completed_at", "issued_at", "expires_at", "updated_at")
_TEXT_COLUMNS = (
    "badge_id",
    "error_class",
    "error_message",
    "target_badge_id",
    "success_status",
    "planned_outcome",
    "planned_reason",
)


class JobNotFound(LookupError):
    """No job has this id."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job {job_id!r} in the cache")
        self.job_id = job_id


# -- rows as the engine and the runner see them ----------------------------------------------


@dataclass(frozen=True, slots=True)
class NewRow:
    """One row of a new job: the completion and what the plan decided for it."""

    row_no: int
    key: str
    email: str
    first_name: str
    last_name: str
    course_id: str
    course_title: str
    completed_at: datetime | None
    date_only: bool
    success_status: str | None
    template_id: str
    outcome: str
    reason: str
    flags: frozenset[str]
    issued_at: datetime | None
    expires_at: datetime | None
    target_badge_id: str | None
    matched_badge_id: str | None
    detail: str = ""

    @property
    def sends(self) -> bool:
        return self.outcome in ("issue", "update")

    @property
    def initial_status(self) -> str:
        if self.sends:
            return ROW_PLANNED
        return ROW_INVALID if self.outcome == "invalid" else ROW_SKIPPED


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """A row still to send, as the runner reads it."""

    job_id: str
    row_no: int
    key: str
    email: str
    first_name: str
    last_name: str
    course_id: str
    course_title: str
    completed_at: datetime
    date_only: bool
    success_status: str | None
    template_id: str
    outcome: str
    reason: str
    flags: frozenset[str]
    issued_at: datetime | None
    expires_at: datetime | None
    target_badge_id: str | None
    status: str
    attempts: int


@dataclass(frozen=True, slots=True)
class History:
    """A row of any job that sent, or is sending, for a student and template."""

    job_id: str
    row_no: int
    email: str
    template_id: str
    outcome: str
    status: str
    badge_id: str | None
    target_badge_id: str | None
    issued_at: datetime | None
    expires_at: datetime | None
    job_status: str
    heartbeat_at: datetime | None
    runner: str | None = None

    def job_alive(self, now: datetime) -> bool:
        return is_alive(self.job_status, self.heartbeat_at, now, self.runner)


@dataclass(frozen=True, slots=True)
class Decided:
    """A new decision for a row (at send time): what to write over the row's current one."""

    row_no: int
    outcome: str
    reason: str
    flags: frozenset[str]
    template_id: str
    issued_at: datetime | None
    expires_at: datetime | None
    target_badge_id: str | None
    #: the badge that decided a skip
    matched_badge_id: str | None = None


@dataclass(frozen=True, slots=True)
class Finish:
    """How a sent (or given-up) row ended."""

    row_no: int
    status: str
    badge_id: str | None = None
    reason: str | None = None
    error_class: str | None = None
    error_message: str | None = None
    #: claimed but never sent: the claim's attempt is given back
    unsent: bool = False


def _flags(text: str | None) -> frozenset[str]:
    return frozenset(f for f in (text or "").split(",") if f)


def _flag_text(flags: Iterable[str]) -> str:
    return ",".join(sorted(flags))


# -- jobs ------------------------------------------------------------------------------------


def insert_job(
    cur: duckdb.DuckDBPyConnection,
    *,
    job_id: str,
    kind: str,
    created_at: datetime,
    created_by: str,
    source_name: str,
    status: str,
    rows: int,
    options: Mapping[str, Any] | None = None,
    source_sha256: str | None = None,
) -> None:
    cur.execute(
        "INSERT INTO jobs (id, kind, created_at, created_by, source_name, source_sha256, "
        "status, options, rows) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            job_id,
            kind,
            to_db_time(created_at),
            created_by,
            source_name,
            source_sha256,
            status,
            json.dumps(dict(options or {}), sort_keys=True, default=str),
            rows,
        ],
    )


def insert_rows(
    cur: duckdb.DuckDBPyConnection, job_id: str, rows: Sequence[NewRow], now: datetime
) -> None:
    """The job's ledger rows in one statement; ``planned_*`` is the plan's decision."""
    stamp = to_db_time(now)
    records = [
        (
            job_id,
            r.row_no,
            r.key,
            r.email,
            r.first_name,
            r.last_name,
            r.course_id,
            r.course_title,
            to_db_time(r.completed_at),
            bool(r.date_only),
            r.success_status,
            r.template_id,
            r.outcome,
            r.reason,
            _flag_text(r.flags),
            to_db_time(r.issued_at),
            to_db_time(r.expires_at),
            r.target_badge_id,
            r.initial_status,
            None if r.sends else r.matched_badge_id,
            None,
            r.detail or None,
            0,
            r.outcome,
            r.reason,
            stamp,
        )
        for r in rows
    ]
    frame = pd.DataFrame.from_records(records, columns=list(LEDGER_COLUMNS))
    for column in _TIME_COLUMNS:
        frame[column] = pd.to_datetime(frame[column])
    for column in _TEXT_COLUMNS:
        frame[column] = frame[column].astype("object")
    frame["date_only"] = frame["date_only"].astype(bool)
    columns = ", ".join(LEDGER_COLUMNS)
    cur.register("incoming_ledger", frame)
    try:
        cur.execute(f"INSERT INTO ledger ({columns}) SELECT {columns} FROM incoming_ledger")
    finally:
        cur.unregister("incoming_ledger")
    _relink_rows(cur, job_id, [r.row_no for r in rows if not r.sends])


def _relink_rows(cur: duckdb.DuckDBPyConnection, job_id: str, row_nos: Sequence[int]) -> None:
    """The completion → badge link of these rows' students, after their decision or result
    changed (a row that succeeded is relinked when its badge reaches the cache)."""
    if not row_nos:
        return
    emails = cur.execute(
        "SELECT DISTINCT email FROM ledger WHERE job_id = ? AND email IS NOT NULL "
        "AND row_no IN (SELECT unnest(?::INTEGER[]))",
        [job_id, list(row_nos)],
    ).fetchall()
    if emails:
        relink(cur, [normalize_email(str(e)) for (e,) in emails])


def unfinished_job(cur: duckdb.DuckDBPyConnection, kind: str, sha256: str) -> str | None:
    """The latest unfinished job of ``kind`` made from a file with this SHA-256, if any."""
    row = cur.execute(
        "SELECT id FROM jobs WHERE kind = ? AND source_sha256 = ? AND status IN (?, ?, ?) "
        "ORDER BY created_at DESC LIMIT 1",
        [kind, sha256, *UNFINISHED_JOB_STATES],
    ).fetchone()
    return None if row is None else str(row[0])


@dataclass(frozen=True)
class JobState:
    job_id: str
    kind: str
    status: str
    heartbeat_at: datetime | None
    options: dict[str, Any]
    runner: str | None = None

    def alive(self, now: datetime) -> bool:
        """A runner works on it (here or elsewhere): see :func:`is_alive`."""
        return is_alive(self.status, self.heartbeat_at, now, self.runner)


def is_alive(
    status: str, heartbeat_at: datetime | None, now: datetime, runner: str | None = None
) -> bool:
    """A ``running`` job with a fresh heartbeat whose runner is not known to be gone (a runner
    on this host whose process has ended is dead at once, without waiting for the heartbeat to
    go stale)."""
    if status != JOB_RUNNING or heartbeat_at is None:
        return False
    if now - heartbeat_at >= timedelta(seconds=STALE_AFTER_SECONDS):
        return False
    return not runner_is_gone(runner)


def job_state(
    cur: duckdb.DuckDBPyConnection, job_id: str, kinds: Sequence[str] = RUNNABLE_KINDS
) -> JobState:
    row = cur.execute(
        "SELECT id, kind, status, heartbeat_at, options, runner FROM jobs WHERE id = ? "
        "AND kind IN (SELECT unnest(?::VARCHAR[]))",
        [job_id, list(kinds)],
    ).fetchone()
    if row is None:
        raise JobNotFound(job_id)
    return JobState(
        str(row[0]), str(row[1]), str(row[2]), from_db_time(row[3]), _options(row[4]), row[5]
    )


def _options(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def start_job(cur: duckdb.DuckDBPyConnection, job_id: str, now: datetime) -> None:
    """The job ``running`` in this process (``host:pid``), its heartbeat now."""
    stamp = to_db_time(now)
    cur.execute(
        "UPDATE jobs SET status = ?, started_at = coalesce(started_at, ?), finished_at = NULL, "
        "heartbeat_at = ?, runner = ? WHERE id = ?",
        [JOB_RUNNING, stamp, stamp, this_runner(), job_id],
    )


def heartbeat(cur: duckdb.DuckDBPyConnection, job_id: str, now: datetime) -> None:
    cur.execute("UPDATE jobs SET heartbeat_at = ? WHERE id = ?", [to_db_time(now), job_id])


def status_counts(cur: duckdb.DuckDBPyConnection, job_id: str) -> dict[str, int]:
    rows = cur.execute(
        "SELECT status, count(*) FROM ledger WHERE job_id = ? GROUP BY status", [job_id]
    ).fetchall()
    return {str(status): int(n) for status, n in rows}


def end_job(cur: duckdb.DuckDBPyConnection, job_id: str, status: str, now: datetime) -> None:
    """The job's final status (``interrupted`` keeps no finish time: it may go on)."""
    stamp = to_db_time(now)
    cur.execute(
        "UPDATE jobs SET status = ?, finished_at = ?, heartbeat_at = ? WHERE id = ?",
        [status, None if status == JOB_INTERRUPTED else stamp, stamp, job_id],
    )


def final_status(counts: Mapping[str, int], *, interrupted: bool) -> str:
    """What a job that stopped is, from its rows per status."""
    pending = sum(counts.get(s, 0) for s in PENDING_ROW_STATES)
    if interrupted or pending:
        return JOB_INTERRUPTED
    if counts.get(ROW_FAILED, 0):
        return JOB_DONE_WITH_FAILURES
    return JOB_DONE


# -- the rows a runner sends -----------------------------------------------------------------

_ROW_SELECT = (
    "SELECT job_id, row_no, key, email, first_name, last_name, course_id, course_title, "
    "completed_at, coalesce(date_only, FALSE), success_status, template_id, outcome, reason, "
    "flags, issued_at, expires_at, target_badge_id, status, attempts FROM ledger"
)


def _ledger_row(r: Sequence[Any]) -> LedgerRow | None:
    completed_at = from_db_time(r[8])
    if completed_at is None:
        return None
    return LedgerRow(
        job_id=str(r[0]),
        row_no=int(r[1]),
        key=str(r[2]),
        email=r[3] or "",
        first_name=r[4] or "",
        last_name=r[5] or "",
        course_id=r[6] or "",
        course_title=r[7] or "",
        completed_at=completed_at,
        date_only=bool(r[9]),
        success_status=r[10],
        template_id=r[11] or "",
        outcome=str(r[12]),
        reason=str(r[13]),
        flags=_flags(r[14]),
        issued_at=from_db_time(r[15]),
        expires_at=from_db_time(r[16]),
        target_badge_id=r[17],
        status=str(r[18]),
        attempts=int(r[19] or 0),
    )


def pending_rows(cur: duckdb.DuckDBPyConnection, job_id: str) -> list[LedgerRow]:
    """The job's rows still to send (planned or in flight), in the order to send them."""
    rows = cur.execute(
        f"{_ROW_SELECT} WHERE job_id = ? AND status IN (?, ?) ORDER BY completed_at, row_no",
        [job_id, *PENDING_ROW_STATES],
    ).fetchall()
    return [row for r in rows if (row := _ledger_row(r)) is not None]


def history(cur: duckdb.DuckDBPyConnection, emails: Iterable[str]) -> list[History]:
    """Every row, of any job, that sent or is sending for these students, oldest first.

    Only rows that can have reached Credly: ``succeeded`` (with the badge) and ``in_flight``.
    Update rows of old jobs may name their target as ``planned:<row>`` of the same job.
    """
    keys = sorted({e for e in emails if e})
    if not keys:
        return []
    rows = cur.execute(
        "SELECT l.job_id, l.row_no, l.email, l.template_id, l.outcome, l.status, l.badge_id, "
        "l.target_badge_id, l.issued_at, l.expires_at, j.status, j.heartbeat_at, j.runner "
        "FROM ledger l JOIN jobs j ON j.id = l.job_id "
        "WHERE l.email IN (SELECT unnest(?::VARCHAR[])) AND l.status IN (?, ?) "
        "AND l.outcome IN ('issue', 'update') ORDER BY l.updated_at, l.job_id, l.row_no",
        [keys, ROW_SUCCEEDED, ROW_IN_FLIGHT],
    ).fetchall()
    return [
        History(
            job_id=str(r[0]),
            row_no=int(r[1]),
            email=r[2] or "",
            template_id=r[3] or "",
            outcome=str(r[4]),
            status=str(r[5]),
            badge_id=r[6],
            target_badge_id=r[7],
            issued_at=from_db_time(r[8]),
            expires_at=from_db_time(r[9]),
            job_status=str(r[10]),
            heartbeat_at=from_db_time(r[11]),
            runner=r[12],
        )
        for r in rows
    ]


def created_badges(
    cur: duckdb.DuckDBPyConnection, job_ids: Iterable[str]
) -> dict[str, dict[int, str]]:
    """Per job, the badge each succeeded issue or update row made (for ``planned:<row>``)."""
    ids = sorted(set(job_ids))
    if not ids:
        return {}
    rows = cur.execute(
        "SELECT job_id, row_no, badge_id FROM ledger WHERE job_id IN (SELECT unnest(?::VARCHAR[])) "
        "AND status = ? AND badge_id IS NOT NULL AND outcome IN ('issue', 'update')",
        [ids, ROW_SUCCEEDED],
    ).fetchall()
    out: dict[str, dict[int, str]] = {}
    for job_id, row_no, badge_id in rows:
        out.setdefault(str(job_id), {})[int(row_no)] = str(badge_id)
    return out


def write_decisions(
    cur: duckdb.DuckDBPyConnection, job_id: str, decided: Sequence[Decided], now: datetime
) -> None:
    """Replace rows' current decisions (the plan's stays in ``planned_*``). A decision that
    sends leaves the row ``planned``; one that does not ends it ``skipped`` or ``invalid``."""
    if not decided:
        return
    statuses = [
        ROW_PLANNED
        if d.outcome in ("issue", "update")
        else (ROW_INVALID if d.outcome == "invalid" else ROW_SKIPPED)
        for d in decided
    ]
    cur.execute(
        "UPDATE ledger SET outcome = v.outcome, reason = v.reason, flags = v.flags, "
        "template_id = v.template_id, issued_at = v.issued_at, expires_at = v.expires_at, "
        "target_badge_id = v.target, status = v.status, badge_id = v.matched, updated_at = ? "
        "FROM (SELECT unnest(?::INTEGER[]) AS row_no, unnest(?::VARCHAR[]) AS outcome, "
        "unnest(?::VARCHAR[]) AS reason, unnest(?::VARCHAR[]) AS flags, "
        "unnest(?::VARCHAR[]) AS template_id, unnest(?::TIMESTAMP[]) AS issued_at, "
        "unnest(?::TIMESTAMP[]) AS expires_at, unnest(?::VARCHAR[]) AS target, "
        "unnest(?::VARCHAR[]) AS status, unnest(?::VARCHAR[]) AS matched) v "
        "WHERE ledger.job_id = ? AND ledger.row_no = v.row_no AND ledger.status IN (?, ?)",
        [
            to_db_time(now),
            [d.row_no for d in decided],
            [d.outcome for d in decided],
            [d.reason for d in decided],
            [_flag_text(d.flags) for d in decided],
            [d.template_id for d in decided],
            [to_db_time(d.issued_at) for d in decided],
            [to_db_time(d.expires_at) for d in decided],
            [d.target_badge_id for d in decided],
            statuses,
            [None if d.outcome in ("issue", "update") else d.matched_badge_id for d in decided],
            job_id,
            *PENDING_ROW_STATES,
        ],
    )
    _relink_rows(cur, job_id, [d.row_no for d in decided if d.outcome not in ("issue", "update")])


def mark_in_flight(
    cur: duckdb.DuckDBPyConnection, job_id: str, row_nos: Sequence[int], now: datetime
) -> None:
    """Claimed: committed ``in_flight`` (one more attempt) before the request goes out."""
    if row_nos:
        cur.execute(
            "UPDATE ledger SET status = ?, attempts = attempts + 1, updated_at = ? "
            "WHERE job_id = ? AND row_no IN (SELECT unnest(?::INTEGER[]))",
            [ROW_IN_FLIGHT, to_db_time(now), job_id, list(row_nos)],
        )


def give_back(
    cur: duckdb.DuckDBPyConnection, job_id: str, row_nos: Sequence[int], now: datetime
) -> None:
    """Claimed but never sent: back to ``planned``, the claim's attempt given back."""
    if row_nos:
        cur.execute(
            "UPDATE ledger SET status = ?, attempts = greatest(attempts - 1, 0), updated_at = ? "
            "WHERE job_id = ? AND status = ? AND row_no IN (SELECT unnest(?::INTEGER[]))",
            [ROW_PLANNED, to_db_time(now), job_id, ROW_IN_FLIGHT, list(row_nos)],
        )


def finish_rows(
    cur: duckdb.DuckDBPyConnection, job_id: str, items: Sequence[Finish], now: datetime
) -> None:
    if not items:
        return
    cur.execute(
        "UPDATE ledger SET status = v.status, badge_id = v.badge_id, "
        "reason = coalesce(v.reason, ledger.reason), error_class = v.error_class, "
        "error_message = v.error_message, updated_at = ?, "
        "attempts = greatest(ledger.attempts - v.unsent, 0) "
        "FROM (SELECT unnest(?::INTEGER[]) AS row_no, unnest(?::VARCHAR[]) AS status, "
        "unnest(?::VARCHAR[]) AS badge_id, unnest(?::VARCHAR[]) AS reason, "
        "unnest(?::VARCHAR[]) AS error_class, unnest(?::VARCHAR[]) AS error_message, "
        "unnest(?::INTEGER[]) AS unsent) v "
        "WHERE ledger.job_id = ? AND ledger.row_no = v.row_no",
        [
            to_db_time(now),
            [i.row_no for i in items],
            [i.status for i in items],
            [i.badge_id for i in items],
            [i.reason for i in items],
            [i.error_class for i in items],
            [None if i.error_message is None else i.error_message[:MESSAGE_LIMIT] for i in items],
            [int(i.unsent) for i in items],
            job_id,
        ],
    )
    _relink_rows(cur, job_id, [i.row_no for i in items if i.status != ROW_SUCCEEDED])


def reset_retryable(cur: duckdb.DuckDBPyConnection, job_id: str, now: datetime) -> int:
    """The job's failed rows of a retryable class back to ``planned``; returns how many.
    ``attempts`` is kept, so each is looked up on Credly before it is sent again."""
    classes = sorted(RETRYABLE_CLASSES)
    row = cur.execute(
        "SELECT count(*) FROM ledger WHERE job_id = ? AND status = ? "
        "AND error_class IN (SELECT unnest(?::VARCHAR[]))",
        [job_id, ROW_FAILED, classes],
    ).fetchone()
    cur.execute(
        "UPDATE ledger SET status = ?, updated_at = ? WHERE job_id = ? AND status = ? "
        "AND error_class IN (SELECT unnest(?::VARCHAR[]))",
        [ROW_PLANNED, to_db_time(now), job_id, ROW_FAILED, classes],
    )
    return int(row[0]) if row else 0


# -- reading jobs back -----------------------------------------------------------------------

#: a ledger row as a report outcome: issued, updated, skipped, invalid, failed or pending
OUTCOME_SQL = """CASE
    WHEN status = 'succeeded' AND reason = 'already_issued' THEN 'skipped'
    WHEN status = 'succeeded' AND outcome = 'issue' THEN 'issued'
    WHEN status = 'succeeded' THEN 'updated'
    WHEN status = 'failed' THEN 'failed'
    WHEN status = 'skipped' THEN 'skipped'
    WHEN status = 'invalid' THEN 'invalid'
    ELSE 'pending' END"""
#: a ledger row's reason as a report shows it: a failed row's error class
REASON_SQL = (
    "CASE WHEN status = 'failed' THEN coalesce(error_class, 'credly_error') ELSE reason END"
)
#: what the plan said, when the row was decided differently since (else empty)
PLANNED_SQL = (
    "CASE WHEN planned_outcome IS NOT NULL AND (planned_outcome <> outcome "
    "OR planned_reason <> reason) THEN planned_outcome || ' / ' || planned_reason ELSE '' END"
)

JOB_COLUMNS = (
    "id, status, source_name, created_at, created_by, rows, started_at, finished_at, "
    "heartbeat_at, options, runner"
)


def job_row(cur: duckdb.DuckDBPyConnection, job_id: str, kind: str) -> tuple[Any, ...] | None:
    return cur.execute(
        f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ? AND kind = ?", [job_id, kind]
    ).fetchone()


def job_rows(cur: duckdb.DuckDBPyConnection, kind: str, limit: int) -> list[tuple[Any, ...]]:
    return cur.execute(
        f"SELECT {JOB_COLUMNS} FROM jobs WHERE kind = ? ORDER BY created_at DESC, id DESC LIMIT ?",
        [kind, limit],
    ).fetchall()


def tally_rows(
    cur: duckdb.DuckDBPyConnection, job_ids: Sequence[str]
) -> list[tuple[str, str, str, str, str, bool, int]]:
    """(job, status, report outcome, reason, error class, changed since plan, rows)."""
    return cur.execute(
        f"SELECT job_id, status, {OUTCOME_SQL} AS outcome, {REASON_SQL} AS reason, "
        f"coalesce(error_class, '') AS error_class, ({PLANNED_SQL}) <> '' AS changed, count(*) "
        "FROM ledger WHERE job_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY ALL",
        [list(job_ids)],
    ).fetchall()


def report_rows(cur: duckdb.DuckDBPyConnection, job_id: str) -> list[tuple[Any, ...]]:
    """(row, email, course, completed_at, outcome, reason, badge id, planned) per row."""
    if cur.execute("SELECT 1 FROM jobs WHERE id = ?", [job_id]).fetchone() is None:
        raise JobNotFound(job_id)
    return cur.execute(
        f"SELECT row_no, email, coalesce(nullif(course_id, ''), course_title), completed_at, "
        f"{OUTCOME_SQL}, {REASON_SQL}, badge_id, {PLANNED_SQL} "
        "FROM ledger WHERE job_id = ? ORDER BY row_no",
        [job_id],
    ).fetchall()

"""Bulk-issue jobs: record a job and its ledger, the jobs running here, progress and reports.

A bulk issue goes through these steps::

    prepare()        file bytes → completions → incremental sync → plan (upload.py)
    create_job()     the jobs row, one ledger row per plan row, the uploaded completions and an
                     audit row, in ONE transaction
    run_job()        sends the issue and update rows exactly once (run.py)
    job_progress(), job_report(), list_jobs()   what the page and the command line show

Job and row statuses, and every statement that writes them, live in :mod:`credly_ops.ledger`.
A job left ``running`` by a runner that died (its heartbeat is stale) is shown as *interrupted*
and can be resumed.

**One job per file at a time.** :func:`create_job` returns the unfinished job (planned, running
or interrupted) of a file with the same SHA-256 instead of creating a second one, whatever the
options: running the same file again resumes it, so rows that were in flight are looked up on
Credly before anything is re-sent.

**Report outcomes** (one line per input row, :data:`REPORT_COLUMNS`): ``issued``, ``updated``,
``skipped``, ``invalid``, ``failed``, or ``pending`` for a row not sent yet. A row the runner
found already issued (by an earlier job, or by Credly's own duplicate answer for the very same
completion) is ``skipped / already_issued`` with that badge's id. A failed row's reason is its
error class. ``planned`` says what the plan decided when the row was decided differently at send
time (``issue / new_badge`` for a row that became a renewal, say), and is empty otherwise.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from credly_ops import ledger
from credly_ops.access import Actor, Permission, require
from credly_ops.exports import to_csv_bytes
from credly_ops.issuance.plan import Plan, PlannedRow
from credly_ops.issuance.upload import Prepared, source_sha256
from credly_ops.lms import save_completions
from credly_ops.models import Completion
from credly_ops.store import Store, from_db_time, write_audit
from credly_ops.timeutil import utcnow
from credly_ops.workspace import Workspace

JOB_KIND = ledger.JOB_KIND_BULK
JOB_PLANNED = ledger.JOB_PLANNED
JOB_RUNNING = ledger.JOB_RUNNING
JOB_DONE = ledger.JOB_DONE
JOB_DONE_WITH_FAILURES = ledger.JOB_DONE_WITH_FAILURES
JOB_INTERRUPTED = ledger.JOB_INTERRUPTED
RETRYABLE_CLASSES = ledger.RETRYABLE_CLASSES
PENDING_ROW_STATES = ledger.PENDING_ROW_STATES
HEARTBEAT_SECONDS = ledger.HEARTBEAT_SECONDS
STALE_AFTER_SECONDS = ledger.STALE_AFTER_SECONDS
JobNotFound = ledger.JobNotFound

#: the columns of a job's report, one line per input row
REPORT_COLUMNS: tuple[str, ...] = (
    "row",
    "email",
    "course_id",
    "completed_at",
    "outcome",
    "reason",
    "badge_id",
    "planned",
)
REPORT_OUTCOMES: tuple[str, ...] = ("issued", "updated", "skipped", "invalid", "failed", "pending")


class JobBusy(RuntimeError):
    """The job (or another one) is already running in this process."""


# -- the jobs running in this process --------------------------------------------------------


class _Registry:
    """Which jobs run in this process (a browser refresh does not stop them; this says so)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stops: dict[str, threading.Event] = {}
        self._exclusive: set[str] = set()

    def enter(self, job_id: str, *, exclusive: bool = True) -> threading.Event:
        """Register ``job_id`` as running here. One ``exclusive`` job (a bulk issue) at a time
        per process; other jobs (single re-issues) run beside it."""
        with self._lock:
            if job_id in self._stops:
                raise JobBusy(f"job {job_id} is already running")
            if exclusive and self._exclusive:
                other = next(iter(self._exclusive))
                raise JobBusy(
                    f"job {other} is running; one bulk issue runs at a time, so wait for it "
                    "to finish (or stop it) and try again"
                )
            stop = self._stops[job_id] = threading.Event()
            if exclusive:
                self._exclusive.add(job_id)
            return stop

    def leave(self, job_id: str) -> None:
        with self._lock:
            self._stops.pop(job_id, None)
            self._exclusive.discard(job_id)

    def running(self) -> list[str]:
        with self._lock:
            return list(self._stops)

    def stop(self, job_id: str) -> bool:
        with self._lock:
            event = self._stops.get(job_id)
        if event is None:
            return False
        event.set()
        return True


REGISTRY = _Registry()


def running_jobs() -> list[str]:
    """The ids of the jobs running in this process."""
    return REGISTRY.running()


def is_running_here(job_id: str) -> bool:
    return job_id in REGISTRY.running()


def stop_job(job_id: str) -> bool:
    """Ask a job running in this process to stop after the requests in flight; ``False`` when
    it does not run here. It ends ``interrupted`` and can be resumed."""
    return REGISTRY.stop(job_id)


# -- plan rows as lines of a report ----------------------------------------------------------


def plan_report(p: Plan) -> list[dict[str, Any]]:
    """A plan as report lines (before anything is sent): the outcome is the plan's
    (``issue``, ``update``, ``skip``, ``invalid``) and ``badge_id`` the badge an update replaces
    or the badge that decided a skip."""
    return [
        {
            "row": r.row,
            "email": r.email,
            "course_id": r.course_id or r.course_title,
            "completed_at": r.completed_at,
            "outcome": r.outcome,
            "reason": r.reason,
            "badge_id": r.target_badge_id or r.matched_badge_id or "",
            "planned": "",
        }
        for r in p.rows
    ]


def report_csv(lines: Sequence[Mapping[str, Any]]) -> bytes:
    """Report lines as a spreadsheet-safe CSV file (UTF-8 with BOM, :data:`REPORT_COLUMNS`)."""
    return to_csv_bytes(lines, columns=list(REPORT_COLUMNS))


# -- create a job ----------------------------------------------------------------------------


def new_row(r: PlannedRow) -> ledger.NewRow:
    """A plan row as the ledger records it."""
    return ledger.NewRow(
        row_no=r.row,
        key=r.key,
        email=r.email,
        first_name=r.first_name,
        last_name=r.last_name,
        course_id=r.course_id,
        course_title=r.course_title,
        completed_at=r.completed_at,
        date_only=r.date_only,
        success_status=None,
        template_id=r.template_id,
        outcome=r.outcome,
        reason=r.reason,
        flags=r.flags,
        issued_at=r.issued_at,
        expires_at=r.expires_at,
        target_badge_id=r.target_badge_id,
        matched_badge_id=r.matched_badge_id,
        detail=r.detail,
    )


def find_unfinished_job(store: Store, sha256: str) -> str | None:
    """The latest unfinished job made from a file with this SHA-256, if any."""
    with store.session() as cur:
        return ledger.unfinished_job(cur, JOB_KIND, sha256)


def new_job_id(now: datetime, kind: str = JOB_KIND) -> str:
    prefix = "bulk" if kind == JOB_KIND else kind
    return f"{prefix}-{now:%Y%m%d}-{uuid.uuid4().hex[:8]}"


def create_job(
    ws: Workspace,
    actor: Actor,
    plan: Plan,
    *,
    source_name: str,
    source_bytes: bytes,
    options: Mapping[str, Any] | None = None,
    completions: Sequence[Completion] = (),
) -> str:
    """Record a job for ``plan``; returns its id (see the module docstring).

    In one transaction: the ``jobs`` row (status ``planned``, the file's SHA-256, the options as
    JSON, who created it), one ledger row per plan row, the file's valid ``completions``
    (source ``upload:<job_id>``, so the funnel counts them) and an audit row. When an
    unfinished job of the same file exists, nothing is written and its id is returned, so
    running it resumes it. Row numbers must be unique within the plan.
    """
    require(actor, Permission.ISSUE)
    numbers = [r.row for r in plan.rows]
    if len(set(numbers)) != len(numbers):
        raise ValueError("a job needs one plan row per row number; the plan repeats row numbers")
    sha = source_sha256(source_bytes)
    now = utcnow()
    job_id = new_job_id(now)
    counts = plan.counts()
    by_row = {c.row: c for c in completions if c.row is not None}
    rows = []
    for r in plan.rows:
        row = new_row(r)
        source = by_row.get(r.row)
        status = source.status.value if source is not None and source.status else None
        rows.append(replace(row, success_status=status))
    with ws.store.transaction() as cur:
        existing = ledger.unfinished_job(cur, JOB_KIND, sha)
        if existing is not None:
            write_audit(
                cur,
                actor=actor,
                action="issue.job_reused",
                target=source_name,
                job_id=existing,
                outcome="ok",
                detail={"sha256": sha},
            )
            return existing
        ledger.insert_job(
            cur,
            job_id=job_id,
            kind=JOB_KIND,
            created_at=now,
            created_by=actor.name,
            source_name=source_name,
            source_sha256=sha,
            status=JOB_PLANNED,
            options=options,
            rows=len(plan.rows),
        )
        ledger.insert_rows(cur, job_id, rows, now)
        save_completions(cur, completions, source=f"upload:{job_id}", loaded_at=now)
        write_audit(
            cur,
            actor=actor,
            action="issue.job_created",
            target=source_name,
            job_id=job_id,
            outcome="ok",
            detail={"sha256": sha, "rows": len(plan.rows), **counts, "options": options or {}},
        )
    return job_id


def create_job_from(ws: Workspace, actor: Actor, prepared: Prepared) -> str:
    """:func:`create_job` for a prepared upload (its plan, file, options and completions)."""
    return create_job(
        ws,
        actor,
        prepared.plan,
        source_name=prepared.source_name,
        source_bytes=prepared.source_bytes,
        options=prepared.options,
        completions=prepared.file.completions,
    )


# -- progress and report ---------------------------------------------------------------------


@dataclass(frozen=True)
class JobProgress:
    """Where a job stands, read from the ledger (the page polls this every second)."""

    job_id: str
    status: str
    source_name: str
    created_at: datetime | None
    created_by: str
    rows: int
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    #: ledger rows per status (planned, in_flight, succeeded, failed, skipped, invalid)
    by_status: dict[str, int]
    #: report lines per outcome (issued, updated, skipped, invalid, failed, pending)
    outcomes: dict[str, int]
    #: report lines per reason code, most frequent first
    reasons: dict[str, int]
    #: failed rows whose error class may be sent again
    retryable_failures: int
    #: the job runs in this process now
    running_here: bool
    options: dict[str, Any] = field(default_factory=dict)
    checked_at: datetime = field(default_factory=utcnow)
    #: rows decided differently at send time than in the plan
    changed_since_plan: int = 0
    #: the process that runs (or ran) the job, ``host:pid``
    runner: str | None = None

    @property
    def to_send(self) -> int:
        """Issue and update rows of the job."""
        return sum(self.by_status.get(s, 0) for s in (*PENDING_ROW_STATES, "succeeded", "failed"))

    @property
    def sent(self) -> int:
        """Issue and update rows that ended (succeeded or failed)."""
        return self.by_status.get(ledger.ROW_SUCCEEDED, 0) + self.by_status.get(
            ledger.ROW_FAILED, 0
        )

    @property
    def pending(self) -> int:
        return sum(self.by_status.get(s, 0) for s in PENDING_ROW_STATES)

    @property
    def fraction(self) -> float:
        return 1.0 if not self.to_send else min(self.sent / self.to_send, 1.0)

    @property
    def alive(self) -> bool:
        """A runner is working on the job: in this process, or with a fresh heartbeat."""
        return self.running_here or ledger.is_alive(
            self.status, self.heartbeat_at, self.checked_at, self.runner
        )

    @property
    def display_status(self) -> str:
        """The status as people should read it: a ``running`` job without a live runner is
        ``interrupted``."""
        if self.status == JOB_RUNNING and not self.alive:
            return JOB_INTERRUPTED
        return self.status

    @property
    def finished(self) -> bool:
        return self.status in (JOB_DONE, JOB_DONE_WITH_FAILURES) and not self.running_here

    @property
    def resumable(self) -> bool:
        return not self.alive and self.pending > 0

    def as_json(self) -> dict[str, Any]:
        """The command line's ``--json`` object (see the module docstring of the command)."""
        return {
            "job_id": self.job_id,
            "rows": self.rows,
            "issued": self.outcomes.get("issued", 0),
            "updated": self.outcomes.get("updated", 0),
            "skipped": self.outcomes.get("skipped", 0),
            "invalid": self.outcomes.get("invalid", 0),
            "failed": self.outcomes.get("failed", 0),
            "reasons": dict(self.reasons),
        }


@dataclass
class _Tally:
    by_status: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    retryable: int = 0
    changed: int = 0


def _tallies(cur: Any, job_ids: Sequence[str]) -> dict[str, _Tally]:
    out: dict[str, _Tally] = {}
    for job_id, status, outcome, reason, error_class, changed, n in ledger.tally_rows(cur, job_ids):
        tally = out.setdefault(job_id, _Tally())
        tally.by_status[status] += n
        tally.outcomes[outcome] += n
        tally.reasons[reason] += n
        if status == ledger.ROW_FAILED and error_class in RETRYABLE_CLASSES:
            tally.retryable += n
        if changed:
            tally.changed += n
    return out


def _progress(
    row: Sequence[Any], tallies: Mapping[str, _Tally], here: Iterable[str]
) -> JobProgress:
    job_id = str(row[0])
    tally = tallies.get(job_id, _Tally())
    try:
        options = json.loads(row[9]) if row[9] else {}
    except ValueError:
        options = {}
    return JobProgress(
        job_id=job_id,
        status=str(row[1]),
        source_name=row[2] or "",
        created_at=from_db_time(row[3]),
        created_by=row[4] or "",
        rows=int(row[5] or 0),
        started_at=from_db_time(row[6]),
        finished_at=from_db_time(row[7]),
        heartbeat_at=from_db_time(row[8]),
        by_status=dict(tally.by_status),
        outcomes={o: tally.outcomes.get(o, 0) for o in REPORT_OUTCOMES},
        reasons=dict(sorted(tally.reasons.items(), key=lambda item: (-item[1], item[0]))),
        retryable_failures=tally.retryable,
        running_here=job_id in set(here),
        options=options if isinstance(options, dict) else {},
        changed_since_plan=tally.changed,
        runner=row[10],
    )


def job_progress(store: Store, job_id: str, *, kind: str = JOB_KIND) -> JobProgress:
    """Counts by status and outcome, reasons, times and heartbeat of one job."""
    with store.session() as cur:
        row = ledger.job_row(cur, job_id, kind)
        if row is None:
            raise JobNotFound(job_id)
        tallies = _tallies(cur, [job_id])
    return _progress(row, tallies, REGISTRY.running())


def list_jobs(store: Store, *, limit: int = 50) -> list[JobProgress]:
    """The latest bulk-issue jobs, newest first, with their progress."""
    with store.session() as cur:
        rows = ledger.job_rows(cur, JOB_KIND, limit)
        tallies = _tallies(cur, [str(r[0]) for r in rows]) if rows else {}
    here = REGISTRY.running()
    return [_progress(r, tallies, here) for r in rows]


def job_report(store: Store, job_id: str) -> list[dict[str, Any]]:
    """One line per input row of the job, in row order (:data:`REPORT_COLUMNS`)."""
    with store.session() as cur:
        rows = ledger.report_rows(cur, job_id)
    return [
        {
            "row": int(r[0]),
            "email": r[1] or "",
            "course_id": r[2] or "",
            "completed_at": from_db_time(r[3]),
            "outcome": r[4],
            "reason": r[5],
            "badge_id": r[6] or "",
            "planned": r[7] or "",
        }
        for r in rows
    ]

"""Bulk-issue jobs: prepare an upload, record a job and its ledger, read progress and reports.

A bulk issue goes through these steps (the runner that sends rows is in
:mod:`credly_ops.issuance.run`)::

    prepare()        file bytes → read_completions → incremental sync → plan (nothing sent)
    record_dry_run() the plan only: one audit row ``issue.dry_run``, nothing else written
    create_job()     the jobs row, one ledger row per plan row, the uploaded completions and an
                     audit row, in ONE transaction
    run_job()        sends the issue and update rows exactly once (run.py)
    job_progress(), job_report(), list_jobs()   what the page and the command line show

**Freshness.** :func:`prepare` first brings the cache up to date with an incremental sync when
Credly can be reached, so the plan sees the organization's current badges; when it cannot (or
``refresh=False``, as for a dry run, which writes nothing), the plan uses the cache as it is and
:class:`CacheFreshness` says how old it is.

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

import hashlib
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from credly_ops import ledger
from credly_ops.access import Actor, Permission, require
from credly_ops.completions import (
    CompletionFile,
    RejectedRow,
    RowError,
    read_completions,
)
from credly_ops.credly.errors import CredlyError
from credly_ops.exports import to_csv_bytes
from credly_ops.issuance.decide import NO_OPT_INS, DecideOptions
from credly_ops.issuance.plan import InvalidRow, Plan, PlannedRow, plan
from credly_ops.lms import save_completions
from credly_ops.models import BadgeRule, Completion, IssuedBadge, TemplateRef, normalize_email
from credly_ops.reasons import describe
from credly_ops.rules import load_rules, load_templates
from credly_ops.store import Store, from_db_time, write_audit
from credly_ops.sync import last_sync, sync
from credly_ops.sync_history import SyncRunning
from credly_ops.timeutil import ago, utcnow
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

#: reason codes for rows the reader could not parse, by the field at fault; the first bad field
#: of a row names its reason, and the reader's own sentences go into the row's detail
READER_REASONS: dict[str, str] = {
    "email": "bad_email",
    "first_name": "bad_name",
    "last_name": "bad_name",
    "name": "bad_name",
    "completed_at": "bad_date",
    "course_id": "no_course",
    "course_title": "no_course",
    "status": "bad_status",
    "score": "bad_score",
    "": "extra_fields",
}


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


# -- prepare: bytes → plan -------------------------------------------------------------------


@dataclass(frozen=True)
class CacheFreshness:
    """How current the badges a plan was made against are."""

    #: an incremental sync ran just before planning
    synced: bool
    #: when the cache was last synced (after that sync, when it ran)
    last_sync_at: datetime | None
    #: why Credly could not be reached (an error class), when a sync was tried and failed
    error: str | None = None
    changed: int = 0

    def sentence(self, now: datetime | None = None) -> str:
        age = ago(self.last_sync_at, now or utcnow())
        if self.synced:
            return (
                f"The cache was synced with Credly just before planning ({self.changed:,} "
                "badges changed), so the plan sees Credly's current badges."
            )
        if self.error is not None:
            return (
                f"Credly could not be reached ({describe(self.error)}); the plan uses the cache "
                f"as last synced {age}."
            )
        return f"The plan uses the cache as last synced {age} (not refreshed)."


@dataclass(frozen=True)
class Prepared:
    """An upload, read and planned: what the page and the command line show before sending."""

    plan: Plan
    file: CompletionFile
    source_name: str
    source_bytes: bytes = field(repr=False)
    sha256: str
    freshness: CacheFreshness
    opt_ins: DecideOptions = NO_OPT_INS
    encoding: str | None = None

    @property
    def options(self) -> dict[str, Any]:
        """The job options recorded with a job made from this plan: the opt-ins (so each row
        is decided again at send time with them) and the file's encoding."""
        return {**self.opt_ins.as_options(), "encoding": self.encoding}

    @property
    def stale(self) -> bool:
        """Credly could not be reached to sync before planning."""
        return self.freshness.error is not None

    @property
    def to_send(self) -> int:
        counts = self.plan.counts()
        return counts["issue"] + counts["update"]

    def summary_lines(self) -> list[str]:
        """The plan summary as lines of plain text (the command line shows these)."""
        file = self.file
        counts = self.plan.counts()
        lines = [
            f"{self.source_name}: {file.rows_read:,} rows read, {len(file.completions):,} valid, "
            f"{file.rows_with_errors:,} with errors",
            self.freshness.sentence(),
            f"plan: {counts['issue']:,} to issue, {counts['update']:,} to update, "
            f"{counts['skip']:,} skipped, {counts['invalid']:,} invalid",
        ]
        for reason, n in self.plan.reasons().items():
            lines.append(f"  {n:>7,}  {reason}: {describe(reason)}")
        for flag, n in self.plan.flag_counts().items():
            lines.append(f"  {n:>7,}  flagged {flag}")
        return lines


def source_sha256(data: bytes) -> str:
    return hashlib.sha256(bytes(data)).hexdigest()


def reader_invalid_rows(
    errors: Sequence[RowError], rejected: Sequence[RejectedRow] = ()
) -> list[InvalidRow]:
    """The reader's bad rows as the planner's ``invalid_rows``, with what each row said.

    The first bad field of a row names its reason (:data:`READER_REASONS`; a date in the future
    is ``future_date``); the detail joins every problem of the row as ``column: sentence``.
    """
    by_row: dict[int, list[RowError]] = {}
    for error in errors:
        by_row.setdefault(error.row, []).append(error)
    said = {values.row: values for values in rejected}
    out: list[InvalidRow] = []
    for number, problems in by_row.items():
        first = problems[0]
        code = READER_REASONS.get(first.field, "extra_fields")
        if code == "bad_date" and "future" in first.reason:
            code = "future_date"
        detail = "; ".join(f"{p.column}: {p.reason}" if p.column else p.reason for p in problems)
        values = said.get(number)
        if values is None:
            out.append(InvalidRow(number, code, detail))
            continue
        out.append(
            InvalidRow(
                number,
                code,
                detail,
                email=values.email,
                course_id=values.course_id,
                course_title=values.course_title,
                completed_at=values.completed_at,
                first_name=values.first_name,
                last_name=values.last_name,
            )
        )
    return out


def badges_for_emails(store: Store, emails: Iterable[str]) -> dict[str, list[IssuedBadge]]:
    """The cached badges (any template, any state) of these students, by normalized email.

    One query. The badges are built without validation (they come from our own cache) and carry
    what the engine reads: id, state, recipient, template, issued_at and expires_at.
    """
    keys = sorted({normalize_email(e) for e in emails if e})
    if not keys:
        return {}
    with store.session() as cur:
        rows = cur.execute(
            "SELECT id, template_id, template_name, recipient_email, first_name, last_name, "
            "state, issued_at, expires_at, state_updated_at, replaces_badge_id, "
            "replacement_badge_id FROM badges "
            "WHERE recipient_email IN (SELECT unnest(?::VARCHAR[]))",
            [keys],
        ).fetchall()
    out: dict[str, list[IssuedBadge]] = {}
    for r in rows:
        issued_at = from_db_time(r[7])
        if issued_at is None:  # the schema says NOT NULL; a badge without a date decides nothing
            continue
        badge = IssuedBadge.model_construct(
            id=r[0],
            badge_template=TemplateRef.model_construct(id=r[1], name=r[2] or ""),
            recipient_email=r[3],
            issued_to_first_name=r[4],
            issued_to_last_name=r[5],
            state=r[6],
            issued_at=issued_at,
            expires_at=from_db_time(r[8]),
            state_updated_at=from_db_time(r[9]),
            replaces_badge_id=r[10],
            replacement_badge_id=r[11],
        )
        out.setdefault(r[3], []).append(badge)
    return out


#: how long a plan waits for a sync another process is running before it plans without one
WAIT_FOR_SYNC_SECONDS = 60.0


def refresh_cache(
    ws: Workspace, actor: Actor, client_options: Mapping[str, Any] | None = None
) -> CacheFreshness:
    """An incremental sync when Credly can be reached; otherwise say how old the cache is.

    When another process is syncing (a cron ``credly-ops sync``), this waits for it, up to
    :data:`WAIT_FOR_SYNC_SECONDS`, and then syncs the little that changed since."""
    deadline = time.monotonic() + WAIT_FOR_SYNC_SECONDS
    try:
        while True:
            try:
                with ws.client(**dict(client_options or {})) as client:
                    result = sync(client, ws.store, actor=actor)
                break
            except SyncRunning:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(1.0)
    except (CredlyError, OSError, ValueError, SyncRunning) as exc:
        info = last_sync(ws.store)
        if isinstance(exc, CredlyError):
            kind = exc.kind
        else:
            kind = "sync_running" if isinstance(exc, SyncRunning) else "network"
        return CacheFreshness(False, info["finished_at"] if info else None, error=kind)
    info = last_sync(ws.store)
    return CacheFreshness(True, info["finished_at"] if info else utcnow(), changed=result.changed)


def cache_freshness(store: Store) -> CacheFreshness:
    info = last_sync(store)
    return CacheFreshness(False, info["finished_at"] if info else None)


def prepare(
    ws: Workspace,
    actor: Actor,
    data: bytes,
    *,
    source_name: str,
    include_rejected: bool = False,
    include_revoked: bool = False,
    include_expired: bool = False,
    encoding: str | None = None,
    refresh: bool = True,
    now: datetime | None = None,
    client_options: Mapping[str, Any] | None = None,
) -> Prepared:
    """Read an uploaded file and plan it against the cache (synced first when ``refresh``).

    Raises :class:`~credly_ops.completions.CompletionFileError` when the file as a whole cannot
    be used. Nothing is sent to Credly but the sync's reads, and nothing is written but the sync.
    ``client_options`` go to the Credly client of the sync.
    """
    require(actor, Permission.VIEW)
    opt_ins = DecideOptions(
        include_rejected=include_rejected,
        include_revoked=include_revoked,
        include_expired=include_expired,
    )
    moment = now or utcnow()
    data = bytes(data)
    file = read_completions(data, now=moment, encoding=encoding)
    freshness = refresh_cache(ws, actor, client_options) if refresh else cache_freshness(ws.store)
    rules: dict[str, BadgeRule] = {r.course_id: r for r in load_rules(ws.store)}
    templates = load_templates(ws.store)
    badges = badges_for_emails(ws.store, (c.email for c in file.completions))
    decided = plan(
        file.completions,
        rules,
        templates,
        badges,
        now=moment,
        mode="bulk",
        options=opt_ins,
        invalid_rows=reader_invalid_rows(file.errors, file.rejected),
    )
    return Prepared(
        plan=decided,
        file=file,
        source_name=source_name,
        source_bytes=data,
        sha256=source_sha256(data),
        freshness=freshness,
        opt_ins=opt_ins,
        encoding=encoding,
    )


def record_dry_run(ws: Workspace, actor: Actor, prepared: Prepared) -> None:
    """A dry run: the plan was shown and nothing was sent; one audit row says so."""
    counts = prepared.plan.counts()
    ws.store.audit(
        actor=actor,
        action="issue.dry_run",
        target=prepared.source_name,
        outcome="ok",
        detail={
            "sha256": prepared.sha256,
            "rows": len(prepared.plan),
            **counts,
            "reasons": prepared.plan.reasons(),
            "options": prepared.options,
        },
    )


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

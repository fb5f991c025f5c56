"""The runner: a job's rows sent to Credly exactly once, decided again just before each send.

**One runner** sends every job that issues or renews: bulk issues and the single re-issues of
the Student preview and automatic issuing (:mod:`credly_ops.autopilot`).

**Send-time truth.** A job starts with an incremental sync and a re-decision of every unsent row
(:func:`recheck`): what changed since the plan is written to the ledger, the plan's own decision
kept beside it. Then each row is *claimed* just before it is sent, in one transaction of the
ledger writer: the row is decided again (:mod:`credly_ops.issuance.redecide`) against the cache
overlaid with the ledger of every job, and

* a decision that sends nothing (the badge landed meanwhile: ``already_issued``; a renewal
  someone else made: ``already_up_to_date``; …) ends the row ``skipped``, with the reason;
* a row whose student and template have a row in flight in another *live* job waits, and is
  claimed again later: two jobs over overlapping rows — in one process or in two — never send
  the same completion twice, and a row planned ``issue`` becomes an ``update`` when the other
  job's badge lands first;
* otherwise the row is committed ``in_flight`` (``attempts + 1``) with its new decision, and
  only after that commit does the worker send.

Claims are serialized: inside a process by :data:`CLAIM_LOCK`, across processes by the cache
file itself (DuckDB lets one process at a time open it, and each unit of work opens it).

**Exactly once after a crash.** A row that may already have reached Credly — left ``in_flight``
by a runner that died, sent before (``attempts > 0``), or in flight in a dead job for the same
student and template — is **looked up first**: a live badge of the student and template that
carries the row's completion (for an update, with its new expiry) means it succeeded; only when
none is found is it sent. Inside one attempt the client itself looks a badge up after an answer
that never came (:mod:`credly_ops.credly.client`). A row is either still ``planned`` (never
sent), ``in_flight`` (looked up on resume), or finished.

**Order.** Rows of one student and template form a *chain*, sent in completed_at order by one
worker; the next row of a chain is claimed only once the previous one has finished, so it is
decided against the badge the previous one made. When a row of a chain fails, the rest of the
chain is not sent and fails with the same class, so :func:`retry_failed` re-drives it.

**Concurrency and rate limits.** ``concurrency`` workers (default 4) share one client. Each
worker claims the first rows of its next :data:`CLAIM_AHEAD` chains while its current request is
in flight, and the writer gathers everything that arrives within :data:`WRITE_LINGER_SECONDS`
into one transaction. A 429 never fails a row: the job's :class:`~credly_ops.credly.pacing.
RatePacer` holds every request for the ``Retry-After`` and paces the job just under the limit,
and the client sends a throttled request again without using up an attempt. One line at the
end says how often Credly slowed the job down. An ``invalid_token`` or ``forbidden`` answer
stops sending: the rows left fail with that class without being sent.

**Sharing the cache file.** The runner holds the file only per unit of work (a claim batch, a
batch of results), so the app, a cron sync and other jobs use it in between. Its heartbeat
(every :data:`~credly_ops.ledger.HEARTBEAT_SECONDS`) tells a live runner from a dead one: a job
whose heartbeat is fresh is never run twice; a stale one may be resumed anywhere.

Every function that sends takes an :class:`~credly_ops.access.Actor` and requires
:attr:`Permission.ISSUE <credly_ops.access.Permission.ISSUE>`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from credly_ops import ledger
from credly_ops.access import Actor, Permission, require
from credly_ops.credly.client import CredlyClient
from credly_ops.credly.errors import CredlyError
from credly_ops.credly.pacing import PacedTransport, RatePacer
from credly_ops.issuance.decide import DecideOptions
from credly_ops.issuance.jobs import REGISTRY, JobBusy, JobProgress, job_progress
from credly_ops.issuance.redecide import Redecision, as_decided, redecide, take_snapshot
from credly_ops.issuance.upload import refresh_cache
from credly_ops.issuance.workers import Gate, Progress, Runner, chains
from credly_ops.issuance.writer import CLAIM_LOCK, LedgerWriter
from credly_ops.models import IssuedBadge
from credly_ops.store import Store, write_audit
from credly_ops.timeutil import utcnow
from credly_ops.workspace import Workspace

logger = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 4
MAX_CONCURRENCY = 32

__all__ = [
    "DEFAULT_CONCURRENCY",
    "MAX_CONCURRENCY",
    "Progress",
    "RunOutcome",
    "changes_before_sending",
    "recheck",
    "reset_retryable",
    "resume_job",
    "retry_failed",
    "run_claimed",
    "run_job",
    "start_job_in_background",
]

# -- a job from start to end -----------------------------------------------------------------


def _check_concurrency(concurrency: int) -> int:
    if isinstance(concurrency, bool) or not isinstance(concurrency, int):
        raise ValueError("concurrency must be a whole number")
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"concurrency must lie between 1 and {MAX_CONCURRENCY}")
    return concurrency


@dataclass
class _Claimed:
    """A job registered and marked running in this process, ready to execute."""

    ws: Workspace
    actor: Actor
    job_id: str
    stop: threading.Event
    state: ledger.JobState


def _claim(ws: Workspace, actor: Actor, job_id: str, *, action: str) -> _Claimed:
    """Register the job here and mark it running; a job whose runner lives elsewhere (its
    heartbeat is fresh) is refused with :class:`JobBusy`."""
    require(actor, Permission.ISSUE)
    with ws.store.session() as cur:
        kind = ledger.job_state(cur, job_id).kind
    stop = REGISTRY.enter(job_id, exclusive=kind == ledger.JOB_KIND_BULK)
    try:
        now = utcnow()
        with ws.store.transaction() as cur:
            state = ledger.job_state(cur, job_id)
            if state.alive(now):
                age = (now - state.heartbeat_at).total_seconds() if state.heartbeat_at else 0.0
                raise JobBusy(
                    f"job {job_id} is running in another process (its heartbeat is {age:.0f} s "
                    "old); wait for it to finish, or resume it once it has stopped"
                )
            ledger.start_job(cur, job_id, now)
            write_audit(
                cur,
                actor=actor,
                action=action,
                target=job_id,
                job_id=job_id,
                outcome="ok",
                detail={"previous_status": state.status},
            )
    except BaseException:
        REGISTRY.leave(job_id)
        raise
    return _Claimed(ws, actor, job_id, stop, state)


def run_claimed(
    ws: Workspace,
    actor: Actor,
    job_id: str,
    *,
    action: str,
    refresh: bool,
    client_options: Mapping[str, Any] | None = None,
) -> tuple[JobProgress, RunOutcome]:
    """Run a job in this thread and say what each row made or met (one worker)."""
    claimed = _claim(ws, actor, job_id, action=action)
    outcome = RunOutcome()
    result = _execute(
        claimed,
        concurrency=1,
        progress=None,
        client_options=client_options,
        refresh=refresh,
        outcome=outcome,
    )
    return result, outcome


def recheck(store: Store, job_id: str, *, now: datetime | None = None) -> list[Redecision]:
    """Decide every unsent row of the job again against the cache and the ledger, and write
    what changed; returns the rows whose decision changed (outcome or reason).

    Rows another live job is sending for keep their decision (they are decided again when
    claimed). The plan's own decision stays in the ledger beside the new one.
    """
    moment = now or utcnow()
    with CLAIM_LOCK, store.transaction() as cur:
        state = ledger.job_state(cur, job_id)
        rows = [r for r in ledger.pending_rows(cur, job_id) if r.status == ledger.ROW_PLANNED]
        if not rows:
            return []
        snap = take_snapshot(store, cur, rows, exclude={(job_id, r.row_no) for r in rows})
        answers = redecide(
            rows,
            snap,
            now=moment,
            mode="automatic" if state.options.get("mode") == "automatic" else "bulk",
            options=DecideOptions.from_options(state.options),
            running_here=REGISTRY.running(),
        )
        changed = [a for a in answers if a.changed and not a.wait]
        ledger.write_decisions(cur, job_id, [as_decided(a) for a in changed], moment)
    return changed


def changes_before_sending(
    ws: Workspace,
    actor: Actor,
    job_id: str,
    *,
    client_options: Mapping[str, Any] | None = None,
) -> list[Redecision]:
    """What a job would send differently from its plan if it started now: an incremental sync,
    then :func:`recheck` (the changes are written to the ledger, the plan's decision kept).
    A page calls this when the user confirms, and shows the changes before asking again."""
    require(actor, Permission.ISSUE)
    refresh_cache(ws, actor, client_options)
    return recheck(ws.store, job_id)


def _finalize(store: Store, actor: Actor, job_id: str, *, interrupted: bool, changed: int) -> str:
    now = utcnow()
    with store.transaction() as cur:
        counts = ledger.status_counts(cur, job_id)
        status = ledger.final_status(counts, interrupted=interrupted)
        ledger.end_job(cur, job_id, status, now)
        write_audit(
            cur,
            actor=actor,
            action="issue.job_finished",
            target=job_id,
            job_id=job_id,
            outcome=status,
            detail={**counts, "changed_since_plan": changed},
        )
    return status


def _client(ws: Workspace, pacer: RatePacer, options: Mapping[str, Any] | None) -> CredlyClient:
    """The job's client: ``options`` for :class:`CredlyClient` (``timeout``, ``transport``,
    ``max_attempts``, ``sleep`` …), paced by the job's :class:`RatePacer`; a 429 never uses up
    an attempt."""
    kw = dict(options or {})
    inner = kw.pop("transport", None) or httpx.HTTPTransport()
    kw["transport"] = PacedTransport(inner, pacer)
    kw["on_rate_limited"] = pacer.defer
    kw.setdefault("wait_out_rate_limits", True)
    return ws.client(**kw)


@dataclass
class RunOutcome:
    """What one run of a job made and met, row by row (for a caller that sends one row)."""

    made: dict[int, IssuedBadge] = field(default_factory=dict)
    errors: dict[int, CredlyError] = field(default_factory=dict)
    #: rows a gate refused: given back unsent, still to send
    held: int = 0


def _execute(
    claimed: _Claimed,
    *,
    concurrency: int,
    progress: Progress | None,
    client_options: Mapping[str, Any] | None,
    refresh: bool,
    outcome: RunOutcome | None = None,
    gate: Gate | None = None,
) -> JobProgress:
    ws, actor, job_id = claimed.ws, claimed.actor, claimed.job_id
    store = ws.store
    interrupted = True
    changed = 0
    try:
        if refresh:
            refresh_cache(ws, actor, client_options)
        changed = len(recheck(store, job_id))
        with store.session() as cur:
            pending = chains(ledger.pending_rows(cur, job_id))
        pacer = RatePacer()
        writer = LedgerWriter(
            store,
            job_id,
            mode=str(claimed.state.options.get("mode", "bulk")),
            options=claimed.state.options,
        )
        try:
            with _client(ws, pacer, client_options) as client:
                runner = Runner(
                    job_id,
                    pending,
                    client=client,
                    writer=writer,
                    concurrency=concurrency,
                    progress=progress,
                    stop=claimed.stop,
                    gate=gate,
                )
                runner.run()
        finally:
            writer.close()
        if outcome is not None:
            outcome.made.update(runner.made)
            outcome.errors.update(runner.errors)
            outcome.held += runner.held
        changed += writer.changed
        interrupted = (
            claimed.stop.is_set() or runner.crashed is not None or writer.error is not None
        )
        if pacer.slowdowns:
            rate = pacer.requests_per_second()
            logger.warning(
                "job %s: Credly rate-limited the job %d times; it waited %.1f s in all and "
                "was paced to %s",
                job_id,
                pacer.slowdowns,
                pacer.waited,
                f"{rate:.1f} requests/s" if rate else "its own speed",
            )
        if runner.crashed is not None:
            raise runner.crashed
        if writer.error is not None:
            raise writer.error
    finally:
        try:
            _finalize(store, actor, job_id, interrupted=interrupted, changed=changed)
        finally:
            REGISTRY.leave(job_id)
    return job_progress(store, job_id, kind=claimed.state.kind)


def run_job(
    ws: Workspace,
    actor: Actor,
    job_id: str,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
    client_options: Mapping[str, Any] | None = None,
    refresh: bool = True,
    gate: Gate | None = None,
    outcome: RunOutcome | None = None,
) -> JobProgress:
    """Send the job's unsent rows, in this thread, until none is left; returns its progress.

    Starts with an incremental sync (``refresh``) and a :func:`recheck`. Resumes a job that was
    interrupted or whose runner died: rows ``in_flight`` are looked up on Credly before
    anything is sent. Raises :class:`~credly_ops.ledger.JobNotFound` and
    :class:`~credly_ops.issuance.jobs.JobBusy`.

    A ``gate`` is asked before each send (automatic issuing's rails): when it refuses, the row
    is given back and the job stops, ``interrupted``, with the rest still to send; ``outcome``
    then counts the rows held.
    """
    _check_concurrency(concurrency)
    claimed = _claim(ws, actor, job_id, action="issue.run")
    return _execute(
        claimed,
        concurrency=concurrency,
        progress=progress,
        client_options=client_options,
        refresh=refresh,
        outcome=outcome,
        gate=gate,
    )


def resume_job(
    ws: Workspace,
    actor: Actor,
    job_id: str,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
    client_options: Mapping[str, Any] | None = None,
) -> JobProgress:
    """Resume a job after a crash or a stop: :func:`run_job`, recorded as a resume."""
    _check_concurrency(concurrency)
    claimed = _claim(ws, actor, job_id, action="issue.resume")
    return _execute(
        claimed,
        concurrency=concurrency,
        progress=progress,
        client_options=client_options,
        refresh=True,
    )


def reset_retryable(store: Store, actor: Actor, job_id: str) -> int:
    """Put the job's failed rows of a retryable class back to ``planned``; returns how many.

    Rows failed with a final class (invalid_token, template_inactive, duplicate,
    validation_failed, forbidden, …) stay failed. ``attempts`` is kept, so each re-driven row
    is looked up on Credly before it is sent again.
    """
    require(actor, Permission.ISSUE)
    with store.transaction() as cur:
        ledger.job_state(cur, job_id)
        n = ledger.reset_retryable(cur, job_id, utcnow())
        write_audit(
            cur,
            actor=actor,
            action="issue.retry_failed",
            target=job_id,
            job_id=job_id,
            outcome="ok",
            detail={"rows": n},
        )
    return n


def retry_failed(
    ws: Workspace,
    actor: Actor,
    job_id: str,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
    client_options: Mapping[str, Any] | None = None,
) -> JobProgress:
    """Re-drive the job's retryable failures (network, timeout, outcome_unknown, server_error,
    rate_limited, interrupted); final failures stay failed with their class."""
    _check_concurrency(concurrency)
    claimed = _claim(ws, actor, job_id, action="issue.retry")
    try:
        reset_retryable(ws.store, actor, job_id)
    except BaseException:
        REGISTRY.leave(job_id)
        raise
    return _execute(
        claimed,
        concurrency=concurrency,
        progress=progress,
        client_options=client_options,
        refresh=True,
    )


def start_job_in_background(
    ws: Workspace,
    actor: Actor,
    job_id: str,
    concurrency: int = DEFAULT_CONCURRENCY,
    *,
    retry: bool = False,
    client_options: Mapping[str, Any] | None = None,
) -> threading.Thread:
    """Run (or, with ``retry``, retry the failures of) a job in a thread of this process.

    The claim happens before this returns, so a refused start raises here
    (:class:`~credly_ops.issuance.jobs.JobBusy`, ``PermissionDenied``, ``JobNotFound``). The
    job's state lives only in the ledger: the page that started it may be refreshed or left.
    """
    _check_concurrency(concurrency)
    claimed = _claim(ws, actor, job_id, action="issue.retry" if retry else "issue.run")
    if retry:
        try:
            reset_retryable(ws.store, actor, job_id)
        except BaseException:
            REGISTRY.leave(job_id)
            raise

    def target() -> None:
        try:
            _execute(
                claimed,
                concurrency=concurrency,
                progress=None,
                client_options=client_options,
                refresh=True,
            )
        except Exception:
            logger.exception("job %s stopped with an error; resume it to carry on", job_id)

    thread = threading.Thread(target=target, name=f"job-{job_id}", daemon=True)
    thread.start()
    return thread

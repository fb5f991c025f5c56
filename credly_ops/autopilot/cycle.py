"""One cycle of automatic issuing: Credly in, completions in, decide, send once, record.

A cycle, in order:

1. **Credly**: an incremental sync (:func:`credly_ops.issuance.upload.refresh_cache`), so
   decisions see the badges issued meanwhile (by a bulk job, or by Skilljar's own integration).
2. **Completions**: ``read_completions()`` — the completions sync from Skilljar, which saves
   them in the cache with source ``skilljar`` and says how many are new.
3. **Decide**: every Skilljar completion not yet decided (see :mod:`.records`) is decided by
   the engine in automatic mode (:func:`credly_ops.issuance.plan.plan`, ``mode="automatic"``):
   only at or after the rule's ``active_from`` (before it: ``skipped / before_active_from``).
   A rule marked manual-only (``automatic = false``) is **not decided at all**: its
   completions are left to bulk issue, and become decidable the moment the rule is marked
   automatic again. The decisions become one job of kind ``automatic`` in the ledger.
4. **Send**: retryable failures of earlier cycles go back to ``planned`` (their attempts kept,
   so each is looked up on Credly first), then every automatic job with rows to send goes
   through the one runner (:func:`credly_ops.issuance.run.run_job`), which decides each row
   again at send time against the cache and every job's ledger — so a bulk job and automatic
   issuing over the same completions never send one twice, and a job a live worker elsewhere
   is running (fresh heartbeat) is left to it. The rails (:mod:`.rails`) watch every send; when
   one trips, sending stops at once, the rows left wait (``planned``) and automatic issuing is
   paused with the reason.
5. **Record**: the counts of what ended in this cycle, an audit row, the cycle's row.

**Shadow mode** decides the same way and records the decisions (a job of kind
``automatic_shadow``, finished at once, and its rows in ``autopilot_decisions``) — and sends
nothing. Its counts say what it *would* have done (``issued`` = would issue).

A cycle that cannot run raises :class:`CycleUnavailable` (Credly or Skilljar unreachable); a
paused autopilot runs no cycle and answers ``paused: true``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from credly_ops import ledger
from credly_ops.access import Actor, Permission, require
from credly_ops.autopilot import records
from credly_ops.autopilot.rails import Valve, cap_left, recent_sends, sent_since
from credly_ops.autopilot.state import AutopilotState, pause_in, read_state, since_resume
from credly_ops.issuance.jobs import JobBusy, new_job_id, new_row
from credly_ops.issuance.plan import plan
from credly_ops.issuance.redecide import overlay
from credly_ops.issuance.run import DEFAULT_CONCURRENCY, RunOutcome, run_job
from credly_ops.issuance.upload import badges_for_emails, refresh_cache
from credly_ops.issuance.writer import CLAIM_LOCK
from credly_ops.models import normalize_email
from credly_ops.rules import load_rules, load_templates
from credly_ops.store import Store, write_audit
from credly_ops.timeutil import utcnow
from credly_ops.workspace import Workspace

#: the keys of a cycle's JSON, in order (issue 11, item 4)
CYCLE_KEYS: tuple[str, ...] = (
    "completions_new",
    "decided",
    "issued",
    "updated",
    "skipped",
    "failed",
    "reasons",
    "shadow",
    "paused",
)


class CycleUnavailable(RuntimeError):
    """The cycle could not run; ``what`` is ``credly`` or ``skilljar``."""

    def __init__(self, what: str, message: str) -> None:
        super().__init__(message)
        self.what = what


@dataclass(frozen=True)
class CycleResult:
    """What one cycle did. In shadow mode the counts are what it would have done."""

    completions_new: int
    decided: int
    issued: int
    updated: int
    skipped: int
    failed: int
    reasons: dict[str, int]
    shadow: bool
    paused: bool
    #: why automatic issuing is paused (a rail tripped in this cycle, or it was paused before)
    pause_reason: str | None = None
    #: rows waiting to be sent when a rail paused this cycle (sent after the resume)
    held: int = 0
    jobs: tuple[str, ...] = field(default=())

    def as_json(self) -> dict[str, Any]:
        """Exactly the keys of :data:`CYCLE_KEYS`."""
        values = {
            "completions_new": self.completions_new,
            "decided": self.decided,
            "issued": self.issued,
            "updated": self.updated,
            "skipped": self.skipped,
            "failed": self.failed,
            "reasons": dict(self.reasons),
            "shadow": self.shadow,
            "paused": self.paused,
        }
        return {key: values[key] for key in CYCLE_KEYS}


def _sorted(counts: Mapping[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def decide_new(
    store: Store, actor: Actor, *, shadow: bool, now: datetime
) -> tuple[str | None, int]:
    """Decide every undecided Skilljar completion (of this mode) and record the decisions as
    one job; returns (job id, decisions). One unit of work, claims serialized: two workers never
    decide a completion twice."""
    with CLAIM_LOCK, store.transaction() as cur:
        pending = records.undecided(cur, shadow=shadow)
        if not pending:
            return None, 0
        completions = [u.completion for u in pending]
        ids = {u.completion.row: u.completion_id for u in pending if u.completion.row is not None}
        rules = {r.course_id: r for r in load_rules(store)}
        templates = load_templates(store)
        emails = {normalize_email(c.email) for c in completions}
        history = ledger.history(cur, emails)
        made = ledger.created_badges(cur, {h.job_id for h in history if h.outcome == "update"})
        badges = overlay(badges_for_emails(store, emails), history, made)
        decided = plan(completions, rules, templates, badges, now=now, mode="automatic")
        kind = ledger.JOB_KIND_SHADOW if shadow else ledger.JOB_KIND_AUTOMATIC
        stamp = utcnow()
        job_id = new_job_id(stamp, kind)
        ledger.insert_job(
            cur,
            job_id=job_id,
            kind=kind,
            created_at=stamp,
            created_by=actor.name,
            source_name=f"automatic issuing: {len(decided.rows)} Skilljar completions",
            status=ledger.JOB_DONE if shadow else ledger.JOB_PLANNED,
            options={"mode": "automatic", "shadow": shadow},
            rows=len(decided.rows),
        )
        if not shadow:
            status = {c.row: c.status.value if c.status else None for c in completions}
            rows = [replace(new_row(r), success_status=status.get(r.row)) for r in decided.rows]
            ledger.insert_rows(cur, job_id, rows, stamp)
        records.insert_decisions(cur, job_id, decided.rows, ids, shadow=shadow, decided_at=stamp)
        write_audit(
            cur,
            actor=actor,
            action="autopilot.decide",
            target=job_id,
            job_id=job_id,
            outcome="ok",
            detail={"rows": len(decided.rows), "shadow": shadow, **decided.counts()},
        )
    return job_id, len(decided.rows)


def send_pending(
    ws: Workspace,
    actor: Actor,
    state: AutopilotState,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    client_options: Mapping[str, Any] | None = None,
    halt: threading.Event | None = None,
) -> tuple[Valve, RunOutcome, list[str]]:
    """Put retryable failures back, then run every automatic job with rows to send behind
    the rails; pauses automatic issuing when a rail trips. Returns the valve, what the runs
    met and the jobs run. ``halt`` set stops sending after the requests in flight."""
    store = ws.store
    now = utcnow()
    with CLAIM_LOCK, store.transaction() as cur:
        for job_id in records.jobs_with_retryable(cur):
            n = ledger.reset_retryable(cur, job_id, now)
            write_audit(
                cur,
                actor=actor,
                action="autopilot.retry",
                target=job_id,
                job_id=job_id,
                outcome="ok",
                detail={"rows": n},
            )
        to_run = records.jobs_to_run(cur)
        hour = since_resume(state, now - timedelta(hours=1))
        budget = cap_left(sent_since(cur, hour), state.cap_per_hour)
        recent = recent_sends(cur, state.resumed_at)
    valve = Valve(budget=budget, cap_per_hour=state.cap_per_hour, recent=recent, halt=halt)
    outcome = RunOutcome()
    ran: list[str] = []
    for job_id in to_run:
        if valve.tripped is not None or (halt is not None and halt.is_set()):
            break
        try:
            run_job(
                ws,
                actor,
                job_id,
                concurrency=concurrency,
                client_options=client_options,
                refresh=False,
                gate=valve,
                outcome=outcome,
            )
        except JobBusy:
            continue  # a live worker elsewhere runs it
        ran.append(job_id)
    if valve.tripped is not None and valve.reason is not None:
        with store.transaction() as cur:
            pause_in(cur, actor, valve.reason, rail=valve.tripped)
    return valve, outcome, ran


def run_cycle(
    ws: Workspace,
    actor: Actor,
    *,
    read_completions: Callable[[], int] | None,
    shadow: bool | None = None,
    now: datetime | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    client_options: Mapping[str, Any] | None = None,
    halt: threading.Event | None = None,
) -> CycleResult:
    """One cycle (see the module docstring). ``shadow`` overrides the setting for this cycle;
    ``now`` is the moment decisions are made at (tests). When ``halt`` is set (the worker is
    told to stop), sending stops after the requests in flight; the rows left stay decided and
    are sent by the next cycle."""
    require(actor, Permission.ISSUE)
    store = ws.store
    state = read_state(store)
    mode_shadow = state.shadow if shadow is None else shadow
    if state.paused:
        return CycleResult(0, 0, 0, 0, 0, 0, {}, mode_shadow, True, state.pause_reason)
    cycle_id = records.start_cycle(store, shadow=mode_shadow)
    started = utcnow()
    try:
        fresh = refresh_cache(ws, actor, client_options)
        if fresh.error is not None:
            raise CycleUnavailable("credly", f"Credly could not be reached ({fresh.error})")
        new = 0
        if read_completions is not None:
            try:
                new = int(read_completions())
            except Exception as exc:
                raise CycleUnavailable(
                    "skilljar", f"Skilljar could not be read ({type(exc).__name__}: {exc})"
                ) from exc
        moment = now or utcnow()
        job_id, decided = decide_new(store, actor, shadow=mode_shadow, now=moment)
        if mode_shadow:
            result = _shadow_result(store, job_id, new, decided)
        else:
            valve, outcome, ran = send_pending(
                ws,
                actor,
                state,
                concurrency=concurrency,
                client_options=client_options,
                halt=halt,
            )
            result = _live_result(store, started, new, decided, valve, outcome, ran)
    except BaseException as exc:
        outcome_text = "unavailable" if isinstance(exc, CycleUnavailable) else "error"
        records.finish_cycle(store, cycle_id, outcome_text, {"error": type(exc).__name__})
        raise
    records.finish_cycle(store, cycle_id, "paused" if result.paused else "ok", result.as_json())
    with store.transaction() as cur:
        write_audit(
            cur,
            actor=actor,
            action="autopilot.cycle",
            target=cycle_id,
            outcome="paused" if result.paused else ("failed" if result.failed else "ok"),
            detail={**result.as_json(), "held": result.held, "jobs": list(result.jobs)},
        )
    return result


def _shadow_result(store: Store, job_id: str | None, new: int, decided: int) -> CycleResult:
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    if job_id is not None:
        with store.session() as cur:
            for outcome, reason, n in cur.execute(
                "SELECT outcome, reason, count(*) FROM autopilot_decisions WHERE job_id = ? "
                "GROUP BY ALL",
                [job_id],
            ).fetchall():
                counts[str(outcome)] += int(n)
                reasons[str(reason)] += int(n)
    return CycleResult(
        completions_new=new,
        decided=decided,
        issued=counts["issue"],
        updated=counts["update"],
        skipped=counts["skip"] + counts["invalid"],
        failed=0,
        reasons=_sorted(reasons),
        shadow=True,
        paused=False,
        jobs=(job_id,) if job_id else (),
    )


def _live_result(
    store: Store,
    started: datetime,
    new: int,
    decided: int,
    valve: Valve,
    outcome: RunOutcome,
    ran: list[str],
) -> CycleResult:
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    with store.session() as cur:
        for report, reason, n in records.tally_since(cur, started):
            counts[report] += n
            reasons[reason] += n
        held = records.rows_waiting(cur) if valve.tripped is not None else 0
    return CycleResult(
        completions_new=new,
        decided=decided,
        issued=counts["issued"],
        updated=counts["updated"],
        skipped=counts["skipped"] + counts["invalid"],
        failed=counts["failed"],
        reasons=_sorted(reasons),
        shadow=False,
        paused=valve.tripped is not None,
        pause_reason=valve.reason,
        held=held,
        jobs=tuple(ran),
    )


def retry_failures(
    ws: Workspace, actor: Actor, *, client_options: Mapping[str, Any] | None = None
) -> CycleResult:
    """Send the automatic failures worth sending again now (the page's retry button), behind
    the rails, without waiting for the next cycle; nothing while paused."""
    require(actor, Permission.ISSUE)
    state = read_state(ws.store)
    if state.paused:
        return CycleResult(0, 0, 0, 0, 0, 0, {}, False, True, state.pause_reason)
    started = utcnow()
    valve, outcome, ran = send_pending(ws, actor, state, client_options=client_options)
    return _live_result(ws.store, started, 0, 0, valve, outcome, ran)

"""The runner: a job's rows sent to Credly exactly once, decided again just before each send.

**One runner** sends every job that issues or renews: bulk issues and the single re-issues of
the Student preview (and, later, automatic issuing).

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

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import httpx
from pydantic import ValidationError

from credly_ops import ledger
from credly_ops.access import Actor, Permission, require
from credly_ops.credly.client import CredlyClient
from credly_ops.credly.errors import CredlyError
from credly_ops.credly.pacing import PacedTransport, RatePacer
from credly_ops.issuance.decide import same_second
from credly_ops.issuance.jobs import REGISTRY, JobBusy, JobProgress, job_progress, refresh_cache
from credly_ops.issuance.redecide import Redecision, as_decided, redecide, take_snapshot
from credly_ops.ledger import Finish, LedgerRow
from credly_ops.models import IssuedBadge, IssueRequest, ReplaceRequest, normalize_email
from credly_ops.store import Store, write_audit
from credly_ops.sync import upsert_badges
from credly_ops.timeutil import utcnow
from credly_ops.workspace import Workspace

logger = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 4
MAX_CONCURRENCY = 32
#: error classes that stop the whole job: every later request would be refused the same way
FATAL_CLASSES: frozenset[str] = frozenset({"invalid_token", "forbidden"})
#: how many queued ledger writes one transaction takes at most
WRITE_BATCH = 512
#: how long the writer gathers requests into one transaction
WRITE_LINGER_SECONDS = 0.05
#: attempts at one ledger transaction when another unit of work of this process conflicts
WRITE_ATTEMPTS = 5
#: how many chains ahead of the one it sends a worker has claimed the first row of
CLAIM_AHEAD = 3
#: how long a row waits before it is claimed again while another job sends for its student
WAIT_SECONDS = 0.5
#: new badges go into the cache at least this often (seconds), or once this many are waiting
CACHE_FLUSH_SECONDS = 2.5
CACHE_FLUSH_BADGES = 500

#: serializes claims inside this process (across processes the cache file does)
CLAIM_LOCK = threading.Lock()

#: called with (rows finished in this run, a short message, rows to finish in this run)
Progress = Callable[[int, str, int], None]


# -- what a claim answers --------------------------------------------------------------------


@dataclass(frozen=True)
class _Claim:
    """The ledger's answer to a claim: send (``row`` carries the decision), wait, or done."""

    row: LedgerRow | None = None
    uncertain: bool = False
    wait: bool = False


@dataclass
class _Chain:
    """The rows of one student and template, in order; one worker at a time."""

    rows: list[LedgerRow]
    position: int = 0
    failed: tuple[int, str] | None = None  # (row, error class) that stopped the chain
    ready_at: float = 0.0


@dataclass
class _Mark:
    row: LedgerRow
    future: Future[_Claim]


@dataclass
class _Unmark:
    row_no: int


@dataclass
class _Result:
    finish: Finish
    badges: list[IssuedBadge] = field(default_factory=list)
    replaced: tuple[str, str] | None = None  # (old badge id, new badge id)


_STOP = object()


def _with_decision(row: LedgerRow, r: Redecision) -> LedgerRow:
    d = r.decided
    return LedgerRow(
        job_id=row.job_id,
        row_no=row.row_no,
        key=row.key,
        email=row.email,
        first_name=row.first_name,
        last_name=row.last_name,
        course_id=row.course_id,
        course_title=row.course_title,
        completed_at=row.completed_at,
        date_only=row.date_only,
        success_status=row.success_status,
        template_id=d.template_id or row.template_id,
        outcome=d.outcome,
        reason=d.reason,
        flags=d.flags,
        issued_at=d.issued_at,
        expires_at=d.expires_at,
        target_badge_id=d.target_badge_id,
        status=ledger.ROW_IN_FLIGHT,
        attempts=row.attempts + 1,
    )


class _LedgerWriter:
    """The one thread that writes a running job's ledger, in group commits."""

    def __init__(self, store: Store, job_id: str, *, mode: str, options: Mapping[str, Any]) -> None:
        self._store, self._job_id = store, job_id
        self._mode = "automatic" if mode == "automatic" else "bulk"
        self._include_rejected = bool(options.get("include_rejected"))
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"ledger-{job_id}", daemon=True)
        self.error: BaseException | None = None
        self.changed = 0
        self._badges: list[IssuedBadge] = []
        self._replaced: list[tuple[str, str]] = []
        self._flushed = time.monotonic()
        self._thread.start()

    # the workers' side
    def mark(self, row: LedgerRow) -> Future[_Claim]:
        future: Future[_Claim] = Future()
        if self.error is not None:
            future.set_exception(self.error)
        else:
            self._queue.put(_Mark(row, future))
        return future

    def unmark(self, row_no: int) -> None:
        self._queue.put(_Unmark(row_no))

    def finish(self, result: _Result) -> None:
        self._queue.put(result)

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join()

    # the writer's side
    def _run(self) -> None:
        last_beat = time.monotonic()
        stopping = False
        while not stopping:
            wait = max(ledger.HEARTBEAT_SECONDS - (time.monotonic() - last_beat), 0.01)
            try:
                first = self._queue.get(timeout=wait)
            except queue.Empty:
                first = None
            batch: list[object] = [] if first is None else [first]
            until = time.monotonic() + (WRITE_LINGER_SECONDS if batch else 0.0)
            while len(batch) < WRITE_BATCH and _STOP not in batch:
                left = until - time.monotonic()
                try:
                    item = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(item)
            if _STOP in batch:
                stopping = True
                batch = [item for item in batch if item is not _STOP]
            beat = stopping or time.monotonic() - last_beat >= ledger.HEARTBEAT_SECONDS
            if not batch and not beat:
                continue
            self._apply(batch, beat=beat)
            if beat:
                last_beat = time.monotonic()

    def _apply(self, batch: Sequence[object], *, beat: bool) -> None:
        marks = [item for item in batch if isinstance(item, _Mark)]
        if self.error is not None:
            for mark in marks:
                mark.future.set_exception(self.error)
            return
        try:
            claims = self._write(batch, beat=beat)
        except BaseException as exc:
            logger.exception("job %s: the ledger could not be written", self._job_id)
            self.error = exc
            for mark in marks:
                if not mark.future.done():
                    mark.future.set_exception(exc)
            return
        for mark in marks:
            mark.future.set_result(claims[mark.row.row_no])

    def _write(self, batch: Sequence[object], *, beat: bool) -> dict[int, _Claim]:
        """The batch in one transaction (tried again on a write conflict inside this process),
        then the cache when a flush is due."""
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                with CLAIM_LOCK:
                    claims = self._write_ledger(batch, beat=beat)
                break
            except duckdb.Error as exc:
                if attempt == WRITE_ATTEMPTS:
                    raise
                logger.debug("job %s: ledger write conflict (%s); again", self._job_id, exc)
                time.sleep(0.05 * attempt)
        for item in batch:
            if isinstance(item, _Result):
                self._badges.extend(item.badges)
                if item.replaced is not None:
                    self._replaced.append(item.replaced)
        if self._badges and (
            beat
            or len(self._badges) >= CACHE_FLUSH_BADGES
            or time.monotonic() - self._flushed >= CACHE_FLUSH_SECONDS
        ):
            self._flush_cache()
        return claims

    def _write_ledger(self, batch: Sequence[object], *, beat: bool) -> dict[int, _Claim]:
        marks = [item for item in batch if isinstance(item, _Mark)]
        unmarks = [item.row_no for item in batch if isinstance(item, _Unmark)]
        results = [item.finish for item in batch if isinstance(item, _Result)]
        now = utcnow()
        claims: dict[int, _Claim] = {}
        with self._store.transaction() as cur:
            # results first: a chain's next row is decided against the badge its previous made
            ledger.finish_rows(cur, self._job_id, results, now)
            if marks:
                claims = self._claim(cur, [m.row for m in marks], now)
            ledger.give_back(cur, self._job_id, unmarks, now)
            if beat:
                ledger.heartbeat(cur, self._job_id, now)
        return claims

    def _claim(
        self, cur: duckdb.DuckDBPyConnection, rows: Sequence[LedgerRow], now: datetime
    ) -> dict[int, _Claim]:
        snap = take_snapshot(
            self._store, cur, rows, exclude={(self._job_id, r.row_no) for r in rows}
        )
        answers = redecide(
            rows,
            snap,
            now=now,
            mode="automatic" if self._mode == "automatic" else "bulk",
            include_rejected=self._include_rejected,
            running_here=REGISTRY.running(),
        )
        claims: dict[int, _Claim] = {}
        decided: list[ledger.Decided] = []
        sending: list[int] = []
        landed: list[Finish] = []
        for answer in answers:
            row = answer.row
            if answer.wait:
                claims[row.row_no] = _Claim(wait=True)
                continue
            if answer.landed is not None:
                # sent by an earlier run of this row (which died before recording it)
                landed.append(Finish(row.row_no, ledger.ROW_SUCCEEDED, badge_id=answer.landed))
                claims[row.row_no] = _Claim()
                continue
            if answer.changed:
                self.changed += 1
            decided.append(as_decided(answer))
            if not answer.decided.sends:
                claims[row.row_no] = _Claim()
                continue
            sending.append(row.row_no)
            uncertain = answer.uncertain or row.attempts > 0 or row.status == ledger.ROW_IN_FLIGHT
            claims[row.row_no] = _Claim(row=_with_decision(row, answer), uncertain=uncertain)
        ledger.write_decisions(cur, self._job_id, decided, now)
        ledger.mark_in_flight(cur, self._job_id, sending, now)
        ledger.finish_rows(cur, self._job_id, landed, now)
        return claims

    def _flush_cache(self) -> None:
        """The new badges into the cache, and the badges they replaced marked so.

        Best effort: the ledger is the record and the re-decision reads it; the cache is a copy
        of Credly that the next sync completes anyway.
        """
        latest = {badge.id: badge for badge in self._badges}
        try:
            with self._store.transaction() as cur:
                upsert_badges(cur, list(latest.values()), synced_at=utcnow())
                if self._replaced:
                    cur.execute(
                        "UPDATE badges SET state = 'replaced', replacement_badge_id = v.new_id "
                        "FROM (SELECT unnest(?::VARCHAR[]) AS old_id, "
                        "unnest(?::VARCHAR[]) AS new_id) v WHERE badges.id = v.old_id",
                        [[old for old, _ in self._replaced], [new for _, new in self._replaced]],
                    )
        except duckdb.Error as exc:
            logger.debug("job %s: cache not updated yet (%s)", self._job_id, exc)
            return
        finally:
            self._flushed = time.monotonic()
        self._badges, self._replaced = [], []


# -- the runner ------------------------------------------------------------------------------


class _Runner:
    """One run of one job: chains handed to workers, results handed to the writer."""

    def __init__(
        self,
        job_id: str,
        chains: list[_Chain],
        *,
        client: CredlyClient,
        writer: _LedgerWriter,
        concurrency: int,
        progress: Progress | None,
        stop: threading.Event,
    ) -> None:
        self.job_id = job_id
        self._fresh: deque[_Chain] = deque(chains)
        self._waiting: list[_Chain] = []
        self._lock = threading.Lock()
        self._busy = 0
        self.client, self.writer = client, writer
        self.concurrency = concurrency
        self.total = sum(len(c.rows) for c in chains)
        self._progress = progress
        self.done = 0
        self.stop = stop
        self.fatal: tuple[str, str] | None = None  # (error class, message)
        self.crashed: BaseException | None = None
        #: per row, the badge it made (or found it had made) and Credly's refusal
        self.made: dict[int, IssuedBadge] = {}
        self.errors: dict[int, CredlyError] = {}

    def run(self) -> None:
        workers = [
            threading.Thread(target=self._work, name=f"{self.job_id}-w{i}", daemon=True)
            for i in range(max(1, min(self.concurrency, len(self._fresh) or 1)))
        ]
        for worker in workers:
            worker.start()
        try:
            for worker in workers:
                while worker.is_alive():
                    worker.join(0.2)
        except KeyboardInterrupt:
            self.stop.set()
            for worker in workers:
                worker.join()
            raise

    # chains in and out

    def _next_chain(self) -> _Chain | None:
        """A chain to work on: a fresh one, or one whose wait is over; ``None`` when every
        chain is done (a worker waits while other workers may still hand chains back)."""
        while not self.stop.is_set():
            with self._lock:
                now = time.monotonic()
                ready = [c for c in self._waiting if c.ready_at <= now]
                if ready:
                    chain = min(ready, key=lambda c: c.ready_at)
                    self._waiting.remove(chain)
                    self._busy += 1
                    return chain
                if self._fresh:
                    self._busy += 1
                    return self._fresh.popleft()
                if not self._waiting and not self._busy:
                    return None
                soonest = min((c.ready_at for c in self._waiting), default=now + WAIT_SECONDS)
            time.sleep(min(max(soonest - now, 0.01), WAIT_SECONDS))
        return None

    def _done_with(self, chain: _Chain, *, wait: bool = False) -> None:
        with self._lock:
            self._busy -= 1
            if wait:
                chain.ready_at = time.monotonic() + WAIT_SECONDS
                self._waiting.append(chain)

    def _work(self) -> None:
        ahead: deque[tuple[_Chain, Future[_Claim]]] = deque()

        def fill() -> None:
            while len(ahead) <= CLAIM_AHEAD:
                chain = self._next_chain() if not ahead else self._take_fresh()
                if chain is None:
                    return
                ahead.append((chain, self.writer.mark(chain.rows[chain.position])))

        try:
            fill()
            while ahead and not self.stop.is_set():
                chain, claim = ahead.popleft()
                self._run_chain(chain, claim.result())
                fill()
        except BaseException as exc:
            self.crashed = self.crashed or exc
            self.stop.set()
            logger.exception("job %s: a worker stopped", self.job_id)
        finally:
            # claimed but never sent: back to planned, so a resume sends them without a look-up
            for chain, claim in ahead:
                with contextlib.suppress(BaseException):
                    if claim.result().row is not None:
                        self.writer.unmark(chain.rows[chain.position].row_no)
                self._done_with(chain)

    def _take_fresh(self) -> _Chain | None:
        """A fresh or ready chain without waiting (to claim ahead while a request is out)."""
        with self._lock:
            now = time.monotonic()
            ready = [c for c in self._waiting if c.ready_at <= now]
            if ready:
                chain = min(ready, key=lambda c: c.ready_at)
                self._waiting.remove(chain)
                self._busy += 1
                return chain
            if self._fresh:
                self._busy += 1
                return self._fresh.popleft()
        return None

    def _run_chain(self, chain: _Chain, claim: _Claim) -> None:
        """Send the chain from its position on; the first claim is already made."""
        while True:
            row = chain.rows[chain.position]
            if claim.wait:
                self._done_with(chain, wait=True)
                return
            if claim.row is None:
                self._tick(f"row {row.row_no}: skipped")
            else:
                self._handle(chain, claim.row, uncertain=claim.uncertain)
            chain.position += 1
            if chain.position >= len(chain.rows) or self.stop.is_set():
                self._done_with(chain)
                return
            claim = self.writer.mark(chain.rows[chain.position]).result()

    # one row

    def _tick(self, message: str) -> None:
        with self._lock:
            self.done += 1
            done = self.done
        if self._progress is not None:
            self._progress(done, message, self.total)

    def _fail(
        self, chain: _Chain, row: LedgerRow, error_class: str, message: str, *, sent: bool = True
    ) -> None:
        chain.failed = chain.failed or (row.row_no, error_class)
        self.writer.finish(
            _Result(
                Finish(
                    row.row_no,
                    ledger.ROW_FAILED,
                    error_class=error_class,
                    error_message=message,
                    unsent=not sent,
                )
            )
        )
        self._tick(f"row {row.row_no}: {error_class}")

    def _succeed(
        self,
        row: LedgerRow,
        badge: IssuedBadge,
        *,
        reason: str | None = None,
        replaced: tuple[str, str] | None = None,
    ) -> None:
        self.made[row.row_no] = badge
        finish = Finish(row.row_no, ledger.ROW_SUCCEEDED, badge_id=badge.id, reason=reason)
        self.writer.finish(_Result(finish, badges=[badge], replaced=replaced))
        self._tick(f"row {row.row_no}: {row.outcome}")

    def _handle(self, chain: _Chain, row: LedgerRow, *, uncertain: bool) -> None:
        if self.fatal is not None:
            kind, message = self.fatal
            self._fail(
                chain, row, kind, f"Not sent: an earlier request was refused: {message}", sent=False
            )
            return
        if chain.failed is not None:
            earlier, kind = chain.failed
            self._fail(
                chain,
                row,
                kind,
                f"Not sent: row {earlier}, for the same student and template, failed ({kind}).",
                sent=False,
            )
            return
        try:
            if uncertain:
                found = self._look_up(row)
                if found is not None:
                    target = row.target_badge_id
                    replaced = (target, found.id) if row.outcome == "update" and target else None
                    self._succeed(row, found, replaced=replaced)
                    return
            self._send(chain, row)
        except CredlyError as exc:
            if exc.kind in FATAL_CLASSES:
                self.fatal = self.fatal or (exc.kind, str(exc))
            self.errors[row.row_no] = exc
            self._fail(chain, row, exc.kind, str(exc))
        except ValidationError as exc:
            fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
            self._fail(
                chain, row, "validation_failed", f"invalid request: {', '.join(fields)}", sent=False
            )

    def _look_up(self, row: LedgerRow) -> IssuedBadge | None:
        """The badge this row may already have made (see the module docstring)."""
        for badge in self.client.find_badges(row.email, row.template_id):
            if not badge.is_live or normalize_email(badge.recipient_email) != normalize_email(
                row.email
            ):
                continue
            if not same_second(badge.issued_at, row.issued_at):
                continue
            if row.outcome == "update" and not same_second(badge.expires_at, row.expires_at):
                continue
            return badge
        return None

    def _send(self, chain: _Chain, row: LedgerRow) -> None:
        assert row.issued_at is not None
        if row.outcome == "issue":
            result = self.client.issue(
                IssueRequest(
                    recipient_email=row.email,
                    issued_to_first_name=row.first_name,
                    issued_to_last_name=row.last_name,
                    badge_template_id=row.template_id,
                    issued_at=row.issued_at,
                    expires_at=row.expires_at,
                )
            )
            reason = "already_issued" if result.duplicate else None
            self._succeed(row, result.badge, reason=reason)
            return
        target = row.target_badge_id
        if target is None:
            message = "An update row names no badge to replace."
            self._fail(chain, row, "validation_failed", message, sent=False)
            return
        new = self.client.replace(
            target,
            ReplaceRequest(
                badge_template_id=row.template_id,
                issued_at=row.issued_at,
                expires_at=row.expires_at,
            ),
            recipient_email=row.email,
        )
        self._succeed(row, new, replaced=(target, new.id))


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


def _chains(rows: Sequence[LedgerRow]) -> list[_Chain]:
    chains: dict[tuple[str, str], _Chain] = {}
    for row in rows:
        chains.setdefault((normalize_email(row.email), row.template_id), _Chain([])).rows.append(
            row
        )
    return list(chains.values())


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
            include_rejected=bool(state.options.get("include_rejected")),
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


def _execute(
    claimed: _Claimed,
    *,
    concurrency: int,
    progress: Progress | None,
    client_options: Mapping[str, Any] | None,
    refresh: bool,
    outcome: RunOutcome | None = None,
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
            chains = _chains(ledger.pending_rows(cur, job_id))
        pacer = RatePacer()
        writer = _LedgerWriter(
            store,
            job_id,
            mode=str(claimed.state.options.get("mode", "bulk")),
            options=claimed.state.options,
        )
        try:
            with _client(ws, pacer, client_options) as client:
                runner = _Runner(
                    job_id,
                    chains,
                    client=client,
                    writer=writer,
                    concurrency=concurrency,
                    progress=progress,
                    stop=claimed.stop,
                )
                runner.run()
        finally:
            writer.close()
        if outcome is not None:
            outcome.made.update(runner.made)
            outcome.errors.update(runner.errors)
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
) -> JobProgress:
    """Send the job's unsent rows, in this thread, until none is left; returns its progress.

    Starts with an incremental sync (``refresh``) and a :func:`recheck`. Resumes a job that was
    interrupted or whose runner died: rows ``in_flight`` are looked up on Credly before
    anything is sent. Raises :class:`~credly_ops.ledger.JobNotFound` and
    :class:`~credly_ops.issuance.jobs.JobBusy`.
    """
    _check_concurrency(concurrency)
    claimed = _claim(ws, actor, job_id, action="issue.run")
    return _execute(
        claimed,
        concurrency=concurrency,
        progress=progress,
        client_options=client_options,
        refresh=refresh,
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

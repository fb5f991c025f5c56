"""The runner: a job's issue and update rows sent to Credly exactly once, resumable at any point.

**Exactly once.** Every ledger write goes through one writer thread, which commits what the
workers hand it in groups (one transaction for everything that arrived meanwhile):

1. *Claim* (before anything is sent): the row's key is looked up in the ledger of **every** job.
   A ``succeeded`` row with the same key means the badge exists: this row becomes
   ``succeeded / already_issued`` with that badge and nothing is sent. Otherwise the row is
   committed ``in_flight`` (``attempts + 1``), and only after that commit does the worker send.
2. *Finish*: ``succeeded`` with the badge id, or ``failed`` with the error class
   (:attr:`CredlyError.kind <credly_ops.credly.errors.CredlyError.kind>`) and its message
   (never a token: the client's errors carry none). The new badges, and the badges updates
   replaced, go into the cache within :data:`CACHE_FLUSH_SECONDS` and when the run ends, so
   pages see them without a sync; that write is a separate, best-effort unit of work (the
   ledger is the record; the cache is a copy of Credly that the next sync completes anyway).

A row that may already have reached Credly — one left ``in_flight`` by a runner that died, one
sent before (``attempts > 0``, as a retried failure is) or one ``in_flight`` in another job —
is **looked up first**: ``find_badges(email, template)`` and a live badge with the row's
``issued_at`` (to the second; for an update, also its new ``expires_at``) means it succeeded;
only when none is found is it sent. Inside one attempt the client itself looks a badge up after
an answer that never came (see :mod:`credly_ops.credly.client`). So a job killed at any
moment — SIGKILL included — and resumed issues nothing twice and loses no row: a row is either
still ``planned`` (never sent), ``in_flight`` (looked up on resume), or finished.

**Order.** Rows of one student and template form a *chain*, sent in the plan's order by one
worker; an update whose target is ``planned:<row>`` replaces the badge row ``<row>`` created
(taken from the chain, or from the ledger when an earlier run created it). When a row of a chain
fails, the rest of the chain is not sent (the plan assumed the earlier row's badge) and fails
with the same class, so :func:`retry_failed` re-drives the chain from where it stopped.

**Concurrency and rate limits.** ``concurrency`` workers (default 4) share one client. Each
worker has the claims of its next :data:`CLAIM_AHEAD` rows committed while its current request
is in flight, and the writer gathers everything that arrives within
:data:`WRITE_LINGER_SECONDS` into one transaction, so the ledger costs the workers no waiting.
A 429 slows the whole job: the client's ``on_rate_limited`` callback pushes a shared "not
before" moment that every request of every worker waits for (a transport wrapper), instead of
failing rows. An ``invalid_token`` or ``forbidden`` answer stops sending: the rows left fail
with that class without being sent.

**Status and liveness.** The job goes ``running`` (with ``heartbeat_at`` refreshed every
:data:`~credly_ops.issuance.jobs.HEARTBEAT_SECONDS`) and ends ``done``, ``done_with_failures``
or ``interrupted`` (stopped, or an error outside Credly's answers). One job runs at a time per
process (:data:`~credly_ops.issuance.jobs.REGISTRY`), and a runner keeps the cache file open for
the whole run, which DuckDB grants one process at a time: so a process that can open the file
and finds a job ``running`` that is not running in it knows its runner died, and takes it over.

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
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import httpx
from pydantic import ValidationError

from credly_ops.access import Actor, Permission, require
from credly_ops.credly.client import CredlyClient
from credly_ops.credly.errors import CredlyError
from credly_ops.issuance.decide import same_second
from credly_ops.issuance.jobs import (
    HEARTBEAT_SECONDS,
    JOB_DONE,
    JOB_DONE_WITH_FAILURES,
    JOB_INTERRUPTED,
    JOB_KIND,
    JOB_RUNNING,
    PENDING_ROW_STATES,
    REGISTRY,
    RETRYABLE_CLASSES,
    ROW_FAILED,
    ROW_IN_FLIGHT,
    ROW_PLANNED,
    ROW_SUCCEEDED,
    JobNotFound,
    JobProgress,
    job_progress,
)
from credly_ops.issuance.plan import is_planned_id, planned_badge_id
from credly_ops.models import (
    IssuedBadge,
    IssueRequest,
    ReplaceRequest,
    normalize_email,
    request_expiry,
)
from credly_ops.store import Store, from_db_time, to_db_time, write_audit
from credly_ops.sync import upsert_badges
from credly_ops.timeutil import utcnow
from credly_ops.workspace import Workspace

logger = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 4
MAX_CONCURRENCY = 32
#: error classes that stop the whole job: every later request would be refused the same way
FATAL_CLASSES: frozenset[str] = frozenset({"invalid_token", "forbidden"})
#: longest error message kept in the ledger
MESSAGE_LIMIT = 500
#: how many queued ledger writes one transaction takes at most
WRITE_BATCH = 512
#: how long the writer gathers requests into one transaction (claims run this far ahead)
WRITE_LINGER_SECONDS = 0.05
#: attempts at one ledger transaction when another unit of work of this process conflicts
WRITE_ATTEMPTS = 5
#: how many rows ahead of the one it sends a worker has claimed (committed ``in_flight``)
CLAIM_AHEAD = 3
#: new badges go into the cache at least this often (seconds), or once this many are waiting,
#: and when the job stops: a cache upsert costs about the same for one badge as for hundreds
CACHE_FLUSH_SECONDS = 2.5
CACHE_FLUSH_BADGES = 500

#: called with (rows finished in this run, a short message, rows to finish in this run)
Progress = Callable[[int, str, int], None]


# -- the shared "not before" gate ------------------------------------------------------------


class RateGate:
    """A moment before which no request of the job is sent; a 429 pushes it later."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._not_before = 0.0
        self.slowdowns = 0

    def defer(self, seconds: float) -> None:
        """Hold every request for ``seconds`` from now (the client's ``on_rate_limited``)."""
        with self._lock:
            self._not_before = max(self._not_before, self._clock() + max(seconds, 0.0))
            self.slowdowns += 1

    def remaining(self) -> float:
        with self._lock:
            return max(self._not_before - self._clock(), 0.0)

    def wait(self) -> None:
        while (left := self.remaining()) > 0:
            self._sleep(min(left, 0.25))


class GatedTransport(httpx.BaseTransport):
    """Sends each request once the job's :class:`RateGate` opens."""

    def __init__(self, inner: httpx.BaseTransport, gate: RateGate) -> None:
        self._inner, self._gate = inner, gate

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._gate.wait()
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


# -- ledger rows as the runner sees them -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Row:
    row_no: int
    key: str
    email: str
    first_name: str
    last_name: str
    template_id: str
    outcome: str
    issued_at: datetime
    expires_at: datetime | None
    target_badge_id: str | None
    status: str
    attempts: int

    @property
    def planned_id(self) -> str:
        return planned_badge_id(self.row_no)


@dataclass
class _Chain:
    """The rows of one student and template, in order; one worker at a time."""

    rows: list[_Row]
    failed: tuple[int, str] | None = None  # (row, error class) that stopped the chain


@dataclass(frozen=True)
class _Claim:
    """What the ledger said before sending: ``badge_id`` set means already issued elsewhere."""

    badge_id: str | None = None
    uncertain: bool = False


@dataclass
class _Finish:
    row_no: int
    status: str
    badge_id: str | None = None
    reason: str | None = None
    error_class: str | None = None
    error_message: str | None = None
    badges: list[IssuedBadge] = field(default_factory=list)
    replaced: tuple[str, str] | None = None  # (old badge id, new badge id)
    #: claimed but never sent (its chain or the job stopped): the claim's attempt is given back
    unsent: bool = False


@dataclass
class _Mark:
    row: _Row
    future: Future[_Claim]


@dataclass
class _Unmark:
    row_no: int


_STOP = object()


class _LedgerWriter:
    """The one thread that writes a running job's ledger, in group commits."""

    def __init__(self, store: Store, job_id: str, heartbeat_every: float) -> None:
        self._store, self._job_id = store, job_id
        self._heartbeat_every = heartbeat_every
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"ledger-{job_id}", daemon=True)
        self.error: BaseException | None = None
        self._badges: list[IssuedBadge] = []
        self._replaced: list[tuple[str, str]] = []
        self._flushed = time.monotonic()
        self._thread.start()

    # the workers' side
    def mark(self, row: _Row) -> Future[_Claim]:
        future: Future[_Claim] = Future()
        self._put(_Mark(row, future))
        return future

    def unmark(self, row_no: int) -> None:
        self._put(_Unmark(row_no))

    def finish(self, item: _Finish) -> None:
        self._put(item)

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join()

    def _put(self, item: object) -> None:
        if self.error is not None and isinstance(item, _Mark):
            item.future.set_exception(self.error)
            return
        self._queue.put(item)

    # the writer's side
    def _run(self) -> None:
        last_beat = time.monotonic()
        stopping = False
        while not stopping:
            wait = max(self._heartbeat_every - (time.monotonic() - last_beat), 0.01)
            try:
                first = self._queue.get(timeout=wait)
            except queue.Empty:
                first = None
            batch: list[object] = [] if first is None else [first]
            # gather what arrives meanwhile: workers claim rows ahead, so a claim can wait a
            # moment, and fewer, larger transactions leave the workers more of the CPU
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
            beat = stopping or time.monotonic() - last_beat >= self._heartbeat_every
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
        """The batch's ledger writes in one transaction (tried again on a write conflict with
        another unit of work of this process), then the cache when a flush is due."""
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                claims = self._write_ledger(batch, beat=beat)
                break
            except duckdb.Error as exc:
                if attempt == WRITE_ATTEMPTS:
                    raise
                logger.warning(
                    "job %s: ledger write conflict (%s); trying again", self._job_id, exc
                )
                time.sleep(0.05 * attempt)
        for item in batch:
            if isinstance(item, _Finish):
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
        finishes = [item for item in batch if isinstance(item, _Finish)]
        now = to_db_time(utcnow())
        claims: dict[int, _Claim] = {}
        with self._store.transaction() as cur:
            if marks:
                claims = self._claim(cur, marks, now)
            if unmarks:
                cur.execute(
                    "UPDATE ledger SET status = ?, attempts = greatest(attempts - 1, 0), "
                    "updated_at = ? WHERE job_id = ? AND status = ? "
                    "AND row_no IN (SELECT unnest(?::INTEGER[]))",
                    [ROW_PLANNED, now, self._job_id, ROW_IN_FLIGHT, unmarks],
                )
            done = [
                _Finish(row_no, ROW_SUCCEEDED, badge_id=c.badge_id, reason="already_issued")
                for row_no, c in claims.items()
                if c.badge_id is not None
            ]
            if finishes or done:
                self._finish(cur, [*finishes, *done], now)
            if beat:
                cur.execute("UPDATE jobs SET heartbeat_at = ? WHERE id = ?", [now, self._job_id])
        return claims

    def _flush_cache(self) -> None:
        """The new badges into the cache, and the badges they replaced marked so.

        Best effort: the ledger is the record, the cache a copy of Credly. When another unit
        of work holds these rows (a sync), the badges wait for the next flush, and a sync
        brings them anyway.
        """
        latest = {badge.id: badge for badge in self._badges}
        try:
            with self._store.transaction() as cur:
                upsert_badges(cur, list(latest.values()), synced_at=utcnow())
                if self._replaced:
                    cur.execute(
                        "UPDATE badges SET state = 'replaced', replacement_badge_id = v.new_id, "
                        "updated_at = ? FROM (SELECT unnest(?::VARCHAR[]) AS old_id, "
                        "unnest(?::VARCHAR[]) AS new_id) v WHERE badges.id = v.old_id",
                        [
                            to_db_time(utcnow()),
                            [old for old, _ in self._replaced],
                            [new for _, new in self._replaced],
                        ],
                    )
        except duckdb.Error as exc:
            logger.warning("job %s: cache not updated yet (%s)", self._job_id, exc)
            return
        finally:
            self._flushed = time.monotonic()
        self._badges, self._replaced = [], []

    def _claim(self, cur: Any, marks: Sequence[_Mark], now: datetime | None) -> dict[int, _Claim]:
        own = {m.row.row_no for m in marks}
        seen = cur.execute(
            "SELECT job_id, row_no, key, status, badge_id FROM ledger "
            "WHERE key IN (SELECT unnest(?::VARCHAR[])) AND status IN (?, ?) "
            "ORDER BY updated_at",
            [[m.row.key for m in marks], ROW_SUCCEEDED, ROW_IN_FLIGHT],
        ).fetchall()
        issued: dict[str, str] = {}
        elsewhere: set[str] = set()
        for job_id, row_no, key, status, badge_id in seen:
            if job_id == self._job_id and row_no in own:
                continue
            if status == ROW_SUCCEEDED and badge_id:
                issued[key] = badge_id
            elif status == ROW_IN_FLIGHT:
                elsewhere.add(key)
        claims: dict[int, _Claim] = {}
        sending: list[int] = []
        for mark in marks:
            row = mark.row
            if row.key in issued:
                claims[row.row_no] = _Claim(badge_id=issued[row.key])
                continue
            uncertain = row.attempts > 0 or row.status == ROW_IN_FLIGHT or row.key in elsewhere
            claims[row.row_no] = _Claim(uncertain=uncertain)
            sending.append(row.row_no)
        if sending:
            cur.execute(
                "UPDATE ledger SET status = ?, attempts = attempts + 1, updated_at = ? "
                "WHERE job_id = ? AND row_no IN (SELECT unnest(?::INTEGER[]))",
                [ROW_IN_FLIGHT, now, self._job_id, sending],
            )
        return claims

    def _finish(self, cur: Any, items: Sequence[_Finish], now: datetime | None) -> None:
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
                now,
                [i.row_no for i in items],
                [i.status for i in items],
                [i.badge_id for i in items],
                [i.reason for i in items],
                [i.error_class for i in items],
                [i.error_message for i in items],
                [int(i.unsent) for i in items],
                self._job_id,
            ],
        )


# -- the runner ------------------------------------------------------------------------------


class _Runner:
    """One run of one job: chains handed to workers, results handed to the writer."""

    def __init__(
        self,
        job_id: str,
        chains: list[_Chain],
        created: dict[str, str],
        broken: dict[str, tuple[int, str]],
        *,
        client: CredlyClient,
        writer: _LedgerWriter,
        concurrency: int,
        progress: Progress | None,
        stop: threading.Event,
    ) -> None:
        self.job_id = job_id
        self._chains: Iterator[_Chain] = iter(chains)
        self._chains_lock = threading.Lock()
        self._created = created  # planned id → real badge id, from earlier runs
        self._broken = broken  # planned id → (row, error class) of a failed creating row
        self.client, self.writer = client, writer
        self.concurrency = concurrency
        self.total = sum(len(c.rows) for c in chains)
        self._progress = progress
        self._progress_lock = threading.Lock()
        self.done = 0
        self.stop = stop
        self.fatal: tuple[str, str] | None = None  # (error class, message)
        self.crashed: BaseException | None = None

    # workers

    def run(self) -> None:
        workers = [
            threading.Thread(target=self._work, name=f"{self.job_id}-w{i}", daemon=True)
            for i in range(max(1, min(self.concurrency, self.total or 1)))
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

    def _next_chain(self) -> _Chain | None:
        with self._chains_lock:
            return next(self._chains, None)

    def _rows(self) -> Iterator[tuple[_Chain, _Row]]:
        while (chain := self._next_chain()) is not None:
            for row in chain.rows:
                yield chain, row

    def _work(self) -> None:
        rows = self._rows()
        ahead: deque[tuple[_Chain, _Row, Future[_Claim]]] = deque()

        def fill() -> None:
            while len(ahead) <= CLAIM_AHEAD:
                item = next(rows, None)
                if item is None:
                    return
                ahead.append((item[0], item[1], self.writer.mark(item[1])))

        try:
            fill()
            while ahead and not self.stop.is_set():
                chain, row, claim = ahead.popleft()
                result = claim.result()
                fill()
                self._handle(chain, row, result)
        except BaseException as exc:
            self.crashed = self.crashed or exc
            self.stop.set()
            logger.exception("job %s: a worker stopped", self.job_id)
        finally:
            # claimed but never sent: back to planned, so a resume sends them without a look-up
            for _, row, claim in ahead:
                with contextlib.suppress(BaseException):
                    claim.result()
                    self.writer.unmark(row.row_no)

    def _tick(self, message: str) -> None:
        with self._progress_lock:
            self.done += 1
            if self._progress is not None:
                self._progress(self.done, message, self.total)

    def _fail(
        self, chain: _Chain, row: _Row, error_class: str, message: str, *, sent: bool = True
    ) -> None:
        chain.failed = chain.failed or (row.row_no, error_class)
        self.writer.finish(
            _Finish(
                row.row_no,
                ROW_FAILED,
                error_class=error_class,
                error_message=message[:MESSAGE_LIMIT],
                unsent=not sent,
            )
        )
        self._tick(f"row {row.row_no}: {error_class}")

    def _succeed(
        self,
        chain: _Chain,
        row: _Row,
        badge: IssuedBadge,
        *,
        reason: str | None = None,
        replaced: tuple[str, str] | None = None,
    ) -> None:
        self._created[row.planned_id] = badge.id
        self.writer.finish(
            _Finish(
                row.row_no,
                ROW_SUCCEEDED,
                badge_id=badge.id,
                reason=reason,
                badges=[badge],
                replaced=replaced,
            )
        )
        self._tick(f"row {row.row_no}: {row.outcome}")

    def _handle(self, chain: _Chain, row: _Row, claim: _Claim) -> None:
        if claim.badge_id is not None:
            self._created[row.planned_id] = claim.badge_id
            self._tick(f"row {row.row_no}: already issued")
            return
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
        target = row.target_badge_id
        if target is not None and is_planned_id(target):
            resolved = self._created.get(target)
            if resolved is None:
                earlier, kind = self._broken.get(target, (0, "credly_error"))
                where = f"row {earlier}" if earlier else "the row that creates it"
                self._fail(
                    chain, row, kind, f"Not sent: the badge to update ({where}) failed.", sent=False
                )
                return
            target = resolved
        try:
            if claim.uncertain:
                found = self._look_up(row)
                if found is not None:
                    replaced = (target, found.id) if row.outcome == "update" and target else None
                    self._succeed(chain, row, found, replaced=replaced)
                    return
            self._send(chain, row, target)
        except CredlyError as exc:
            if exc.kind in FATAL_CLASSES:
                self.fatal = self.fatal or (exc.kind, str(exc))
            self._fail(chain, row, exc.kind, str(exc))
        except ValidationError as exc:
            fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
            self._fail(
                chain, row, "validation_failed", f"invalid request: {', '.join(fields)}", sent=False
            )

    def _look_up(self, row: _Row) -> IssuedBadge | None:
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

    def _send(self, chain: _Chain, row: _Row, target: str | None) -> None:
        if row.outcome == "issue":
            result = self.client.issue(
                IssueRequest(
                    recipient_email=row.email,
                    issued_to_first_name=row.first_name,
                    issued_to_last_name=row.last_name,
                    badge_template_id=row.template_id,
                    issued_at=row.issued_at,
                    expires_at=request_expiry(row.expires_at),
                )
            )
            reason = "already_issued" if result.duplicate else None
            self._succeed(chain, row, result.badge, reason=reason)
            return
        if target is None:
            message = "An update row names no badge to replace."
            self._fail(chain, row, "validation_failed", message, sent=False)
            return
        new = self.client.replace(
            target,
            ReplaceRequest(
                badge_template_id=row.template_id,
                issued_at=row.issued_at,
                expires_at=request_expiry(row.expires_at),
            ),
            recipient_email=row.email,
        )
        self._succeed(chain, row, new, replaced=(target, new.id))


# -- claiming, loading and finishing a job ---------------------------------------------------


def _check_concurrency(concurrency: int) -> int:
    if isinstance(concurrency, bool) or not isinstance(concurrency, int):
        raise ValueError("concurrency must be a whole number")
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"concurrency must lie between 1 and {MAX_CONCURRENCY}")
    return concurrency


def _claim_job(store: Store, actor: Actor, job_id: str, *, action: str) -> None:
    """Mark the job running (it must exist); the caller has registered it in this process."""
    now = to_db_time(utcnow())
    with store.transaction() as cur:
        row = cur.execute(
            "SELECT status FROM jobs WHERE id = ? AND kind = ?", [job_id, JOB_KIND]
        ).fetchone()
        if row is None:
            raise JobNotFound(job_id)
        cur.execute(
            "UPDATE jobs SET status = ?, started_at = coalesce(started_at, ?), "
            "finished_at = NULL, heartbeat_at = ? WHERE id = ?",
            [JOB_RUNNING, now, now, job_id],
        )
        write_audit(
            cur,
            actor=actor,
            action=action,
            target=job_id,
            job_id=job_id,
            outcome="ok",
            detail={"previous_status": row[0]},
        )


def _load(
    store: Store, job_id: str
) -> tuple[list[_Chain], dict[str, str], dict[str, tuple[int, str]]]:
    """The job's unsent rows as chains, and what its finished rows created or broke."""
    with store.session() as cur:
        pending = cur.execute(
            "SELECT row_no, key, email, first_name, last_name, template_id, outcome, issued_at, "
            "expires_at, target_badge_id, status, attempts FROM ledger "
            "WHERE job_id = ? AND status IN (?, ?) ORDER BY completed_at, row_no",
            [job_id, *PENDING_ROW_STATES],
        ).fetchall()
        ended = cur.execute(
            "SELECT row_no, status, badge_id, error_class FROM ledger "
            "WHERE job_id = ? AND status IN (?, ?) AND outcome IN ('issue', 'update')",
            [job_id, ROW_SUCCEEDED, ROW_FAILED],
        ).fetchall()
    created: dict[str, str] = {}
    broken: dict[str, tuple[int, str]] = {}
    for row_no, status, badge_id, error_class in ended:
        if status == ROW_SUCCEEDED and badge_id:
            created[planned_badge_id(row_no)] = badge_id
        elif status == ROW_FAILED:
            broken[planned_badge_id(row_no)] = (row_no, error_class or "credly_error")
    chains: dict[tuple[str, str], _Chain] = {}
    for r in pending:
        issued_at = from_db_time(r[7])
        if issued_at is None:
            continue
        row = _Row(
            row_no=int(r[0]),
            key=r[1],
            email=r[2] or "",
            first_name=r[3] or "",
            last_name=r[4] or "",
            template_id=r[5] or "",
            outcome=r[6],
            issued_at=issued_at,
            expires_at=from_db_time(r[8]),
            target_badge_id=r[9],
            status=r[10],
            attempts=int(r[11] or 0),
        )
        chains.setdefault((normalize_email(row.email), row.template_id), _Chain([])).rows.append(
            row
        )
    return list(chains.values()), created, broken


def _finalize(store: Store, actor: Actor, job_id: str, *, interrupted: bool) -> str:
    now = to_db_time(utcnow())
    with store.transaction() as cur:
        counts = dict(
            cur.execute(
                "SELECT status, count(*) FROM ledger WHERE job_id = ? GROUP BY status", [job_id]
            ).fetchall()
        )
        pending = sum(counts.get(s, 0) for s in PENDING_ROW_STATES)
        if interrupted or pending:
            status = JOB_INTERRUPTED
        elif counts.get(ROW_FAILED, 0):
            status = JOB_DONE_WITH_FAILURES
        else:
            status = JOB_DONE
        cur.execute(
            "UPDATE jobs SET status = ?, finished_at = ?, heartbeat_at = ? WHERE id = ?",
            [status, None if status == JOB_INTERRUPTED else now, now, job_id],
        )
        write_audit(
            cur,
            actor=actor,
            action="issue.job_finished",
            target=job_id,
            job_id=job_id,
            outcome=status,
            detail={k: int(v) for k, v in counts.items()},
        )
    return status


def _client(ws: Workspace, gate: RateGate, options: Mapping[str, Any] | None) -> CredlyClient:
    """The job's client: ``options`` for :class:`CredlyClient` (``timeout``, ``transport``,
    ``max_attempts``, ``sleep`` …), with the transport behind the job's :class:`RateGate`."""
    kw = dict(options or {})
    inner = kw.pop("transport", None) or httpx.HTTPTransport()
    kw["transport"] = GatedTransport(inner, gate)
    kw["on_rate_limited"] = gate.defer
    return ws.client(**kw)


@dataclass
class _Claimed:
    """A job registered and marked running in this process, ready to execute."""

    ws: Workspace
    actor: Actor
    job_id: str
    stop: threading.Event


def _claim(ws: Workspace, actor: Actor, job_id: str, *, action: str) -> _Claimed:
    require(actor, Permission.ISSUE)
    stop = REGISTRY.enter(job_id)
    try:
        _claim_job(ws.store, actor, job_id, action=action)
    except BaseException:
        REGISTRY.leave(job_id)
        raise
    return _Claimed(ws, actor, job_id, stop)


def _execute(
    claimed: _Claimed,
    *,
    concurrency: int,
    progress: Progress | None,
    client_options: Mapping[str, Any] | None,
) -> JobProgress:
    ws, actor, job_id = claimed.ws, claimed.actor, claimed.job_id
    store = ws.store
    interrupted = True
    try:
        with store.held():
            chains, created, broken = _load(store, job_id)
            gate = RateGate()
            writer = _LedgerWriter(store, job_id, HEARTBEAT_SECONDS)
            try:
                with _client(ws, gate, client_options) as client:
                    runner = _Runner(
                        job_id,
                        chains,
                        created,
                        broken,
                        client=client,
                        writer=writer,
                        concurrency=concurrency,
                        progress=progress,
                        stop=claimed.stop,
                    )
                    runner.run()
            finally:
                writer.close()
            interrupted = (
                claimed.stop.is_set() or runner.crashed is not None or writer.error is not None
            )
            if gate.slowdowns:
                logger.info("job %s: Credly slowed the job down %d times", job_id, gate.slowdowns)
            if runner.crashed is not None:
                raise runner.crashed
            if writer.error is not None:
                raise writer.error
    finally:
        try:
            _finalize(store, actor, job_id, interrupted=interrupted)
        finally:
            REGISTRY.leave(job_id)
    return job_progress(store, job_id)


def run_job(
    ws: Workspace,
    actor: Actor,
    job_id: str,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
    client_options: Mapping[str, Any] | None = None,
) -> JobProgress:
    """Send the job's unsent rows, in this thread, until none is left; returns its progress.

    Resumes a job that was interrupted or whose runner died: rows ``in_flight`` are looked up
    on Credly before anything is sent (module docstring). ``client_options`` are handed to the
    Credly client (e.g. ``{"timeout": httpx.Timeout(5, read=1.0)}``). Raises
    :class:`~credly_ops.issuance.jobs.JobNotFound` and :class:`~credly_ops.issuance.jobs.JobBusy`.
    """
    _check_concurrency(concurrency)
    claimed = _claim(ws, actor, job_id, action="issue.run")
    return _execute(
        claimed, concurrency=concurrency, progress=progress, client_options=client_options
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
        claimed, concurrency=concurrency, progress=progress, client_options=client_options
    )


def reset_retryable(store: Store, actor: Actor, job_id: str) -> int:
    """Put the job's failed rows of a retryable class back to ``planned``; returns how many.

    Rows failed with a final class (invalid_token, template_inactive, duplicate,
    validation_failed, forbidden, …) stay failed. ``attempts`` is kept, so each re-driven row
    is looked up on Credly before it is sent again.
    """
    require(actor, Permission.ISSUE)
    now = to_db_time(utcnow())
    classes = sorted(RETRYABLE_CLASSES)
    with store.transaction() as cur:
        if (
            cur.execute(
                "SELECT 1 FROM jobs WHERE id = ? AND kind = ?", [job_id, JOB_KIND]
            ).fetchone()
            is None
        ):
            raise JobNotFound(job_id)
        row = cur.execute(
            "SELECT count(*) FROM ledger WHERE job_id = ? AND status = ? "
            "AND error_class IN (SELECT unnest(?::VARCHAR[]))",
            [job_id, ROW_FAILED, classes],
        ).fetchone()
        n = int(row[0]) if row else 0
        cur.execute(
            "UPDATE ledger SET status = ?, updated_at = ? WHERE job_id = ? AND status = ? "
            "AND error_class IN (SELECT unnest(?::VARCHAR[]))",
            [ROW_PLANNED, now, job_id, ROW_FAILED, classes],
        )
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
    rate_limited); final failures stay failed with their class."""
    _check_concurrency(concurrency)
    claimed = _claim(ws, actor, job_id, action="issue.retry")
    try:
        reset_retryable(ws.store, actor, job_id)
    except BaseException:
        REGISTRY.leave(job_id)
        raise
    return _execute(
        claimed, concurrency=concurrency, progress=progress, client_options=client_options
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
            _execute(claimed, concurrency=concurrency, progress=None, client_options=client_options)
        except Exception:
            logger.exception("job %s stopped with an error; resume it to carry on", job_id)

    thread = threading.Thread(target=target, name=f"job-{job_id}", daemon=True)
    thread.start()
    return thread

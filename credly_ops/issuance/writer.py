"""The ledger writer: the one thread that writes a running job's ledger, in group commits.

Workers hand it three things: *claims* (a row about to be sent), *results* (how a sent row
ended) and *give-backs* (a row claimed but never sent). Everything that arrives within
:data:`WRITE_LINGER_SECONDS` is written in one transaction: results first, so a chain's next row
is decided against the badge its previous one made; then claims, each row decided again against
the cache and the ledger of every job (:mod:`credly_ops.issuance.redecide`) and answered
*send* (committed ``in_flight`` first), *skip* (ended with its reason), *landed* (a row in
doubt whose own badge is there) or *wait* (another live job is sending for the student).
Claims are serialized inside the process by :data:`CLAIM_LOCK` and across processes by the cache
file. The badges the job made go into the cache now and then (:data:`CACHE_FLUSH_SECONDS`),
best effort: the ledger is the record; their students' completion → badge links follow.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

from credly_ops import ledger
from credly_ops.issuance.decide import DecideOptions
from credly_ops.issuance.jobs import REGISTRY
from credly_ops.issuance.redecide import Redecision, as_decided, redecide, take_snapshot
from credly_ops.ledger import Finish, LedgerRow
from credly_ops.links import relink
from credly_ops.models import IssuedBadge, normalize_email
from credly_ops.store import Store
from credly_ops.sync import upsert_badges
from credly_ops.timeutil import utcnow

logger = logging.getLogger(__name__)

#: how many queued ledger writes one transaction takes at most
WRITE_BATCH = 512
#: how long the writer gathers requests into one transaction
WRITE_LINGER_SECONDS = 0.05
#: attempts at one ledger transaction when another unit of work of this process conflicts
WRITE_ATTEMPTS = 5
#: new badges go into the cache at least this often (seconds), or once this many are waiting
CACHE_FLUSH_SECONDS = 2.5
CACHE_FLUSH_BADGES = 500

#: serializes claims inside this process (across processes the cache file does)
CLAIM_LOCK = threading.Lock()


# -- what a claim answers --------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """The ledger's answer to a claim: send (``row`` carries the decision), wait, or done."""

    row: LedgerRow | None = None
    uncertain: bool = False
    wait: bool = False


@dataclass
class Mark:
    row: LedgerRow
    future: Future[Claim]


@dataclass
class Unmark:
    row_no: int


@dataclass
class Result:
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


class LedgerWriter:
    """The one thread that writes a running job's ledger, in group commits."""

    def __init__(self, store: Store, job_id: str, *, mode: str, options: Mapping[str, Any]) -> None:
        self._store, self._job_id = store, job_id
        self._mode = "automatic" if mode == "automatic" else "bulk"
        self._options = DecideOptions.from_options(options)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"ledger-{job_id}", daemon=True)
        self.error: BaseException | None = None
        self.changed = 0
        self._badges: list[IssuedBadge] = []
        self._replaced: list[tuple[str, str]] = []
        self._flushed = time.monotonic()
        self._thread.start()

    # the workers' side
    def mark(self, row: LedgerRow) -> Future[Claim]:
        future: Future[Claim] = Future()
        if self.error is not None:
            future.set_exception(self.error)
        else:
            self._queue.put(Mark(row, future))
        return future

    def unmark(self, row_no: int) -> None:
        self._queue.put(Unmark(row_no))

    def finish(self, result: Result) -> None:
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
        marks = [item for item in batch if isinstance(item, Mark)]
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

    def _write(self, batch: Sequence[object], *, beat: bool) -> dict[int, Claim]:
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
            if isinstance(item, Result):
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

    def _write_ledger(self, batch: Sequence[object], *, beat: bool) -> dict[int, Claim]:
        marks = [item for item in batch if isinstance(item, Mark)]
        unmarks = [item.row_no for item in batch if isinstance(item, Unmark)]
        results = [item.finish for item in batch if isinstance(item, Result)]
        now = utcnow()
        claims: dict[int, Claim] = {}
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
    ) -> dict[int, Claim]:
        snap = take_snapshot(
            self._store, cur, rows, exclude={(self._job_id, r.row_no) for r in rows}
        )
        answers = redecide(
            rows,
            snap,
            now=now,
            mode="automatic" if self._mode == "automatic" else "bulk",
            options=self._options,
            running_here=REGISTRY.running(),
        )
        claims: dict[int, Claim] = {}
        decided: list[ledger.Decided] = []
        sending: list[int] = []
        landed: list[Finish] = []
        for answer in answers:
            row = answer.row
            if answer.wait:
                claims[row.row_no] = Claim(wait=True)
                continue
            if answer.landed is not None:
                # sent by an earlier run of this row (which died before recording it)
                landed.append(Finish(row.row_no, ledger.ROW_SUCCEEDED, badge_id=answer.landed))
                claims[row.row_no] = Claim()
                continue
            if answer.changed:
                self.changed += 1
            decided.append(as_decided(answer))
            if not answer.decided.sends:
                claims[row.row_no] = Claim()
                continue
            sending.append(row.row_no)
            uncertain = answer.uncertain or row.attempts > 0 or row.status == ledger.ROW_IN_FLIGHT
            claims[row.row_no] = Claim(row=_with_decision(row, answer), uncertain=uncertain)
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
                upsert_badges(cur, list(latest.values()), synced_at=utcnow(), relinking=False)
                if self._replaced:
                    cur.execute(
                        "UPDATE badges SET state = 'replaced', replacement_badge_id = v.new_id "
                        "FROM (SELECT unnest(?::VARCHAR[]) AS old_id, "
                        "unnest(?::VARCHAR[]) AS new_id) v WHERE badges.id = v.old_id",
                        [[old for old, _ in self._replaced], [new for _, new in self._replaced]],
                    )
                # the completion → badge link of these students, chains complete
                relink(cur, [normalize_email(b.recipient_email) for b in latest.values()])
        except duckdb.Error as exc:
            logger.debug("job %s: cache not updated yet (%s)", self._job_id, exc)
            return
        finally:
            self._flushed = time.monotonic()
        self._badges, self._replaced = [], []

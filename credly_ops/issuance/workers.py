"""The workers: a job's chains sent by a few threads, each row claimed just before it is sent.

Rows of one student and template form a *chain*, sent in completed_at order by one worker; the
next row of a chain is claimed only once the previous one has finished. Each worker claims the
first rows of its next :data:`CLAIM_AHEAD` chains while its current request is in flight. A
chain whose claim says *wait* goes back to the pool and is claimed again after
:data:`WAIT_SECONDS`. A row that may already have reached Credly is looked up before it is sent;
a failed row stops the rest of its chain; a refused token stops the job.

A job may run behind a :class:`Gate` (automatic issuing's safety rails): asked just before
each request that would make a badge, it may refuse; the refused row goes back to ``planned``
(never sent) and the job stops after the requests in flight, so nothing is sent past a cap and
the rows held are sent by a later run.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

from pydantic import ValidationError

from credly_ops import ledger
from credly_ops.credly.client import CredlyClient
from credly_ops.credly.errors import CredlyError
from credly_ops.issuance.decide import same_second
from credly_ops.issuance.writer import Claim, LedgerWriter, Result
from credly_ops.ledger import Finish, LedgerRow
from credly_ops.models import (
    IssuedBadge,
    IssueRequest,
    ReplaceRequest,
    normalize_email,
    renewal_request,
    request_expiry,
)

logger = logging.getLogger(__name__)

#: error classes that stop the whole job: every later request would be refused the same way
FATAL_CLASSES: frozenset[str] = frozenset({"invalid_token", "forbidden"})
#: how many chains ahead of the one it sends a worker has claimed the first row of
CLAIM_AHEAD = 3
#: how long a row waits before it is claimed again while another job sends for its student
WAIT_SECONDS = 0.5
#: called with (rows finished in this run, a short message, rows to finish in this run)
Progress = Callable[[int, str, int], None]


class Gate(Protocol):
    """What a run asks before each send and tells after it (thread-safe)."""

    def admit(self, row: LedgerRow) -> bool:
        """May ``row`` be sent now? ``False`` stops the run; the row is given back."""
        ...

    def ended(self, row: LedgerRow, ok: bool) -> None:
        """A request for ``row`` ended: it made its badge (``ok``) or failed."""
        ...


@dataclass
class Chain:
    """The rows of one student and template, in order; one worker at a time."""

    rows: list[LedgerRow]
    position: int = 0
    failed: tuple[int, str] | None = None  # (row, error class) that stopped the chain
    ready_at: float = 0.0


class Runner:
    """One run of one job: chains handed to workers, results handed to the writer."""

    def __init__(
        self,
        job_id: str,
        chains: list[Chain],
        *,
        client: CredlyClient,
        writer: LedgerWriter,
        concurrency: int,
        progress: Progress | None,
        stop: threading.Event,
        gate: Gate | None = None,
    ) -> None:
        self.job_id = job_id
        self.gate = gate
        #: rows the gate refused (given back, never sent)
        self.held = 0
        self._fresh: deque[Chain] = deque(chains)
        self._waiting: list[Chain] = []
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

    def _next_chain(self) -> Chain | None:
        """A chain to work on: a fresh one, or one whose wait is over; ``None`` when every
        chain is done (a worker waits while other workers may still hand chains back)."""
        while not self.stop.is_set():
            with self._lock:
                now = time.monotonic()
                chain = self._take_locked(now)
                if chain is not None:
                    return chain
                if not self._waiting and not self._busy:
                    return None
                soonest = min((c.ready_at for c in self._waiting), default=now + WAIT_SECONDS)
            time.sleep(min(max(soonest - now, 0.01), WAIT_SECONDS))
        return None

    def _done_with(self, chain: Chain, *, wait: bool = False) -> None:
        with self._lock:
            self._busy -= 1
            if wait:
                chain.ready_at = time.monotonic() + WAIT_SECONDS
                self._waiting.append(chain)

    def _work(self) -> None:
        ahead: deque[tuple[Chain, Future[Claim]]] = deque()

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

    def _take_fresh(self) -> Chain | None:
        """A fresh or ready chain without waiting (to claim ahead while a request is out)."""
        with self._lock:
            return self._take_locked(time.monotonic())

    def _take_locked(self, now: float) -> Chain | None:
        """A chain whose wait is over (the longest-waiting first), else a fresh one; the caller
        holds the lock."""
        ready = [c for c in self._waiting if c.ready_at <= now]
        chain: Chain | None = None
        if ready:
            chain = min(ready, key=lambda c: c.ready_at)
            self._waiting.remove(chain)
        elif self._fresh:
            chain = self._fresh.popleft()
        if chain is not None:
            self._busy += 1
        return chain

    def _run_chain(self, chain: Chain, claim: Claim) -> None:
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
        self, chain: Chain, row: LedgerRow, error_class: str, message: str, *, sent: bool = True
    ) -> None:
        chain.failed = chain.failed or (row.row_no, error_class)
        self.writer.finish(
            Result(
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
        self.writer.finish(Result(finish, badges=[badge], replaced=replaced))
        self._tick(f"row {row.row_no}: {row.outcome}")

    def _handle(self, chain: Chain, row: LedgerRow, *, uncertain: bool) -> None:
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
            if self.gate is not None and not self.gate.admit(row):
                with self._lock:
                    self.held += 1
                self.stop.set()
                self.writer.unmark(row.row_no)
                return
            self._send(chain, row)
            if self.gate is not None:
                self.gate.ended(row, row.row_no in self.made)
        except CredlyError as exc:
            if exc.kind in FATAL_CLASSES:
                self.fatal = self.fatal or (exc.kind, str(exc))
            self.errors[row.row_no] = exc
            if self.gate is not None:
                self.gate.ended(row, False)
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

    def _send(self, chain: Chain, row: LedgerRow) -> None:
        assert row.issued_at is not None
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
            self._succeed(row, result.badge, reason=reason)
            return
        target = row.target_badge_id
        if target is None:
            message = "An update row names no badge to replace."
            self._fail(chain, row, "validation_failed", message, sent=False)
            return
        new = self.client.replace(target, self._renewal(row, target), recipient_email=row.email)
        self._succeed(row, new, replaced=(target, new.id))

    def _renewal(self, row: LedgerRow, target: str) -> ReplaceRequest:
        """The replace request of a renewal, keeping every field of the badge it renews (a
        replace clears what it is not sent). The badge is read as Credly holds it, by the
        student and template; when it cannot be found, the row's names are kept."""
        assert row.issued_at is not None
        for badge in self.client.find_badges(row.email, row.template_id):
            if badge.id == target:
                return renewal_request(
                    badge,
                    template_id=row.template_id,
                    issued_at=row.issued_at,
                    expires_at=row.expires_at,
                )
        return ReplaceRequest(
            badge_template_id=row.template_id,
            issued_at=row.issued_at,
            expires_at=request_expiry(row.expires_at),
            issued_to_first_name=row.first_name or None,
            issued_to_last_name=row.last_name or None,
        )


def chains(rows: Sequence[LedgerRow]) -> list[Chain]:
    """A job's rows grouped as the workers send them: one chain per student and template."""
    out: dict[tuple[str, str], Chain] = {}
    for row in rows:
        out.setdefault((normalize_email(row.email), row.template_id), Chain([])).rows.append(row)
    return list(out.values())

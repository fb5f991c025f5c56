"""Safety rails: a cap on automatic issues per hour and a breaker on the error rate.

The rules are pure functions (:func:`cap_left`, :func:`breaker_tripped`); :class:`Valve` holds
them for one run of the runner, which asks it before every send
(:class:`~credly_ops.issuance.workers.Gate`): the cap stops sending *at* the cap, mid-cycle,
and the breaker stops it as soon as the error rate is over the line. The cycle then pauses
automatic issuing with the valve's reason (:func:`credly_ops.autopilot.state.pause_in`); the
rows held go back to ``planned`` and are sent after an admin resumes.

* **Cap**: at most ``cap_per_hour`` automatic issues and renewals sent in the last hour
  (counted from the ledger, and from the last resume when that is more recent).
* **Breaker**: more than :data:`BREAKER_RATIO` of the last :data:`BREAKER_WINDOW` sends failed.
  Fewer sends than the window count against the whole window (more than 10 failures), so one
  failed first request does not pause anything.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta

import duckdb

from credly_ops import ledger
from credly_ops.ledger import LedgerRow
from credly_ops.store import to_db_time

BREAKER_WINDOW = 50
BREAKER_RATIO = 0.2
CAP_WINDOW = timedelta(hours=1)

RAIL_CAP = "cap"
RAIL_BREAKER = "breaker"


def cap_left(sent_in_window: int, cap_per_hour: int) -> int:
    """How many more automatic issues the cap allows now."""
    return max(cap_per_hour - sent_in_window, 0)


def breaker_tripped(
    recent: Iterable[bool], *, window: int = BREAKER_WINDOW, ratio: float = BREAKER_RATIO
) -> bool:
    """``recent``: the latest sends, oldest first, ``True`` for a failure. Tripped when the
    failures among the last ``window`` are more than ``ratio`` of the window."""
    last = list(recent)[-window:]
    return sum(1 for failed in last if failed) > ratio * window


def cap_reason(cap_per_hour: int) -> str:
    return (
        f"cap reached: {cap_per_hour:,} automatic issues in the last hour (the cap is "
        f"{cap_per_hour:,} per hour); the completions left wait for an admin to resume"
    )


def breaker_reason(recent: Iterable[bool], *, window: int = BREAKER_WINDOW) -> str:
    last = list(recent)[-window:]
    failed = sum(1 for f in last if f)
    return (
        f"breaker: {failed} of the last {len(last)} sends to Credly failed (more than "
        f"{BREAKER_RATIO:.0%} of {window}); look at the failures, then resume"
    )


# -- what the ledger says --------------------------------------------------------------------


def sent_since(cur: duckdb.DuckDBPyConnection, since: datetime) -> int:
    """Automatic issues and renewals that reached Credly since ``since``."""
    row = cur.execute(
        "SELECT count(*) FROM ledger l JOIN jobs j ON j.id = l.job_id WHERE j.kind = ? "
        "AND l.status = ? AND l.outcome IN ('issue', 'update') AND l.reason <> 'already_issued' "
        "AND l.updated_at >= ?",
        [ledger.JOB_KIND_AUTOMATIC, ledger.ROW_SUCCEEDED, to_db_time(since)],
    ).fetchone()
    return int(row[0]) if row else 0


def recent_sends(
    cur: duckdb.DuckDBPyConnection, since: datetime | None, *, window: int = BREAKER_WINDOW
) -> list[bool]:
    """The last ``window`` automatic sends (since ``since``), oldest first, True = failed."""
    rows = cur.execute(
        "SELECT l.status = ? FROM ledger l JOIN jobs j ON j.id = l.job_id WHERE j.kind = ? "
        "AND l.status IN (?, ?) AND l.attempts > 0 AND l.updated_at >= ? "
        "ORDER BY l.updated_at DESC LIMIT ?",
        [
            ledger.ROW_FAILED,
            ledger.JOB_KIND_AUTOMATIC,
            ledger.ROW_SUCCEEDED,
            ledger.ROW_FAILED,
            to_db_time(since) if since else datetime(1970, 1, 1),
            window,
        ],
    ).fetchall()
    return [bool(r[0]) for r in reversed(rows)]


# -- one run's valve -------------------------------------------------------------------------


class Valve:
    """The rails for one run: ``budget`` sends left under the cap, the breaker's window.

    Thread-safe (the runner's workers share it). Once it refuses it keeps refusing, and
    :attr:`tripped` / :attr:`reason` say which rail and why. ``halt`` (the worker told to stop)
    makes it refuse too, without tripping a rail: the run ends after the requests in flight and
    the rows left are sent by the next start.
    """

    def __init__(
        self,
        *,
        budget: int,
        cap_per_hour: int,
        recent: Iterable[bool] = (),
        window: int = BREAKER_WINDOW,
        halt: threading.Event | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._halt = halt
        self._budget = budget
        self._cap = cap_per_hour
        self._window = window
        self._recent: deque[bool] = deque(recent, maxlen=window)
        self.tripped: str | None = None
        self.reason: str | None = None
        self.admitted = 0

    def admit(self, row: LedgerRow) -> bool:
        with self._lock:
            if self._halt is not None and self._halt.is_set():
                return False
            if self.tripped is None and breaker_tripped(self._recent, window=self._window):
                self._trip(RAIL_BREAKER, breaker_reason(self._recent, window=self._window))
            if self.tripped is None and self._budget <= 0:
                self._trip(RAIL_CAP, cap_reason(self._cap))
            if self.tripped is not None:
                return False
            self._budget -= 1
            self.admitted += 1
            return True

    def ended(self, row: LedgerRow, ok: bool) -> None:
        with self._lock:
            self._recent.append(not ok)

    def _trip(self, rail: str, reason: str) -> None:
        self.tripped, self.reason = rail, reason

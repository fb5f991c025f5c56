"""A job-wide pace for requests to Credly, learned from its 429 answers.

Credly publishes no rate limit; it answers ``429 Too Many Requests`` with a ``Retry-After``.
A job that sends thousands of requests from several workers must slow down instead of failing
rows, and must not keep bumping into the limit (each 429 costs the whole job a ``Retry-After``
pause). :class:`RatePacer` does both:

* **Hold.** A 429 holds every request of the job until its ``Retry-After`` has passed.
* **Pace.** The first 429 sets a minimum spacing between request starts from what the limit
  let through: the requests answered (not refused) in the last second, sent as fast as the
  workers could, are about the limit, so the job goes on at :data:`MARGIN` under that rate. A
  further 429 outside a hold (arrivals bunched by the network) widens the spacing by
  :data:`WIDEN`: the pace already says where the limit is. After :data:`RELAX_AFTER_SECONDS`
  without a 429 the spacing narrows by :data:`RELAX`, so a job follows a limit that rises, at
  the cost of one 429 now and then.

:class:`PacedTransport` puts any httpx transport behind a pacer; the client reports 429s
through its ``on_rate_limited`` callback (:meth:`RatePacer.defer`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

import httpx

#: the pace keeps this much under the rate the limit let through
MARGIN = 1.04
#: each further 429 widens the spacing between requests by this factor
WIDEN = 1.03
#: seconds without a 429 before the spacing narrows by :data:`RELAX`
RELAX_AFTER_SECONDS = 60.0
RELAX = 0.9
#: the longest single sleep while waiting for a slot, so a stop is noticed soon
SLEEP_STEP = 0.25


class RatePacer:
    """When the next request of a job may start (thread-safe; one per job)."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._not_before = 0.0
        self._next_slot = 0.0
        self._interval = 0.0
        self._answered: deque[float] = deque()
        self._calm_since = 0.0
        #: 429 answers seen by the job
        self.slowdowns = 0
        #: seconds the job's requests spent waiting for the pace or a hold
        self.waited = 0.0

    @property
    def interval(self) -> float:
        """The current spacing between request starts (0: not paced)."""
        with self._lock:
            return self._interval

    def requests_per_second(self) -> float | None:
        """The pace as a rate, or ``None`` while the job is not paced."""
        interval = self.interval
        return None if interval <= 0 else 1.0 / interval

    def _forget(self, now: float) -> None:
        while self._answered and self._answered[0] <= now - 1.0:
            self._answered.popleft()

    def defer(self, seconds: float) -> None:
        """Credly answered 429 and asked for ``seconds`` of quiet: hold and pace the job."""
        with self._lock:
            now = self._clock()
            self.slowdowns += 1
            holding = now < self._not_before
            self._not_before = max(self._not_before, now + max(seconds, 0.0))
            self._next_slot = max(self._next_slot, self._not_before)
            if holding:
                return  # answers to requests sent before the hold say nothing new
            self._calm_since = now
            if self._interval:
                # paced already: the limit is about where the pace is; a little slower
                self._interval *= WIDEN
                return
            self._forget(now)
            self._interval = MARGIN / max(len(self._answered), 1)

    def answered(self) -> None:
        """A request was answered without a 429."""
        with self._lock:
            now = self._clock()
            self._answered.append(now)
            self._forget(now)
            if self._interval and now - self._calm_since >= RELAX_AFTER_SECONDS:
                self._calm_since = now
                self._interval *= RELAX

    def wait_turn(self) -> None:
        """Block until this request may start, and take its slot."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._not_before, self._next_slot)
            self._next_slot = slot + self._interval
        delay = slot - now
        if delay > 0:
            self.waited += delay
            end = self._clock() + delay
            while (left := end - self._clock()) > 0:
                self._sleep(min(left, SLEEP_STEP))


class PacedTransport(httpx.BaseTransport):
    """Sends each request when the job's :class:`RatePacer` gives it a turn."""

    def __init__(self, inner: httpx.BaseTransport, pacer: RatePacer) -> None:
        self._inner, self._pacer = inner, pacer

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._pacer.wait_turn()
        response = self._inner.handle_request(request)
        if response.status_code != 429:
            self._pacer.answered()
        return response

    def close(self) -> None:
        self._inner.close()

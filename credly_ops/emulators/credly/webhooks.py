"""Webhooks: every event an organization emits, POSTed to its ``webhook_url``.

The body is Credly's thin one (``id``, ``organization_id``, ``event_type``, ``occurred_at``),
retried with exponential backoff until the receiver answers 200 or the attempts run out.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import httpx

from credly_ops.emulators.credly.state import World


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    url: str = field(compare=False)
    body: dict[str, Any] = field(compare=False)
    attempt: int = field(default=0, compare=False)


class WebhookDispatcher:
    """POSTs thin event bodies to an organization's ``webhook_url`` from a daemon thread.

    Only an HTTP 200 counts as delivered (Credly's rule); anything else is retried after
    ``retry_base_s * 2**attempt`` seconds, up to ``max_attempts`` tries.
    """

    def __init__(
        self,
        world: World,
        *,
        retry_base_s: float = 5.0,
        max_attempts: int = 8,
        timeout_s: float = 5.0,
    ) -> None:
        self._world = world
        self.retry_base_s = retry_base_s
        self.max_attempts = max_attempts
        self.timeout_s = timeout_s
        self._queue: list[_Delivery] = []
        self._cond = threading.Condition()
        self._seq = 0
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.counts: Counter[str] = Counter()
        self.recent: deque[dict[str, Any]] = deque(maxlen=50)

    def __call__(self, org_id: str, event: dict[str, Any]) -> None:
        url, allowed = self._world.webhook_target(org_id)
        if not url or (allowed and event["event_type"] not in allowed):
            return
        with self._cond:
            self._seq += 1
            heapq.heappush(self._queue, _Delivery(time.monotonic(), self._seq, url, event))
            self.counts["queued"] += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="credly-webhooks", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def snapshot(self) -> dict[str, Any]:
        with self._cond:
            return {**dict(self.counts), "pending": len(self._queue), "recent": list(self.recent)}

    def _next(self) -> _Delivery | None:
        with self._cond:
            while not self._stopping:
                if self._queue:
                    wait = self._queue[0].due - time.monotonic()
                    if wait <= 0:
                        return heapq.heappop(self._queue)
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
            return None

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout_s) as client:
            while (delivery := self._next()) is not None:
                self._send(client, delivery)

    def _send(self, client: httpx.Client, delivery: _Delivery) -> None:
        outcome: str
        try:
            status = client.post(delivery.url, json=delivery.body).status_code
            outcome = str(status)
        except httpx.HTTPError as exc:
            status, outcome = 0, type(exc).__name__
        with self._cond:
            self.recent.append(
                {
                    "event_id": delivery.body["id"],
                    "attempt": delivery.attempt + 1,
                    "result": outcome,
                }
            )
            if status == 200:
                self.counts["delivered"] += 1
                return
            self.counts["failed_attempts"] += 1
            if delivery.attempt + 1 >= self.max_attempts:
                self.counts["gave_up"] += 1
                return
            delivery.attempt += 1
            delivery.due = time.monotonic() + self.retry_base_s * 2 ** (delivery.attempt - 1)
            heapq.heappush(self._queue, delivery)
            self._cond.notify()

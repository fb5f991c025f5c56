"""Faults the local Skilljar can inject into its API answers, deterministic by construction.

Two kinds, both set through ``/_emulator/faults``:

- **queued**: "answer the next ``count`` requests under ``path`` with ``status``" (429 carries
  ``Retry-After: retry_after``) — the tests' tool, exact and order-independent of timing;
- **standing**: ``latency_ms`` on every answer and a ``fail_rate`` of 500/503 drawn from a
  generator seeded with ``seed`` — the demo's tool.

Token expiry is not a fault here: ``POST /_emulator/tokens/expire`` makes every token stale.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass
from typing import Any

from credly_ops.emulators.skilljar.state import ApiError


@dataclass
class QueuedFault:
    status: int
    count: int = 1
    path: str = "/v2/"
    retry_after: str | None = None


@dataclass(frozen=True)
class StandingFaults:
    latency_ms: float = 0.0
    fail_rate: float = 0.0
    seed: int = 0


def _number(body: dict[str, Any], key: str, default: float) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(400, f"{key} must be a number")
    return float(value)


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.queued: list[QueuedFault] = []
        self.standing = StandingFaults()
        self._rng = random.Random(0)
        self.injected = 0

    def configure(self, body: Any) -> dict[str, Any]:
        """``{"queue": [{"status", "count", "path", "retry_after"}], "latency_ms", "fail_rate",
        "seed", "clear"}``; answers the resulting state."""
        if not isinstance(body, dict):
            raise ApiError(400, "Request body must be a JSON object")
        unknown = sorted(set(body) - {"queue", "latency_ms", "fail_rate", "seed", "clear"})
        if unknown:
            raise ApiError(400, f"Unknown fault setting {unknown[0][:40]!r}")
        queue: list[QueuedFault] = []
        for index, item in enumerate(body.get("queue") or []):
            if not isinstance(item, dict):
                raise ApiError(400, f"queue[{index}] must be an object")
            status = item.get("status")
            if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
                raise ApiError(400, f"queue[{index}].status must be an HTTP error status")
            count = item.get("count", 1)
            if not isinstance(count, int) or isinstance(count, bool) or count < 1:
                raise ApiError(400, f"queue[{index}].count must be a positive whole number")
            path = item.get("path", "/v2/")
            if not isinstance(path, str) or not path.startswith("/"):
                raise ApiError(400, f"queue[{index}].path must start with /")
            retry_after = item.get("retry_after")
            queue.append(
                QueuedFault(status, count, path, None if retry_after is None else str(retry_after))
            )
        latency = _number(body, "latency_ms", self.standing.latency_ms)
        rate = _number(body, "fail_rate", self.standing.fail_rate)
        seed = int(_number(body, "seed", self.standing.seed))
        if latency < 0 or not 0 <= rate <= 1:
            raise ApiError(400, "latency_ms must not be negative; fail_rate lies in [0, 1]")
        with self._lock:
            if body.get("clear"):
                self.queued.clear()
            self.queued.extend(queue)
            if (latency, rate, seed) != (
                self.standing.latency_ms,
                self.standing.fail_rate,
                self.standing.seed,
            ) or "seed" in body:
                self._rng = random.Random(seed)
            self.standing = StandingFaults(latency, rate, seed)
        return self.describe()

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {
                "queue": [asdict(q) for q in self.queued],
                **asdict(self.standing),
                "injected": self.injected,
            }

    def take(self, path: str) -> QueuedFault | None:
        """The fault for this request, if any (a queued one first, then the standing rate)."""
        with self._lock:
            for fault in self.queued:
                if path.startswith(fault.path):
                    fault.count -= 1
                    if fault.count <= 0:
                        self.queued.remove(fault)
                    self.injected += 1
                    return QueuedFault(fault.status, 1, fault.path, fault.retry_after)
            if self.standing.fail_rate and self._rng.random() < self.standing.fail_rate:
                self.injected += 1
                return QueuedFault(500 if self._rng.random() < 0.5 else 503)
        return None

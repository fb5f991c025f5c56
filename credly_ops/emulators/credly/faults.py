"""Fault injection for ``/v1``: latency, a rate limit, failures and held answers.

Faults are deterministic for a seed:

- ``latency_ms``: every answer waits this long (an async sleep: other requests go on);
- ``rate_limit_rps``: a sliding one-second window per organization; above it the answer is
  429 with ``Retry-After`` and the request is not processed;
- ``fail_rate``: 500 or 503 *without* processing;
- ``timeout_rate`` (POST/PUT/DELETE only): the request *is* processed, then the answer is held
  for ``timeout_hold_s`` — a client with a shorter timeout never learns the outcome.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from credly_ops.emulators.credly.protocol import error_response
from credly_ops.emulators.credly.records import ApiError
from credly_ops.emulators.credly.stats import Stats

MUTATING_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH"})


@dataclass(frozen=True)
class FaultConfig:
    latency_ms: float = 0.0
    rate_limit_rps: float | None = None
    fail_rate: float = 0.0
    timeout_rate: float = 0.0
    timeout_hold_s: float = 30.0
    seed: int = 0

    @classmethod
    def from_json(cls, body: Any) -> FaultConfig:
        if not isinstance(body, dict):
            raise ApiError(400, "Request body must be a JSON object")
        unknown = sorted(set(body) - set(cls.__dataclass_fields__))
        if unknown:
            raise ApiError(400, f"Unknown fault setting {unknown[0][:40]!r}")
        try:
            config = cls(
                latency_ms=float(body.get("latency_ms") or 0),
                rate_limit_rps=(
                    None if body.get("rate_limit_rps") is None else float(body["rate_limit_rps"])
                ),
                fail_rate=float(body.get("fail_rate") or 0),
                timeout_rate=float(body.get("timeout_rate") or 0),
                timeout_hold_s=float(body.get("timeout_hold_s", 30.0)),
                seed=int(body.get("seed") or 0),
            )
        except (TypeError, ValueError):
            raise ApiError(400, "Fault settings must be numbers") from None
        rates_ok = 0 <= config.fail_rate <= 1 and 0 <= config.timeout_rate <= 1
        if not rates_ok or config.latency_ms < 0 or config.timeout_hold_s < 0:
            raise ApiError(400, "Rates must lie in [0, 1]; latency and hold must not be negative")
        if config.rate_limit_rps is not None and config.rate_limit_rps <= 0:
            raise ApiError(400, "rate_limit_rps must be positive or null")
        return config


@dataclass(frozen=True)
class FaultDecision:
    """What happens to one request: refused before processing, or answered late."""

    refuse_status: int | None = None
    retry_after_s: int | None = None
    hold_s: float = 0.0


class Faults:
    """Fault injection with a seeded generator; two draws per request keep it reproducible."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, deque[float]] = {}
        self.configure(config or FaultConfig())

    def configure(self, config: FaultConfig) -> None:
        with self._lock:
            self.config = config
            self._rng = random.Random(config.seed)
            self._windows.clear()

    def decide(self, org_key: str, method: str, now: float | None = None) -> FaultDecision:
        config = self.config
        moment = time.monotonic() if now is None else now
        with self._lock:
            fail_draw, timeout_draw, status_draw = (self._rng.random() for _ in range(3))
            if config.rate_limit_rps is not None:
                window = self._windows.setdefault(org_key, deque())
                while window and window[0] <= moment - 1.0:
                    window.popleft()
                if len(window) >= config.rate_limit_rps:
                    wait = max(1, int(window[0] + 1.0 - moment + 0.999))
                    return FaultDecision(refuse_status=429, retry_after_s=wait)
                window.append(moment)
        if fail_draw < config.fail_rate:
            return FaultDecision(refuse_status=500 if status_draw < 0.5 else 503)
        if method in MUTATING_METHODS and timeout_draw < config.timeout_rate:
            return FaultDecision(hold_s=config.timeout_hold_s)
        return FaultDecision()


class FaultInjection:
    """Applies :class:`Faults` to ``/v1`` requests."""

    def __init__(self, app: ASGIApp, faults: Faults, stats: Stats) -> None:
        self.app = app
        self.faults = faults
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/v1" or path.startswith("/v1/")):
            await self.app(scope, receive, send)
            return
        latency = self.faults.config.latency_ms
        if latency:
            await asyncio.sleep(latency / 1000)
        parts = path.split("/")
        org_key = parts[3] if len(parts) > 3 and parts[2] == "organizations" else "-"
        decision = self.faults.decide(org_key, scope["method"])
        if decision.refuse_status == 429:
            self.stats.fault("rate_limited")
            retry = str(decision.retry_after_s or 1)
            response = error_response(429, "Rate limit exceeded", headers={"Retry-After": retry})
            await response(scope, receive, send)
            return
        if decision.refuse_status is not None:
            self.stats.fault(f"failed_{decision.refuse_status}")
            text = (
                "Internal Server Error" if decision.refuse_status == 500 else "Service Unavailable"
            )
            await error_response(decision.refuse_status, text)(scope, receive, send)
            return
        if not decision.hold_s:
            await self.app(scope, receive, send)
            return
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        self.stats.fault("timed_out")
        await asyncio.sleep(decision.hold_s)
        for message in held:
            await send(message)

"""The local Credly: an HTTP stand-in for Credly's issuer API (sandbox behaviour).

It serves ``/v1`` exactly as ``credly_api.md`` describes it (Basic auth with the token as the
username, Credly's envelope and pagination, 422 validation errors) over a :class:`World`, and
adds control endpoints under ``/_emulator/`` for what only an earner or an operator can do on
the real service: accept or reject a badge, turn on Auto-Accept, move the clock, inject faults,
read request statistics.

Faults apply to ``/v1`` only and are deterministic for a seed:

- ``latency_ms``: every answer waits this long (an async sleep: other requests go on);
- ``rate_limit_rps``: a sliding one-second window per organization; above it the answer is
  429 with ``Retry-After`` and the request is not processed;
- ``fail_rate``: 500 or 503 *without* processing;
- ``timeout_rate`` (POST/PUT/DELETE only): the request *is* processed, then the answer is held
  for ``timeout_hold_s`` — a client with a shorter timeout never learns the outcome.

Webhooks: when an organization has a ``webhook_url``, every event it emits is POSTed there as
Credly's thin body (``id``, ``organization_id``, ``event_type``, ``occurred_at``) and retried
with exponential backoff until the receiver answers 200 or the attempts run out.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import heapq
import html
import json
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from credly_ops.config import DEMO_API_TOKEN, DEMO_HOST, DEMO_ORG_ID, DEMO_PORT
from credly_ops.credly.emulator_world import ApiError, Clock, World, stable_uuid
from credly_ops.timeutil import parse_credly_time

PAGE_SIZE = 50
HIGH_VOLUME_PAGE_SIZE = 1000
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MUTATING_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH"})

Handler = Callable[[Request], Awaitable[Response]]


def envelope(data: Any, metadata: dict[str, Any] | None = None, status: int = 200) -> JSONResponse:
    return JSONResponse({"data": data, "metadata": metadata or {}}, status_code=status)


def error_response(
    status: int,
    message: str,
    metadata: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"data": {"message": message}, "metadata": metadata or {}},
        status_code=status,
        headers=headers,
    )


# --------------------------------------------------------------------------- faults


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


# --------------------------------------------------------------------------- statistics


class Stats:
    """Request counts by endpoint and status, and what the faults did."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.faults: Counter[str] = Counter()

    def record(self, endpoint: str, status: int) -> None:
        with self._lock:
            self.requests[(endpoint, status)] += 1

    def fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] += 1

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.faults.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            by_endpoint: dict[str, dict[str, int]] = {}
            for (endpoint, status), count in sorted(self.requests.items()):
                by_endpoint.setdefault(endpoint, {})[str(status)] = count
            return {"requests": by_endpoint, "faults": dict(self.faults)}


# --------------------------------------------------------------------------- webhooks


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


# --------------------------------------------------------------------------- middleware


class TrailingSlash:
    """``/badges/`` is ``/badges``: Credly accepts both, and so does the local one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and len(scope["path"]) > 1 and scope["path"].endswith("/"):
            scope = dict(scope)
            scope["path"] = scope["path"].rstrip("/") or "/"
            raw = scope.get("raw_path")
            if isinstance(raw, bytes):
                scope["raw_path"] = raw.rstrip(b"/") or b"/"
        await self.app(scope, receive, send)


class RequestStats:
    """Counts every answer by route template and status."""

    def __init__(self, app: ASGIApp, stats: Stats, routes: list[Route]) -> None:
        self.app = app
        self.stats = stats
        self.routes = routes

    def endpoint(self, scope: Scope) -> str:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return f"{scope['method']} {route.path}"
        return f"{scope['method']} (no route)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self.stats.record(self.endpoint(scope), status)


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


# --------------------------------------------------------------------------- request helpers


def token_from(request: Request) -> str | None:
    """The token from ``Basic base64(token:)`` or ``Basic base64(token)``."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    value = value.strip()
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    token = decoded.split(":", 1)[0].strip()
    return token or None


async def json_body(request: Request, *, required: bool = True) -> Any:
    raw = await request.body()
    if not raw.strip():
        if required:
            raise ApiError(400, "Request body must be a JSON object")
        return {}
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "Request body is not valid JSON") from None


def page_params(request: Request, *, max_per: int = PAGE_SIZE) -> tuple[int, int]:
    try:
        page = int(request.query_params.get("page", "1"))
        per = int(request.query_params.get("per", str(max_per)))
    except ValueError:
        raise ApiError(400, "page and per must be whole numbers") from None
    return max(page, 1), min(max(per, 1), max_per)


def page_metadata(request: Request, page: int, per: int, total: int, count: int) -> dict[str, Any]:
    """§3.2: absolute previous/next URLs that keep every other query parameter."""
    total_pages = -(-total // per)

    def url(n: int) -> str:
        return str(request.url.include_query_params(page=n))

    return {
        "count": count,
        "current_page": page,
        "total_count": total,
        "total_pages": total_pages,
        "per": per,
        "previous_page_url": url(page - 1) if 1 < page <= total_pages + 1 else None,
        "next_page_url": url(page + 1) if page < total_pages else None,
    }


def encode_cursor(state: dict[str, Any]) -> str:
    raw = json.dumps(state, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        state = json.loads(raw)
        if not isinstance(state, dict):
            raise ValueError("cursor is not an object")
        return state
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError(400, "Invalid cursor") from None


# --------------------------------------------------------------------------- the app


def create_app(
    world: World,
    *,
    faults: FaultConfig | None = None,
    webhook_retry_base_s: float = 5.0,
    webhook_max_attempts: int = 8,
    high_volume_page_size: int = HIGH_VOLUME_PAGE_SIZE,
) -> Starlette:
    """The Starlette app over ``world``; ``app.state`` holds world, faults, stats, webhooks."""
    fault_state = Faults(faults)
    stats = Stats()
    webhooks = WebhookDispatcher(
        world, retry_base_s=webhook_retry_base_s, max_attempts=webhook_max_attempts
    )
    world.add_listener(webhooks)

    def authorized(request: Request) -> str:
        """The organization the token belongs to; 401/403/404 otherwise."""
        token = token_from(request)
        token_org = world.org_for_token(token) if token else None
        if token_org is None:
            raise ApiError(401, "Unauthorized")
        org = request.path_params.get("org")
        if org is not None and org != token_org:
            if world.has_org(org):
                raise ApiError(403, "Forbidden: this token cannot access that organization")
            raise ApiError(404, "Organization not found")
        return token_org

    def api(handler: Callable[[Request, str], Awaitable[Response]]) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                org = authorized(request)
                return await handler(request, org)
            except ApiError as exc:
                headers = (
                    {"WWW-Authenticate": 'Basic realm="Credly"'} if exc.status == 401 else None
                )
                return error_response(exc.status, exc.message, exc.metadata, headers)

        return endpoint

    def control(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return error_response(exc.status, exc.message, exc.metadata)

        return endpoint

    # ---- organizations

    async def list_orgs(request: Request, org: str) -> Response:
        return envelope([world.org_json(org)], page_metadata(request, 1, PAGE_SIZE, 1, 1))

    async def get_org(request: Request, org: str) -> Response:
        return envelope(world.org_json(org))

    async def put_org(request: Request, org: str) -> Response:
        return envelope(world.update_org(org, await json_body(request)))

    # ---- templates

    async def list_templates(request: Request, org: str) -> Response:
        page, per = page_params(request)
        q = request.query_params
        total, items = world.template_page(
            org, q.get("filter"), q.get("sort"), (page - 1) * per, per
        )
        return envelope(items, page_metadata(request, page, per, total, len(items)))

    async def get_template(request: Request, org: str) -> Response:
        return envelope(world.template_json(org, request.path_params["template_id"]))

    # ---- badges

    async def issue(request: Request, org: str) -> Response:
        return envelope(world.issue(org, await json_body(request)), status=201)

    async def issue_batch(request: Request, org: str) -> Response:
        return envelope(world.issue_batch(org, await json_body(request)), status=201)

    async def list_badges(request: Request, org: str) -> Response:
        page, per = page_params(request)
        q = request.query_params
        total, items = world.badge_page(org, q.get("filter"), q.get("sort"), (page - 1) * per, per)
        return envelope(items, page_metadata(request, page, per, total, len(items)))

    async def get_badge(request: Request, org: str) -> Response:
        return envelope(world.badge_json(org, request.path_params["badge_id"]))

    async def revoke(request: Request, org: str) -> Response:
        body = await json_body(request, required=False)
        if not isinstance(body, dict):
            raise ApiError(400, "Request body must be a JSON object")
        q = request.query_params
        reason = body.get("reason", q.get("reason"))
        suppress = body.get(
            "suppress_revoke_notification_email",
            q.get("suppress_revoke_notification_email", "false").lower() == "true",
        )
        badge = world.revoke(org, request.path_params["badge_id"], reason, bool(suppress))
        return envelope(badge)

    async def replace_badge(request: Request, org: str) -> Response:
        badge_id = request.path_params["badge_id"]
        return envelope(world.replace(org, badge_id, await json_body(request)), status=201)

    async def delete_badge(request: Request, org: str) -> Response:
        world.delete(org, request.path_params["badge_id"])
        return Response(status_code=204)

    async def high_volume(request: Request, org: str) -> Response:
        q = request.query_params
        badge_format = q.get("badge_format", "default")
        if badge_format not in ("default", "minimal"):
            raise ApiError(400, "badge_format must be minimal or default")
        after = None
        if q.get("cursor"):
            state = decode_cursor(q["cursor"])
            filter_text = state.get("f")
            try:
                after = (parse_credly_time(str(state["t"])), str(state["i"]))
            except (KeyError, ValueError):
                raise ApiError(400, "Invalid cursor") from None
        else:
            terms = [q["filter"]] if q.get("filter") else []
            for param, key in (("start_date", "updated_at_min"), ("end_date", "updated_at_max")):
                if q.get(param):
                    terms.append(f"{key}::{q[param]}")
            filter_text = "|".join(terms) or None
        items, next_key = world.high_volume_page(
            org, filter_text, after=after, limit=high_volume_page_size, badge_format=badge_format
        )
        next_url = None
        if next_key is not None:
            cursor = encode_cursor(
                {"f": filter_text, "t": next_key[0].isoformat(), "i": next_key[1]}
            )
            base = str(request.url.replace(query=""))
            next_url = f"{base}?badge_format={badge_format}&cursor={cursor}"
        return envelope(items, {"next_page_url": next_url})

    # ---- events

    async def list_events(request: Request, org: str) -> Response:
        page, per = page_params(request)
        q = request.query_params
        total, items = world.event_page(org, q.get("filter"), q.get("sort"), (page - 1) * per, per)
        return envelope(items, page_metadata(request, page, per, total, len(items)))

    async def get_event(request: Request, org: str) -> Response:
        return envelope(world.event_json(org, request.path_params["event_id"]))

    # ---- control endpoints

    async def earner_action(request: Request) -> Response:
        p = request.path_params
        return envelope(world.earner_action(p["org"], p["badge_id"], p["action"]))

    async def auto_accept(request: Request) -> Response:
        body = await json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("email"), str):
            raise ApiError(400, "Send {'email': ..., 'enabled': true|false}")
        enabled = body.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ApiError(400, "enabled must be true or false")
        world.set_auto_accept(request.path_params["org"], body["email"], enabled, record=True)
        return envelope({"email": body["email"].strip().lower(), "enabled": enabled})

    async def get_clock(request: Request) -> Response:
        return envelope(world.clock.describe())

    async def set_clock(request: Request) -> Response:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise ApiError(400, "Request body must be a JSON object")
        if body.get("reset"):
            world.clock.reset()
        elif "now" in body:
            try:
                moment = parse_credly_time(str(body["now"]))
            except ValueError:
                raise ApiError(400, "now must be a timestamp") from None
            world.clock.set(moment, frozen=bool(body.get("frozen", False)))
        elif "advance_seconds" in body:
            try:
                world.clock.advance(float(body["advance_seconds"]))
            except (TypeError, ValueError):
                raise ApiError(400, "advance_seconds must be a number") from None
        else:
            raise ApiError(400, "Send one of now, advance_seconds or reset")
        return envelope(world.clock.describe())

    async def get_faults(request: Request) -> Response:
        return envelope(asdict(fault_state.config))

    async def set_faults(request: Request) -> Response:
        fault_state.configure(FaultConfig.from_json(await json_body(request)))
        return envelope(asdict(fault_state.config))

    async def get_stats(request: Request) -> Response:
        return envelope(
            {
                **stats.snapshot(),
                "issued_by_org": {
                    org: counts.get("badges_issued", 0) for org, counts in world.counters().items()
                },
                "mutations_by_org": world.counters(),
                "badges_by_org": world.badge_counts(),
                "webhooks": webhooks.snapshot(),
                "cache": dict(world.cache_stats),
            }
        )

    async def reset_stats(request: Request) -> Response:
        stats.reset()
        return Response(status_code=204)

    async def health(request: Request) -> Response:
        return envelope({"status": "ok", "organizations": len(world.org_ids())})

    async def template_image(request: Request) -> Response:
        """A badge picture for a template, standing in for Credly's image CDN in the demo."""
        template_id = request.path_params["template_id"]
        for org_id in world.org_ids():
            try:
                name = str(world.template_json(org_id, template_id)["name"])
            except ApiError:
                continue
            return Response(
                badge_svg(template_id, name),
                media_type="image/svg+xml",
                headers={"Cache-Control": "public, max-age=86400"},
            )
        return Response(status_code=404)

    org_path = "/v1/organizations/{org}"
    badge_path = f"{org_path}/badges/{{badge_id}}"
    routes = [
        Route("/v1/organizations", api(list_orgs), methods=["GET"]),
        Route(org_path, api(get_org), methods=["GET"]),
        Route(org_path, api(put_org), methods=["PUT"]),
        Route(f"{org_path}/badge_templates", api(list_templates), methods=["GET"]),
        Route(f"{org_path}/badge_templates/{{template_id}}", api(get_template), methods=["GET"]),
        Route(f"{org_path}/badges", api(list_badges), methods=["GET"]),
        Route(f"{org_path}/badges", api(issue), methods=["POST"]),
        Route(f"{org_path}/badges/batch", api(issue_batch), methods=["POST"]),
        Route(badge_path, api(get_badge), methods=["GET"]),
        Route(badge_path, api(delete_badge), methods=["DELETE"]),
        Route(f"{badge_path}/revoke", api(revoke), methods=["PUT"]),
        Route(f"{badge_path}/replace", api(replace_badge), methods=["POST"]),
        Route(f"{org_path}/high_volume_issued_badge_search", api(high_volume), methods=["GET"]),
        Route(f"{org_path}/events", api(list_events), methods=["GET"]),
        Route(f"{org_path}/events/{{event_id}}", api(get_event), methods=["GET"]),
        Route(
            "/_emulator/orgs/{org}/badges/{badge_id}/{action:str}",
            control(earner_action),
            methods=["POST"],
        ),
        Route("/_emulator/orgs/{org}/auto_accept", control(auto_accept), methods=["POST"]),
        Route("/_emulator/clock", control(get_clock), methods=["GET"]),
        Route("/_emulator/clock", control(set_clock), methods=["POST"]),
        Route("/_emulator/faults", control(get_faults), methods=["GET"]),
        Route("/_emulator/faults", control(set_faults), methods=["POST"]),
        Route("/_emulator/stats", control(get_stats), methods=["GET"]),
        Route("/_emulator/stats", control(reset_stats), methods=["DELETE"]),
        Route("/_emulator/health", control(health), methods=["GET"]),
        Route("/_emulator/images/{template_id}.svg", template_image, methods=["GET"]),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        text = exc.detail if isinstance(exc, HTTPException) else "Internal Server Error"
        return error_response(status, str(text))

    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(TrailingSlash),
            Middleware(RequestStats, stats=stats, routes=routes),
            Middleware(FaultInjection, faults=fault_state, stats=stats),
        ],
        exception_handlers={HTTPException: http_error, Exception: http_error},
    )
    app.state.world = world
    app.state.faults = fault_state
    app.state.stats = stats
    app.state.webhooks = webhooks
    return app


# --------------------------------------------------------------------------- wiring


#: the empty seed's templates: (name, state, allow_duplicate_badges, default_expiration_days)
EMPTY_SEED_TEMPLATES: tuple[tuple[str, str, bool, int | None], ...] = (
    ("Python Foundations", "active", False, None),
    ("Cloud Practitioner", "active", False, 365),
    ("Workshop Attendance", "active", True, None),
    ("Data Analysis (in review)", "draft", False, None),
    ("Legacy Web Basics", "archived", False, None),
)


#: Okabe-Ito colours: distinguishable for colour-blind readers
BADGE_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")


def badge_svg(template_id: str, name: str) -> str:
    """A hexagonal badge with the template's initials, its colour fixed by the template id."""
    colour = BADGE_COLOURS[sum(template_id.encode()) % len(BADGE_COLOURS)]
    initials = "".join(w[0] for w in name.split() if w[:1].isalnum())[:3].upper() or "?"
    label = html.escape(initials)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96" viewBox="0 0 96 96">'
        f'<polygon points="48,4 86,26 86,70 48,92 10,70 10,26" fill="{colour}"/>'
        '<polygon points="48,14 77,31 77,65 48,82 19,65 19,31" fill="none" stroke="#fff" '
        'stroke-width="3"/>'
        '<text x="48" y="56" font-family="Helvetica,Arial,sans-serif" font-size="24" '
        f'font-weight="700" fill="#fff" text-anchor="middle">{label}</text></svg>'
    )


def seed_empty(world: World) -> None:
    """One organization with the demo id and token, and a handful of templates."""
    world.add_org(DEMO_ORG_ID, "Demo Academy", DEMO_API_TOKEN, vanity_slug="demo-academy")
    for name, state, duplicates, days in EMPTY_SEED_TEMPLATES:
        world.add_template(
            DEMO_ORG_ID,
            id=stable_uuid(f"template:{name}"),
            name=name,
            state=state,
            allow_duplicate_badges=duplicates,
            description=f"Awarded for completing {name}.",
            default_expiration_days=days,
        )


def build_world(
    seed: str = "empty", *, journal_path: Path | None = None, clock: Clock | None = None
) -> World:
    """A seeded world with its journal (if any) replayed on top."""
    world = World(clock, journal_path=journal_path)
    with world.unrecorded():
        if seed == "empty":
            seed_empty(world)
        elif seed == "demo":
            from credly_ops.demo import seed_world

            seed_world(world)
        else:
            raise ValueError(f"seed must be 'empty' or 'demo', not {seed[:20]!r}")
    world.replay_journal()
    return world


def build_app(
    seed: str = "empty",
    *,
    latency_ms: float = 0.0,
    rate_limit: float | None = None,
    fail_rate: float = 0.0,
    journal_path: Path | None = None,
    clock: Clock | None = None,
) -> Starlette:
    world = build_world(seed, journal_path=journal_path, clock=clock)
    faults = FaultConfig(latency_ms=latency_ms, rate_limit_rps=rate_limit, fail_rate=fail_rate)
    return create_app(world, faults=faults)


def run_emulator(
    host: str = DEMO_HOST,
    port: int = DEMO_PORT,
    *,
    seed: str = "demo",
    latency_ms: float = 0.0,
    rate_limit: float | None = None,
    fail_rate: float = 0.0,
    journal_path: Path | None = None,
    allow_non_loopback: bool = False,
) -> None:
    """Serve the local Credly until interrupted (blocking).

    The control endpoints have no authentication, so the server binds to loopback unless
    ``allow_non_loopback`` says otherwise.
    """
    if host not in LOOPBACK_HOSTS and not allow_non_loopback:
        raise ValueError(f"the emulator binds to loopback only; {host!r} is not loopback")
    app = build_app(
        seed,
        latency_ms=latency_ms,
        rate_limit=rate_limit,
        fail_rate=fail_rate,
        journal_path=journal_path,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")

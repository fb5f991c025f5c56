"""The local Credly: an HTTP stand-in for Credly's issuer API (sandbox behaviour).

It serves ``/v1`` exactly as ``credly_api.md`` describes it (Basic auth with the token as the
username, Credly's envelope and pagination, 422 validation errors) over a :class:`World`, and
adds control endpoints under ``/_emulator/`` for what only an earner or an operator can do on
the real service: accept or reject a badge, turn on Auto-Accept, move the clock, inject faults,
read request statistics.  This module wires the parts together:

- ``routes.py``: the ``/v1`` handlers; ``control.py``: the ``/_emulator/`` ones;
- ``faults.py``: latency, rate limit, failures, held answers (``/v1`` only);
- ``stats.py``: requests by endpoint and status; ``webhooks.py``: event delivery;
- ``state.py``: the world itself; ``seeds.py``: the worlds it starts from.
"""

from __future__ import annotations

from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from credly_ops.config import DEFAULT_DB_PATH, DEMO_HOST, DEMO_PORT
from credly_ops.emulators.credly import control, routes
from credly_ops.emulators.credly.faults import FaultConfig, FaultInjection, Faults
from credly_ops.emulators.credly.protocol import (
    HIGH_VOLUME_PAGE_SIZE,
    PAGE_SIZE,
    Emulator,
    error_response,
)
from credly_ops.emulators.credly.records import Clock
from credly_ops.emulators.credly.seeds import seed_demo, seed_empty
from credly_ops.emulators.credly.state import World
from credly_ops.emulators.credly.stats import RequestStats, Stats
from credly_ops.emulators.credly.webhooks import WebhookDispatcher
from credly_ops.emulators.demo_world import demo_world
from credly_ops.loopback import LOOPBACK_HOSTS

#: where ``--seed demo`` finds the recorded demo anchor (``demo_world.json``)
DEFAULT_DATA_DIR = DEFAULT_DB_PATH.parent


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


async def http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    text = exc.detail if isinstance(exc, HTTPException) else "Internal Server Error"
    return error_response(status, str(text))


def create_app(
    world: World,
    *,
    faults: FaultConfig | None = None,
    webhook_retry_base_s: float = 5.0,
    webhook_max_attempts: int = 8,
    high_volume_page_size: int = HIGH_VOLUME_PAGE_SIZE,
    page_size: int = PAGE_SIZE,
) -> Starlette:
    """The Starlette app over ``world``; ``app.state`` holds world, faults, stats, webhooks.

    ``page_size`` and ``high_volume_page_size`` are Credly's (50 and 1,000) unless a test
    wants more pages from fewer badges.
    """
    emulator = Emulator(
        world=world,
        faults=Faults(faults),
        stats=Stats(),
        webhooks=WebhookDispatcher(
            world, retry_base_s=webhook_retry_base_s, max_attempts=webhook_max_attempts
        ),
        high_volume_page_size=high_volume_page_size,
        page_size=page_size,
    )
    world.add_listener(emulator.webhooks)
    table = [*routes.ROUTES, *control.ROUTES]
    app = Starlette(
        routes=table,
        middleware=[
            Middleware(TrailingSlash),
            Middleware(RequestStats, stats=emulator.stats, routes=table),
            Middleware(FaultInjection, faults=emulator.faults, stats=emulator.stats),
        ],
        exception_handlers={HTTPException: http_error, Exception: http_error},
    )
    app.state.emulator = emulator
    app.state.world = world
    app.state.faults = emulator.faults
    app.state.stats = emulator.stats
    app.state.webhooks = emulator.webhooks
    return app


def build_world(
    seed: str = "empty",
    *,
    journal_path: Path | None = None,
    clock: Clock | None = None,
    data_dir: Path = DEFAULT_DATA_DIR,
    image_base: str | None = None,
) -> World:
    """A seeded world with its journal (if any) replayed on top.

    ``demo`` is the demo world of ``data_dir`` (its recorded anchor, see
    :func:`~credly_ops.emulators.demo_world.demo_world`); ``image_base`` is the emulator's own
    address, so it serves the template pictures.
    """
    if seed not in ("empty", "demo"):
        raise ValueError(f"seed must be 'empty' or 'demo', not {seed[:20]!r}")
    world = World(clock, journal_path=journal_path)
    with world.unrecorded():
        if seed == "empty":
            seed_empty(world)
        else:
            seed_demo(world, demo_world(data_dir), image_base=image_base)
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
    data_dir: Path = DEFAULT_DATA_DIR,
    image_base: str | None = None,
) -> Starlette:
    world = build_world(
        seed, journal_path=journal_path, clock=clock, data_dir=data_dir, image_base=image_base
    )
    faults = FaultConfig(latency_ms=latency_ms, rate_limit_rps=rate_limit, fail_rate=fail_rate)
    return create_app(world, faults=faults)


def base_url(host: str, port: int) -> str:
    """``http://host:port``, with brackets around an IPv6 address."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def run_emulator(
    host: str = DEMO_HOST,
    port: int = DEMO_PORT,
    *,
    seed: str = "demo",
    latency_ms: float = 0.0,
    rate_limit: float | None = None,
    fail_rate: float = 0.0,
    journal_path: Path | None = None,
    data_dir: Path = DEFAULT_DATA_DIR,
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
        data_dir=data_dir,
        image_base=base_url(host, port),
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")

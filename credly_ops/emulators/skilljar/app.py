"""The local Skilljar as one Starlette app, and the function that serves it.

``create_app(world)`` serves ``/v1`` and ``/v2`` (:mod:`.routes`) and ``/_emulator/``
(:mod:`.control`) over a :class:`~credly_ops.emulators.skilljar.state.SkilljarWorld`; faults
apply to the API only.  ``run_skilljar_emulator`` serves a seeded world until interrupted.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from credly_ops.config import DEMO_SKILLJAR_PORT
from credly_ops.emulators.skilljar.control import control_routes
from credly_ops.emulators.skilljar.faults import Faults
from credly_ops.emulators.skilljar.routes import api_routes, error_response
from credly_ops.emulators.skilljar.state import (
    DEMO_API_KEY,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    ApiError,
    SkilljarWorld,
)
from credly_ops.loopback import LOOPBACK_HOSTS

DEFAULT_PORT = DEMO_SKILLJAR_PORT  # 8766 is the webhook receiver's


class TrailingSlash:
    """``/v2/enrollments/`` is ``/v2/enrollments``: the documented paths end with a slash."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and len(scope["path"]) > 1 and scope["path"].endswith("/"):
            scope = dict(scope)
            scope["path"] = scope["path"].rstrip("/") or "/"
        await self.app(scope, receive, send)


class FaultInjection:
    """Applies :class:`Faults` to ``/v1`` and ``/v2``, and counts API requests by path."""

    def __init__(self, app: ASGIApp, faults: Faults, stats: Counter[str]) -> None:
        self.app = app
        self.faults = faults
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(("/v1/", "/v2/")):
            await self.app(scope, receive, send)
            return
        self.stats[f"{scope['method']} {path}"] += 1
        latency = self.faults.standing.latency_ms
        if latency:
            await asyncio.sleep(latency / 1000)
        fault = self.faults.take(path)
        if fault is None:
            await self.app(scope, receive, send)
            return
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
        title = "Too Many Requests" if fault.status == 429 else "Service Unavailable"
        await error_response(ApiError(fault.status, title), headers)(scope, receive, send)


def create_app(world: SkilljarWorld, *, faults: Faults | None = None) -> Starlette:
    """The app over ``world``; ``app.state`` holds ``world``, ``faults`` and ``stats``."""
    fault_state = faults or Faults()
    stats: Counter[str] = Counter()
    routes = [*api_routes(world), *control_routes(world, fault_state, stats)]

    async def http_error(request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            return error_response(ApiError(exc.status_code, str(exc.detail)))
        return error_response(ApiError(500, "Internal Server Error"))

    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(TrailingSlash),
            Middleware(FaultInjection, faults=fault_state, stats=stats),
        ],
        exception_handlers={HTTPException: http_error, Exception: http_error},
    )
    app.state.world = world
    app.state.faults = fault_state
    app.state.stats = stats
    return app


#: the demo catalogue: (course id, title)
DEMO_COURSES: tuple[tuple[str, str], ...] = (
    ("crs-python-foundations", "Python Foundations"),
    ("crs-cloud-practitioner", "Cloud Practitioner"),
    ("crs-data-analysis", "Data Analysis"),
)


def build_world(seed: int = 0, *, demo: bool = True) -> SkilljarWorld:
    """A world with the demo API client and key; with ``demo``, a small catalogue and a few
    completions (one back-dated, one without a score, one failed), the same for a seed."""
    world = SkilljarWorld(seed=seed)
    world.add_client(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    world.add_api_key(DEMO_API_KEY)
    if not demo:
        return world
    for course_id, title in DEMO_COURSES:
        world.add_course(title, course_id)
    now = world.clock.now()
    people = (
        ("ada.lovelace@example.com", "Ada", "Lovelace"),
        ("alan.turing@example.com", "Alan", "Turing"),
        ("grace.hopper@example.com", "Grace", "Hopper"),
        ("edsger.dijkstra@example.com", "Edsger", "Dijkstra"),
    )
    for index, (email, first, last) in enumerate(people):
        course_id = DEMO_COURSES[index % len(DEMO_COURSES)][0]
        world.add_enrollment(
            email=email,
            course_id=course_id,
            first_name=first,
            last_name=last,
            completed_at=now - timedelta(days=index + 1, hours=seed % 24),
            success_status=("PASSED", None, "FAILED", "PASSED")[index],
            score=(92.0, None, 41.0, 78.0)[index],
            max_score=None if index == 1 else 100.0,
        )
    world.add_enrollment(
        email="katherine.johnson@example.com",
        course_id=DEMO_COURSES[0][0],
        first_name="Katherine",
        last_name="Johnson",
    )
    return world


def run_skilljar_emulator(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    seed: int = 0,
    demo: bool = True,
    allow_non_loopback: bool = False,
) -> None:
    """Serve the local Skilljar until interrupted (blocking).

    The control endpoints have no authentication, so the server binds to loopback unless
    ``allow_non_loopback`` says otherwise.
    """
    if host not in LOOPBACK_HOSTS and not allow_non_loopback:
        raise ValueError(f"the Skilljar emulator binds to loopback only; {host!r} is not loopback")
    uvicorn.run(create_app(build_world(seed, demo=demo)), host=host, port=port, log_level="warning")

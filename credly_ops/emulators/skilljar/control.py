"""The local Skilljar's control surface under ``/_emulator/`` (no auth: loopback only).

- ``POST /_emulator/courses`` ``{"title", "id"?}`` — a course;
- ``POST /_emulator/completions`` ``{"email", "course_id", "completed_at"?, "success_status"?,
  "score"?, "first_name"?, "last_name"?, "domain_name"?, "enrollment_id"?, "deliver"?}`` —
  a completion, back-dated when ``completed_at`` is in the past; with ``enrollment_id`` it
  completes that enrollment again (a retake); ``deliver`` also sends the webhook event;
- ``POST /_emulator/enrollments`` — an enrollment not yet completed;
- ``GET/POST /_emulator/clock`` ``{"now", "frozen"?}`` | ``{"advance_seconds"}`` | ``{"reset"}``;
- ``GET/POST /_emulator/faults`` — see :mod:`credly_ops.emulators.skilljar.faults`;
- ``POST /_emulator/tokens/expire`` — every token goes stale; ``POST /_emulator/tokens``
  ``{"lifetime_s"}`` — the lifetime of tokens granted from now on;
- ``POST /_emulator/types`` ``{"singular": true|false}`` — ``included`` type names' number;
- ``POST /_emulator/webhooks/deliver`` ``{"enrollment_id", "target_url"?,
  "basic_auth_username"?, "basic_auth_password"?, "additional_headers"?}`` — send the
  ``COURSE_COMPLETION`` event to that target, or to every active registered webhook;
- ``GET /_emulator/stats``, ``GET /_emulator/health``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from credly_ops.emulators.skilljar.faults import Faults
from credly_ops.emulators.skilljar.routes import error_response, json_body
from credly_ops.emulators.skilljar.state import (
    EVENT_TYPES,
    ApiError,
    Enrollment,
    SkilljarWorld,
    Webhook,
    fmt_time,
    parse_time,
)
from credly_ops.emulators.skilljar.webhooks import deliver

Handler = Callable[[Request], Awaitable[Response]]


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    return body


def _text(body: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise ApiError(400, f"{key} is required")
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"{key} must be text")
    return value


def _score(body: dict[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(400, f"{key} must be a number")
    return float(value)


def enrollment_summary(world: SkilljarWorld, e: Enrollment) -> dict[str, Any]:
    return {
        "enrollment_id": e.id,
        "student_id": e.student_id,
        "email": world.students[e.student_id].email,
        "course_id": e.course_id,
        "completed_at": fmt_time(e.completed_at) if e.completed_at else None,
        "success_status": e.success_status,
    }


def control_routes(world: SkilljarWorld, faults: Faults, stats: dict[str, int]) -> list[Route]:
    def control(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return error_response(exc)

        return endpoint

    async def add_course(request: Request) -> Response:
        body = _object(await json_body(request))
        title = _text(body, "title", required=True) or ""
        course = world.add_course(title, _text(body, "id"))
        return JSONResponse({"id": course.id, "title": course.title}, status_code=201)

    def _new_enrollment(body: dict[str, Any], *, complete: bool) -> Enrollment:
        completed_at = None
        if complete:
            raw = body.get("completed_at")
            completed_at = world.clock.now() if raw is None else parse_time(raw, "completed_at")
        enrolled = body.get("enrolled_at")
        return world.add_enrollment(
            email=_text(body, "email", required=True) or "",
            course_id=_text(body, "course_id", required=True) or "",
            first_name=_text(body, "first_name") or "",
            last_name=_text(body, "last_name") or "",
            enrolled_at=None if enrolled is None else parse_time(enrolled, "enrolled_at"),
            completed_at=completed_at,
            success_status=_text(body, "success_status"),
            score=_score(body, "score"),
            max_score=_score(body, "max_score"),
            domain_name=_text(body, "domain_name"),
        )

    async def add_completion(request: Request) -> Response:
        body = _object(await json_body(request))
        enrollment_id = _text(body, "enrollment_id")
        if enrollment_id:
            raw = body.get("completed_at")
            status = _text(body, "success_status")
            if status is not None and status not in ("PASSED", "FAILED"):
                raise ApiError(400, "success_status must be PASSED, FAILED or null")
            enrollment = world.complete(
                enrollment_id,
                None if raw is None else parse_time(raw, "completed_at"),
                status,
                _score(body, "score"),
            )
        else:
            enrollment = _new_enrollment(body, complete=True)
        answer = enrollment_summary(world, enrollment)
        if body.get("deliver"):
            answer["deliveries"] = await _deliver_to_registered(enrollment)
        return JSONResponse(answer, status_code=201)

    async def add_enrollment(request: Request) -> Response:
        body = _object(await json_body(request))
        enrollment = _new_enrollment(body, complete=False)
        return JSONResponse(enrollment_summary(world, enrollment), status_code=201)

    async def get_clock(request: Request) -> Response:
        return JSONResponse(world.clock.describe())

    async def set_clock(request: Request) -> Response:
        body = _object(await json_body(request))
        if body.get("reset"):
            world.clock.reset()
        elif "now" in body:
            world.clock.set(parse_time(body["now"], "now"), frozen=bool(body.get("frozen")))
        elif "advance_seconds" in body:
            world.clock.advance(_score(body, "advance_seconds") or 0.0)
        else:
            raise ApiError(400, "Send one of now, advance_seconds or reset")
        return JSONResponse(world.clock.describe())

    async def get_faults(request: Request) -> Response:
        return JSONResponse(faults.describe())

    async def set_faults(request: Request) -> Response:
        return JSONResponse(faults.configure(await json_body(request)))

    async def expire_tokens(request: Request) -> Response:
        return JSONResponse({"expired": world.expire_tokens()})

    async def token_settings(request: Request) -> Response:
        body = _object(await json_body(request))
        lifetime = _score(body, "lifetime_s")
        if lifetime is None or lifetime < 1:
            raise ApiError(400, "lifetime_s must be a number of seconds, at least 1")
        world.token_lifetime = int(lifetime)
        return JSONResponse({"lifetime_s": world.token_lifetime})

    async def set_types(request: Request) -> Response:
        body = _object(await json_body(request))
        singular = body.get("singular")
        if not isinstance(singular, bool):
            raise ApiError(400, "singular must be true or false")
        world.singular_types = singular
        return JSONResponse({"singular": singular})

    async def _deliver_to_registered(enrollment: Enrollment) -> list[dict[str, Any]]:
        event = world.completion_event(enrollment)
        hooks = [
            h
            for h in list(world.webhooks.values())
            if h.active and h.event_type in (None, "COURSE_COMPLETION")
        ]
        return [await deliver(h, event) for h in hooks]

    async def deliver_webhook(request: Request) -> Response:
        body = _object(await json_body(request))
        enrollment = world.enrollments.get(_text(body, "enrollment_id", required=True) or "")
        if enrollment is None:
            raise ApiError(404, "no such enrollment")
        if body.get("target_url") is None:
            return JSONResponse({"deliveries": await _deliver_to_registered(enrollment)})
        headers = body.get("additional_headers") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise ApiError(400, "additional_headers must map header names to text")
        target = _text(body, "target_url", required=True) or ""
        if not target.startswith(("http://", "https://")):
            raise ApiError(400, "target_url must be an http(s) URL")
        hook = Webhook(
            id="ad-hoc",
            target_url=target,
            basic_auth_username=_text(body, "basic_auth_username"),
            basic_auth_password=_text(body, "basic_auth_password"),
            additional_headers=dict(headers),
        )
        result = await deliver(hook, world.completion_event(enrollment))
        return JSONResponse({"deliveries": [result]})

    async def get_stats(request: Request) -> Response:
        return JSONResponse(
            {
                "grants": world.grants,
                "requests": dict(stats),
                "faults_injected": faults.describe()["injected"],
                "enrollments": len(world.enrollments),
                "courses": len(world.courses),
                "webhooks": [h.to_json() for h in world.webhooks.values()],
            }
        )

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "event_types": sorted(EVENT_TYPES)})

    return [
        Route("/_emulator/courses", control(add_course), methods=["POST"]),
        Route("/_emulator/completions", control(add_completion), methods=["POST"]),
        Route("/_emulator/enrollments", control(add_enrollment), methods=["POST"]),
        Route("/_emulator/clock", control(get_clock), methods=["GET"]),
        Route("/_emulator/clock", control(set_clock), methods=["POST"]),
        Route("/_emulator/faults", control(get_faults), methods=["GET"]),
        Route("/_emulator/faults", control(set_faults), methods=["POST"]),
        Route("/_emulator/tokens/expire", control(expire_tokens), methods=["POST"]),
        Route("/_emulator/tokens", control(token_settings), methods=["POST"]),
        Route("/_emulator/types", control(set_types), methods=["POST"]),
        Route("/_emulator/webhooks/deliver", control(deliver_webhook), methods=["POST"]),
        Route("/_emulator/stats", control(get_stats), methods=["GET"]),
        Route("/_emulator/health", control(health), methods=["GET"]),
    ]

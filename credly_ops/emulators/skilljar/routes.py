"""The local Skilljar's API: v2 token, enrollments and courses; v1 webhooks (reference §2–5)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from credly_ops.emulators.skilljar.state import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    ApiError,
    EnrollmentQuery,
    SkilljarWorld,
    parse_time,
)

Handler = Callable[[Request], Awaitable[Response]]

ENROLLMENT_FILTERS = frozenset(
    {
        "progress_status",
        "completed_gte",
        "completed_lte",
        "course.id",
        "student.email",
        "student.id",
        "domains",
        "active",
    }
)


def error_response(exc: ApiError, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"errors": [{"status": str(exc.status), "title": exc.title, "detail": exc.detail}]}
    return JSONResponse(body, status_code=exc.status, headers=headers)


async def json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "Request body is not valid JSON") from None


def page_params(request: Request) -> tuple[int, str | None]:
    raw = request.query_params.get("page[size]")
    try:
        size = DEFAULT_PAGE_SIZE if raw is None else int(raw)
    except ValueError:
        raise ApiError(400, "page[size] must be a whole number") from None
    if size < 1:
        raise ApiError(400, "page[size] must be positive")
    return min(size, MAX_PAGE_SIZE), request.query_params.get("page[cursor]") or None


def list_envelope(
    request: Request,
    data: list[dict[str, Any]],
    size: int,
    next_cursor: str | None,
    included: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    following = None
    if next_cursor is not None:
        following = str(request.url.include_query_params(**{"page[cursor]": next_cursor}))
    body: dict[str, Any] = {
        "data": data,
        "links": {"self": str(request.url), "next": following},
        "meta": {"page_size": size},
        "has_more": next_cursor is not None,
        "next_cursor": next_cursor,
    }
    if included is not None:
        body["included"] = included
    return JSONResponse(body)


def enrollment_query(request: Request) -> EnrollmentQuery:
    filters: dict[str, str] = {}
    for key, value in request.query_params.items():
        if key.startswith("filter[") and key.endswith("]"):
            name = key[len("filter[") : -1]
            if name not in ENROLLMENT_FILTERS:
                raise ApiError(400, f"Unknown filter {name[:40]!r}")
            filters[name] = value
    status = filters.get("progress_status")
    if status is not None and status not in ("completed", "in_progress", "not_started"):
        raise ApiError(400, "filter[progress_status] must be completed, in_progress or not_started")
    active = filters.get("active")
    if active is not None and active.lower() not in ("true", "false"):
        raise ApiError(400, "filter[active] must be true or false")
    domains = filters.get("domains")
    return EnrollmentQuery(
        progress_status=status,
        completed_gte=(
            parse_time(filters["completed_gte"], "filter[completed_gte]")
            if "completed_gte" in filters
            else None
        ),
        completed_lte=(
            parse_time(filters["completed_lte"], "filter[completed_lte]")
            if "completed_lte" in filters
            else None
        ),
        course_id=filters.get("course.id"),
        student_email=filters.get("student.email"),
        student_id=filters.get("student.id"),
        domains=frozenset(d.strip() for d in domains.split(",")) if domains else None,
        active=None if active is None else active.lower() == "true",
    )


def api_routes(world: SkilljarWorld) -> list[Route]:
    def bearer(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not world.token_valid(token.strip()):
                return error_response(
                    ApiError(401, "Invalid or expired token", title="invalid_token"),
                    {"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
            try:
                return await handler(request)
            except ApiError as exc:
                return error_response(exc)

        return endpoint

    def basic(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            scheme, _, value = request.headers.get("authorization", "").partition(" ")
            key = ""
            if scheme.lower() == "basic":
                try:
                    key = base64.b64decode(value.strip(), validate=True).decode().split(":")[0]
                except (binascii.Error, UnicodeDecodeError, ValueError):
                    key = ""
            if not key or not world.api_key_valid(key):
                return error_response(
                    ApiError(401, "Invalid API key", title="not_authenticated"),
                    {"WWW-Authenticate": 'Basic realm="api"'},
                )
            try:
                return await handler(request)
            except ApiError as exc:
                return error_response(exc)

        return endpoint

    async def token(request: Request) -> Response:
        if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
            return JSONResponse(
                {"error": "invalid_request", "error_description": "send a form-encoded body"},
                status_code=400,
            )
        try:
            form = parse_qs((await request.body()).decode(), keep_blank_values=True)
        except UnicodeDecodeError:
            form = {}
        text = {
            k: form[k][0] if form.get(k) else None
            for k in ("grant_type", "client_id", "client_secret")
        }
        try:
            answer = world.grant(text["grant_type"], text["client_id"], text["client_secret"])
        except ApiError as exc:
            return JSONResponse(
                {"error": exc.title, "error_description": exc.detail}, status_code=exc.status
            )
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    async def enrollments(request: Request) -> Response:
        size, cursor = page_params(request)
        query = enrollment_query(request)
        include = {
            part.strip().rstrip("s")
            for part in request.query_params.get("include", "").split(",")
            if part.strip()
        }
        rows, next_cursor = world.enrollment_page(query, cursor, size)
        data = [world.enrollment_json(e) for e in rows]
        included = world.included_for(rows, include) if include else None
        return list_envelope(request, data, size, next_cursor, included)

    async def courses(request: Request) -> Response:
        size, cursor = page_params(request)
        rows, next_cursor = world.course_page(
            request.query_params.get("filter[title]"), cursor, size
        )
        data = [world.course_json(c.id) | {"type": "courses"} for c in rows]
        return list_envelope(request, data, size, next_cursor)

    async def ping(request: Request) -> Response:
        return Response(status_code=200)

    async def list_webhooks(request: Request) -> Response:
        hooks = [h.to_json() for h in world.webhooks.values()]
        return JSONResponse({"count": len(hooks), "next": None, "previous": None, "results": hooks})

    async def create_webhook(request: Request) -> Response:
        hook = world.add_webhook(await json_body(request))
        return JSONResponse(hook.to_json(), status_code=201)

    async def get_webhook(request: Request) -> Response:
        hook = world.webhooks.get(request.path_params["webhook_id"])
        if hook is None:
            raise ApiError(404, "Not found")
        return JSONResponse(hook.to_json())

    async def delete_webhook(request: Request) -> Response:
        if world.webhooks.pop(request.path_params["webhook_id"], None) is None:
            raise ApiError(404, "Not found")
        return Response(status_code=204)

    return [
        Route("/v2/auth/token", token, methods=["POST"]),
        Route("/v2/enrollments", bearer(enrollments), methods=["GET"]),
        Route("/v2/courses", bearer(courses), methods=["GET"]),
        Route("/v1/ping", basic(ping), methods=["GET"]),
        Route("/v1/webhooks", basic(list_webhooks), methods=["GET"]),
        Route("/v1/webhooks", basic(create_webhook), methods=["POST"]),
        Route("/v1/webhooks/{webhook_id}", basic(get_webhook), methods=["GET"]),
        Route("/v1/webhooks/{webhook_id}", basic(delete_webhook), methods=["DELETE"]),
    ]

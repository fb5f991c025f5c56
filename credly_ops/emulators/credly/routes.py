"""The ``/v1`` API of the local Credly: one small handler per endpoint, and the route table.

Every handler is wrapped by :func:`api`, which authenticates the token (Basic auth, the token
as the username), checks it belongs to the organization in the path, and turns an
:class:`ApiError` into Credly's error envelope.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from credly_ops.emulators.credly.protocol import (
    PAGE_SIZE,
    decode_cursor,
    emulator_of,
    encode_cursor,
    envelope,
    error_response,
    json_body,
    page_metadata,
    page_params,
    token_from,
)
from credly_ops.emulators.credly.records import ApiError
from credly_ops.emulators.credly.state import World
from credly_ops.timeutil import parse_credly_time

ApiHandler = Callable[[Request, World, str], Awaitable[Response]]


def authorized(request: Request, world: World) -> str:
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


def api(handler: ApiHandler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        world = emulator_of(request).world
        try:
            org = authorized(request, world)
            return await handler(request, world, org)
        except ApiError as exc:
            headers = {"WWW-Authenticate": 'Basic realm="Credly"'} if exc.status == 401 else None
            return error_response(exc.status, exc.message, exc.metadata, headers)

    return endpoint


# --------------------------------------------------------------------------- organizations


async def list_orgs(request: Request, world: World, org: str) -> Response:
    return envelope([world.org_json(org)], page_metadata(request, 1, PAGE_SIZE, 1, 1))


async def get_org(request: Request, world: World, org: str) -> Response:
    return envelope(world.org_json(org))


async def put_org(request: Request, world: World, org: str) -> Response:
    return envelope(world.update_org(org, await json_body(request)))


async def list_authorization_tokens(request: Request, world: World, org: str) -> Response:
    tokens = world.token_book.listing(org, token_from(request) or "")
    return envelope(tokens, page_metadata(request, 1, PAGE_SIZE, len(tokens), len(tokens)))


# --------------------------------------------------------------------------- templates


async def list_templates(request: Request, world: World, org: str) -> Response:
    page, per = page_params(request)
    q = request.query_params
    total, items = world.template_page(org, q.get("filter"), q.get("sort"), (page - 1) * per, per)
    return envelope(items, page_metadata(request, page, per, total, len(items)))


async def get_template(request: Request, world: World, org: str) -> Response:
    return envelope(world.template_json(org, request.path_params["template_id"]))


# --------------------------------------------------------------------------- badges


async def issue(request: Request, world: World, org: str) -> Response:
    return envelope(world.issue(org, await json_body(request)), status=201)


async def issue_batch(request: Request, world: World, org: str) -> Response:
    return envelope(world.issue_batch(org, await json_body(request)), status=201)


async def list_badges(request: Request, world: World, org: str) -> Response:
    page, per = page_params(request)
    q = request.query_params
    total, items = world.badge_page(org, q.get("filter"), q.get("sort"), (page - 1) * per, per)
    return envelope(items, page_metadata(request, page, per, total, len(items)))


async def get_badge(request: Request, world: World, org: str) -> Response:
    return envelope(world.badge_json(org, request.path_params["badge_id"]))


async def revoke(request: Request, world: World, org: str) -> Response:
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


async def replace_badge(request: Request, world: World, org: str) -> Response:
    badge_id = request.path_params["badge_id"]
    return envelope(world.replace(org, badge_id, await json_body(request)), status=201)


async def delete_badge(request: Request, world: World, org: str) -> Response:
    world.delete(org, request.path_params["badge_id"])
    return Response(status_code=204)


async def high_volume(request: Request, world: World, org: str) -> Response:
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
        org,
        filter_text,
        after=after,
        limit=emulator_of(request).high_volume_page_size,
        badge_format=badge_format,
    )
    next_url = None
    if next_key is not None:
        cursor = encode_cursor({"f": filter_text, "t": next_key[0].isoformat(), "i": next_key[1]})
        base = str(request.url.replace(query=""))
        next_url = f"{base}?badge_format={badge_format}&cursor={cursor}"
    return envelope(items, {"next_page_url": next_url})


# --------------------------------------------------------------------------- events


async def list_events(request: Request, world: World, org: str) -> Response:
    page, per = page_params(request)
    q = request.query_params
    total, items = world.event_page(org, q.get("filter"), q.get("sort"), (page - 1) * per, per)
    return envelope(items, page_metadata(request, page, per, total, len(items)))


async def get_event(request: Request, world: World, org: str) -> Response:
    return envelope(world.event_json(org, request.path_params["event_id"]))


# --------------------------------------------------------------------------- the table

ORG_PATH = "/v1/organizations/{org}"
BADGE_PATH = f"{ORG_PATH}/badges/{{badge_id}}"

ROUTES = [
    Route("/v1/organizations", api(list_orgs), methods=["GET"]),
    Route(ORG_PATH, api(get_org), methods=["GET"]),
    Route(ORG_PATH, api(put_org), methods=["PUT"]),
    Route(f"{ORG_PATH}/authorization_tokens", api(list_authorization_tokens), methods=["GET"]),
    Route(f"{ORG_PATH}/badge_templates", api(list_templates), methods=["GET"]),
    Route(f"{ORG_PATH}/badge_templates/{{template_id}}", api(get_template), methods=["GET"]),
    Route(f"{ORG_PATH}/badges", api(list_badges), methods=["GET"]),
    Route(f"{ORG_PATH}/badges", api(issue), methods=["POST"]),
    Route(f"{ORG_PATH}/badges/batch", api(issue_batch), methods=["POST"]),
    Route(BADGE_PATH, api(get_badge), methods=["GET"]),
    Route(BADGE_PATH, api(delete_badge), methods=["DELETE"]),
    Route(f"{BADGE_PATH}/revoke", api(revoke), methods=["PUT"]),
    Route(f"{BADGE_PATH}/replace", api(replace_badge), methods=["POST"]),
    Route(f"{ORG_PATH}/high_volume_issued_badge_search", api(high_volume), methods=["GET"]),
    Route(f"{ORG_PATH}/events", api(list_events), methods=["GET"]),
    Route(f"{ORG_PATH}/events/{{event_id}}", api(get_event), methods=["GET"]),
]

"""The ``/_emulator/`` control surface: what only an earner or an operator can do.

Accept or reject a badge, turn on Auto-Accept, move the clock, inject faults, read and reset
request statistics, check health, and the template pictures the demo shows; and what a Credly
admin does by hand: archive (or draft, or re-activate) a template, and move a token's expiry
(``{"expires_at": "<time>"}`` or ``{"expires_in_days": 20}``).  No
authentication: the emulator binds to loopback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from credly_ops.emulators.credly.faults import FaultConfig
from credly_ops.emulators.credly.images import IMAGE_PATH, badge_svg
from credly_ops.emulators.credly.protocol import (
    Emulator,
    emulator_of,
    envelope,
    error_response,
    json_body,
)
from credly_ops.emulators.credly.records import ApiError
from credly_ops.timeutil import parse_credly_time

ControlHandler = Callable[[Request, Emulator], Awaitable[Response]]


def control(handler: ControlHandler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request, emulator_of(request))
        except ApiError as exc:
            return error_response(exc.status, exc.message, exc.metadata)

    return endpoint


async def earner_action(request: Request, emu: Emulator) -> Response:
    p = request.path_params
    return envelope(emu.world.earner_action(p["org"], p["badge_id"], p["action"]))


async def auto_accept(request: Request, emu: Emulator) -> Response:
    body = await json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("email"), str):
        raise ApiError(400, "Send {'email': ..., 'enabled': true|false}")
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ApiError(400, "enabled must be true or false")
    emu.world.set_auto_accept(request.path_params["org"], body["email"], enabled, record=True)
    return envelope({"email": body["email"].strip().lower(), "enabled": enabled})


async def template_state(request: Request, emu: Emulator) -> Response:
    body = await json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("state"), str):
        raise ApiError(400, "Send {'state': 'active' | 'draft' | 'archived'}")
    p = request.path_params
    return envelope(emu.world.set_template_state(p["org"], p["template_id"], body["state"]))


async def token_expiry(request: Request, emu: Emulator) -> Response:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    world = emu.world
    if "expires_in_days" in body:
        try:
            moment = world.clock.now() + timedelta(days=float(body["expires_in_days"]))
        except (TypeError, ValueError):
            raise ApiError(400, "expires_in_days must be a number") from None
    elif "expires_at" in body:
        try:
            moment = parse_credly_time(str(body["expires_at"]))
        except ValueError:
            raise ApiError(400, "expires_at must be a timestamp") from None
    else:
        raise ApiError(400, "Send one of expires_at or expires_in_days")
    p = request.path_params
    return envelope(world.token_book.set_expiry(p["org"], p["token_id"], moment).as_json())


async def get_clock(request: Request, emu: Emulator) -> Response:
    return envelope(emu.world.clock.describe())


async def set_clock(request: Request, emu: Emulator) -> Response:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    if body.get("reset"):
        emu.world.clock.reset()
    elif "now" in body:
        try:
            moment = parse_credly_time(str(body["now"]))
        except ValueError:
            raise ApiError(400, "now must be a timestamp") from None
        emu.world.clock.set(moment, frozen=bool(body.get("frozen", False)))
    elif "advance_seconds" in body:
        try:
            emu.world.clock.advance(float(body["advance_seconds"]))
        except (TypeError, ValueError):
            raise ApiError(400, "advance_seconds must be a number") from None
    else:
        raise ApiError(400, "Send one of now, advance_seconds or reset")
    return envelope(emu.world.clock.describe())


async def get_faults(request: Request, emu: Emulator) -> Response:
    return envelope(asdict(emu.faults.config))


async def set_faults(request: Request, emu: Emulator) -> Response:
    emu.faults.configure(FaultConfig.from_json(await json_body(request)))
    return envelope(asdict(emu.faults.config))


async def get_stats(request: Request, emu: Emulator) -> Response:
    return envelope(
        {
            **emu.stats.snapshot(),
            "issued_by_org": {
                org: counts.get("badges_issued", 0) for org, counts in emu.world.counters().items()
            },
            "mutations_by_org": emu.world.counters(),
            "badges_by_org": emu.world.badge_counts(),
            "webhooks": emu.webhooks.snapshot(),
            "cache": dict(emu.world.cache_stats),
        }
    )


async def reset_stats(request: Request, emu: Emulator) -> Response:
    emu.stats.reset()
    return Response(status_code=204)


async def health(request: Request, emu: Emulator) -> Response:
    return envelope({"status": "ok", "organizations": len(emu.world.org_ids())})


async def template_image(request: Request) -> Response:
    """A badge picture for a template, standing in for Credly's image CDN in the demo."""
    template_id = request.path_params["template_id"]
    world = emulator_of(request).world
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


ROUTES = [
    Route(
        "/_emulator/orgs/{org}/badges/{badge_id}/{action:str}",
        control(earner_action),
        methods=["POST"],
    ),
    Route("/_emulator/orgs/{org}/auto_accept", control(auto_accept), methods=["POST"]),
    Route(
        "/_emulator/orgs/{org}/badge_templates/{template_id}/state",
        control(template_state),
        methods=["POST"],
    ),
    Route(
        "/_emulator/orgs/{org}/authorization_tokens/{token_id}",
        control(token_expiry),
        methods=["POST"],
    ),
    Route("/_emulator/clock", control(get_clock), methods=["GET"]),
    Route("/_emulator/clock", control(set_clock), methods=["POST"]),
    Route("/_emulator/faults", control(get_faults), methods=["GET"]),
    Route("/_emulator/faults", control(set_faults), methods=["POST"]),
    Route("/_emulator/stats", control(get_stats), methods=["GET"]),
    Route("/_emulator/stats", control(reset_stats), methods=["DELETE"]),
    Route("/_emulator/health", control(health), methods=["GET"]),
    Route(IMAGE_PATH, template_image, methods=["GET"]),
]

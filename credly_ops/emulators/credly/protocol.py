"""Credly's wire conventions as the local Credly speaks them.

The envelope (``{"data", "metadata"}``), the error envelope, Basic auth with the token as the
username, page parameters and metadata with absolute previous/next URLs, the opaque
high-volume cursor, and the :class:`Emulator` the handlers find on ``request.app.state``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from starlette.requests import Request
from starlette.responses import JSONResponse

from credly_ops.emulators.credly.records import ApiError

if TYPE_CHECKING:
    from credly_ops.emulators.credly.faults import Faults
    from credly_ops.emulators.credly.state import World
    from credly_ops.emulators.credly.stats import Stats
    from credly_ops.emulators.credly.webhooks import WebhookDispatcher

PAGE_SIZE = 50
HIGH_VOLUME_PAGE_SIZE = 1000


@dataclass(frozen=True)
class Emulator:
    """Everything one running emulator app holds: its world and its operator's controls."""

    world: World
    faults: Faults
    stats: Stats
    webhooks: WebhookDispatcher
    high_volume_page_size: int = HIGH_VOLUME_PAGE_SIZE
    #: the largest (and default) ``per`` of the paged lists; Credly's is 50
    page_size: int = PAGE_SIZE


def emulator_of(request: Request) -> Emulator:
    return cast("Emulator", request.app.state.emulator)


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


def page_params(request: Request) -> tuple[int, int]:
    """``page`` and ``per`` of a paged list; ``per`` defaults to, and stops at, the page size."""
    max_per = emulator_of(request).page_size
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

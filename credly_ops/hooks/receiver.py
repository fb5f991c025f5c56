"""The receiver: ``POST /hooks/skilljar`` (and ``GET /hooks/health``), a Starlette app.

It authenticates, spools and wakes — it never decides and never opens the cache:

* a delivery without the webhook secret (:mod:`credly_ops.hooks.auth`) is answered ``401``
  and nothing of it is kept; with no secret configured, every delivery is;
* an authenticated delivery is written to the spool (:mod:`credly_ops.hooks.spool`) and
  answered ``200`` — whatever its body: malformed JSON, another event type, no email, a body
  over :data:`MAX_BODY_BYTES` are all kept and later recorded as *rejected* with why, because
  any 4xx would deactivate the webhook on Skilljar's side (reference §5);
* only when the spool cannot be written (a full disk) is the answer ``503``: a 5xx does not
  deactivate the webhook, and Skilljar delivers again.

The answer never waits for the cache file, which another process may hold; the spool write is
a few milliseconds.  Headers are never stored and never logged; the secret is masked in a body
that carries it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from credly_ops.config import SkilljarNotConfigured, SkilljarSettings
from credly_ops.hooks.auth import authenticated
from credly_ops.hooks.spool import Spool
from credly_ops.redaction import scrub

log = logging.getLogger(__name__)

#: a body larger than this is not kept (recorded as rejected ``too large``, still answered 200)
MAX_BODY_BYTES = 64 * 1024
#: an oversized body is read (and dropped) up to this many bytes, then the connection is let go
DRAIN_BYTES = 8 * 1024 * 1024
PATH = "/hooks/skilljar"
HEALTH_PATH = "/hooks/health"


def webhook_secret(settings: SkilljarSettings | SkilljarNotConfigured) -> str | None:
    """The configured webhook secret, or ``None``."""
    if isinstance(settings, SkilljarSettings) and settings.webhook_secret is not None:
        return settings.webhook_secret.get_secret_value() or None
    return None


def create_hooks_app(
    settings: SkilljarSettings | SkilljarNotConfigured,
    spool: Spool,
    *,
    wake: Callable[[], None] | None = None,
) -> Starlette:
    """The receiver over ``spool``; ``wake`` is called after each event is spooled (the demo's
    in-process worker; another process waits with :func:`~credly_ops.hooks.wait_for_events`)."""
    secret = webhook_secret(settings)

    def mask(text: str) -> str:
        return scrub(text, secret) if secret else text

    async def receive(request: Request) -> Response:
        if not authenticated(request.headers, secret):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        body, size = await _read_limited(request, MAX_BODY_BYTES)
        try:
            event = await run_in_threadpool(spool.write, body, size=size, mask=mask)
        except OSError as exc:
            log.error("webhook delivery not spooled: %s", type(exc).__name__)
            return JSONResponse({"error": "not stored; deliver again"}, status_code=503)
        log.info("webhook delivery %s spooled (%d bytes)", event.id, size)
        if wake is not None:
            try:
                wake()
            except Exception:  # the event is stored; a wake that fails only delays it
                log.exception("webhook wake failed")
        return JSONResponse({"received": event.id})

    async def health(request: Request) -> Response:
        return JSONResponse(
            {"status": "ok" if secret else "no webhook secret", "waiting": spool.waiting()}
        )

    return Starlette(
        routes=[
            Route(PATH, receive, methods=["POST"]),
            Route(HEALTH_PATH, health, methods=["GET"]),
        ]
    )


async def _read_limited(request: Request, limit: int) -> tuple[bytes | None, int]:
    """The body, or ``None`` when it is over ``limit`` bytes; and its size.  An oversized body
    is read to its end and dropped (so the sender gets its answer), up to :data:`DRAIN_BYTES`."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > DRAIN_BYTES:
            break
    return (b"".join(chunks) if size <= limit else None), size

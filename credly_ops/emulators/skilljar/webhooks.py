"""Delivering ``COURSE_COMPLETION`` events the way Skilljar does (reference §5).

One ``POST`` per event, ``Content-Type: application/json``, ``User-Agent: skilljar``, the
webhook's Basic credentials and ``additional_headers``; no signature.  A 4xx answer
deactivates the webhook (``deactivate_reason = HTTP_4XX_RESPONSE``), as on Skilljar.
"""

from __future__ import annotations

from typing import Any

import httpx

from credly_ops.emulators.skilljar.state import Webhook

DELIVERY_TIMEOUT = 5.0


async def deliver(hook: Webhook, event: dict[str, Any]) -> dict[str, Any]:
    """Send ``event`` to ``hook``; the outcome as ``{"webhook", "status"|"error"}``."""
    headers = {"User-Agent": "skilljar", **hook.additional_headers}
    auth: httpx.Auth = httpx.Auth()  # sends nothing
    if hook.basic_auth_username is not None:
        auth = httpx.BasicAuth(hook.basic_auth_username, hook.basic_auth_password or "")
    async with httpx.AsyncClient(timeout=DELIVERY_TIMEOUT, follow_redirects=False) as client:
        try:
            answer = await client.post(hook.target_url, json=event, headers=headers, auth=auth)
        except httpx.HTTPError as exc:
            return {"webhook": hook.id, "error": type(exc).__name__}
    if 400 <= answer.status_code < 500:
        hook.active = False
        hook.deactivate_reason = "HTTP_4XX_RESPONSE"
    return {"webhook": hook.id, "status": answer.status_code}

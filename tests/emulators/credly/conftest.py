"""The local Credly's test world: two organizations, templates of every kind, helpers."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from credly_ops.emulators.credly import (
    Clock,
    World,
    create_app,
)
from credly_ops.emulators.server import serve_in_thread

ORG = "11111111-1111-4111-8111-111111111111"
OTHER = "22222222-2222-4222-8222-222222222222"
TOKEN = "token-org-a"
OTHER_TOKEN = "token-org-b"
T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
BADGES = f"/v1/organizations/{ORG}/badges"
EVENTS = f"/v1/organizations/{ORG}/events"
HIGH_VOLUME = f"/v1/organizations/{ORG}/high_volume_issued_badge_search"


def basic(token: str, colon: bool = True) -> dict[str, str]:
    raw = f"{token}:" if colon else token
    return {"Authorization": "Basic " + base64.b64encode(raw.encode()).decode()}


AUTH = basic(TOKEN)


def make_world(clock: Clock | None = None, journal_path: Path | None = None) -> World:
    world = World(clock or Clock(frozen_at=T0), journal_path=journal_path)
    with world.unrecorded():
        world.add_org(ORG, "Org A", TOKEN)
        world.add_org(OTHER, "Org B", OTHER_TOKEN)
        world.add_template(ORG, id="tpl-a", name="Python Basics")
        world.add_template(ORG, id="tpl-b", name="Cloud Skills")
        world.add_template(ORG, id="tpl-dup", name="Workshop", allow_duplicate_badges=True)
        world.add_template(ORG, id="tpl-exp", name="Safety", default_expiration_days=30)
        world.add_template(ORG, id="tpl-draft", name="Draft One", state="draft")
        world.add_template(ORG, id="tpl-old", name="Old One", state="archived")
        world.add_template(OTHER, id="tpl-other", name="Other Org Badge")
    return world


@pytest.fixture
def emu() -> World:
    return make_world()


@pytest.fixture
def api(emu: World) -> Iterator[TestClient]:
    with TestClient(create_app(emu)) as client:
        yield client


def body(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "recipient_email": "ada@example.com",
        "issued_to_first_name": "Ada",
        "issued_to_last_name": "Lovelace",
        "badge_template_id": "tpl-a",
        "issued_at": "2024-05-01 09:41:00 -0500",
    }
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not ...}


def issue(api: TestClient, **overrides: Any) -> dict[str, Any]:
    response = api.post(BADGES, json=body(**overrides), headers=AUTH)
    assert response.status_code == 201, response.text
    return response.json()["data"]


def records(n: int, *, start: datetime = T0 - timedelta(days=400), **extra: Any) -> list[dict]:
    out = []
    for i in range(n):
        at = start + timedelta(minutes=7 * i)
        out.append(
            {
                "id": f"{(i * 7919) % 100_003:08x}-0000-4000-8000-{i:012x}",
                "template_id": "tpl-a" if i % 2 else "tpl-b",
                "recipient_email": f"learner{i}@example.com",
                "first_name": "Learner",
                "last_name": f"N{i}",
                "state": "accepted" if i % 3 else "pending",
                "issued_at": at,
                "created_at": at,
                "updated_at": at + timedelta(hours=i % 5),
                "state_updated_at": at + timedelta(hours=1) if i % 3 else None,
                "expires_at": None,
                "suppress_badge_notification_email": False,
                "replaces_badge_id": None,
                "replacement_badge_id": None,
                "issuer_earner_id": None,
                **extra,
            }
        )
    return out


def walk(api: TestClient, url: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url:
        response = api.get(next_url, headers=AUTH)
        assert response.status_code == 200, response.text
        items.extend(response.json()["data"])
        next_url = response.json()["metadata"]["next_page_url"]
    return items


@pytest.fixture
def served() -> Iterator[tuple[World, str]]:
    world = make_world(clock=Clock())
    server = serve_in_thread(create_app(world, webhook_retry_base_s=0.05))
    try:
        yield world, server.url
    finally:
        server.stop()

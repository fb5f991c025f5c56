"""The local Credly: auth, issuing rules, lists, replace/revoke/delete, events, reminders,
earner actions, faults, the high-volume cursor, webhooks and the journal."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from credly_ops.config import DEMO_API_TOKEN, DEMO_ORG_ID
from credly_ops.credly.emulator import (
    EMPTY_SEED_TEMPLATES,
    FaultConfig,
    Faults,
    build_app,
    build_world,
    create_app,
    decode_cursor,
)
from credly_ops.credly.emulator_world import Clock, World, fmt_time
from credly_ops.credly.errors import (
    AlreadyReplaced,
    DuplicateBadge,
    TemplateNotIssuable,
    ValidationFailed,
    error_for_status,
)
from credly_ops.credly.server import serve_in_thread
from credly_ops.reminders import reminders_sent
from credly_ops.timeutil import format_credly_response, parse_credly_time

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


# --------------------------------------------------------------------------- auth


def test_basic_auth_with_and_without_colon(api: TestClient) -> None:
    for headers in (basic(TOKEN), basic(TOKEN, colon=False)):
        response = api.get(f"/v1/organizations/{ORG}", headers=headers)
        assert response.status_code == 200
        assert response.json()["data"]["id"] == ORG
        assert response.json()["metadata"] == {}


@pytest.mark.parametrize(
    "headers",
    [{}, basic("wrong-token"), {"Authorization": "Bearer " + TOKEN}, {"Authorization": "Basic !!"}],
)
def test_unknown_or_missing_token_is_401(api: TestClient, headers: dict[str, str]) -> None:
    response = api.get(f"/v1/organizations/{ORG}/badges", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"data": {"message": "Unauthorized"}, "metadata": {}}


def test_token_of_another_org_is_403(api: TestClient, emu: World) -> None:
    response = api.post(BADGES, json=body(), headers=basic(OTHER_TOKEN))
    assert response.status_code == 403
    assert "message" in response.json()["data"]
    assert emu.badges_for(ORG) == []
    other = api.get("/v1/organizations", headers=basic(OTHER_TOKEN)).json()["data"]
    assert [o["id"] for o in other] == [OTHER]


def test_trailing_slash_and_unknown_paths(api: TestClient) -> None:
    assert api.get(f"{BADGES}/", headers=AUTH).status_code == 200
    missing = api.get("/v1/nowhere", headers=AUTH)
    assert missing.status_code == 404
    assert missing.json()["data"]["message"]
    wrong_method = api.patch(BADGES, headers=AUTH)
    assert wrong_method.status_code == 405
    assert "message" in wrong_method.json()["data"]


# --------------------------------------------------------------------------- issuing


def test_issue_returns_full_pending_badge(api: TestClient, emu: World) -> None:
    badge = issue(api, issuer_earner_id="u-1", suppress_badge_notification_email=True)
    assert badge["state"] == "pending"
    assert badge["state_updated_at"] is None
    assert uuid.UUID(badge["id"]).version == 4
    assert badge["issued_at"] == "2024-05-01T14:41:00.000Z"
    assert badge["issued_at_date"] == "2024-05-01"
    assert badge["created_at"] == format_credly_response(T0)
    assert badge["badge_url"] == f"https://www.credly.com/badges/{badge['id']}"
    assert badge["accept_badge_url"] == f"https://www.credly.com/badges/{badge['id']}/accept"
    assert badge["issuer_earner_id"] == "u-1"
    assert badge["suppress_badge_notification_email"] is True
    assert badge["expires_at"] is None
    template = badge["badge_template"]
    assert template["id"] == "tpl-a"
    assert {"name", "state", "image_url", "url", "allow_duplicate_badges"} <= set(template)
    assert badge["user"]["email"] == "ada@example.com"
    assert api.get(f"{BADGES}/{badge['id']}", headers=AUTH).json()["data"] == badge
    assert emu.counters()[ORG]["badges_issued"] == 1


@pytest.mark.parametrize(
    ("template", "expires_at", "expected"),
    [
        ("tpl-exp", ..., "2024-05-31T14:41:00.000Z"),  # omitted: template default (30 days)
        ("tpl-exp", None, "2024-05-31T14:41:00.000Z"),  # null: template default
        ("tpl-exp", False, None),  # false: never expires
        ("tpl-a", ..., None),  # no template default
        ("tpl-a", "2025-05-01T14:41:00Z", "2025-05-01T14:41:00.000Z"),
    ],
)
def test_expires_at_rules(api: TestClient, template: str, expires_at: Any, expected: Any) -> None:
    badge = issue(api, badge_template_id=template, expires_at=expires_at)
    assert badge["expires_at"] == expected


@pytest.mark.parametrize(
    ("overrides", "fragment", "error_class"),
    [
        ({"recipient_email": ...}, "Recipient email can't be blank", ValidationFailed),
        ({"issued_to_first_name": ...}, "Issued to first name can't be blank", ValidationFailed),
        ({"issued_to_last_name": " "}, "Issued to last name can't be blank", ValidationFailed),
        ({"badge_template_id": ...}, "Badge template can't be blank", ValidationFailed),
        ({"issued_at": ...}, "Issued at can't be blank", ValidationFailed),
        ({"recipient_email": "not-an-email"}, "Recipient email is invalid", ValidationFailed),
        ({"issued_at": "yesterday"}, "Issued at is invalid", ValidationFailed),
        ({"badge_template_id": "nope"}, "Badge template not found", ValidationFailed),
        ({"badge_template_id": "tpl-old"}, "archived", TemplateNotIssuable),
        ({"badge_template_id": "tpl-draft"}, "draft", TemplateNotIssuable),
        ({"locale": "xx"}, "Locale", ValidationFailed),
    ],
)
def test_issue_validation_422(
    api: TestClient, emu: World, overrides: dict, fragment: str, error_class: type
) -> None:
    response = api.post(BADGES, json=body(**overrides), headers=AUTH)
    assert response.status_code == 422
    message = response.json()["data"]["message"]
    assert message.startswith("Validation failed: ")
    assert fragment in message
    assert type(error_for_status(422, message)) is error_class
    assert emu.badges_for(ORG) == []


def test_all_missing_fields_are_named(api: TestClient) -> None:
    response = api.post(BADGES, json={}, headers=AUTH)
    message = response.json()["data"]["message"]
    assert response.status_code == 422
    for label in ("Recipient email", "Issued to first name", "Badge template", "Issued at"):
        assert f"{label} can't be blank" in message
    assert api.post(BADGES, content=b"{nope", headers=AUTH).status_code == 400


def test_duplicate_rule(api: TestClient, emu: World) -> None:
    first = issue(api, issuer_earner_id="e-1")
    for clash in (
        {"recipient_email": "ADA@Example.com "},  # same email, any case
        {"recipient_email": "other@example.com", "issuer_earner_id": "e-1"},  # same earner id
    ):
        response = api.post(BADGES, json=body(**clash), headers=AUTH)
        assert response.status_code == 422
        message = response.json()["data"]["message"]
        assert (
            message == "Validation failed: Badge template has already been issued to this recipient"
        )
        assert isinstance(error_for_status(422, message), DuplicateBadge)
    issue(api, badge_template_id="tpl-b")  # another template is fine
    issue(api, badge_template_id="tpl-dup")
    issue(api, badge_template_id="tpl-dup")  # the template allows duplicates
    # a revoked badge no longer blocks
    revoke = api.put(f"{BADGES}/{first['id']}/revoke", json={"reason": "error"}, headers=AUTH)
    assert revoke.status_code == 200
    second = issue(api)
    # nor does a rejected one
    assert api.post(f"/_emulator/orgs/{ORG}/badges/{second['id']}/reject").status_code == 200
    issue(api)
    assert len(emu.badges_for(ORG)) == 6


def test_batch_issue_is_all_or_nothing(api: TestClient, emu: World) -> None:
    good = [body(recipient_email=f"p{i}@example.com") for i in range(3)]
    response = api.post(f"{BADGES}/batch", json={"badges": good}, headers=AUTH)
    assert response.status_code == 201
    assert [b["recipient_email"] for b in response.json()["data"]] == [
        "p0@example.com",
        "p1@example.com",
        "p2@example.com",
    ]
    mixed = [body(recipient_email="q@example.com"), body(recipient_email="Q@example.com")]
    mixed.append(body(recipient_email="p0@example.com"))
    refused = api.post(f"{BADGES}/batch", json={"badges": mixed}, headers=AUTH)
    assert refused.status_code == 422
    assert [e["index"] for e in refused.json()["metadata"]["errors"]] == [1, 2]
    assert len(emu.badges_for(ORG)) == 3


# --------------------------------------------------------------------------- lists


def test_pagination_metadata_and_next_url_keep_filter_and_sort(api: TestClient, emu: World) -> None:
    emu.load_badges(ORG, records(130))
    url = f"{BADGES}?filter=state::accepted,pending|badge_template_id::tpl-a&sort=-issued_at"
    first = api.get(url, headers=AUTH).json()
    assert first["metadata"] == {
        "count": 50,
        "current_page": 1,
        "total_count": 65,
        "total_pages": 2,
        "per": 50,
        "previous_page_url": None,
        "next_page_url": first["metadata"]["next_page_url"],
    }
    next_url = httpx.URL(first["metadata"]["next_page_url"])
    assert next_url.scheme == "http"
    assert next_url.params["page"] == "2"
    assert next_url.params["filter"] == "state::accepted,pending|badge_template_id::tpl-a"
    assert next_url.params["sort"] == "-issued_at"
    second = api.get(str(next_url), headers=AUTH).json()
    assert second["metadata"]["count"] == 15
    assert second["metadata"]["next_page_url"] is None
    assert httpx.URL(second["metadata"]["previous_page_url"]).params["page"] == "1"
    items = first["data"] + second["data"]
    assert len({b["id"] for b in items}) == 65
    issued = [b["issued_at"] for b in items]
    assert issued == sorted(issued, reverse=True)
    assert {b["badge_template"]["id"] for b in items} == {"tpl-a"}


def test_per_is_honoured_up_to_50(api: TestClient, emu: World) -> None:
    emu.load_badges(ORG, records(60))
    small = api.get(f"{BADGES}?per=25", headers=AUTH).json()["metadata"]
    assert (small["per"], small["total_pages"], small["count"]) == (25, 3, 25)
    assert "per=25" in small["next_page_url"]
    assert len(walk(api, f"{BADGES}?per=25")) == 60
    big = api.get(f"{BADGES}?per=500", headers=AUTH).json()["metadata"]
    assert (big["per"], big["count"]) == (50, 50)
    empty = api.get(f"{BADGES}?filter=state::revoked", headers=AUTH).json()["metadata"]
    assert (empty["total_count"], empty["total_pages"], empty["next_page_url"]) == (0, 0, None)


def _ids(api: TestClient, query: str) -> list[str]:
    return [b["id"] for b in walk(api, f"{BADGES}?{query}")]


def test_filters(api: TestClient, emu: World) -> None:
    data = records(40)
    data[5]["recipient_email"] = "Mixed.Case@Example.com"
    data[6]["issuer_earner_id"] = "earner-6"
    emu.load_badges(ORG, data)
    by_id = {r["id"]: r for r in data}

    def expect(query: str, predicate: Any) -> None:
        wanted = {r["id"] for r in data if predicate(r)}
        assert set(_ids(api, query)) == wanted, query

    expect("filter=state::pending", lambda r: r["state"] == "pending")
    expect("filter=state::pending,accepted", lambda r: True)
    expect("filter=recipient_email::mixed.case@example.com", lambda r: r is data[5])
    expect("filter=recipient_email_all::MIXED.CASE@example.com", lambda r: r is data[5])
    expect("filter=issuer_earner_id::earner-6", lambda r: r is data[6])
    expect("filter=badge_template_id::tpl-b", lambda r: r["template_id"] == "tpl-b")
    expect("filter=query::cloud", lambda r: r["template_id"] == "tpl-b")  # template name
    expect("filter=query::N17", lambda r: r["last_name"] in ("N17",))
    expect("filter=query::learner3", lambda r: r["recipient_email"].startswith("learner3"))
    day = data[10]["issued_at"].date().isoformat()
    expect(
        f"filter=issued_at_min::{day}|issued_at_max::{day}",
        lambda r: r["issued_at"].date().isoformat() == day,
    )
    cut = data[20]["updated_at"]
    stamp = format_credly_response(cut)
    expect(f"filter=updated_at_min::{stamp}", lambda r: r["updated_at"] >= cut)
    expect(f"filter=created_at_max::{stamp}", lambda r: r["created_at"] <= cut)
    expect(
        "filter=state::pending|badge_template_id::tpl-a",
        lambda r: r["state"] == "pending" and r["template_id"] == "tpl-a",
    )
    assert len(by_id) == 40
    for bad in ("filter=colour::red", "filter=state::lost", "filter=nonsense", "sort=name"):
        response = api.get(f"{BADGES}?{bad}", headers=AUTH)
        assert response.status_code == 400, bad
        assert response.json()["data"]["message"]


@pytest.mark.parametrize("key", ["created_at", "issued_at", "updated_at", "state_updated_at"])
def test_sorts_with_stable_ties(api: TestClient, emu: World, key: str) -> None:
    data = records(30)
    for r in data[:10]:
        r[key] = data[0][key] or T0  # ten-way tie
    emu.load_badges(ORG, data)

    def sort_key(r: dict) -> Any:
        return r[key] or datetime.min.replace(tzinfo=UTC)

    for desc in (False, True):
        got = _ids(api, f"sort={'-' if desc else ''}{key}")
        ordered = sorted(sorted(data, key=lambda r: r["id"]), key=sort_key, reverse=desc)
        assert got == [r["id"] for r in ordered]


@pytest.mark.parametrize("sort", ["updated_at", "-updated_at", "created_at", "-issued_at"])
def test_time_window_on_the_sort_key_matches_a_scan(emu: World, sort: str) -> None:
    data = records(300)
    emu.load_badges(ORG, data)
    emu.badge_page(ORG, None, sort, 0, 1)  # the full order is now cached: windows bisect it
    field = sort.lstrip("-")
    mid, late = data[100][field], data[200][field]
    windows = [
        (f"{field}_min::{format_credly_response(mid)}", lambda v: v >= mid),
        (f"{field}_max::{format_credly_response(mid)}", lambda v: v <= mid),
        (f"{field}_max::{mid.date().isoformat()}", lambda v: v.date() <= mid.date()),
        (f"{field}_min::{mid.date().isoformat()}", lambda v: v.date() >= mid.date()),
        (
            f"{field}_min::{format_credly_response(mid)}|{field}_max::{late.date()}",
            lambda v: mid <= v and v.date() <= late.date(),
        ),
    ]
    for term, keep in windows:
        _total, page = emu.badge_page(ORG, f"{term}|state::accepted", sort, 0, 1000)
        kept = [r for r in data if keep(r[field]) and r["state"] == "accepted"]
        by_id = sorted(kept, key=lambda r: r["id"])
        wanted = sorted(by_id, key=lambda r: r[field], reverse=sort.startswith("-"))
        assert [b["id"] for b in page] == [r["id"] for r in wanted], term
    assert emu.cache_stats["reused_order"] == len(windows)


def test_templates_list_filter_sort_and_get(api: TestClient, emu: World) -> None:
    emu.load_badges(ORG, records(5))
    base = f"/v1/organizations/{ORG}/badge_templates"
    active = api.get(f"{base}?filter=state::active&sort=name", headers=AUTH).json()
    names = [t["name"] for t in active["data"]]
    assert names == ["Cloud Skills", "Python Basics", "Safety", "Workshop"]
    assert active["metadata"]["total_count"] == 4
    exact = api.get(f'{base}?filter=name::"Old One"', headers=AUTH).json()["data"]
    assert [t["id"] for t in exact] == ["tpl-old"]
    by_count = api.get(f"{base}?sort=-badges_count", headers=AUTH).json()["data"]
    assert [t["id"] for t in by_count[:2]] == ["tpl-b", "tpl-a"]  # 3 and 2 badges
    assert by_count[0]["badges_count"] == 3
    one = api.get(f"{base}/tpl-dup", headers=AUTH).json()["data"]
    assert one["allow_duplicate_badges"] is True and one["state"] == "active"
    assert api.get(f"{base}/missing", headers=AUTH).status_code == 404


# ----------------------------------------------------------------- replace, revoke, delete


def test_replace_chain_and_already_replaced(api: TestClient, emu: World) -> None:
    original = issue(api)
    assert api.post(f"/_emulator/orgs/{ORG}/badges/{original['id']}/accept").status_code == 200
    accepted_at = emu.badge_record(ORG, original["id"])["state_updated_at"]
    emu.clock.advance(3600)
    renew = {
        "badge_template_id": "tpl-a",
        "issued_at": "2024-05-01 09:41:00 -0500",
        "expires_at": "2026-05-01 00:00:00 +0000",
    }
    response = api.post(f"{BADGES}/{original['id']}/replace", json=renew, headers=AUTH)
    assert response.status_code == 201
    new = response.json()["data"]
    assert new["id"] != original["id"]
    assert new["replaces_badge_id"] == original["id"]
    assert new["state"] == "accepted"  # state carries over
    assert parse_credly_time(new["state_updated_at"]) == accepted_at
    assert new["expires_at"] == "2026-05-01T00:00:00.000Z"
    old = api.get(f"{BADGES}/{original['id']}", headers=AUTH).json()["data"]
    assert old["state"] == "replaced"
    assert old["replacement_badge_id"] == new["id"]
    assert old["state_updated_at"] == format_credly_response(T0 + timedelta(hours=1))
    newer = api.post(f"{BADGES}/{new['id']}/replace", json=renew, headers=AUTH).json()["data"]
    again = api.post(f"{BADGES}/{original['id']}/replace", json=renew, headers=AUTH)
    assert again.status_code == 422
    payload = again.json()
    assert payload["data"]["message"] == (
        "Validation failed: This badge cannot be replaced because it has already been replaced."
    )
    assert payload["metadata"]["current_badge_id"] == newer["id"]
    error = error_for_status(422, payload["data"]["message"], metadata=payload["metadata"])
    assert isinstance(error, AlreadyReplaced) and error.current_badge_id == newer["id"]
    live = [b for b in emu.badges_for(ORG) if b["state"] in ("pending", "accepted")]
    assert [b["id"] for b in live] == [newer["id"]]


def test_replace_rules(api: TestClient) -> None:
    pending = issue(api)
    missing = api.post(f"{BADGES}/{pending['id']}/replace", json={}, headers=AUTH)
    assert missing.status_code == 422
    assert "Issued at can't be blank" in missing.json()["data"]["message"]
    moved = api.post(
        f"{BADGES}/{pending['id']}/replace",
        json={
            "badge_template_id": "tpl-a",
            "issued_at": "2024-05-01T14:41:00Z",
            "recipient_email": "new@example.com",
        },
        headers=AUTH,
    )
    assert moved.status_code == 201
    assert moved.json()["data"]["recipient_email"] == "new@example.com"
    assert moved.json()["data"]["state"] == "pending"
    assert moved.json()["data"]["state_updated_at"] is None
    accepted = issue(api, recipient_email="acc@example.com")
    api.post(f"/_emulator/orgs/{ORG}/badges/{accepted['id']}/accept")
    refused = api.post(
        f"{BADGES}/{accepted['id']}/replace",
        json={
            "badge_template_id": "tpl-a",
            "issued_at": "2024-05-01T14:41:00Z",
            "recipient_email": "elsewhere@example.com",
        },
        headers=AUTH,
    )
    assert refused.status_code == 422
    assert "pending" in refused.json()["data"]["message"]
    assert api.post(f"{BADGES}/nope/replace", json={}, headers=AUTH).status_code == 404


def test_revoke(api: TestClient) -> None:
    badge = issue(api)
    url = f"{BADGES}/{badge['id']}/revoke"
    for missing in ({}, {"reason": "  "}):
        response = api.put(url, json=missing, headers=AUTH)
        assert response.status_code == 422
        assert "Reason" in response.json()["data"]["message"]
    done = api.put(f"{url}?reason=Issued%20in%20error", headers=AUTH)  # query-param form
    assert done.status_code == 200
    revoked = done.json()["data"]
    assert (revoked["state"], revoked["revocation_reason"]) == ("revoked", "Issued in error")
    assert revoked["state_updated_at"] == format_credly_response(T0)
    assert api.put(url, json={"reason": "again"}, headers=AUTH).status_code == 422
    other = issue(api, recipient_email="b@example.com")
    api.post(
        f"{BADGES}/{other['id']}/replace",
        json={"badge_template_id": "tpl-a", "issued_at": "2024-05-01T14:41:00Z"},
        headers=AUTH,
    )
    replaced = api.put(f"{BADGES}/{other['id']}/revoke", json={"reason": "x"}, headers=AUTH)
    assert replaced.status_code == 422
    assert "replaced" in replaced.json()["data"]["message"]


def test_delete(api: TestClient, emu: World) -> None:
    badge = issue(api)
    response = api.delete(f"{BADGES}/{badge['id']}", headers=AUTH)
    assert response.status_code == 204
    assert response.content == b""
    assert api.get(f"{BADGES}/{badge['id']}", headers=AUTH).status_code == 404
    assert api.delete(f"{BADGES}/{badge['id']}", headers=AUTH).status_code == 404
    assert emu.badges_for(ORG) == []
    events = api.get(f"{EVENTS}?filter=event_type::badge.deleted", headers=AUTH).json()["data"]
    assert [e["badge"]["id"] for e in events] == [badge["id"]]


# --------------------------------------------------------------------------- events and reminders


def test_events_list_and_detail(api: TestClient) -> None:
    badge = issue(api)
    api.post(f"/_emulator/orgs/{ORG}/badges/{badge['id']}/accept")
    listing = api.get(EVENTS, headers=AUTH).json()
    assert [e["event_type"] for e in listing["data"]] == ["badge.created", "badge.state.changed"]
    assert listing["metadata"]["total_count"] == 2
    created, changed = listing["data"]
    assert created["badge"]["state"] == "pending"  # the badge as it was at the event
    detail = api.get(f"{EVENTS}/{changed['id']}", headers=AUTH).json()
    assert detail["metadata"] == {}
    assert detail["data"]["organization_id"] == ORG
    assert detail["data"]["badge"]["state"] == "accepted"
    assert detail["data"]["badge"]["id"] == badge["id"]
    newest = api.get(f"{EVENTS}?sort=-occurred_at", headers=AUTH).json()["data"]
    assert [e["id"] for e in newest] == [changed["id"], created["id"]]
    assert api.get(f"{EVENTS}/missing", headers=AUTH).status_code == 404


def _reminders(api: TestClient, badge_id: str) -> list[dict[str, Any]]:
    query = f"{EVENTS}?filter=event_type::pending_badge_notification.sent|badge_id::{badge_id}"
    return walk(api, query)


def test_reminder_events_follow_the_clock(api: TestClient, emu: World) -> None:
    waiting = issue(api, recipient_email="wait@example.com")
    accepts = issue(api, recipient_email="acc@example.com")
    quiet = issue(api, recipient_email="quiet@example.com", suppress_badge_notification_email=True)
    assert _reminders(api, waiting["id"]) == []
    emu.clock.advance(timedelta(days=1).total_seconds())  # exactly the first moment
    first = _reminders(api, waiting["id"])
    assert [e["occurred_at"] for e in first] == [format_credly_response(T0 + timedelta(days=1))]
    assert first[0]["badge"]["id"] == waiting["id"]
    emu.clock.advance(timedelta(days=1).total_seconds())
    api.post(f"/_emulator/orgs/{ORG}/badges/{accepts['id']}/accept")
    emu.clock.advance(timedelta(days=5).total_seconds())
    now = emu.clock.now()
    for badge, expected in ((waiting, 2), (accepts, 1), (quiet, 0)):
        got = _reminders(api, badge["id"])
        record = emu.badge_record(ORG, badge["id"])
        until = None if record["state"] == "pending" else record["state_updated_at"]
        counted = reminders_sent(
            sent_at=record["created_at"],
            pending_until=until,
            now=now,
            suppressed=record["suppress_badge_notification_email"],
        )
        assert len(got) == counted == expected
    reminder = _reminders(api, waiting["id"])[1]
    detail = api.get(f"{EVENTS}/{reminder['id']}", headers=AUTH).json()["data"]
    assert detail["event_type"] == "pending_badge_notification.sent"
    assert detail["occurred_at"] == format_credly_response(T0 + timedelta(days=4))
    emu.clock.set(T0 + timedelta(hours=1), frozen=True)  # back in time: not yet sent
    assert api.get(f"{EVENTS}/{reminder['id']}", headers=AUTH).status_code == 404


# ----------------------------------------------------------------- earner actions and clock


def test_accept_reject_and_auto_accept(api: TestClient, emu: World) -> None:
    badge = issue(api)
    emu.clock.advance(90)
    accepted = api.post(f"/_emulator/orgs/{ORG}/badges/{badge['id']}/accept").json()["data"]
    assert accepted["state"] == "accepted"
    assert accepted["state_updated_at"] == format_credly_response(T0 + timedelta(seconds=90))
    assert accepted["updated_at"] == accepted["state_updated_at"]
    again = api.post(f"/_emulator/orgs/{ORG}/badges/{badge['id']}/reject")
    assert again.status_code == 422
    other = issue(api, recipient_email="r@example.com")
    rejected = api.post(f"/_emulator/orgs/{ORG}/badges/{other['id']}/reject").json()["data"]
    assert rejected["state"] == "rejected"
    assert api.post(f"/_emulator/orgs/{ORG}/badges/nope/accept").status_code == 404
    toggled = api.post(
        f"/_emulator/orgs/{ORG}/auto_accept", json={"email": "Auto@Example.com", "enabled": True}
    )
    assert toggled.status_code == 200
    auto = issue(api, recipient_email="auto@example.com")
    assert auto["state"] == "accepted"
    assert auto["state_updated_at"] == auto["created_at"]
    api.post(
        f"/_emulator/orgs/{ORG}/auto_accept", json={"email": "auto@example.com", "enabled": False}
    )
    assert (
        issue(api, recipient_email="auto@example.com", badge_template_id="tpl-b")["state"]
        == "pending"
    )


def test_clock_endpoints(api: TestClient, emu: World) -> None:
    assert api.get("/_emulator/clock").json()["data"]["now"] == format_credly_response(T0)
    moved = api.post("/_emulator/clock", json={"advance_seconds": 86400}).json()["data"]
    assert moved["now"] == format_credly_response(T0 + timedelta(days=1))
    frozen = api.post("/_emulator/clock", json={"now": "2030-01-01T00:00:00Z", "frozen": True})
    assert frozen.json()["data"]["now"] == "2030-01-01T00:00:00.000Z"
    assert issue(api)["created_at"] == "2030-01-01T00:00:00.000Z"
    flowing = api.post("/_emulator/clock", json={"now": "2031-01-01T00:00:00Z"}).json()["data"]
    assert flowing["frozen"] is False and flowing["now"].startswith("2031-01-01T00:00:0")
    reset = api.post("/_emulator/clock", json={"reset": True}).json()["data"]
    assert abs(parse_credly_time(reset["now"]) - datetime.now(UTC)) < timedelta(seconds=5)
    assert api.post("/_emulator/clock", json={"when": 1}).status_code == 400
    assert api.get("/_emulator/health").json()["data"]["status"] == "ok"


@given(st.datetimes(timezones=st.just(UTC)))
def test_fast_timestamp_format_matches_timeutil(value: datetime) -> None:
    assert fmt_time(value) == format_credly_response(value)


# --------------------------------------------------------------------------- faults


def test_rate_limit_refuses_without_processing(api: TestClient, emu: World) -> None:
    api.post("/_emulator/faults", json={"rate_limit_rps": 2})
    statuses = [
        api.post(BADGES, json=body(recipient_email=f"r{i}@example.com"), headers=AUTH)
        for i in range(4)
    ]
    assert [r.status_code for r in statuses[:2]] == [201, 201]
    limited = statuses[2]
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["data"]["message"] == "Rate limit exceeded"
    assert len(emu.badges_for(ORG)) == 2
    # another organization has its own window
    assert api.get(f"/v1/organizations/{OTHER}", headers=basic(OTHER_TOKEN)).status_code == 200
    # control endpoints are never limited
    assert all(api.get("/_emulator/health").status_code == 200 for _ in range(5))
    stats = api.get("/_emulator/stats").json()["data"]
    assert stats["faults"]["rate_limited"] == 2
    assert stats["requests"]["POST /v1/organizations/{org}/badges"] == {"201": 2, "429": 2}
    assert stats["issued_by_org"][ORG] == 2


def test_fail_rate_answers_5xx_without_processing(api: TestClient, emu: World) -> None:
    api.post("/_emulator/faults", json={"fail_rate": 1.0, "seed": 3})
    responses = [api.post(BADGES, json=body(), headers=AUTH) for _ in range(8)]
    assert {r.status_code for r in responses} == {500, 503}
    assert all(r.json()["data"]["message"] for r in responses)
    assert emu.badges_for(ORG) == []
    api.post("/_emulator/faults", json={})
    assert api.post(BADGES, json=body(), headers=AUTH).status_code == 201


def test_faults_are_deterministic_for_a_seed() -> None:
    config = FaultConfig(fail_rate=0.3, timeout_rate=0.3, seed=42)

    def run() -> list[tuple[int | None, float]]:
        faults = Faults(config)
        decisions = [faults.decide("org", "POST") for _ in range(200)]
        return [(d.refuse_status, d.hold_s) for d in decisions]

    first = run()
    assert first == run()
    assert {500, 503, None} <= {status for status, _ in first}
    assert any(hold for _, hold in first)
    gets = Faults(FaultConfig(timeout_rate=1.0)).decide("org", "GET")
    assert gets.hold_s == 0  # only mutating requests are held
    with pytest.raises(Exception, match="Rates"):
        FaultConfig.from_json({"fail_rate": 2})


def test_fault_config_endpoint_validates(api: TestClient) -> None:
    assert api.post("/_emulator/faults", json={"fail_rate": "x"}).status_code == 400
    assert api.post("/_emulator/faults", json={"surprise": 1}).status_code == 400
    set_ = api.post("/_emulator/faults", json={"latency_ms": 5, "rate_limit_rps": None}).json()
    assert set_["data"]["latency_ms"] == 5
    assert api.get("/_emulator/faults").json()["data"]["latency_ms"] == 5


@pytest.fixture
def served() -> Iterator[tuple[World, str]]:
    world = make_world(clock=Clock())
    server = serve_in_thread(create_app(world, webhook_retry_base_s=0.05))
    try:
        yield world, server.url
    finally:
        server.stop()


def test_latency_is_async_so_requests_overlap(served: tuple[World, str]) -> None:
    _world, url = served
    httpx.post(f"{url}/_emulator/faults", json={"latency_ms": 300})

    async def fetch_all() -> list[int]:
        async with httpx.AsyncClient(base_url=url, headers=AUTH) as client:
            responses = await asyncio.gather(*(client.get(BADGES) for _ in range(6)))
        return [r.status_code for r in responses]

    started = time.perf_counter()
    assert asyncio.run(fetch_all()) == [200] * 6
    elapsed = time.perf_counter() - started
    assert 0.3 <= elapsed < 1.2  # six requests, each delayed 0.3 s, overlapped


def test_timeout_processes_then_withholds_the_answer(served: tuple[World, str]) -> None:
    world, url = served
    httpx.post(f"{url}/_emulator/faults", json={"timeout_rate": 1.0, "timeout_hold_s": 0.9})
    with httpx.Client(base_url=url, headers=AUTH, timeout=0.25) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.post(BADGES, json=body())
        # the badge exists although its answer never arrived
        deadline = time.monotonic() + 2
        while not world.badges_for(ORG) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [b["recipient_email"] for b in world.badges_for(ORG)] == ["ada@example.com"]
        # reads are not held, and the safe-retry lookup finds it
        found = client.get(
            f"{BADGES}?filter=recipient_email::ada@example.com|badge_template_id::tpl-a"
        )
        assert found.status_code == 200
        assert found.json()["metadata"]["total_count"] == 1
    stats = httpx.get(f"{url}/_emulator/stats").json()["data"]
    assert stats["faults"]["timed_out"] == 1


# --------------------------------------------------------------------------- high-volume search


def test_high_volume_cursor_walk_returns_every_badge_once(api: TestClient, emu: World) -> None:
    data = records(2500)
    emu.load_badges(ORG, data)
    pages: list[dict[str, Any]] = []
    next_url: str | None = f"{HIGH_VOLUME}?badge_format=minimal"
    seen: list[str] = []
    while next_url:
        response = api.get(next_url, headers=AUTH).json()
        assert set(response["metadata"]) == {"next_page_url"}
        pages.append(response)
        seen.extend(b["id"] for b in response["data"])
        next_url = response["metadata"]["next_page_url"]
        if next_url:
            assert next_url.startswith("http://testserver/v1/")
            assert "badge_format=minimal" in next_url
            if len(pages) == 1:  # a badge issued mid-walk shows up at the end, once
                issue(api, recipient_email="late@example.com")
    assert [len(p["data"]) for p in pages] == [1000, 1000, 501]
    assert len(seen) == len(set(seen)) == 2501
    minimal = pages[0]["data"][0]
    assert set(minimal["badge_template"]) == {"id", "name"}
    assert set(minimal["user"]) == {"id"}
    assert "accept_badge_url" not in minimal
    full = api.get(f"{HIGH_VOLUME}?filter=state::pending", headers=AUTH).json()
    assert all(b["state"] == "pending" for b in full["data"])
    assert "accept_badge_url" in full["data"][0]
    pending = sum(1 for r in data if r["state"] == "pending") + 1
    assert len(walk(api, f"{HIGH_VOLUME}?filter=state::pending")) == pending
    assert api.get(f"{HIGH_VOLUME}?cursor=garbage!", headers=AUTH).status_code == 400
    cursor = httpx.URL(pages[0]["metadata"]["next_page_url"]).params["cursor"]
    assert decode_cursor(cursor)["i"] == pages[0]["data"][-1]["id"]


def test_high_volume_start_and_end_dates(api: TestClient, emu: World) -> None:
    data = records(100)
    emu.load_badges(ORG, data)
    lo, hi = data[10]["updated_at"], data[30]["updated_at"]
    query = f"start_date={lo:%Y-%m-%d %H:%M:%S}&end_date={hi:%Y-%m-%d %H:%M:%S}"
    got = walk(api, f"{HIGH_VOLUME}?{query}")
    assert {b["id"] for b in got} == {r["id"] for r in data if lo <= r["updated_at"] <= hi}


@pytest.mark.slow
def test_hundred_thousand_badges_load_fast_and_page_without_resorting() -> None:
    world = make_world()
    data = records(100_000)
    started = time.process_time()
    assert world.load_badges(ORG, data) == 100_000
    assert time.process_time() - started < 6.0
    app = create_app(world)
    with TestClient(app) as api:
        before = world.cache_stats["misses"]
        started = time.perf_counter()
        first = api.get(f"{BADGES}?sort=-updated_at", headers=AUTH).json()
        assert time.perf_counter() - started < 3.0
        assert first["metadata"]["total_pages"] == 2000
        misses_after_first = world.cache_stats["misses"]
        started = time.perf_counter()
        for page in (2, 3, 500, 1999, 2000):
            page_data = api.get(f"{BADGES}?sort=-updated_at&page={page}", headers=AUTH).json()
            assert page_data["metadata"]["count"] == 50
        assert time.perf_counter() - started < 1.0
        assert world.cache_stats["misses"] == misses_after_first  # no re-sort per page
        assert misses_after_first - before <= 2
        # an incremental reader: only what changed since a moment, newest first
        cut = format_credly_response(data[-30]["updated_at"])
        started = time.perf_counter()
        recent = api.get(f"{BADGES}?sort=-updated_at&filter=updated_at_min::{cut}", headers=AUTH)
        assert time.perf_counter() - started < 1.0
        assert recent.json()["metadata"]["total_count"] >= 30
        # the cursor walk reuses one cached order as well
        url: str | None = f"{HIGH_VOLUME}?badge_format=minimal"
        for _ in range(3):
            assert url is not None
            url = api.get(url, headers=AUTH).json()["metadata"]["next_page_url"]
        misses = world.cache_stats["misses"]
        api.get(url, headers=AUTH)
        assert world.cache_stats["misses"] == misses


# ----------------------------------------------------------------- organizations and webhooks


def test_org_update(api: TestClient) -> None:
    url = f"/v1/organizations/{ORG}"
    updated = api.put(url, json={"webhook_url": "https://hooks.example.com/credly"}, headers=AUTH)
    assert updated.status_code == 200
    assert updated.json()["data"]["webhook_url"] == "https://hooks.example.com/credly"
    assert api.get(url, headers=AUTH).json()["data"]["webhook_url"].endswith("/credly")
    assert api.put(url, json={"webhook_url": "not a url"}, headers=AUTH).status_code == 422


def test_webhooks_post_thin_bodies_and_retry_until_200(served: tuple[World, str]) -> None:
    received: list[dict[str, Any]] = []
    lock = threading.Lock()

    async def hook(request: Request) -> JSONResponse:
        payload = await request.json()
        with lock:
            received.append(payload)
            first_try = len(received) == 1
        return JSONResponse({}, status_code=500 if first_try else 200)

    receiver = serve_in_thread(Starlette(routes=[Route("/hook", hook, methods=["POST"])]))
    _world, url = served
    try:
        with httpx.Client(base_url=url, headers=AUTH) as client:
            client.put(f"/v1/organizations/{ORG}", json={"webhook_url": f"{receiver.url}/hook"})
            created = client.post(BADGES, json=body())
            assert created.status_code == 201
            deadline = time.monotonic() + 20
            while len(received) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            event = received[0]
            assert set(event) == {"id", "organization_id", "event_type", "occurred_at"}
            assert event["event_type"] == "badge.created"
            assert received[1] == event  # retried after the 500
            detail = client.get(f"{EVENTS}/{event['id']}").json()["data"]
            assert detail["badge"]["id"] == created.json()["data"]["id"]
    finally:
        receiver.stop()


# --------------------------------------------------------------------------- journal and wiring


def test_journal_replay_reproduces_the_state(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    live = make_world(journal_path=journal)
    with TestClient(create_app(live)) as api:
        a = issue(api, issuer_earner_id="e-1")
        issue(api, recipient_email="b@example.com", badge_template_id="tpl-exp")
        batch = api.post(
            f"{BADGES}/batch",
            json={"badges": [body(recipient_email=f"c{i}@example.com") for i in range(2)]},
            headers=AUTH,
        ).json()["data"]
        api.post(f"/_emulator/orgs/{ORG}/badges/{a['id']}/accept")
        live.clock.advance(3600)
        api.post(
            f"{BADGES}/{a['id']}/replace",
            json={"badge_template_id": "tpl-a", "issued_at": "2024-05-01T14:41:00Z"},
            headers=AUTH,
        )
        api.put(f"{BADGES}/{batch[0]['id']}/revoke", json={"reason": "oops"}, headers=AUTH)
        api.post(f"/_emulator/orgs/{ORG}/badges/{batch[1]['id']}/reject")
        api.delete(f"{BADGES}/{batch[1]['id']}", headers=AUTH)
        api.post(f"/_emulator/orgs/{ORG}/auto_accept", json={"email": "z@example.com"})
        api.put(f"/v1/organizations/{ORG}", json={"name": "Org A Renamed"}, headers=AUTH)
        api.post(BADGES, json=body(), headers=AUTH)  # refused: not a change, not journalled
        live_events = api.get(f"{EVENTS}?per=50", headers=AUTH).json()["data"]
    lines = journal.read_text().splitlines()
    assert len(lines) == 10
    assert json.loads(lines[0])["op"] == "issue"

    restored = make_world(journal_path=journal)
    assert restored.replay_journal() == 10
    key = lambda b: b["id"]  # noqa: E731
    assert sorted(restored.badges_for(ORG), key=key) == sorted(live.badges_for(ORG), key=key)
    assert restored.org_json(ORG)["name"] == "Org A Renamed"
    with TestClient(create_app(restored)) as api:
        assert api.get(f"{EVENTS}?per=50", headers=AUTH).json()["data"] == live_events
        # the replayed auto-accept setting holds, and new changes append to the same journal
        assert issue(api, recipient_email="z@example.com")["state"] == "accepted"
    assert len(journal.read_text().splitlines()) == 11

    # a line cut short by a crash is ignored; everything before it is kept
    with journal.open("a") as handle:
        handle.write('{"op": "issue", "org": ')
    again = make_world(journal_path=journal)
    assert again.replay_journal() == 11


def test_seeding_is_not_journalled_and_build_wiring(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    world = build_world("empty", journal_path=journal)
    assert not journal.exists()
    assert world.org_for_token(DEMO_API_TOKEN) == DEMO_ORG_ID
    with TestClient(create_app(world)) as api:
        auth = basic(DEMO_API_TOKEN)
        templates = api.get(
            f"/v1/organizations/{DEMO_ORG_ID}/badge_templates?sort=name", headers=auth
        ).json()["data"]
        assert len(templates) == len(EMPTY_SEED_TEMPLATES)
        assert {t["state"] for t in templates} == {"active", "draft", "archived"}
        assert any(t["allow_duplicate_badges"] for t in templates)
        active = next(t for t in templates if t["state"] == "active")
        created = api.post(
            f"/v1/organizations/{DEMO_ORG_ID}/badges",
            json=body(badge_template_id=active["id"]),
            headers=auth,
        )
        assert created.status_code == 201
    assert len(journal.read_text().splitlines()) == 1
    rebuilt = build_world("empty", journal_path=journal)
    assert [b["id"] for b in rebuilt.badges_for(DEMO_ORG_ID)] == [created.json()["data"]["id"]]
    with pytest.raises(ValueError, match="seed"):
        build_world("galaxy")
    app = build_app("empty", latency_ms=0, rate_limit=5, fail_rate=0.0)
    assert app.state.faults.config.rate_limit_rps == 5


def test_serve_in_thread_starts_and_stops() -> None:
    app = create_app(make_world())
    server = serve_in_thread(app, host="127.0.0.1", port=0)
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert httpx.get(f"{server.url}/_emulator/health").status_code == 200
    server.stop()
    assert not server.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/_emulator/health", timeout=1)


def test_template_pictures_are_served_for_the_demo() -> None:
    from starlette.testclient import TestClient

    from credly_ops.credly.emulator import World, create_app

    w = World()
    w.add_org("org-img", "Images", "tok-img")
    w.add_template("org-img", id="tpl-img", name="Cloud Foundations <Certified>")
    with TestClient(create_app(w)) as http:
        ok = http.get("/_emulator/images/tpl-img.svg")
        missing = http.get("/_emulator/images/nope.svg")
    assert ok.status_code == 200
    assert ok.headers["content-type"].startswith("image/svg+xml")
    assert ">CF</text>" in ok.text  # initials of words that start with a letter
    assert "<Certified>" not in ok.text
    assert missing.status_code == 404

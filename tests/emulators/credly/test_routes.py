"""The local Credly's ``/v1``: auth, issuing rules, lists, replace/revoke/delete, events,
reminders, the high-volume cursor and organizations."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from credly_ops.credly.errors import (
    AlreadyReplaced,
    DuplicateBadge,
    TemplateNotIssuable,
    ValidationFailed,
    error_for_status,
)
from credly_ops.emulators.credly import (
    World,
    create_app,
)
from credly_ops.emulators.credly.protocol import decode_cursor
from credly_ops.reminders import reminders_sent
from credly_ops.timeutil import format_credly_response, parse_credly_time
from tests.emulators.credly.conftest import (
    AUTH,
    BADGES,
    EVENTS,
    HIGH_VOLUME,
    ORG,
    OTHER,
    OTHER_TOKEN,
    T0,
    TOKEN,
    basic,
    body,
    issue,
    make_world,
    records,
    walk,
)

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


def test_a_smaller_page_size_is_the_default_and_the_cap(emu: World) -> None:
    emu.load_badges(ORG, records(5))
    with TestClient(create_app(emu, page_size=2)) as small:
        meta = small.get(BADGES, headers=AUTH).json()["metadata"]
        assert (meta["per"], meta["total_pages"], meta["count"]) == (2, 3, 2)
        capped = small.get(f"{BADGES}?per=50", headers=AUTH).json()["metadata"]
        assert capped["per"] == 2
        assert len(walk(small, BADGES)) == 5
        templates = small.get(f"/v1/organizations/{ORG}/badge_templates", headers=AUTH).json()
        assert templates["metadata"]["per"] == 2 and len(templates["data"]) == 2


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

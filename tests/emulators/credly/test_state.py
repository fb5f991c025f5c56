"""The local Credly's world: times as Credly shows them, the journal and its replay, seeding."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from credly_ops.config import DEMO_API_TOKEN, DEMO_ORG_ID
from credly_ops.emulators.credly import (
    build_app,
    build_world,
    create_app,
)
from credly_ops.emulators.credly.records import fmt_time
from credly_ops.emulators.credly.seeds import EMPTY_SEED_TEMPLATES
from credly_ops.timeutil import format_credly_response
from tests.emulators.credly.conftest import (
    AUTH,
    BADGES,
    EVENTS,
    ORG,
    basic,
    body,
    issue,
    make_world,
)


@given(st.datetimes(timezones=st.just(UTC)))
def test_fast_timestamp_format_matches_timeutil(value: datetime) -> None:
    assert fmt_time(value) == format_credly_response(value)


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

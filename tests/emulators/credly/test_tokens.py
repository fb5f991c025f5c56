"""The local Credly's authorization tokens (reference §13) and the operator's control calls:
a token's expiry, a template's state."""

from __future__ import annotations

from datetime import timedelta

from starlette.testclient import TestClient

from credly_ops.emulators.credly import create_app
from credly_ops.emulators.credly.tokens import TOKEN_LIFETIME
from credly_ops.timeutil import parse_credly_time
from tests.emulators.credly.conftest import AUTH, ORG, OTHER, T0, basic, make_world

TOKENS = f"/v1/organizations/{ORG}/authorization_tokens"


def test_tokens_are_listed_with_rights_and_an_expiry_180_days_out() -> None:
    world = make_world()
    world.add_token(ORG, "second-token", name="reporting", write_enabled=False)
    with TestClient(create_app(world)) as api:
        answer = api.get(TOKENS, headers=AUTH)
        assert answer.status_code == 200
        listed = answer.json()["data"]
        assert [t["name"] for t in listed] == ["API token 1", "reporting"]
        first = listed[0]
        assert parse_credly_time(first["expires_at"]) == T0 + TOKEN_LIFETIME
        assert (first["read_enabled"], first["write_enabled"]) == (True, True)
        assert "token-org-a" not in answer.text and "second-token" not in answer.text
        # a read-only token sees a shortened list: itself
        own = api.get(TOKENS, headers=basic("second-token")).json()["data"]
        assert [t["name"] for t in own] == ["reporting"]
        # another organization's token may not look
        assert api.get(TOKENS, headers=basic("token-org-b")).status_code == 403
        assert api.get(TOKENS).status_code == 401


def test_the_control_surface_moves_a_token_expiry() -> None:
    world = make_world()
    token_id = world.token_book.for_org(ORG)[0].id
    path = f"/_emulator/orgs/{ORG}/authorization_tokens/{token_id}"
    with TestClient(create_app(world)) as api:
        moved = api.post(path, json={"expires_in_days": 20})
        assert moved.status_code == 200
        assert parse_credly_time(moved.json()["data"]["expires_at"]) == T0 + timedelta(days=20)
        api.post(path, json={"expires_at": "2024-06-08T12:00:00Z"})
        listed = api.get(TOKENS, headers=AUTH).json()["data"]
        assert parse_credly_time(listed[0]["expires_at"]) == T0 + timedelta(days=7)
        assert api.post(path, json={}).status_code == 400
        assert api.post(path, json={"expires_in_days": "soon"}).status_code == 400
        wrong_org = f"/_emulator/orgs/{OTHER}/authorization_tokens/{token_id}"
        assert api.post(wrong_org, json={"expires_in_days": 1}).status_code == 404


def test_the_control_surface_archives_a_template_after_rules_point_at_it() -> None:
    world = make_world()
    with TestClient(create_app(world)) as api:
        path = f"/_emulator/orgs/{ORG}/badge_templates/tpl-a/state"
        assert api.post(path, json={"state": "archived"}).json()["data"]["state"] == "archived"
        template = api.get(f"/v1/organizations/{ORG}/badge_templates/tpl-a", headers=AUTH)
        assert template.json()["data"]["state"] == "archived"
        listed = api.get(
            f"/v1/organizations/{ORG}/badge_templates",
            params={"filter": "state::archived"},
            headers=AUTH,
        ).json()["data"]
        assert "tpl-a" in {t["id"] for t in listed}
        assert api.post(path, json={"state": "retired"}).status_code == 400
        gone = f"/_emulator/orgs/{ORG}/badge_templates/tpl-nope/state"
        assert api.post(gone, json={"state": "active"}).status_code == 404


def test_the_demo_token_expires_soon() -> None:
    from credly_ops.config import DEMO_ORG_ID
    from credly_ops.emulators.credly import World
    from credly_ops.emulators.credly.seeds import DEMO_TOKEN_EXPIRES_IN, seed_demo
    from credly_ops.emulators.demo_world import generate

    world = World()
    with world.unrecorded():
        seed_demo(world, generate(students=400, completions=600))
    (token,) = world.token_book.for_org(DEMO_ORG_ID)
    assert token.expires_at is not None
    left = token.expires_at - world.clock.now()
    assert DEMO_TOKEN_EXPIRES_IN - timedelta(minutes=1) < left <= DEMO_TOKEN_EXPIRES_IN

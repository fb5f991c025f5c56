"""Reconciliation: cached badges that Credly deleted leave the cache."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest

from credly_ops.access import Actor, Role
from credly_ops.config import DEMO_ORG_ID
from credly_ops.credly.client import CredlyClient
from credly_ops.credly.errors import InvalidToken
from credly_ops.reconcile import reconcile
from credly_ops.store import Store
from credly_ops.sync import last_sync, sync, upsert_badges
from credly_ops.sync_history import last_reconcile, sync_health
from credly_ops.timeutil import utcnow
from tests.conftest import TEST_TOKEN
from tests.test_sync import badge_records

TESTER = Actor("tester", Role.VIEWER)


@pytest.fixture
def small_pages(world) -> Iterator[str]:
    """The emulator with high-volume pages of 40 badges, so a pass spans several pages."""
    from credly_ops.emulators.credly import create_app
    from credly_ops.emulators.server import serve_in_thread

    server = serve_in_thread(create_app(world, high_volume_page_size=40), port=0)
    try:
        yield f"{server.url}/v1"
    finally:
        server.stop()


def cached_ids(store: Store) -> set[str]:
    with store.session() as cur:
        return {r[0] for r in cur.execute("SELECT id FROM badges").fetchall()}


def test_a_badge_deleted_on_credly_stays_after_an_incremental_sync_and_leaves_on_reconcile(
    world, small_pages: str, store: Store
) -> None:
    world.load_badges(DEMO_ORG_ID, badge_records(300))
    with CredlyClient(base_url=small_pages, org_id=DEMO_ORG_ID, token=TEST_TOKEN) as client:
        sync(client, store, full=True)
        deleted = ["b-000007", "b-000123"]
        for badge_id in deleted:
            client.delete(badge_id)  # DELETE over HTTP: a GDPR erasure
        incremental = sync(client, store)
        assert incremental.kind == "incremental"
        assert set(deleted) <= cached_ids(store)  # an incremental sync never sees a delete

        result = reconcile(client, store, actor=TESTER)

    assert (result.seen, result.removed, result.badges) == (298, 2, 298)
    assert result.pages == 8  # 298 ids at 40 a page
    assert result.removed_ids == tuple(deleted)
    assert cached_ids(store) == {f"b-{i:06d}" for i in range(300)} - set(deleted)
    with store.session() as cur:
        history = cur.execute(
            "SELECT kind, status, read, removed, pages FROM syncs ORDER BY id"
        ).fetchall()
        audit = cur.execute(
            "SELECT actor, target, outcome, detail FROM audit WHERE action = 'sync' "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert history[-1] == ("reconcile", "ok", 298, 2, 8)
    assert audit is not None and audit[:3] == ("tester", "reconcile", "ok")
    detail = json.loads(audit[3])
    assert detail == {"seen": 298, "removed": 2, "removed_ids": deleted}

    done = last_reconcile(store)
    assert done is not None and (done["seen"], done["removed"]) == (298, 2)
    assert sync_health(store).as_json()["last_reconcile"]["removed"] == 2
    # a reconciliation is not a sync: the next sync is still incremental
    assert last_sync(store)["kind"] == "incremental"


def test_nothing_is_removed_when_nothing_was_deleted_or_the_badge_is_newer_than_the_pass(
    world, client, store: Store
) -> None:
    world.load_badges(DEMO_ORG_ID, badge_records(50))
    sync(client, store, full=True)
    # a badge written to the cache after the pass started (a bulk job's fresh issue), whose
    # id the pass could not have listed
    fresh = badge_records(1, start=900)
    world.load_badges(DEMO_ORG_ID, fresh)
    badge = client.get_badge("b-000900")
    world.delete(DEMO_ORG_ID, "b-000900")
    with store.transaction() as cur:
        upsert_badges(cur, [badge], synced_at=utcnow() + timedelta(minutes=5))
    result = reconcile(client, store)
    assert (result.seen, result.removed) == (50, 0)
    assert "b-000900" in cached_ids(store)


def test_a_failed_reconciliation_removes_nothing(
    emulator: str, world, client, store: Store
) -> None:
    world.load_badges(DEMO_ORG_ID, badge_records(20))
    sync(client, store, full=True)
    world.delete(DEMO_ORG_ID, "b-000001")
    with (
        CredlyClient(base_url=emulator, org_id=DEMO_ORG_ID, token="wrong-token") as bad,
        pytest.raises(InvalidToken),
    ):
        reconcile(bad, store)
    assert "b-000001" in cached_ids(store)
    assert last_reconcile(store) is None
    with store.session() as cur:
        assert cur.execute(
            "SELECT kind, status FROM syncs ORDER BY id DESC LIMIT 1"
        ).fetchone() == ("reconcile", "failed")
    # a failed reconciliation is not an unfinished sync of the badges
    assert sync_health(store).finished

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from credly_ops.access import Actor, Role
from credly_ops.config import DEMO_ORG_ID
from credly_ops.credly.errors import InvalidToken
from credly_ops.models import IssueRequest, ReplaceRequest
from credly_ops.store import Store
from credly_ops.sync import last_sync, sync
from tests.conftest import TEST_TOKEN

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def badge_records(n: int, *, template: str = "tpl-active", start: int = 0) -> list[dict]:
    out = []
    for i in range(start, start + n):
        when = T0 + timedelta(minutes=i)
        accepted = i % 3 == 0
        out.append(
            {
                "id": f"b-{i:06d}",
                "template_id": template,
                "recipient_email": f"Student{i}@Example.com",
                "issued_to_first_name": "Stu",
                "issued_to_last_name": f"Dent{i}",
                "state": "accepted" if accepted else "pending",
                "issued_at": when,
                "created_at": when,
                "updated_at": when + timedelta(hours=2) if accepted else when,
                "state_updated_at": when + timedelta(hours=2) if accepted else None,
                "expires_at": None,
            }
        )
    return out


def cached(store: Store, sql: str, params: list | None = None) -> list[tuple]:
    with store.session() as cur:
        return cur.execute(sql, params or []).fetchall()


def test_full_sync_mirrors_templates_and_badges(world, client, store: Store) -> None:
    world.load_badges(DEMO_ORG_ID, badge_records(1_234))
    result = sync(client, store, full=True, actor=Actor("tester", Role.VIEWER))
    assert result.kind == "full"
    assert (result.templates, result.badges, result.changed) == (4, 1_234, 1_234)
    assert result.pages >= 2  # one template page and at least one badge page
    # every state of template is mirrored; emails are normalised
    states = dict(cached(store, "SELECT state, count(*) FROM templates GROUP BY state"))
    assert states == {"active": 2, "archived": 1, "draft": 1}
    assert cached(store, "SELECT recipient_email FROM badges WHERE id = 'b-000007'") == [
        ("student7@example.com",)
    ]
    # the snapshot of states for this sync
    snap = dict(cached(store, "SELECT state, sum(badges) FROM badge_snapshots GROUP BY state"))
    assert snap == {"accepted": 412, "pending": 822}
    # a second full sync with nothing new changes nothing
    again = sync(client, store, full=True)
    assert (again.badges, again.changed) == (1_234, 0)


def test_incremental_sync_reads_only_the_changes(world, client, store: Store) -> None:
    world.load_badges(DEMO_ORG_ID, badge_records(3_000))
    sync(client, store, full=True)
    pending = [b["id"] for b in world.badges_for(DEMO_ORG_ID) if b["state"] == "pending"][:100]
    world.clock.set(datetime.now(UTC) + timedelta(minutes=5))
    for badge_id in pending:
        world.clock.advance(1)
        world.earner_action(DEMO_ORG_ID, badge_id, "accept")
    result = sync(client, store)
    assert result.kind == "incremental"
    assert result.changed == 100
    assert result.badges == 3_000
    assert result.pages <= 5  # one template page + 100 changes at 50 a page + the stop page
    accepted = cached(
        store,
        "SELECT count(*) FROM badges WHERE state = 'accepted' AND id IN "
        "(SELECT unnest(?::VARCHAR[]))",
        [pending],
    )
    assert accepted == [(100,)]
    # nothing changed since: one page of badges is enough to know it
    quiet = sync(client, store)
    assert quiet.changed == 0
    assert quiet.pages <= 2


def test_incremental_sync_picks_up_new_badges_and_replacements(world, client, store: Store) -> None:
    world.load_badges(DEMO_ORG_ID, badge_records(120))
    sync(client, store, full=True)
    world.clock.set(datetime.now(UTC) + timedelta(minutes=5))

    result = client.issue(
        IssueRequest(
            recipient_email="new@example.com",
            issued_to_first_name="New",
            issued_to_last_name="Earner",
            badge_template_id="tpl-active",
            issued_at=T0,
        )
    )
    replacement = client.replace(
        "b-000001",
        ReplaceRequest(
            badge_template_id="tpl-active",
            issued_at=T0 + timedelta(minutes=1),
            expires_at=T0 + timedelta(days=365),
        ),
    )
    step = sync(client, store)
    assert step.changed == 3  # the new badge, the replacement, and the replaced original
    rows = dict(
        cached(
            store,
            "SELECT id, state FROM badges WHERE id IN (?, ?, ?)",
            [result.badge.id, replacement.id, "b-000001"],
        )
    )
    assert rows == {result.badge.id: "pending", replacement.id: "pending", "b-000001": "replaced"}


def test_full_sync_forgets_badges_deleted_on_credly(world, client, store: Store) -> None:
    world.load_badges(DEMO_ORG_ID, badge_records(60))
    sync(client, store, full=True)
    world.delete(DEMO_ORG_ID, "b-000003")
    result = sync(client, store, full=True)
    assert result.badges == 59
    assert result.changed == 1
    assert cached(store, "SELECT count(*) FROM badges WHERE id = 'b-000003'") == [(0,)]


def test_a_failed_sync_is_recorded_and_audited(emulator: str, store: Store) -> None:
    from credly_ops.credly.client import CredlyClient

    with (
        CredlyClient(base_url=emulator, org_id=DEMO_ORG_ID, token="wrong-token") as bad,
        pytest.raises(InvalidToken),
    ):
        sync(bad, store, actor=Actor("tester", Role.VIEWER))
    assert last_sync(store) is None
    assert cached(store, "SELECT status FROM syncs") == [("failed",)]
    assert cached(store, "SELECT action, outcome FROM audit") == [("sync", "failed")]


def test_the_token_never_reaches_the_database(world, client, store: Store) -> None:
    world.load_badges(DEMO_ORG_ID, badge_records(10))
    sync(client, store, full=True, actor=Actor("tester", Role.VIEWER))
    with store.session() as cur:
        tables = [
            r[0] for r in cur.execute("SELECT table_name FROM information_schema.tables").fetchall()
        ]
        for table in tables:
            for row in cur.execute(f'SELECT * FROM "{table}"').fetchall():
                assert TEST_TOKEN not in repr(row), table
    raw = store.path.read_bytes()
    assert TEST_TOKEN.encode() not in raw


def test_prefetched_pages_keep_order_and_raise_reader_errors() -> None:
    from credly_ops.sync import prefetched

    assert list(prefetched(iter(range(10)))) == list(range(10))

    def failing():
        yield 1
        raise InvalidToken("bad token")

    got = []
    with pytest.raises(InvalidToken):
        for item in prefetched(failing()):
            got.append(item)
    assert got == [1]


def test_stopping_early_stops_the_reader() -> None:
    import threading

    from credly_ops.sync import prefetched

    produced = []

    def endless():
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    for item in prefetched(endless(), depth=2):
        if item == 3:
            break
    assert not [t for t in threading.enumerate() if t.name == "sync-reader" and t.is_alive()]
    assert len(produced) <= 3 + 2 + 2  # read ahead by at most the buffer depth (and one in hand)

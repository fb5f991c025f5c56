"""Syncs in real processes: they share the cache file a page at a time, and a killed one is
told from a live one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from credly_ops.access import Actor, Role
from credly_ops.config import DEMO_ORG_ID
from credly_ops.credly.client import CredlyClient
from credly_ops.credly.errors import InvalidToken
from credly_ops.store import Store, to_db_time
from credly_ops.sync import sync
from credly_ops.sync_history import SyncRunning, sync_health
from credly_ops.timeutil import utcnow
from tests.conftest import TEST_TOKEN
from tests.test_sync import badge_records

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
BADGES, PAGE = 1_200, 100  # twelve badge pages
LATENCY_MS = 500

SYNC_SCRIPT = """
import sys
from credly_ops.credly.client import CredlyClient
from credly_ops.credly.errors import InvalidToken
from credly_ops.store import Store
from credly_ops.sync import sync

api, org, token, db = sys.argv[1:5]
with CredlyClient(base_url=api, org_id=org, token=token) as client:
    result = sync(client, Store(db), full=True)
print(result.pages, result.badges, flush=True)
"""


@pytest.fixture
def slow_emulator(world) -> Iterator[tuple[str, object]]:
    """The emulator with small high-volume pages and latency on every answer."""
    from credly_ops.emulators.credly import FaultConfig, create_app
    from credly_ops.emulators.server import serve_in_thread

    world.load_badges(DEMO_ORG_ID, badge_records(BADGES))
    app = create_app(world, faults=FaultConfig(latency_ms=LATENCY_MS), high_volume_page_size=PAGE)
    server = serve_in_thread(app, host="127.0.0.1", port=0)
    try:
        yield f"{server.url}/v1", app
    finally:
        server.stop()


def start_sync(api: str, db: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", SYNC_SCRIPT, api, DEMO_ORG_ID, TEST_TOKEN, str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def syncs_row(store: Store) -> tuple | None:
    with store.session() as cur:
        return cur.execute(
            "SELECT status, pages, read FROM syncs ORDER BY id DESC LIMIT 1"
        ).fetchone()


def test_a_long_sync_lets_another_process_read_between_pages(slow_emulator, tmp_path: Path) -> None:
    api, _ = slow_emulator
    db = tmp_path / "cache.duckdb"
    reader = Store(db, lock_wait=0.01, lock_retries=3_000)
    reader.get_setting("x")  # the file exists before the sync starts
    proc = start_sync(api, db)
    waits: list[float] = []
    seen: list[int] = []
    began = time.monotonic()
    while proc.poll() is None:
        started = time.monotonic()
        with reader.session() as cur:
            row = cur.execute("SELECT count(*) FROM badges").fetchone()
        waits.append(time.monotonic() - started)
        seen.append(int(row[0]) if row else 0)
        time.sleep(0.05)
    took = time.monotonic() - began
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert out.split() == ["13", str(BADGES)]  # one template page and twelve badge pages
    # the sync took many pages' time, and no read waited longer than about one page (with room
    # for a loaded machine; holding the file for the whole sync makes a read wait for all of it)
    page_seconds = LATENCY_MS / 1000
    assert took > 8 * page_seconds
    assert len(waits) > 10
    assert max(waits) < 4 * page_seconds, (max(waits), took)
    # the reads saw the sync progress page by page
    partial = {n for n in seen if 0 < n < BADGES}
    assert len(partial) >= 3, sorted(set(seen))


def test_a_killed_sync_is_reported_then_marked_interrupted(
    slow_emulator, world, tmp_path: Path
) -> None:
    api, app = slow_emulator
    db = tmp_path / "cache.duckdb"
    store = Store(db, lock_wait=0.01, lock_retries=3_000)
    proc = start_sync(api, db)
    deadline = time.monotonic() + 60
    try:
        while True:
            assert time.monotonic() < deadline, "the sync never got going"
            assert proc.poll() is None, proc.communicate()
            row = None if not db.exists() else syncs_row(store)
            if row is not None and row[1] >= 4:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)  # reaped: a dead process, not a zombie
    assert proc.returncode == -signal.SIGKILL

    status, pages, read = syncs_row(store)
    assert status == "running"  # what the killed process left behind
    health = sync_health(store)
    assert not health.finished
    assert health.unfinished is not None
    assert health.unfinished["status"] == "interrupted"
    assert health.unfinished["kind"] == "full"
    assert health.unfinished["read"] == read and 0 < read < BADGES
    assert health.unfinished["pages"] == pages >= 4
    message = health.message
    assert message is not None
    assert message.startswith("The last sync did not finish: a full sync started at ")
    assert f"{read:,} badges read" in message
    assert "no sync has finished yet, so the cache holds partial data" in message
    assert health.as_json()["last_sync_finished"] is False

    # the next sync marks it interrupted, and finishes
    from credly_ops.emulators.credly import FaultConfig

    app.state.faults.configure(FaultConfig())  # no more latency
    with CredlyClient(base_url=api, org_id=DEMO_ORG_ID, token=TEST_TOKEN) as client:
        result = sync(client, store, actor=Actor("tester", Role.VIEWER))
    assert (result.kind, result.badges) == ("full", BADGES)
    with store.session() as cur:
        history = cur.execute("SELECT status FROM syncs ORDER BY id").fetchall()
        audit = cur.execute(
            "SELECT target, outcome, detail FROM audit WHERE outcome = 'interrupted'"
        ).fetchall()
    assert history == [("interrupted",), ("ok",)]
    assert len(audit) == 1 and audit[0][0] == "full"
    healthy = sync_health(store)
    assert healthy.finished and healthy.message is None
    assert healthy.last_sync is not None and healthy.last_sync["badges"] == BADGES


def test_a_live_sync_elsewhere_is_waited_for_and_a_silent_one_is_settled(
    client, world, store: Store
) -> None:
    world.load_badges(DEMO_ORG_ID, badge_records(30))
    now = utcnow()
    with store.transaction() as cur:
        cur.execute(
            "INSERT INTO syncs (id, kind, started_at, status, heartbeat_at, runner, pages, read) "
            "VALUES (1, 'full', ?, 'running', ?, 'another-host:4242', 3, 150)",
            [to_db_time(now - timedelta(minutes=3)), to_db_time(now - timedelta(seconds=20))],
        )
    with pytest.raises(SyncRunning) as info:
        sync(client, store)
    assert "is still running; try again when it has finished" in str(info.value)
    with store.session() as cur:
        assert cur.execute("SELECT count(*) FROM templates").fetchone() == (0,)
    health = sync_health(store)
    assert health.unfinished is not None and health.unfinished["status"] == "running"
    assert health.message is not None and health.message.startswith("A full sync started at")

    # silent for longer than the staleness limit: its process is gone
    result = sync(client, store, stale_after=timedelta(seconds=10))
    assert result.badges == 30
    with store.session() as cur:
        assert cur.execute("SELECT id, status FROM syncs ORDER BY id").fetchall() == [
            (1, "interrupted"),
            (2, "ok"),
        ]


def test_a_sync_that_failed_after_a_finished_one_says_what_may_be_stale(
    emulator: str, world, client, store: Store
) -> None:
    world.load_badges(DEMO_ORG_ID, badge_records(10))
    sync(client, store)
    with (
        CredlyClient(base_url=emulator, org_id=DEMO_ORG_ID, token="wrong") as bad,
        pytest.raises(InvalidToken),
    ):
        sync(bad, store)
    health = sync_health(store)
    assert health.unfinished is not None and health.unfinished["status"] == "failed"
    assert health.message is not None
    assert "failed after 0 pages" in health.message
    assert "may be missing or stale" in health.message

"""The receiver never waits for the cache, and nothing is lost or doubled across crashes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import httpx
import pytest

from credly_ops.hooks import Spool, ingest, recent_events, wait_for_events
from credly_ops.store import CacheBusy, Store
from tests.hooks.conftest import CLIENT_ID, CLIENT_SECRET, HOOK_SECRET, Receiver, Site

HOLD_SCRIPT = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("BEGIN TRANSACTION")
con.execute("CREATE TABLE IF NOT EXISTS held (x INTEGER)")
con.execute("INSERT INTO held VALUES (1)")
print("held", flush=True)
sys.stdin.readline()
con.execute("COMMIT")
con.close()
"""


def _deliver(site: Site, receiver: Receiver, email: str) -> tuple[int, float]:
    done = site.complete(email, "crs-py")
    started = time.perf_counter()
    answer = site.control(
        "webhooks/deliver",
        {
            "enrollment_id": done["enrollment_id"],
            "target_url": receiver.url,
            "additional_headers": {"X-Webhook-Secret": HOOK_SECRET},
        },
    )
    return int(answer["deliveries"][0]["status"]), time.perf_counter() - started


def test_answers_within_a_second_while_another_process_holds_the_cache(
    skilljar: Site, receiver: Receiver
) -> None:
    with receiver.store().session():
        pass  # the cache exists, at the current schema
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_SCRIPT, str(receiver.db_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(duckdb.IOException):  # the file really is held
            duckdb.connect(str(receiver.db_path)).close()
        for n in range(3):
            status, seconds = _deliver(skilljar, receiver, f"student{n}@example.org")
            assert status == 200 and seconds < 1.0
        with pytest.raises(CacheBusy):
            ingest(receiver.store(lock_retries=2, lock_wait=0.01), receiver.spool)
        assert receiver.spool.waiting() == 3  # nothing taken while the cache was busy
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=20)
    hints = ingest(receiver.store(), receiver.spool)
    assert sorted(h.email for h in hints) == [f"student{n}@example.org" for n in range(3)]


def test_a_crash_between_commit_and_delete_doubles_nothing(
    skilljar: Site, receiver: Receiver, tmp_path: Path
) -> None:
    _deliver(skilljar, receiver, "ada@example.org")
    (spooled,) = receiver.spool.files()
    kept = tmp_path / "kept"
    shutil.copyfile(spooled, kept)
    store = receiver.store()
    assert len(ingest(store, receiver.spool)) == 1
    shutil.copyfile(kept, spooled)  # as if the process died before deleting the file
    assert ingest(store, receiver.spool) == []
    assert receiver.spool.waiting() == 0
    assert [r["status"] for r in recent_events(store)] == ["accepted"]


def test_a_half_written_or_damaged_file_does_not_stop_the_others(
    skilljar: Site, receiver: Receiver
) -> None:
    _deliver(skilljar, receiver, "ada@example.org")
    folder = receiver.spool.folder
    partial = folder / ".00000000000000000001-abc.part"
    partial.write_text('{"id": "0000')  # a crash mid-write: never answered, never read
    damaged = folder / "00000000000000000002-def.event.json"
    damaged.write_text("not an event")
    hints = ingest(receiver.store(), receiver.spool)
    assert [h.email for h in hints] == ["ada@example.org"]
    assert partial.exists()  # young: perhaps still being written
    assert (folder / (damaged.name + ".damaged")).exists() and not damaged.exists()
    os.utime(partial, (time.time() - 7200, time.time() - 7200))
    assert receiver.spool.sweep_partials() == 1 and not partial.exists()


def test_wait_for_events_wakes_when_a_file_is_spooled(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "cache.hooks")
    started = time.perf_counter()
    assert wait_for_events(spool, 0.3) is False
    assert time.perf_counter() - started >= 0.3
    writer = threading.Timer(0.2, lambda: spool.write(b"{}", size=2))
    writer.start()
    started = time.perf_counter()
    try:
        assert wait_for_events(spool, 5.0) is True
        assert time.perf_counter() - started < 2.0
    finally:
        writer.join()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli_env(db: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREDLY_", "SKILLJAR_"))}
    env.update(CREDLY_OPS_DB=str(db), **extra)
    return env


def test_a_receiver_killed_before_ingest_loses_nothing(skilljar: Site, tmp_path: Path) -> None:
    db = tmp_path / "cache.duckdb"
    port = _free_port()
    env = _cli_env(
        db,
        SKILLJAR_CLIENT_ID=CLIENT_ID,
        SKILLJAR_CLIENT_SECRET=CLIENT_SECRET,
        SKILLJAR_WEBHOOK_SECRET=HOOK_SECRET,
        SKILLJAR_API_URL=skilljar.url,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "credly_ops.cli", "hooks", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/hooks/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the receiver did not start"
            time.sleep(0.1)
        done = skilljar.complete("ada@example.org", "crs-cloud")
        answer = skilljar.control(
            "webhooks/deliver",
            {
                "enrollment_id": done["enrollment_id"],
                "target_url": f"{url}/hooks/skilljar",
                "basic_auth_username": "skilljar",
                "basic_auth_password": HOOK_SECRET,
            },
        )
        assert answer["deliveries"][0]["status"] == 200
    finally:
        process.send_signal(signal.SIGKILL)
        _, err = process.communicate(timeout=10)
    assert HOOK_SECRET not in err
    assert not db.exists()  # the receiver never opened the cache
    hints = ingest(Store(db), Spool.beside(db))
    assert [(h.email, h.course_id) for h in hints] == [("ada@example.org", "crs-cloud")]
    event = recent_events(Store(db))[0]
    assert json.dumps(event, default=str).count("ada@example.org") == 1


def test_a_spool_that_cannot_be_written_is_answered_503_not_4xx(tmp_path: Path) -> None:
    from credly_ops.emulators.server import serve_in_thread
    from credly_ops.hooks import create_hooks_app
    from tests.hooks.conftest import hook_settings

    blocked = tmp_path / "cache.hooks"
    blocked.write_text("a file where the spool folder should be")
    wakes: list[int] = []
    app = create_hooks_app(hook_settings(), Spool(blocked), wake=lambda: wakes.append(1))
    with serve_in_thread(app) as server:
        answer = httpx.post(
            f"{server.url}/hooks/skilljar",
            content=b"{}",
            headers={"X-Webhook-Secret": HOOK_SECRET},
            timeout=10,
        )
    assert answer.status_code == 503  # Skilljar delivers again; a 4xx would deactivate it
    assert wakes == []


def test_many_waiting_events_are_ingested_in_batches(tmp_path: Path) -> None:
    from credly_ops.hooks.ingestion import BATCH

    spool = Spool.beside(tmp_path / "cache.duckdb")
    count = BATCH + 37
    for n in range(count):
        body = {
            "event_type": "COURSE_COMPLETION",
            "timestamp": "2026-05-01T10:00:00Z",
            "user": {"email": f"s{n}@example.org"},
            "course": {"id": "crs-py"},
        }
        spool.write(json.dumps(body).encode(), size=1)
    hints = ingest(Store(tmp_path / "cache.duckdb"), spool)
    assert [h.email for h in hints] == [f"s{n}@example.org" for n in range(count)]
    assert spool.waiting() == 0


def test_two_threads_ingesting_at_once_take_each_event_once(tmp_path: Path) -> None:
    spool = Spool.beside(tmp_path / "cache.duckdb")
    for n in range(60):
        body = {"event_type": "COURSE_COMPLETION", "user": {"email": f"s{n}@example.org"}}
        spool.write(json.dumps(body).encode(), size=1)
    store = Store(tmp_path / "cache.duckdb")
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def take() -> None:
        try:
            results.append([h.email for h in ingest(store, spool)])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=take) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    emails = sorted(e for batch in results for e in batch)
    assert emails == sorted(f"s{n}@example.org" for n in range(60))
    assert len(recent_events(store, limit=100)) == 60

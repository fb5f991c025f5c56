from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from credly_ops.access import Actor, PermissionDenied, Role
from credly_ops.schema import MIGRATIONS, SCHEMA_VERSION, migrate
from credly_ops.store import CacheBusy, Store

ADMIN = Actor("tester", Role.ADMIN)

HOLD_SCRIPT = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def hold_file(path: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_SCRIPT, str(path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_schema_is_created_and_migrations_are_idempotent(store: Store) -> None:
    with store.session() as cur:
        tables = {
            r[0] for r in cur.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
        assert {
            "templates",
            "badges",
            "completions",
            "badge_rules",
            "syncs",
            "badge_snapshots",
            "jobs",
            "ledger",
            "audit",
            "settings",
            "schema_version",
        } <= tables
        assert cur.execute("SELECT max(version) FROM schema_version").fetchone() == (
            SCHEMA_VERSION,
        )
        assert migrate(cur) == SCHEMA_VERSION  # second run: nothing to do
        assert cur.execute("SELECT count(*) FROM schema_version").fetchone() == (len(MIGRATIONS),)


def test_the_file_is_let_go_after_each_unit_of_work(store: Store) -> None:
    store.set_setting("integration_name", "ACME", actor=ADMIN)
    # another process can open the file now that no unit of work is running
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import duckdb,sys; c=duckdb.connect(sys.argv[1]); print(c.execute("
            "\"select value from settings where key='integration_name'\").fetchone()[0])",
            str(store.path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "ACME"


def test_a_locked_file_is_waited_for_then_used(store: Store) -> None:
    store.get_setting("x")  # create the file
    proc = hold_file(store.path, 0.6)
    patient = Store(store.path, lock_wait=0.1, lock_retries=50)
    started = time.monotonic()
    patient.set_setting("k", "v", actor=ADMIN)
    assert time.monotonic() - started >= 0.2
    assert patient.get_setting("k") == "v"
    proc.wait(timeout=10)


def test_a_file_held_too_long_is_a_plain_cache_busy_error(store: Store) -> None:
    store.get_setting("x")
    proc = hold_file(store.path, 5)
    try:
        with pytest.raises(CacheBusy) as info:
            store.get_setting("x")
        message = str(info.value)
        assert message.startswith("cache busy: another credly-ops process is using")
        assert "try again" in message
    finally:
        proc.kill()
        proc.wait()


def test_threads_share_one_instance_with_a_cursor_each(store: Store) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                store.set_setting(f"t{n}", str(i), actor=Actor(f"thread-{n}", Role.ADMIN))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert [store.get_setting(f"t{n}") for n in range(4)] == ["19"] * 4
    with store.session() as cur:
        assert cur.execute(
            "SELECT count(*) FROM audit WHERE action = 'setting.change'"
        ).fetchone() == (80,)


def test_a_failed_transaction_leaves_nothing_behind(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction() as cur:
        cur.execute("INSERT INTO settings VALUES ('half', 'written', now()::TIMESTAMP, 'tester')")
        raise RuntimeError("crash mid-unit")
    assert store.get_setting("half") is None


def test_setting_changes_are_audited_with_who_and_what(store: Store) -> None:
    store.set_setting("badges_earned_enabled", "false", actor=Actor("ada@example.com", Role.ADMIN))
    with store.session() as cur:
        actor, role, action, target, outcome, detail = cur.execute(
            "SELECT actor, role, action, target, outcome, detail FROM audit "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert (actor, role, action) == ("ada@example.com", "admin", "setting.change")
    assert (target, outcome) == ("badges_earned_enabled", "ok")
    assert json.loads(detail)["to"] == "false"


def test_external_access_is_disabled(store: Store) -> None:
    with store.session() as cur, pytest.raises(duckdb.Error):
        cur.execute("SELECT * FROM read_csv('/etc/hostname')").fetchall()


@pytest.mark.parametrize("role", [Role.VIEWER, Role.CSM])
def test_only_admins_change_settings(store: Store, role: Role) -> None:
    with pytest.raises(PermissionDenied) as info:
        store.set_setting("badges_earned_enabled", "false", actor=Actor("someone", role))
    assert f"someone ({role.value}) may not change settings" in str(info.value)
    assert store.get_setting("badges_earned_enabled") is None

"""``credly-ops autopilot``: JSON keys, exit codes, audit rows."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

from credly_ops.autopilot import (
    CYCLE_KEYS,
    CycleResult,
    Wake,
    autopilot_status,
    start_in_background,
)
from credly_ops.cli import autopilot as autopilot_cli
from credly_ops.cli import main
from credly_ops.config import DEMO_ORG_ID, load_skilljar_settings
from credly_ops.lms import save_completions
from credly_ops.timeutil import utcnow
from tests.autopilot.helpers import SYSTEM, T0, Skilljar, audit_actions, badges, done, rule
from tests.autopilot.helpers import workspace as make_workspace
from tests.conftest import TEST_TOKEN

STATUS_KEYS = {
    "state",
    "paused",
    "pause_reason",
    "paused_at",
    "paused_by",
    "shadow",
    "cap_per_hour",
    "configured",
    "missing",
    "worker",
    "last_cycle_at",
    "last_cycle_outcome",
    "next_cycle_at",
    "lag_seconds",
    "waiting",
    "today",
    "reasons_today",
}


@pytest.fixture
def cli_env(emulator: str, tmp_path, monkeypatch):
    db = tmp_path / "cache.duckdb"
    monkeypatch.setenv("CREDLY_ENV", "sandbox")
    monkeypatch.setenv("CREDLY_ORG_ID", DEMO_ORG_ID)
    monkeypatch.setenv("CREDLY_API_TOKEN", TEST_TOKEN)
    monkeypatch.setenv("CREDLY_API_URL", emulator)
    monkeypatch.setenv("CREDLY_OPS_DB", str(db))
    ws = make_workspace(emulator, tmp_path, [rule("c-1")])
    return ws


def skilljar_configured(monkeypatch, arriving) -> None:
    """Skilljar configured; the completions step saves ``arriving`` into the CLI's cache."""
    monkeypatch.setenv("SKILLJAR_CLIENT_ID", "client-1")
    monkeypatch.setenv("SKILLJAR_CLIENT_SECRET", "sj-secret-value-123")

    def reader(ws):
        def read() -> int:
            new = list(arriving)
            arriving.clear()
            with ws.store.transaction() as cur:
                save_completions(cur, new, source="skilljar", loaded_at=utcnow())
            return len(new)

        return read

    monkeypatch.setattr(autopilot_cli, "completions_reader", reader)


def test_run_without_skilljar_is_off_and_exits_2(cli_env, capsys) -> None:
    assert main(["autopilot", "run", "--once", "--json"]) == 2
    err = capsys.readouterr().err
    assert "Skilljar is not configured" in err and "SKILLJAR_CLIENT_ID" in err
    assert main(["autopilot", "status", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == STATUS_KEYS
    assert (out["state"], out["configured"]) == ("off", False)
    assert "SKILLJAR_CLIENT_SECRET" in out["missing"]


def test_run_once_json_keys_and_exit_codes_then_pause_and_resume(
    cli_env, world, monkeypatch, capsys
) -> None:
    arriving = [done("ann@example.com", "c-1", T0), done("bob@example.com", "c-9", T0)]
    skilljar_configured(monkeypatch, arriving)

    assert main(["autopilot", "run", "--once", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == list(CYCLE_KEYS)
    assert out == {
        "completions_new": 2,
        "decided": 2,
        "issued": 1,
        "updated": 0,
        "skipped": 1,
        "failed": 0,
        "reasons": {"new_badge": 1, "no_rule": 1},
        "shadow": False,
        "paused": False,
    }
    assert main(["autopilot", "pause", "--reason", "quarterly audit"]) == 0
    assert capsys.readouterr().out == "automatic issuing paused\n"
    arriving.append(done("cy@example.com", "c-1", T0))
    assert main(["autopilot", "run", "--once", "--json"]) == 2
    paused = json.loads(capsys.readouterr().out)
    assert (paused["paused"], paused["decided"]) == (True, 0)
    assert main(["autopilot", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["state"], status["pause_reason"]) == ("paused", "quarterly audit")
    assert status["paused_by"].startswith("cli:")
    assert main(["autopilot", "resume"]) == 0
    assert capsys.readouterr().out == "automatic issuing resumed\n"
    assert main(["autopilot", "run", "--once", "--shadow", "--json"]) == 0
    shadow = json.loads(capsys.readouterr().out)
    assert (shadow["shadow"], shadow["issued"]) == (True, 1)  # cy: would issue
    assert sum(badges(world).values()) == 1
    actions = [(a, o) for a, o, _ in audit_actions(cli_env, "autopilot.") if "cycle" not in a]
    assert ("autopilot.pause", "ok") in actions and ("autopilot.resume", "ok") in actions
    with cli_env.store.session() as cur:
        actors = {
            r[0]
            for r in cur.execute(
                "SELECT actor FROM audit WHERE action IN ('autopilot.pause', 'autopilot.resume')"
            ).fetchall()
        }
        details = " ".join(str(r[0]) for r in cur.execute("SELECT detail FROM audit").fetchall())
    assert all(a.startswith("cli:") for a in actors)
    assert "sj-secret-value-123" not in details


def test_exit_code_says_failed_rows_and_a_pause() -> None:
    def result(failed: int, paused: bool) -> CycleResult:
        return CycleResult(1, 1, 0, 0, 0, failed, {}, False, paused)

    assert autopilot_cli.exit_code(result(0, False)) == 0
    assert autopilot_cli.exit_code(result(2, False)) == 1
    assert autopilot_cli.exit_code(result(2, True)) == 2


def test_the_loop_cycles_when_woken_and_stops_when_told(world, emulator: str, tmp_path) -> None:
    ws = make_workspace(emulator, tmp_path, [rule("c-1")])
    skilljar = Skilljar(ws)
    skilljar.arrive(done("ann@example.com", "c-1", T0))
    wake = Wake()
    reads: list[int] = []

    def read() -> int:
        reads.append(n := skilljar.read())
        return n

    def cycles() -> list[tuple[str, str]]:
        with ws.store.session() as cur:
            rows = cur.execute(
                "SELECT outcome, result FROM autopilot_cycles WHERE finished_at IS NOT NULL "
                "ORDER BY started_at"
            ).fetchall()
        return [(str(o), str(r)) for o, r in rows]

    thread, stop = start_in_background(ws, SYSTEM, interval=600.0, read_completions=read, wake=wake)
    try:
        deadline = time.monotonic() + 60
        sj = load_skilljar_settings(client_id="c", client_secret="s")
        # after its first cycle the worker says when the next one comes: in ten minutes
        while autopilot_status(ws.store, skilljar=sj).next_cycle_at is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        running = autopilot_status(ws.store, skilljar=sj)
        assert len(cycles()) == 1
        assert running.worker is not None and running.mode == "running"
        assert running.next_cycle_at is not None
        assert running.next_cycle_at > utcnow() + timedelta(seconds=500)
        skilljar.arrive(done("bob@example.com", "c-1", T0))
        wake.set()  # a hint: the next cycle comes now, not in ten minutes
        while len(cycles()) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert reads == [1, 1]
    assert [json.loads(r)["issued"] for _, r in cycles()] == [1, 1]
    assert autopilot_status(ws.store, skilljar=sj).worker is None  # stopped: no live worker

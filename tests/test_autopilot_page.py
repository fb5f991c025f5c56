"""The Autopilot page, rendered headless with Streamlit's AppTest over a cache on the emulator."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

import ui
from credly_ops.access import Actor, Role
from credly_ops.autopilot import read_state, run_cycle
from credly_ops.config import DEMO_ORG_ID
from tests.autopilot.helpers import SYSTEM, T0, Skilljar, audit_actions, badges, done, rule
from tests.autopilot.helpers import workspace as make_workspace
from tests.conftest import TEST_TOKEN

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "autopilot.py")
ADMIN = Actor("alice.admin", Role.ADMIN)
VIEWER = Actor("victor.viewer", Role.VIEWER)


@pytest.fixture(autouse=True)
def _fresh_workspace():
    ui.workspace.clear()
    ui.skilljar_settings.clear()
    yield
    ui.workspace.clear()
    ui.skilljar_settings.clear()


@pytest.fixture
def ws(emulator: str, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("CREDLY_ENV", "sandbox")
    monkeypatch.setenv("CREDLY_ORG_ID", DEMO_ORG_ID)
    monkeypatch.setenv("CREDLY_API_TOKEN", TEST_TOKEN)
    monkeypatch.setenv("CREDLY_API_URL", emulator)
    monkeypatch.setenv("CREDLY_OPS_DB", str(tmp_path / "cache.duckdb"))
    return make_workspace(emulator, tmp_path, [rule("c-1")])


def skilljar_on(monkeypatch) -> None:
    monkeypatch.setenv("SKILLJAR_CLIENT_ID", "client-1")
    monkeypatch.setenv("SKILLJAR_CLIENT_SECRET", "sj-secret-value-123")


def open_page(actor: Actor) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["actor"] = actor
    at.run()
    assert not at.exception, at.exception
    return at


def text(at: AppTest) -> str:
    parts = [t.value.to_string() for t in at.dataframe]
    for kind in ("markdown", "caption", "info", "success", "error", "warning"):
        parts.extend(str(e.value) for e in at.get(kind))
    parts.extend(f"{m.label}={m.value}" for m in at.metric)
    return "\n".join(parts)


def button(at: AppTest, label: str):
    [found] = [b for b in at.button if b.label.startswith(label)]
    return found


def test_off_without_skilljar_and_a_viewer_gets_no_controls(ws) -> None:
    at = open_page(VIEWER)
    [off] = at.info
    assert "Automatic issuing is **off**" in off.value and "SKILLJAR_CLIENT_ID" in off.value
    assert not [b for b in at.button if b.label in ("Pause", "Resume", "Save settings")]
    assert "No automatic decision yet." in text(at)


def test_the_page_shows_decisions_and_an_admin_pauses_and_resumes(ws, monkeypatch) -> None:
    skilljar_on(monkeypatch)
    skilljar = Skilljar(ws)
    skilljar.arrive(done("ann@example.com", "c-1", T0), done("bob@example.com", "c-9", T0))
    run_cycle(ws, SYSTEM, read_completions=skilljar.read)

    at = open_page(ADMIN)
    shown = text(at)
    assert "**Running**" in shown and "No worker is running" in shown
    assert "Issued=1" in shown and "Skipped=1" in shown
    assert "ann@example.com" in shown and "no_rule" in shown
    assert "sj-secret-value-123" not in shown

    at.text_input[0].input("template review")
    button(at, "Pause").click().run()
    assert not at.exception, at.exception
    state = read_state(ws.store)
    assert (state.paused, state.pause_reason, state.paused_by) == (
        True,
        "template review",
        ADMIN.name,
    )
    assert "**Paused** by alice.admin" in at.warning[0].value
    button(at, "Resume").click().run()
    assert not read_state(ws.store).paused
    assert [a for a, _, _ in audit_actions(ws, "autopilot.") if "cycle" not in a][-2:] == [
        "autopilot.pause",
        "autopilot.resume",
    ]


def test_failures_are_listed_and_the_retry_button_sends_them(
    ws, world, emulator: str, monkeypatch
) -> None:
    skilljar_on(monkeypatch)
    skilljar = Skilljar(ws)
    skilljar.arrive(done("ann@example.com", "c-1", T0 + timedelta(hours=1)))
    faults = emulator.removesuffix("/v1") + "/_emulator/faults"

    def read_then_credly_fails() -> int:
        n = skilljar.read()
        httpx.post(faults, json={"fail_rate": 1.0}, timeout=5).raise_for_status()
        return n

    failed = run_cycle(
        ws, SYSTEM, read_completions=read_then_credly_fails, client_options={"max_attempts": 1}
    )
    assert (failed.failed, failed.paused) == (1, False)
    httpx.post(faults, json={}, timeout=5).raise_for_status()

    at = open_page(ADMIN)
    assert "server_error" in text(at)
    button(at, "Retry 1 failures now").click().run()
    assert not at.exception, at.exception
    assert "Retried: 1 issued, 0 failed again." in at.success[0].value
    assert sum(badges(world).values()) == 1
    assert "No failures." in text(at)


def test_the_shadow_comparison_is_on_the_page(ws, monkeypatch) -> None:
    skilljar_on(monkeypatch)
    skilljar = Skilljar(ws)
    skilljar.arrive(done("ann@example.com", "c-1", T0))
    run_cycle(ws, SYSTEM, read_completions=skilljar.read, shadow=True)
    at = open_page(VIEWER)
    shown = text(at)
    assert "credly-ops agrees with what was issued on 0 of 1 completions" in shown
    assert "would_issue_no_badge" in shown and "would_issue" in shown


def sidebar_only() -> None:
    import ui

    ui.sidebar(ui.workspace())


def test_the_sidebar_says_the_autopilot_state_on_every_page(ws, monkeypatch) -> None:
    from credly_ops.autopilot import pause

    at = AppTest.from_function(sidebar_only, default_timeout=60)
    at.session_state["actor"] = ADMIN
    at.run()
    assert not at.exception, at.exception
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert "Automatic issuing: off (Skilljar not configured" in captions

    skilljar_on(monkeypatch)
    ui.skilljar_settings.clear()
    pause(ws.store, ADMIN, "cap review")
    at.run()
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert "Automatic issuing: paused — cap review" in captions

"""The rails: a cap on issues per hour and a breaker on the error rate, mid-cycle."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import httpx
import pytest

from credly_ops.autopilot import (
    autopilot_status,
    pause,
    read_state,
    resume,
    run_cycle,
    set_cap,
)
from credly_ops.autopilot.rails import Valve, breaker_tripped, cap_left
from credly_ops.config import SkilljarNotConfigured
from tests.autopilot.helpers import (
    ADMIN,
    SYSTEM,
    T0,
    Skilljar,
    audit_actions,
    badges,
    done,
    rule,
    workspace,
)

NOT_CONFIGURED = SkilljarNotConfigured(missing=("client_id (SKILLJAR_CLIENT_ID)",))


def test_the_breaker_trips_on_more_than_a_fifth_of_the_last_fifty_sends() -> None:
    assert not breaker_tripped([True] * 10 + [False] * 40)
    assert breaker_tripped([True] * 11 + [False] * 39)
    assert breaker_tripped([True] * 11)  # fewer sends than the window count against all of it
    assert not breaker_tripped([True] * 10)
    assert not breaker_tripped([True] * 20 + [False] * 50)  # only the last fifty count
    assert (cap_left(498, 500), cap_left(500, 500), cap_left(600, 500)) == (2, 0, 0)


def test_the_valve_admits_up_to_its_budget_then_refuses_for_good() -> None:
    valve = Valve(budget=2, cap_per_hour=2)
    row = None  # the valve does not read the row
    assert [valve.admit(row), valve.admit(row), valve.admit(row)] == [True, True, False]  # type: ignore[arg-type]
    assert valve.tripped == "cap" and valve.reason and "2 automatic issues" in valve.reason
    broken = Valve(budget=100, cap_per_hour=100, recent=[True] * 11)
    assert not broken.admit(row)  # type: ignore[arg-type]
    assert broken.tripped == "breaker"


def expected(rows) -> Counter:
    return Counter((c.email, "tpl-active", c.completed_at) for c in rows)


def test_the_cap_pauses_mid_cycle_and_the_resume_loses_no_completion(
    world, emulator: str, tmp_path
) -> None:
    ws = workspace(emulator, tmp_path, [rule("c-1")])
    set_cap(ws.store, ADMIN, 5)
    skilljar = Skilljar(ws)
    rows = [done(f"s{i:02}@example.com", "c-1", T0 + timedelta(minutes=i)) for i in range(12)]
    skilljar.arrive(*rows)

    first = run_cycle(ws, SYSTEM, read_completions=skilljar.read)

    assert (first.decided, first.issued, first.failed, first.paused) == (12, 5, 0, True)
    assert first.held == 7
    assert sum(badges(world).values()) == 5  # stopped at the cap, not after the cycle
    state = read_state(ws.store)
    assert state.paused and state.pause_reason and state.pause_reason.startswith("cap reached")
    status = autopilot_status(ws.store, skilljar=NOT_CONFIGURED)
    assert status.waiting == 7 and status.state.paused
    assert status.lag_seconds is not None  # the seven still wait
    pauses = [d for a, _, d in audit_actions(ws, "autopilot.pause")]
    assert len(pauses) == 1 and '"by": "cap"' in (pauses[0] or "")

    while_paused = run_cycle(ws, SYSTEM, read_completions=skilljar.read)
    assert while_paused.paused and while_paused.issued == 0
    assert sum(badges(world).values()) == 5

    resume(ws.store, ADMIN)  # the cap's hour starts afresh at the resume
    second = run_cycle(ws, SYSTEM, read_completions=skilljar.read)
    assert (second.decided, second.issued, second.paused) == (0, 5, True)
    resume(ws.store, ADMIN)
    third = run_cycle(ws, SYSTEM, read_completions=skilljar.read)
    assert (third.issued, third.paused) == (2, False)
    assert badges(world) == expected(rows)  # every completion once, none lost, none twice
    assert autopilot_status(ws.store, skilljar=NOT_CONFIGURED).lag_seconds is None


def test_the_breaker_pauses_mid_cycle_and_the_resume_sends_every_row_once(
    world, emulator: str, tmp_path
) -> None:
    ws = workspace(emulator, tmp_path, [rule("c-1")])
    skilljar = Skilljar(ws)
    rows = [done(f"s{i:02}@example.com", "c-1", T0 + timedelta(minutes=i)) for i in range(30)]
    skilljar.arrive(*rows)
    faults = emulator.removesuffix("/v1") + "/_emulator/faults"

    def read_then_credly_fails() -> int:
        n = skilljar.read()
        httpx.post(faults, json={"fail_rate": 1.0}, timeout=5).raise_for_status()
        return n

    first = run_cycle(
        ws, SYSTEM, read_completions=read_then_credly_fails, client_options={"max_attempts": 1}
    )

    assert first.paused and first.issued == 0
    assert 11 <= first.failed <= 14  # tripped at the eleventh failure (plus those in flight)
    assert first.reasons == {"server_error": first.failed}
    state = read_state(ws.store)
    assert state.pause_reason and state.pause_reason.startswith("breaker")
    assert sum(badges(world).values()) == 0

    httpx.post(faults, json={}, timeout=5).raise_for_status()
    resume(ws.store, ADMIN)
    second = run_cycle(ws, SYSTEM, read_completions=skilljar.read)
    assert (second.issued, second.failed, second.paused) == (30, 0, False)
    assert badges(world) == expected(rows)


def test_an_admin_pause_holds_every_completion_until_the_resume(
    world, emulator: str, tmp_path
) -> None:
    ws = workspace(emulator, tmp_path, [rule("c-1")])
    skilljar = Skilljar(ws)
    skilljar.arrive(done("ann@example.com", "c-1", T0))
    pause(ws.store, ADMIN, "  the Credly   org is being migrated ")
    state = read_state(ws.store)
    assert (state.paused, state.pause_reason, state.paused_by) == (
        True,
        "the Credly org is being migrated",
        ADMIN.name,
    )
    assert run_cycle(ws, SYSTEM, read_completions=skilljar.read).paused
    assert skilljar.reads == 0 and sum(badges(world).values()) == 0
    resume(ws.store, ADMIN)
    assert run_cycle(ws, SYSTEM, read_completions=skilljar.read).issued == 1
    assert [(a, o) for a, o, _ in audit_actions(ws, "autopilot.") if "cycle" not in a][:2] == [
        ("autopilot.pause", "ok"),
        ("autopilot.resume", "ok"),
    ]


def test_only_an_admin_changes_the_state_and_the_cap_must_be_sensible(store) -> None:
    from credly_ops.access import Actor, PermissionDenied, Role

    csm = Actor("carol.csm", Role.CSM)
    for change in (
        lambda: pause(store, csm, "no"),
        lambda: resume(store, csm),
        lambda: set_cap(store, csm, 10),
    ):
        with pytest.raises(PermissionDenied):
            change()
    for bad in (0, -5, 100_001, True):
        with pytest.raises(ValueError):
            set_cap(store, ADMIN, bad)
    assert read_state(store).cap_per_hour == 500 and not read_state(store).paused
    set_cap(store, ADMIN, 40)
    assert read_state(store).cap_per_hour == 40

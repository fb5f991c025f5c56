"""A cycle of automatic issuing against the Credly emulator over real HTTP, on a DuckDB file."""

from __future__ import annotations

from datetime import timedelta

import pytest

from credly_ops.autopilot import CYCLE_KEYS, CycleUnavailable, recent_decisions, run_cycle
from credly_ops.issuance import create_job, plan, run_job
from credly_ops.issuance.upload import badges_for_emails
from credly_ops.models import SuccessStatus
from credly_ops.rules import load_rules, load_templates
from credly_ops.timeutil import utcnow
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

RULES = [
    rule("c-1"),
    rule("c-late", active_from=T0 + timedelta(days=2)),
    rule("c-manual", automatic=False),
]


def test_a_cycle_issues_exactly_what_the_rules_say_and_the_second_issues_nothing(
    world, emulator: str, tmp_path
) -> None:
    ws = workspace(emulator, tmp_path, RULES)
    skilljar = Skilljar(ws)
    skilljar.arrive(
        done("ann@example.com", "c-1", T0),
        done("bob@example.com", "c-1", T0, SuccessStatus.FAILED),
        done("cy@example.com", "c-unknown", T0),
        done("dee@example.com", "c-late", T0 + timedelta(days=1)),  # before active_from
        done("eve@example.com", "c-manual", T0),  # manual-only: left to bulk issue
        done("fay@example.com", "c-late", T0 + timedelta(days=3)),
    )

    first = run_cycle(ws, SYSTEM, read_completions=skilljar.read)

    assert list(first.as_json()) == list(CYCLE_KEYS)
    assert first.as_json() == {
        "completions_new": 6,
        "decided": 5,
        "issued": 2,
        "updated": 0,
        "skipped": 3,
        "failed": 0,
        "reasons": {"before_active_from": 1, "new_badge": 2, "no_rule": 1, "not_passed": 1},
        "shadow": False,
        "paused": False,
    }
    assert badges(world) == {
        ("ann@example.com", "tpl-active", T0): 1,
        ("fay@example.com", "tpl-active", T0 + timedelta(days=3)): 1,
    }
    decided = {d["email"]: (d["outcome"], d["reason"]) for d in recent_decisions(ws.store)}
    assert "eve@example.com" not in decided  # the manual-only course is not decided at all
    assert decided["dee@example.com"] == ("skipped", "before_active_from")
    assert decided["ann@example.com"] == ("issued", "new_badge")

    second = run_cycle(ws, SYSTEM, read_completions=skilljar.read)
    assert (second.completions_new, second.decided, second.issued, second.failed) == (0, 0, 0, 0)
    assert sum(badges(world).values()) == 2
    assert [a for a, _, _ in audit_actions(ws, "autopilot.")] == [
        "autopilot.decide",
        "autopilot.cycle",
        "autopilot.cycle",
    ]


def test_a_bulk_job_over_the_same_completions_sends_none_of_them_again(
    world, emulator: str, tmp_path
) -> None:
    ws = workspace(emulator, tmp_path, [rule("c-1", template="tpl-dup")])
    skilljar = Skilljar(ws)
    rows = [done(f"s{i}@example.com", "c-1", T0 + timedelta(hours=i)) for i in range(6)]
    skilljar.arrive(*rows)
    assert run_cycle(ws, SYSTEM, read_completions=skilljar.read).issued == 6

    # a CSM uploads the same completions (a template that allows duplicates: only the ledger
    # and the cache stand between the bulk job and a second badge)
    numbered = [done(c.email, c.course_id, c.completed_at) for c in rows]
    numbered = [type(c)(**{**_fields(c), "row": i + 2}) for i, c in enumerate(numbered)]
    bulk_plan = plan(
        numbered,
        {r.course_id: r for r in load_rules(ws.store)},
        load_templates(ws.store),
        badges_for_emails(ws.store, {c.email for c in numbered}),
        now=utcnow(),
    )
    job_id = create_job(ws, ADMIN, bulk_plan, source_name="again.csv", source_bytes=b"again")
    progress = run_job(ws, ADMIN, job_id)
    assert progress.outcomes["issued"] == 0
    assert progress.reasons == {"already_issued": 6}
    assert sum(badges(world).values()) == 6


def _fields(c) -> dict[str, object]:
    return {name: getattr(c, name) for name in c.__slots__}


def test_a_bulk_job_first_then_the_cycle_skips_what_it_issued(
    world, emulator: str, tmp_path
) -> None:
    ws = workspace(emulator, tmp_path, [rule("c-1", template="tpl-dup")])
    completion = done("ann@example.com", "c-1", T0)
    bulk_plan = plan(
        [type(completion)(**{**_fields(completion), "row": 2})],
        {r.course_id: r for r in load_rules(ws.store)},
        load_templates(ws.store),
        {},
        now=utcnow(),
    )
    job_id = create_job(ws, ADMIN, bulk_plan, source_name="one.csv", source_bytes=b"one")
    assert run_job(ws, ADMIN, job_id).outcomes["issued"] == 1
    skilljar = Skilljar(ws)
    skilljar.arrive(completion)
    result = run_cycle(ws, SYSTEM, read_completions=skilljar.read)
    assert (result.issued, result.skipped, result.reasons) == (0, 1, {"already_issued": 1})
    assert sum(badges(world).values()) == 1


def test_a_skilljar_that_cannot_be_read_means_the_cycle_could_not_run(
    world, emulator: str, tmp_path
) -> None:
    ws = workspace(emulator, tmp_path, RULES)

    def unreachable() -> int:
        raise ConnectionError("no route to the Skilljar API")

    with pytest.raises(CycleUnavailable) as info:
        run_cycle(ws, SYSTEM, read_completions=unreachable)
    assert info.value.what == "skilljar"
    with ws.store.session() as cur:
        assert cur.execute("SELECT outcome FROM autopilot_cycles").fetchall() == [("unavailable",)]


def test_credly_unreachable_means_the_cycle_could_not_run(world, tmp_path) -> None:
    from tests.conftest import emulator_workspace

    ws = emulator_workspace("http://127.0.0.1:9/v1", tmp_path / "cache.duckdb")
    skilljar = Skilljar(ws)
    with pytest.raises(CycleUnavailable) as info:
        run_cycle(ws, SYSTEM, read_completions=skilljar.read, client_options={"max_attempts": 1})
    assert info.value.what == "credly"
    assert skilljar.reads == 0  # nothing decided against a cache that could not be refreshed


def test_a_worker_told_to_stop_sends_nothing_more_and_the_next_cycle_sends_the_rest(
    world, emulator: str, tmp_path
) -> None:
    import threading

    from credly_ops.autopilot import autopilot_status
    from credly_ops.config import SkilljarNotConfigured

    ws = workspace(emulator, tmp_path, RULES)
    skilljar = Skilljar(ws)
    skilljar.arrive(*(done(f"s{i}@example.com", "c-1", T0) for i in range(3)))
    halt = threading.Event()

    def read_then_stop() -> int:
        halt.set()  # SIGTERM arrives while the cycle runs
        return skilljar.read()

    halted = run_cycle(ws, SYSTEM, read_completions=read_then_stop, halt=halt)
    assert (halted.decided, halted.issued, halted.paused) == (3, 0, False)
    assert sum(badges(world).values()) == 0
    off = SkilljarNotConfigured(missing=("client_id",))
    assert autopilot_status(ws.store, skilljar=off).waiting == 3
    rest = run_cycle(ws, SYSTEM, read_completions=skilljar.read)
    assert (rest.decided, rest.issued) == (0, 3)
    assert sum(badges(world).values()) == 3


def test_a_later_completion_renews_the_badge_once(world, emulator: str, tmp_path) -> None:
    from credly_ops.config import DEMO_ORG_ID
    from credly_ops.issuance import add_months
    from credly_ops.models import IssueMethod

    ws = workspace(
        emulator,
        tmp_path,
        [rule("c-r", method=IssueMethod.ISSUE_OR_UPDATE, expiration_months=12)],
    )
    skilljar = Skilljar(ws)
    skilljar.arrive(done("ann@example.com", "c-r", T0))
    assert run_cycle(ws, SYSTEM, read_completions=skilljar.read).issued == 1
    later = T0 + timedelta(days=30)
    skilljar.arrive(done("ann@example.com", "c-r", later))
    renewal = run_cycle(ws, SYSTEM, read_completions=skilljar.read)
    assert (renewal.issued, renewal.updated, renewal.reasons) == (0, 1, {"renewal": 1})
    again = run_cycle(ws, SYSTEM, read_completions=skilljar.read)
    assert (again.decided, again.updated) == (0, 0)
    live = [b for b in world.badges_for(DEMO_ORG_ID) if b["state"] in ("pending", "accepted")]
    assert len(live) == 1
    assert live[0]["issued_at"] == T0  # a renewal keeps the original issued_at
    assert live[0]["expires_at"] == add_months(later, 12)

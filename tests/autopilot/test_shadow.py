"""Shadow mode: decides and records, sends nothing, and compares with what Credly holds."""

from __future__ import annotations

from datetime import timedelta

from credly_ops.autopilot import (
    read_state,
    recent_decisions,
    run_cycle,
    set_shadow,
    shadow_comparison,
)
from credly_ops.autopilot.shadow import BADGE_BUT_WOULD_SKIP, WOULD_ISSUE_NO_BADGE
from credly_ops.config import DEMO_ORG_ID
from credly_ops.credly.client import CredlyClient
from credly_ops.models import IssueRequest
from credly_ops.sync import sync
from tests.autopilot.helpers import ADMIN, INSTALLED, SYSTEM, T0, Skilljar, badges, done, rule
from tests.autopilot.helpers import workspace as make_workspace
from tests.conftest import TEST_TOKEN


def native_issue(emulator: str, email: str, at) -> None:
    """Skilljar's own integration issues a badge (the one credly-ops shadows)."""
    with CredlyClient(base_url=emulator, org_id=DEMO_ORG_ID, token=TEST_TOKEN) as client:
        client.issue(
            IssueRequest(
                recipient_email=email,
                issued_to_first_name="Stu",
                issued_to_last_name="Dent",
                badge_template_id="tpl-active",
                issued_at=at,
            )
        )


def test_shadow_mode_sends_nothing_and_compares_with_what_was_issued(
    world, emulator: str, tmp_path
) -> None:
    ws = make_workspace(emulator, tmp_path, [rule("c-1")])
    before_install = INSTALLED - timedelta(days=3)
    native_issue(emulator, "ann@example.com", T0)
    native_issue(emulator, "cy@example.com", before_install)  # the native one issued it anyway
    skilljar = Skilljar(ws)
    skilljar.arrive(
        done("ann@example.com", "c-1", T0),
        done("bob@example.com", "c-1", T0 + timedelta(hours=1)),
        done("cy@example.com", "c-1", before_install),
    )
    set_shadow(ws.store, ADMIN, True)
    assert read_state(ws.store).shadow

    result = run_cycle(ws, SYSTEM, read_completions=skilljar.read)

    assert result.shadow and not result.paused
    assert (result.decided, result.issued, result.skipped, result.failed) == (3, 1, 2, 0)
    assert result.reasons == {"already_issued": 1, "before_active_from": 1, "new_badge": 1}
    assert sum(badges(world).values()) == 2  # nothing sent
    with ws.store.session() as cur:
        assert cur.execute("SELECT count(*) FROM ledger").fetchone() == (0,)
    assert {d["email"]: d["outcome"] for d in recent_decisions(ws.store)}["bob@example.com"] == (
        "would_issue"
    )

    comparison = shadow_comparison(ws.store)
    assert (comparison.agree, comparison.total) == (1, 3)
    assert comparison.sentence() == "credly-ops agrees with what was issued on 1 of 3 completions"
    found = {d["email"]: (d["difference"], d["reason"]) for d in comparison.differences}
    assert found == {
        "bob@example.com": (WOULD_ISSUE_NO_BADGE, "new_badge"),
        "cy@example.com": (BADGE_BUT_WOULD_SKIP, "before_active_from"),
    }

    # the native integration catches up with bob; a second shadow cycle sees it (sync first)
    native_issue(emulator, "bob@example.com", T0 + timedelta(hours=1))
    again = run_cycle(ws, SYSTEM, read_completions=skilljar.read)
    assert (again.decided, again.issued) == (0, 0)
    assert (shadow_comparison(ws.store).agree, shadow_comparison(ws.store).total) == (2, 3)


def test_shadow_decisions_do_not_count_as_decided_for_live_mode(
    world, emulator: str, tmp_path
) -> None:
    ws = make_workspace(emulator, tmp_path, [rule("c-1")])
    skilljar = Skilljar(ws)
    skilljar.arrive(done("ann@example.com", "c-1", T0), done("bob@example.com", "c-1", T0))
    assert run_cycle(ws, SYSTEM, read_completions=skilljar.read, shadow=True).issued == 2
    assert sum(badges(world).values()) == 0

    live = run_cycle(ws, SYSTEM, read_completions=skilljar.read)
    assert (live.shadow, live.decided, live.issued) == (False, 2, 2)
    assert sum(badges(world).values()) == 2
    with ws.client() as client:
        sync(client, ws.store, actor=ADMIN)
    # what credly-ops issued itself now agrees with the shadow decisions
    assert shadow_comparison(ws.store).agree == 2

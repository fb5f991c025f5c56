"""The Student preview page, rendered headless with Streamlit's AppTest on the demo world."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import ui
from credly_ops.access import Actor, Role
from credly_ops.config import DEMO_ORG_ID
from credly_ops.lms import save_completions
from credly_ops.models import BadgeRule, Completion, SuccessStatus
from credly_ops.rules import replace_rules
from credly_ops.store import SETTING_BADGES_TABLE_ENABLED, Store
from credly_ops.sync import sync
from credly_ops.workspace import Workspace
from tests.conftest import TEST_TOKEN

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "student_preview.py")
ADMIN = Actor("alice.admin", Role.ADMIN)
CSM = Actor("carl.csm", Role.CSM)
VIEWER = Actor("vera.viewer", Role.VIEWER)


@pytest.fixture(autouse=True)
def _fresh_workspace():
    """Each test builds the app's one workspace from its own environment."""
    ui.workspace.clear()
    yield
    ui.workspace.clear()


def rows(store: Store, sql: str, params: list | None = None) -> list[tuple]:
    with store.session() as cur:
        return cur.execute(sql, params or []).fetchall()


def open_page(email: str | None = None, actor: Actor = ADMIN) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["actor"] = actor
    at.run()
    assert not at.exception, at.exception
    if email is not None:
        at.text_input(key="student_query").set_value(email).run()
        assert not at.exception, at.exception
    return at


def preview(at: AppTest) -> str:
    [block] = at.html
    return block.value


def explanations(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def labels(at: AppTest) -> list[str]:
    return [b.label for b in at.button]


@pytest.fixture(scope="module")
def students(demo_site) -> dict[str, str]:
    """Demo students found by SQL: one with pending, accepted and revoked badges; one with
    completions and no badge; one who also holds another organization's badge."""
    store = Store(demo_site.db_path)
    [(rich,)] = rows(
        store,
        "SELECT recipient_email FROM badges GROUP BY 1 HAVING "
        "count(*) FILTER (state = 'pending') > 0 AND count(*) FILTER (state = 'accepted') > 0 "
        "AND count(*) FILTER (state = 'revoked') > 0 ORDER BY 1 LIMIT 1",
    )
    [(none,)] = rows(
        store,
        "SELECT email FROM completions WHERE email NOT IN (SELECT recipient_email FROM badges) "
        "ORDER BY 1 LIMIT 1",
    )
    ours = {b["recipient_email"] for b in demo_site.demo.badges}
    shared = sorted(
        b["recipient_email"]
        for b in demo_site.demo.other_org_badges
        if b["recipient_email"] in ours
    )[0]
    return {"rich": rich, "none": none, "shared": shared}


def test_student_with_pending_accepted_and_revoked_badges(demo_site, monkeypatch, students) -> None:
    demo_site.env(monkeypatch)
    email = students["rich"]
    at = open_page(f"  {email.upper()} ")
    html = preview(at)
    store = Store(demo_site.db_path)
    live = rows(
        store,
        "SELECT id, state, accept_badge_url FROM badges WHERE recipient_email = ? "
        "AND state IN ('pending', 'accepted')",
        [email],
    )
    hidden = rows(
        store,
        "SELECT id FROM badges WHERE recipient_email = ? AND state NOT IN ('pending', 'accepted')",
        [email],
    )
    assert "<h3>Badges Earned</h3>" in html
    assert html.index("Badges Earned") < html.index("Registrations")
    assert html.count("<tr data-badge-id=") == len(live)
    for badge_id, state, accept in live:
        assert f'data-badge-id="{badge_id}"' in html
        if state == "pending":
            assert f'href="{accept}"' in html
    assert 'href="https://www.credly.com/earner/earned"' in html
    assert ">Accept</a>" in html and ">View on Credly</a>" in html
    assert hidden and all(badge_id not in html for (badge_id,) in hidden)
    said = explanations(at)
    assert "revoked on" in said and "reminder" in said
    # the admin sees the support actions
    assert "Refresh from Credly" in labels(at) and "Revoke" in labels(at)


def test_student_without_badges_has_no_table(demo_site, monkeypatch, students) -> None:
    demo_site.env(monkeypatch)
    at = open_page(students["none"])
    html = preview(at)
    assert "Badges Earned" not in html
    assert "<h3>Registrations</h3>" in html
    assert "Completed" in explanations(at) or "has no badge" in explanations(at)
    assert "Revoke" not in labels(at)


def test_another_organizations_badge_is_not_shown(demo_site, monkeypatch, students) -> None:
    demo_site.env(monkeypatch)
    html = preview(open_page(students["shared"]))
    assert "Badges Earned" in html
    assert "Contoso" not in html


def test_suggestions_from_a_fragment(demo_site, monkeypatch, students) -> None:
    demo_site.env(monkeypatch)
    email = students["rich"]
    fragment = email.split("@")[0][:-1].upper()
    at = open_page(fragment)
    [pick] = [s for s in at.selectbox if s.key == "student_pick"]
    assert email in pick.options
    assert all(fragment.lower() in option for option in pick.options)
    pick.set_value(email).run()
    assert f'<p class="co-email">{email}</p>' in preview(at)
    # a fragment that matches nobody says so
    at.text_input(key="student_query").set_value("zzz-nobody-zzz").run()
    assert not at.html and any("No student" in i.value for i in at.info)


def test_disabled_table_hides_it(demo_site, monkeypatch, tmp_path: Path, students) -> None:
    db = demo_site.copy_cache(tmp_path / "c.duckdb")
    demo_site.env(monkeypatch, db)
    Store(db).set_setting(SETTING_BADGES_TABLE_ENABLED, "false", actor=ADMIN)
    at = open_page(students["rich"])
    assert "Badges Earned" not in preview(at)
    assert "Registrations" in preview(at)
    assert any("disabled in Settings" in c.value for c in at.caption)


def test_hostile_names_are_inert(demo_site, monkeypatch, tmp_path: Path) -> None:
    db = demo_site.copy_cache(tmp_path / "c.duckdb")
    demo_site.env(monkeypatch, db)
    store = Store(db)
    hostile = "<script>alert('pwned')</script>"
    when = datetime(2025, 6, 1, 12, tzinfo=UTC)
    with store.transaction() as cur:
        save_completions(
            cur,
            [
                Completion(
                    email="mallory@example.com",
                    first_name=hostile,
                    last_name="<b>x</b>",
                    course_id="evil-course",
                    course_title='<img src=x onerror="alert(1)">',
                    completed_at=when,
                    status=SuccessStatus.PASSED,
                )
            ],
            source="test",
            loaded_at=when,
        )
        cur.execute(
            "INSERT INTO badges (id, template_id, template_name, recipient_email, state, "
            "issued_at, badge_url, accept_badge_url, image_url, synced_at) VALUES "
            "('evil-badge', 'tpl-x', ?, 'mallory@example.com', 'pending', ?, ?, ?, ?, ?)",
            [
                hostile,
                when.replace(tzinfo=None),
                "javascript:alert(2)",
                "javascript:alert(3)",
                'https://img.example/a.png" onload="alert(4)',
                when.replace(tzinfo=None),
            ],
        )
    at = open_page("mallory@example.com")
    html = preview(at)
    assert "<script>" not in html and "<b>x</b>" not in html and "<img src=x" not in html
    assert "javascript:" not in html
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in html
    assert 'onload="alert(4)' not in html
    # the staff explanations are Markdown: the same text must stay literal there too
    said = explanations(at)
    assert "img src=x" in said and re.search(r"(?<!\\)<", said) is None


@pytest.fixture
def small_app(world, emulator: str, tmp_path: Path, monkeypatch) -> Workspace:
    """The page over a small emulator world and its own cache (for actions that change Credly)."""
    db = tmp_path / "small.duckdb"
    for key, value in {
        "CREDLY_ENV": "sandbox",
        "CREDLY_ORG_ID": DEMO_ORG_ID,
        "CREDLY_API_TOKEN": TEST_TOKEN,
        "CREDLY_API_URL": emulator,
        "CREDLY_OPS_DB": str(db),
    }.items():
        monkeypatch.setenv(key, value)
    from credly_ops.config import load_settings

    ws = Workspace(load_settings())
    replace_rules(
        ws.store,
        [BadgeRule(course_id="c1", course_title="Course One", template_id="tpl-active")],
        actor=ADMIN,
    )
    done = datetime(2025, 4, 2, 15, 30, tzinfo=UTC)
    with ws.store.transaction() as cur:
        save_completions(
            cur,
            [
                Completion(
                    email="grace@example.com",
                    first_name="Grace",
                    last_name="Hopper",
                    course_id="c1",
                    course_title="Course One",
                    completed_at=done,
                    status=SuccessStatus.PASSED,
                )
            ],
            source="test",
            loaded_at=done + timedelta(hours=1),
        )
    with ws.client() as client:
        sync(client, ws.store, full=True)
    return ws


def test_reissue_then_revoke_from_the_page(small_app: Workspace, world) -> None:
    viewer = open_page("grace@example.com", actor=VIEWER)
    assert "should have been issued" in explanations(viewer)
    assert "Re-issue this badge" not in labels(viewer)
    assert any("A CSM or an admin can re-issue" in c.value for c in viewer.caption)

    csm = open_page("grace@example.com", actor=CSM)
    csm.button(key="reissue-0").click().run()
    assert not csm.exception, csm.exception
    assert any("Badge issued: Active Badge." in s.value for s in csm.success)
    [badge] = [
        b for b in world.badges_for(DEMO_ORG_ID) if b["recipient_email"] == "grace@example.com"
    ]
    assert 'data-state="pending"' in preview(csm)
    assert "Revoke" not in labels(csm)  # a CSM may not revoke

    admin = open_page("grace@example.com", actor=ADMIN)
    admin.text_input(key="revoke_reason").set_value("Issued in error")
    [submit] = [b for b in admin.button if b.label == "Revoke"]
    submit.click().run()
    assert not admin.exception, admin.exception
    assert world.badge_record(DEMO_ORG_ID, badge["id"])["state"] == "revoked"
    assert "Badges Earned" not in preview(admin)
    assert "revoked on" in explanations(admin)
    audit = rows(
        small_app.store,
        "SELECT actor, action, outcome FROM audit WHERE action LIKE 'badge.%' ORDER BY id",
    )
    assert audit == [("carl.csm", "badge.reissue", "ok"), ("alice.admin", "badge.revoke", "ok")]


def test_refresh_from_credly_rereads_the_student(
    demo_site, monkeypatch, tmp_path: Path, students
) -> None:
    db = demo_site.copy_cache(tmp_path / "c.duckdb")
    demo_site.env(monkeypatch, db)
    email = students["rich"]
    store = Store(db)
    [(count,)] = rows(store, "SELECT count(*) FROM badges WHERE recipient_email = ?", [email])
    with store.transaction() as cur:
        cur.execute("DELETE FROM badges WHERE recipient_email = ?", [email])
    at = open_page(email, actor=VIEWER)
    assert "Badges Earned" not in preview(at)
    [refresh] = [b for b in at.button if b.label == "Refresh from Credly"]
    refresh.click().run()
    assert not at.exception, at.exception
    assert "<h3>Badges Earned</h3>" in preview(at)
    assert rows(store, "SELECT count(*) FROM badges WHERE recipient_email = ?", [email]) == [
        (count,)
    ]
    assert any(f"Read {count} badge" in s.value for s in at.success)
    assert rows(store, "SELECT actor, outcome FROM audit WHERE action = 'student.refresh'") == [
        ("vera.viewer", "ok")
    ]

"""The Settings page, rendered headless with Streamlit's AppTest on the demo world."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import ui
from credly_ops.access import Actor, Role
from credly_ops.config import DEMO_API_TOKEN
from credly_ops.redaction import MASK
from credly_ops.rules import load_rules, rule_row, rules_csv
from credly_ops.store import SETTING_BADGES_TABLE_ENABLED, Store, from_db_time
from credly_ops.timeutil import utcnow

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "settings.py")
ADMIN = Actor("alice.admin", Role.ADMIN)


@pytest.fixture(autouse=True)
def _fresh_workspace():
    ui.workspace.clear()
    yield
    ui.workspace.clear()


def open_page(actor: Actor = ADMIN) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["actor"] = actor
    at.run()
    assert not at.exception, at.exception
    return at


def button(at: AppTest, label: str):
    [found] = [b for b in at.button if b.label == label]
    return found


def rules_audit(store: Store) -> list[tuple]:
    with store.session() as cur:
        return cur.execute(
            "SELECT actor, role, outcome, occurred_at FROM audit WHERE action = 'rules.replace' "
            "ORDER BY id"
        ).fetchall()


def rule_rows(store: Store) -> list[dict[str, object]]:
    return [rule_row(r) for r in load_rules(store)]


def page_text(at: AppTest) -> str:
    parts = [t.value.to_string() for t in at.dataframe]
    for kind in ("markdown", "caption", "info", "success", "error", "warning", "code"):
        parts.extend(str(e.value) for e in at.get(kind))
    parts.extend(str(w.value) for w in at.text_input)
    return "\n".join(parts)


@pytest.fixture
def copied(demo_site, monkeypatch, tmp_path: Path) -> Store:
    db = demo_site.copy_cache(tmp_path / "c.duckdb")
    demo_site.env(monkeypatch, db)
    return Store(db)


def test_connection_facts_masked_and_test_connection(demo_site, monkeypatch) -> None:
    demo_site.env(monkeypatch)
    at = open_page()
    facts = at.dataframe[0]
    values = facts.value["Value"].tolist()
    assert values[:2] == ["demo", "5f6d0c61-8a8a-4a53-9c1e-0d3c1ab7de00"]
    assert values[3] == MASK + DEMO_API_TOKEN[-4:]
    button(at, "Test connection").click().run()
    assert not at.exception, at.exception
    [ok] = at.success
    assert ok.value == "Connected: 9 badge templates found (7 active, 1 archived, 1 draft)."
    assert DEMO_API_TOKEN not in page_text(at)
    assert "credly-ops sync" in at.code[0].value  # how to schedule the sync
    assert any("Last sync" in m.value for m in at.markdown)
    assert "Export rules as CSV" in [d.label for d in at.get("download_button")]


@pytest.mark.parametrize("role", [Role.VIEWER, Role.CSM])
def test_non_admins_cannot_open_settings(demo_site, monkeypatch, role: Role) -> None:
    demo_site.env(monkeypatch)
    at = open_page(Actor("someone", role))
    assert any("does not include this page" in e.value for e in at.error)
    assert not at.toggle
    assert not [b for b in at.button if b.label in ("Save rules", "Save name")]


def test_table_switch_is_saved_and_audited(copied: Store) -> None:
    at = open_page()
    assert at.toggle[0].value is True
    at.toggle[0].set_value(False).run()
    assert not at.exception, at.exception
    assert copied.get_setting(SETTING_BADGES_TABLE_ENABLED) == "false"
    assert any("turned off" in s.value for s in at.success)
    assert at.toggle[0].value is False
    with copied.session() as cur:
        audit = cur.execute(
            "SELECT actor, role, target, outcome, detail FROM audit WHERE action = 'setting.change'"
        ).fetchall()
    assert audit == [
        (
            "alice.admin",
            "admin",
            SETTING_BADGES_TABLE_ENABLED,
            "ok",
            '{"from": null, "to": "false"}',
        )
    ]


def test_bad_rules_file_names_rows_and_fields_and_saves_nothing(copied: Store) -> None:
    before, audited = rule_rows(copied), rules_audit(copied)
    data = (
        b"course_id,course_title,template_id,method,expiration_months,expiration_days\n"
        b"c1,One," + load_rules(copied)[0].template_id.encode() + b",issue,12,0\n"
        b"c2,Two,no-such-template,issue,0,0\n"
        b"c3,Three," + load_rules(copied)[0].template_id.encode() + b",replace,0,-5\n"
    )
    at = open_page()
    at.get("file_uploader")[0].set_value(("rules.csv", data, "text/csv")).run()
    button(at, "Replace the rules with this file").click().run()
    assert not at.exception, at.exception
    [error] = at.error
    assert error.value.startswith("Nothing was saved.")
    assert "row 3, template_id: unknown template 'no-such-template'" in error.value
    assert "row 4, method: 'replace' is not one of issue, update, issue_or_update" in error.value
    assert "row 4, expiration_days: must not be negative" in error.value
    assert rule_rows(copied) == before
    assert rules_audit(copied) == audited


def test_good_rules_file_replaces_the_rules_with_an_audit_row(copied: Store) -> None:
    rules = load_rules(copied)
    changed = [r.model_copy(update={"expiration_days": 7}) for r in rules[:3]]
    audited = len(rules_audit(copied))
    at = open_page()
    at.get("file_uploader")[0].set_value(("rules.csv", rules_csv(changed), "text/csv")).run()
    before = utcnow()
    button(at, "Replace the rules with this file").click().run()
    after = utcnow()
    assert not at.exception, at.exception
    assert any("Imported 3 badge rules from rules.csv" in s.value for s in at.success)
    assert [(r.course_id, r.expiration_days) for r in load_rules(copied)] == [
        (r.course_id, 7) for r in changed
    ]
    audit = rules_audit(copied)
    assert len(audit) == audited + 1
    actor, role, outcome, occurred_at = audit[-1]
    assert (actor, role, outcome) == ("alice.admin", "admin", "ok")
    assert before <= from_db_time(occurred_at) <= after  # stamped when the rules were replaced


def test_saving_the_editor_keeps_every_rule(copied: Store) -> None:
    before = rule_rows(copied)
    audited = len(rules_audit(copied))
    at = open_page()
    button(at, "Save rules").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert any(f"Saved {len(before)} badge rules." in s.value for s in at.success)
    assert rule_rows(copied) == before
    assert len(rules_audit(copied)) == audited + 1


def test_integration_name_is_saved(copied: Store) -> None:
    at = open_page()
    at.text_input[0].set_value("Northwind Credly Integration")
    button(at, "Save name").click().run()
    assert not at.exception, at.exception
    assert copied.get_setting("integration_name") == "Northwind Credly Integration"
    assert at.text_input[0].value == "Northwind Credly Integration"

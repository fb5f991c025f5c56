"""Settings checks: the connection test, and rule saves validated before anything is stored."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest

from credly_ops import connection
from credly_ops.access import Actor, PermissionDenied, Role
from credly_ops.config import DEMO_ORG_ID
from credly_ops.rules import load_rules, read_rules_csv, rules_csv
from credly_ops.store import SETTING_BADGES_TABLE_ENABLED
from credly_ops.sync import sync
from credly_ops.workspace import Workspace
from tests.conftest import TEST_TOKEN, emulator_workspace

ADMIN = Actor("alice.admin", Role.ADMIN)
GOOD_ROW = {
    "course_id": "c1",
    "course_title": "Course One",
    "template_id": "tpl-active",
    "method": "issue",
    "expiration_months": 12,
    "expiration_days": 0,
    "require_pass": "true",
    "active_from": datetime(2025, 1, 1, tzinfo=UTC),
}


def workspace(tmp_path: Path, api_url: str, token: str = TEST_TOKEN) -> Workspace:
    return emulator_workspace(api_url, tmp_path / "settings.duckdb", token)


@pytest.fixture
def ws(world, emulator: str, tmp_path: Path) -> Workspace:
    w = workspace(tmp_path, emulator)
    with w.client() as client:
        sync(client, w.store, full=True)
    return w


def audit_rows(ws: Workspace) -> list[tuple]:
    with ws.store.session() as cur:
        return cur.execute(
            "SELECT actor, role, action, outcome, occurred_at FROM audit "
            "WHERE action IN ('rules.replace', 'setting.change') ORDER BY id"
        ).fetchall()


# -- test connection -------------------------------------------------------------------------


def test_connection_reports_templates_by_state(world, emulator: str, tmp_path: Path) -> None:
    report = connection.check_connection(workspace(tmp_path, emulator))
    assert report.ok
    assert report.templates == 4
    assert report.by_state == {"active": 2, "archived": 1, "draft": 1}
    assert report.summary == "Connected: 4 badge templates found (2 active, 1 archived, 1 draft)."
    assert report.as_json()["organization"] == DEMO_ORG_ID


def test_connection_names_the_exact_error_never_the_token(
    world, emulator: str, tmp_path: Path
) -> None:
    wrong = "wrong-token-0123456789-SECRET"
    report = connection.check_connection(workspace(tmp_path, emulator, token=wrong))
    assert not report.ok
    assert (report.error_class, report.error_kind) == ("InvalidToken", "invalid_token")
    assert report.summary.startswith("Connection failed: InvalidToken: Credly answered 401")
    text = repr(report) + report.summary + str(report.as_json())
    assert wrong not in text and TEST_TOKEN not in text


def test_connection_to_nothing_is_a_network_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ws = workspace(tmp_path, f"http://127.0.0.1:{port}/v1")
    report = connection.check_connection(ws)
    assert not report.ok
    assert report.error_class == "ConnectFailed" and report.error_kind == "network"
    assert TEST_TOKEN not in report.summary


# -- rule saves ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "row_field", "fragment"),
    [
        ({"template_id": "tpl-nope"}, "row 2, template_id", "unknown template 'tpl-nope'"),
        ({"method": "reissue"}, "row 2, method", "'reissue' is not one of issue, update"),
        ({"expiration_months": -3}, "row 2, expiration_months", "must not be negative"),
        ({"expiration_days": "-1"}, "row 2, expiration_days", "must not be negative"),
        ({"course_id": "c1"}, "row 2, course_id", "already has a rule"),
    ],
)
def test_a_bad_rule_is_named_by_row_and_field_and_nothing_is_saved(
    ws: Workspace, change: dict, row_field: str, fragment: str
) -> None:
    before = load_rules(ws.store)
    second = {**GOOD_ROW, "course_id": "c2", "template_id": "tpl-dup", **change}
    check = connection.save_rules(ws, [GOOD_ROW, second], actor=ADMIN)
    assert not check.ok
    messages = [str(e) for e in check.errors]
    assert any(m.startswith(row_field) and fragment in m for m in messages), messages
    assert load_rules(ws.store) == before
    assert audit_rows(ws) == []  # a rejected save leaves no audit row


def test_a_good_save_is_stored_and_audited_with_who_and_when(ws: Workspace) -> None:
    archived = {**GOOD_ROW, "course_id": "c3", "template_id": "tpl-archived"}
    check = connection.save_rules(ws, [GOOD_ROW, archived], actor=ADMIN)
    assert check.ok
    assert [str(w) for w in check.warnings] == [
        "row 2, template_id: template 'Old Badge' is archived: completions will be skipped "
        "until it is active"
    ]
    rules = load_rules(ws.store)
    assert [(r.course_id, r.template_name, r.expiration_months) for r in rules] == [
        ("c1", "Active Badge", 12),
        ("c3", "Old Badge", 12),
    ]
    [(actor, role, action, outcome, when)] = audit_rows(ws)
    assert (actor, role, action, outcome) == ("alice.admin", "admin", "rules.replace", "ok")
    assert abs((datetime.now(UTC).replace(tzinfo=None) - when).total_seconds()) < 60


def test_csv_import_rows_are_numbered_as_in_the_file(ws: Workspace) -> None:
    data = (
        b"course_id,course_title,template_id,method,expiration_months\n"
        b"c1,One,tpl-active,issue,0\n"
        b"c2,Two,tpl-ghost,issue,0\n"
        b"c3,Three,tpl-dup,sometimes,-2\n"
    )
    check = connection.save_rules(ws, read_rules_csv(data), actor=ADMIN, first_row=2)
    assert [str(e) for e in check.errors] == [
        "row 3, template_id: unknown template 'tpl-ghost': the organization has no such badge "
        "template (sync, or check the id)",
        "row 4, method: 'sometimes' is not one of issue, update, issue_or_update",
        "row 4, expiration_months: must not be negative",
    ]
    assert check.warnings == [] and load_rules(ws.store) == []
    # export → import round-trips
    good = connection.save_rules(ws, [GOOD_ROW], actor=ADMIN)
    assert good.ok
    again = connection.save_rules(
        ws, read_rules_csv(rules_csv(load_rules(ws.store))), actor=ADMIN, first_row=2
    )
    assert again.ok and load_rules(ws.store) == good.rules


@pytest.mark.parametrize("role", [Role.VIEWER, Role.CSM])
def test_only_admins_change_rules_or_settings(ws: Workspace, role: Role) -> None:
    someone = Actor(f"{role.value}-user", role)
    with pytest.raises(PermissionDenied):
        connection.save_rules(ws, [GOOD_ROW], actor=someone)
    with pytest.raises(PermissionDenied):
        ws.store.set_setting(SETTING_BADGES_TABLE_ENABLED, "false", actor=someone)
    assert load_rules(ws.store) == []
    assert ws.store.get_setting(SETTING_BADGES_TABLE_ENABLED) is None
    assert audit_rows(ws) == []


def test_before_any_sync_every_template_is_unknown() -> None:
    check = connection.check_rule_rows([GOOD_ROW, {**GOOD_ROW, "course_id": "c2"}], {})
    assert [(e.row, e.field) for e in check.errors] == [(1, "template_id"), (2, "template_id")]
    assert check.rules == [] and check.warnings == []

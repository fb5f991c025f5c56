"""Hostile upload content is inert everywhere it is stored, shown or exported.

A completions file whose names and courses carry HTML, SQL and spreadsheet formulas goes
through the reader, the plan, a real bulk-issue job against the emulator, the cache, the
student preview, the report, the rules export and the audit export.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from credly_ops.access import Actor, Role
from credly_ops.audit import read_audit
from credly_ops.config import DEMO_ORG_ID
from credly_ops.exports import FORMULA_TRIGGERS, is_plain_number, to_csv_bytes
from credly_ops.issuance import create_job_from, job_report, prepare, report_csv, run_job
from credly_ops.models import BadgeRule
from credly_ops.profile import load_profile, preview_html
from credly_ops.rules import replace_rules, rules_csv
from credly_ops.sync import sync
from credly_ops.workspace import Workspace
from tests.conftest import TEST_TOKEN, emulator_workspace

ADMIN = Actor("admin@example.com", Role.ADMIN)
SCRIPT = "<script>alert('x')</script>"
SQL = "Robert'); DROP TABLE badges; --"
FORMULA = '=HYPERLINK("http://evil.example","click")'
COURSE = "c-1"


@pytest.fixture
def ws(world, emulator: str, tmp_path: Path) -> Workspace:
    workspace = emulator_workspace(emulator, tmp_path / "cache.duckdb")
    with workspace.client() as client:
        sync(client, workspace.store, actor=ADMIN)
    replace_rules(
        workspace.store,
        [BadgeRule(course_id=COURSE, course_title=FORMULA, template_id="tpl-active")],
        actor=ADMIN,
    )
    return workspace


def hostile_file() -> bytes:
    rows = [
        ["email", "first name", "last name", "course id", "course title", "completed at"],
        ["mallory@example.com", SCRIPT, SQL, COURSE, FORMULA, "2025-04-01 10:00"],
        ["@SUM(A1)", "+cmd", "-2+3", COURSE, "x", "2025-04-01 10:00"],
    ]
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode()


def assert_safe_csv(data: bytes) -> None:
    for row in csv.reader(io.StringIO(data.decode("utf-8-sig"))):
        for cell in row:
            assert not cell.startswith(FORMULA_TRIGGERS) or is_plain_number(cell), cell


def test_hostile_content_is_inert_end_to_end(ws: Workspace, world) -> None:
    prepared = prepare(ws, ADMIN, hostile_file(), source_name=f"{SCRIPT}.csv")
    # the bad email is a row error naming the row and the field, not a crash
    [error] = prepared.file.errors
    assert (error.row, error.field) == (3, "email")
    job_id = create_job_from(ws, ADMIN, prepared)
    progress = run_job(ws, ADMIN, job_id)
    assert progress.by_status.get("succeeded") == 1

    # Credly received the names as plain text, and nothing was dropped from the cache
    [badge] = world.badges_for(DEMO_ORG_ID)
    assert (badge["first_name"], badge["last_name"]) == (SCRIPT, SQL)
    with ws.store.session() as cur:
        assert cur.execute("SELECT count(*) FROM badges").fetchone() == (1,)
        assert cur.execute(
            "SELECT first_name, last_name FROM completions WHERE email = 'mallory@example.com'"
        ).fetchone() == (SCRIPT, SQL)

    # the preview escapes every value
    html = preview_html(load_profile(ws.store, "mallory@example.com", web_url=ws.settings.web_url))
    assert SCRIPT not in html
    assert "&lt;script&gt;" in html
    assert "<script" not in html.lower().replace("&lt;script", "")

    # every export neutralises formulas and keeps the text
    report = report_csv(job_report(ws.store, job_id))
    assert_safe_csv(report)
    errors = to_csv_bytes(
        [{"row": e.row, "column": e.column, "value": e.value} for e in prepared.file.errors]
    )
    assert_safe_csv(errors)
    assert "'@SUM(A1)" in errors.decode("utf-8-sig")
    assert_safe_csv(rules_csv([BadgeRule(course_id=COURSE, course_title=FORMULA, template_id="t")]))
    audit = to_csv_bytes(read_audit(ws.store, ADMIN))
    assert_safe_csv(audit)
    assert TEST_TOKEN.encode() not in report + audit


def test_the_upload_name_is_only_ever_a_parameter(ws: Workspace) -> None:
    prepared = prepare(ws, ADMIN, hostile_file(), source_name="x'); DROP TABLE jobs; --.csv")
    job_id = create_job_from(ws, ADMIN, prepared)
    with ws.store.session() as cur:
        assert cur.execute("SELECT source_name FROM jobs WHERE id = ?", [job_id]).fetchone() == (
            "x'); DROP TABLE jobs; --.csv",
        )
        assert cur.execute("SELECT count(*) FROM jobs").fetchone() == (1,)

"""``credly-ops issue``: plan, confirm, send, report, resume — driven through the real CLI."""

from __future__ import annotations

import io
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from credly_ops.access import Actor, Role
from credly_ops.cli import main
from credly_ops.config import DEMO_ORG_ID, load_settings
from credly_ops.credly.client import CredlyClient
from credly_ops.exports import read_csv_report
from credly_ops.issuance import JOB_INTERRUPTED, REPORT_COLUMNS, job_progress
from credly_ops.models import BadgeRule
from credly_ops.rules import replace_rules
from credly_ops.store import Store
from credly_ops.sync import sync
from tests.conftest import TEST_TOKEN

ADMIN = Actor("admin@example.com", Role.ADMIN)
T0 = datetime(2024, 5, 1, 9, 41, tzinfo=UTC)
JSON_KEYS = {"job_id", "rows", "issued", "updated", "skipped", "invalid", "failed", "reasons"}


@pytest.fixture
def db(world, emulator: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI's environment: the test emulator, a cache with templates and one rule."""
    path = tmp_path / "cache.duckdb"
    monkeypatch.setenv("CREDLY_ENV", "sandbox")
    monkeypatch.setenv("CREDLY_ORG_ID", DEMO_ORG_ID)
    monkeypatch.setenv("CREDLY_API_TOKEN", TEST_TOKEN)
    monkeypatch.setenv("CREDLY_API_URL", emulator)
    monkeypatch.setenv("CREDLY_OPS_DB", str(path))
    store = Store(path)
    with CredlyClient(base_url=emulator, org_id=DEMO_ORG_ID, token=TEST_TOKEN) as client:
        sync(client, store, actor=ADMIN)
    replace_rules(
        store,
        # no duration: these 2024 backfills must not be already expired (rule 11 skips those)
        [BadgeRule(course_id="c-1", template_id="tpl-dup")],
        actor=ADMIN,
    )
    return path


def completion_file(tmp_path: Path, rows: int = 4, *, name: str = "completions.csv") -> Path:
    lines = ["Email,First Name,Last Name,Course ID,Completed At"]
    for i in range(rows):
        when = T0 + timedelta(days=i)
        lines.append(f"s{i}@example.com,Stu,Dent,c-1,{when:%Y-%m-%d %H:%M:%S}")
    lines.append("s99@example.com,Stu,Dent,other-course,2024-05-01")
    lines.append("not-an-email,Stu,Dent,c-1,2024-05-01")
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class Terminal(io.StringIO):
    """Standard input or error that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["issue", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def jobs_in(db: Path) -> list[tuple[Any, ...]]:
    with Store(db).session() as cur:
        return cur.execute("SELECT id, status FROM jobs ORDER BY created_at").fetchall()


def test_issue_yes_json_report_sends_once_and_reports_every_row(
    db: Path, world, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "out.csv"
    code, out, err = run_cli(
        capsys, str(completion_file(tmp_path)), "--yes", "--json", "--report", str(report)
    )
    assert code == 0, err
    result = json.loads(out)
    assert set(result) == JSON_KEYS
    assert result["job_id"].startswith("bulk-")
    assert (result["rows"], result["issued"], result["skipped"], result["invalid"]) == (6, 4, 1, 1)
    assert (result["updated"], result["failed"]) == (0, 0)
    assert result["reasons"] == {"new_badge": 4, "no_rule": 1, "bad_email": 1}
    assert f"job {result['job_id']}" in err  # the id is said as soon as the job exists
    assert "4 to issue" in err  # the plan summary (on stderr, since stdout carries JSON)

    badges = world.badges_for(DEMO_ORG_ID)
    assert sorted(b["issued_at"] for b in badges) == [T0 + timedelta(days=i) for i in range(4)]
    lines = read_csv_report(report.read_bytes())
    assert tuple(lines[0]) == REPORT_COLUMNS
    assert [(line["row"], line["outcome"]) for line in lines] == [
        ("2", "issued"),
        ("3", "issued"),
        ("4", "issued"),
        ("5", "issued"),
        ("6", "skipped"),
        ("7", "invalid"),
    ]
    assert {line["badge_id"] for line in lines[:4]} == {b["id"] for b in badges}
    # the invalid row says what the file said, beside the reason
    bad = lines[5]
    assert (bad["email"], bad["course_id"], bad["reason"]) == ("not-an-email", "c-1", "bad_email")
    assert bad["completed_at"].startswith("2024-05-01")

    # the same file again: nothing new is issued, and the exit code is still 0
    code, out, _ = run_cli(capsys, str(completion_file(tmp_path)), "--yes", "--json")
    again = json.loads(out)
    assert code == 0 and again["issued"] == 0 and again["reasons"]["already_issued"] == 4
    assert len(world.badges_for(DEMO_ORG_ID)) == 4


def test_a_dry_run_prints_the_plan_and_sends_nothing(
    db: Path, world, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "plan.csv"
    code, out, _ = run_cli(
        capsys, str(completion_file(tmp_path)), "--dry-run", "--json", "--report", str(report)
    )
    assert code == 0
    result = json.loads(out)
    assert set(result) == JSON_KEYS and result["job_id"] is None
    assert (result["issued"], result["skipped"], result["invalid"]) == (4, 1, 1)
    planned = read_csv_report(report.read_bytes())
    assert [line["outcome"] for line in planned] == [*["issue"] * 4, "skip", "invalid"]
    assert (planned[5]["email"], planned[5]["course_id"]) == ("not-an-email", "c-1")
    assert world.badges_for(DEMO_ORG_ID) == []
    assert jobs_in(db) == []
    with Store(db).session() as cur:
        audit = cur.execute("SELECT action FROM audit WHERE action LIKE 'issue.%'").fetchall()
    assert audit == [("issue.dry_run",)]

    code, out, _ = run_cli(capsys, str(completion_file(tmp_path)), "--dry-run")
    assert code == 0 and "plan: 4 to issue" in out and "not refreshed" in out


def test_without_yes_a_non_interactive_stdin_is_refused(
    db: Path, world, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # not a terminal
    code, _, err = run_cli(capsys, str(completion_file(tmp_path)))
    assert code == 2
    assert "refusing to send without confirmation" in err and "--yes" in err
    assert jobs_in(db) == [] and world.badges_for(DEMO_ORG_ID) == []


def test_without_yes_a_terminal_is_asked_first(
    db: Path, world, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    file = str(completion_file(tmp_path))
    monkeypatch.setattr(sys, "stdin", Terminal("n\n"))
    code, out, err = run_cli(capsys, file)
    assert code == 0 and "Send 4 requests to Credly? [y/N]" in err and "Nothing was sent" in err
    assert "plan: 4 to issue, 0 to update, 1 skipped, 1 invalid" in out
    assert jobs_in(db) == [] and world.badges_for(DEMO_ORG_ID) == []

    monkeypatch.setattr(sys, "stdin", Terminal("yes\n"))
    code, out, _ = run_cli(capsys, file)
    assert code == 0 and len(world.badges_for(DEMO_ORG_ID)) == 4
    assert "4 issued, 0 updated, 1 skipped, 1 invalid, 0 failed" in out


def test_an_unusable_file_exits_2_with_the_reason(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, str(tmp_path / "missing.csv"), "--yes")
    assert code == 2 and "cannot read" in err

    latin = tmp_path / "excel.csv"
    text = (
        "email,course_id,completed_at,first_name,last_name\n"
        "jose@example.com,c-1,2024-05-01,José,Núñez\n"
    )
    latin.write_bytes(text.encode("cp1252"))
    code, _, err = run_cli(capsys, str(latin), "--yes")
    assert code == 2 and "not UTF-8" in err and "--encoding cp1252" in err
    code, out, err = run_cli(capsys, str(latin), "--yes", "--encoding", "cp1252", "--json")
    assert code == 0, err
    assert json.loads(out)["issued"] == 1

    no_header = tmp_path / "data-only.csv"
    no_header.write_text("a@example.com,c-1,2024-05-01\n", encoding="utf-8")
    code, _, err = run_cli(capsys, str(no_header), "--yes")
    assert code == 2 and "header" in err

    code, _, err = run_cli(capsys, "--yes")
    assert code == 2 and "name a completion file" in err
    code, _, err = run_cli(capsys, str(latin), "--concurrency", "0")
    assert code == 2 and "--concurrency" in err


def test_failed_rows_exit_1_and_retry_failed_re_drives_them(
    db: Path, world, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    file = str(completion_file(tmp_path))
    monkeypatch.setenv("CREDLY_API_TOKEN", "a-revoked-token-0000")
    code, out, err = run_cli(capsys, file, "--yes", "--json")
    assert code == 2 and "--allow-stale" in err  # the sync before planning was refused
    code, out, err = run_cli(capsys, file, "--yes", "--json", "--allow-stale")
    assert code == 1
    result = json.loads(out)
    assert result["failed"] == 4 and result["reasons"]["invalid_token"] == 4
    assert "could not be reached" in err  # the sync before planning was refused too
    assert "a-revoked-token-0000" not in out + err
    # invalid_token is final: a retry sends nothing
    code, out, _ = run_cli(capsys, "--retry-failed", result["job_id"], "--json")
    assert code == 1 and json.loads(out)["failed"] == 4
    assert world.badges_for(DEMO_ORG_ID) == []


def test_resume_finishes_an_interrupted_job_and_unknown_jobs_exit_2(
    db: Path, world, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = completion_file(tmp_path, rows=6)
    settings = load_settings(db=db)
    from credly_ops.issuance import create_job_from, prepare
    from credly_ops.workspace import Workspace

    ws = Workspace(settings)
    job_id = create_job_from(ws, ADMIN, prepare(ws, ADMIN, file.read_bytes(), source_name="f"))
    with Store(db).transaction() as cur:  # what a killed run leaves behind
        cur.execute("UPDATE jobs SET status = 'running' WHERE id = ?", [job_id])
        cur.execute(
            "UPDATE ledger SET status = 'in_flight', attempts = 1 WHERE job_id = ? AND row_no = 2",
            [job_id],
        )
    assert job_progress(Store(db), job_id).display_status == JOB_INTERRUPTED

    # running the same file again says it resumes the unfinished job
    code, out, err = run_cli(capsys, str(file), "--yes")
    assert code == 0, err
    assert f"job {job_id} is unfinished: it will be resumed" in out
    assert f"job {job_id} done" in out
    assert len(world.badges_for(DEMO_ORG_ID)) == 6

    code, out, _ = run_cli(capsys, "--resume", job_id, "--json")
    assert code == 0 and json.loads(out)["issued"] == 6  # nothing left: the same answer

    code, _, err = run_cli(capsys, "--resume", "bulk-unknown")
    assert code == 2 and "no job 'bulk-unknown' in the cache" in err


def test_a_terminal_gets_a_progress_bar(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["issue", str(completion_file(tmp_path)), "--yes"]) == 0
    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal.getvalue())  # colours, cursor
    assert "\rissue ━" in drawn and "4/4" in drawn


def test_a_plan_made_without_reaching_credly_is_not_sent_unless_allowed(
    db: Path, world, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    file = completion_file(tmp_path)
    # Credly cannot be reached: nothing listens on this port
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("CREDLY_API_URL", f"http://127.0.0.1:{closed}/v1")
    code, out, err = run_cli(capsys, str(file), "--yes")
    assert code == 2, (out, err)
    assert "could not be reached" in err and "--allow-stale" in err
    assert jobs_in(db) == [] and world.badges_for(DEMO_ORG_ID) == []

    # with --allow-stale the job is made and sent (here every row fails: Credly is still away)
    code, _, err = run_cli(capsys, str(file), "--yes", "--allow-stale", "--json")
    assert code == 1, err
    assert [status for _, status in jobs_in(db)] == ["done_with_failures"]

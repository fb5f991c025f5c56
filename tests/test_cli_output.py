"""What scripts read from ``credly-ops``: every ``--json`` output, byte for byte.

Each command runs through the real command line against the emulator on loopback; the values
that change from run to run (times, ids, the port, the OS user) are masked, and the rest is
compared as exact text, so a change of key order, indentation, separators, serialisation of
dates or the trailing newline fails here.  The plain-text lines a pipe receives are pinned too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from credly_ops.access import Actor, Role
from credly_ops.cli import main
from credly_ops.config import DEMO_ORG_ID
from credly_ops.models import BadgeRule
from credly_ops.rules import replace_rules
from credly_ops.store import Store
from tests.conftest import TEST_TOKEN

ADMIN = Actor("admin@example.com", Role.ADMIN)
COMPLETIONS = (
    "Email,First Name,Last Name,Course ID,Completed At\n"
    "ada@example.com,Ada,L,c-1,2024-05-01 09:00:00\n"
    "bob@example.com,Bob,B,other-course,2024-05-01\n"
)
MASKS = (
    (re.compile(r'"seconds": \d+(\.\d+)?'), '"seconds": <s>'),
    (re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?"), "<time>"),
    (re.compile(r"bulk-\d{8}-[0-9a-f]{8}"), "<job>"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
    (re.compile(r"http://127\.0\.0\.1:\d+"), "http://<emulator>"),
    (re.compile(r"cli:[^\" ]+"), "cli:<user>"),
    (re.compile(r'"id": \d+'), '"id": <n>'),
)


def masked(text: str) -> str:
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return text


@pytest.fixture
def run(
    world, emulator: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> Callable[..., tuple[int, str, str]]:
    """``run(*argv)`` → (exit code, stdout, stderr) of the real command line; the cache lives in
    ``tmp_path`` and Credly is the emulator."""
    monkeypatch.setenv("CREDLY_ENV", "sandbox")
    monkeypatch.setenv("CREDLY_ORG_ID", DEMO_ORG_ID)
    monkeypatch.setenv("CREDLY_API_TOKEN", TEST_TOKEN)
    monkeypatch.setenv("CREDLY_API_URL", emulator)
    monkeypatch.setenv("CREDLY_OPS_DB", str(tmp_path / "cache.duckdb"))
    (tmp_path / "completions.csv").write_text(COMPLETIONS, encoding="utf-8")

    def invoke(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


@pytest.fixture
def issued(run, tmp_path: Path) -> Path:
    """A cache after a sync, one rule and a bulk issue of ``completions.csv`` (one badge)."""
    assert run("sync")[0] == 0
    replace_rules(
        Store(tmp_path / "cache.duckdb"),
        [BadgeRule(course_id="c-1", template_id="tpl-dup", expiration_months=600)],
        actor=ADMIN,
    )
    assert run("issue", str(tmp_path / "completions.csv"), "--yes")[0] == 0
    return tmp_path


def test_sync_json(run) -> None:
    code, out, _ = run("sync", "--json")
    assert code == 0
    assert masked(out) == (
        "{\n"
        '  "badges": 0,\n'
        '  "changed": 0,\n'
        '  "pages": 2,\n'
        '  "seconds": <s>,\n'
        '  "templates": 4\n'
        "}\n"
    )


def test_sync_text_to_a_pipe(run) -> None:
    code, out, err = run("sync")
    assert code == 0
    assert re.fullmatch(
        r"full sync: 4 templates, 0 badges cached; 0 changed; 2 pages in \d+\.\d s\n", out
    ), out
    assert err == ""  # no progress bar when standard error is not a terminal


ISSUE_JSON = (
    "{\n"
    '  "job_id": JOB,\n'
    '  "rows": 2,\n'
    '  "issued": 1,\n'
    '  "updated": 0,\n'
    '  "skipped": 1,\n'
    '  "invalid": 0,\n'
    '  "failed": 0,\n'
    '  "reasons": {\n'
    '    "new_badge": 1,\n'
    '    "no_rule": 1\n'
    "  }\n"
    "}\n"
)


def test_issue_json_for_a_dry_run_and_a_job(run, tmp_path: Path) -> None:
    assert run("sync")[0] == 0
    replace_rules(
        Store(tmp_path / "cache.duckdb"),
        [BadgeRule(course_id="c-1", template_id="tpl-dup", expiration_months=600)],
        actor=ADMIN,
    )
    file = str(tmp_path / "completions.csv")
    code, out, _ = run("issue", file, "--dry-run", "--json")
    assert code == 0
    assert out == ISSUE_JSON.replace("JOB", "null")
    code, out, err = run("issue", file, "--yes", "--json")
    assert code == 0
    assert masked(out) == ISSUE_JSON.replace("JOB", '"<job>"')
    assert "job <job>\n" in masked(err)  # said as soon as the job exists


def test_funnel_json(issued: Path, run) -> None:
    code, out, _ = run("funnel", "--json", "--course", "c-1")
    assert code == 0
    assert masked(out) == (
        "{\n"
        '  "acceptance_rate": 0.0,\n'
        '  "accepted": 0,\n'
        '  "accepted_after_second_reminder": 0,\n'
        '  "accepted_before_first_reminder": 0,\n'
        '  "accepted_between_reminders": 0,\n'
        '  "accepted_outside": 0,\n'
        '  "as_of": "<time>+00:00",\n'
        '  "blocked_retakes": 0,\n'
        '  "completions": 1,\n'
        '  "eligible": 1,\n'
        '  "failed": 0,\n'
        '  "filter": {\n'
        '    "by": "completion",\n'
        '    "course_id": "c-1",\n'
        '    "domain": null,\n'
        '    "since": null,\n'
        '    "template_id": null,\n'
        '    "until": null\n'
        "  },\n"
        '  "issued": 1,\n'
        '  "issued_outside": 0,\n'
        '  "median_hours_to_accept": null,\n'
        '  "outside_acceptance_rate": null,\n'
        '  "p90_hours_to_accept": null,\n'
        '  "pending": 1,\n'
        '  "pending_by_reminders": {\n'
        '    "0": 1,\n'
        '    "1": 0,\n'
        '    "2": 0\n'
        "  },\n"
        '  "rejected": 0,\n'
        '  "reminders_per_badge": 0.0,\n'
        '  "reminders_sent": 0,\n'
        '  "renewed": 0,\n'
        '  "revoked": 0,\n'
        '  "skipped": {}\n'
        "}\n"
    )


def test_student_json(issued: Path, run) -> None:
    code, out, _ = run("student", "ADA@example.com", "--json")
    assert code == 0
    accept = "https://www.credly.com/badges/<uuid>/accept"
    assert masked(out) == (
        "{\n"
        '  "badges_earned": [\n'
        "    {\n"
        '      "badge_id": "<uuid>",\n'
        '      "expires_at": "<time>+00:00",\n'
        '      "image_url": "https://images.credly.com/images/tpl-dup/image.png",\n'
        '      "issued_at": "<time>+00:00",\n'
        '      "link_label": "Accept",\n'
        f'      "link_url": "{accept}",\n'
        '      "name": "Retake Badge",\n'
        '      "state": "pending"\n'
        "    }\n"
        "  ],\n"
        '  "email": "ada@example.com",\n'
        '  "explanations": [\n'
        "    {\n"
        '      "badge_id": "<uuid>",\n'
        '      "badge_state": "pending",\n'
        '      "can_reissue": false,\n'
        '      "completed_at": "<time>+00:00",\n'
        '      "course_id": "c-1",\n'
        '      "course_title": "c-1",\n'
        '      "error_class": null,\n'
        '      "error_message": null,\n'
        f'      "link_url": "{accept}",\n'
        '      "outcome": "skip",\n'
        '      "reason": "already_issued",\n'
        '      "reminders": 0,\n'
        '      "sentence": "Completed c-1 on 1 May 2024 \\u2192 badge issued 1 May, pending for '
        "less than a day, 0 reminders sent; expires 1 May 2074; accept link: "
        f'{accept}.",\n'
        '      "status": null,\n'
        '      "verdict": "issued"\n'
        "    }\n"
        "  ],\n"
        '  "name": "Ada L",\n'
        '  "registrations": [\n'
        "    {\n"
        '      "completed_at": "<time>+00:00",\n'
        '      "course_id": "c-1",\n'
        '      "course_title": "c-1",\n'
        '      "score": null,\n'
        '      "status": null\n'
        "    }\n"
        "  ],\n"
        '  "shows_table": true,\n'
        '  "table_enabled": true\n'
        "}\n"
    )


def test_audit_json_lines_and_text(issued: Path, run) -> None:
    code, out, _ = run("audit", "--json", "--action", "issue.job_finished")
    assert code == 0
    # one object per line, sorted keys, ", "/": " separators, pandas times as str()
    assert masked(out) == (
        '{"action": "issue.job_finished", "actor": "cli:<user>", '
        '"detail": "{\\"succeeded\\": 1, \\"skipped\\": 1, \\"changed_since_plan\\": 0}", '
        '"job_id": "<job>", '
        '"occurred_at": "<time>", "outcome": "done", "role": "admin", "target": "<job>"}\n'
    )
    code, out, _ = run("audit", "--json", "--action", "sync", "--limit", "1")
    assert code == 0
    assert masked(out) == (
        '{"action": "sync", "actor": "cli:<user>", '
        '"detail": "{\\"templates\\": 4, \\"badges\\": 0, \\"changed\\": 0}", "job_id": null, '
        '"occurred_at": "<time>", "outcome": "ok", "role": "admin", "target": "full"}\n'
    )
    code, out, _ = run("audit", "--action", "issue.job_finished")
    assert code == 0
    assert masked(out) == (
        "<time>  cli:<user> (admin)  issue.job_finished <job> job=<job>  done  "
        '{"succeeded": 1, "skipped": 1, "changed_since_plan": 0}\n'
    )
    code, out, _ = run("audit", "--action", "nothing.like.this")
    assert (code, out) == (0, "no audit entries\n")


def test_status_json(issued: Path, run, tmp_path: Path) -> None:
    code, out, _ = run("status")
    assert code == 0
    assert masked(out) == (
        "{\n"
        '  "api_url": "http://<emulator>/v1",\n'
        '  "cache_organization": {\n'
        '    "api_url": "http://<emulator>/v1",\n'
        '    "environment": "sandbox",\n'
        '    "organization_id": "<uuid>"\n'
        "  },\n"
        f'  "database": "{tmp_path / "cache.duckdb"}",\n'
        '  "environment": "sandbox",\n'
        '  "last_completions_read": null,\n'
        '  "last_reconcile": null,\n'
        '  "last_sync": {\n'
        '    "badges": 0,\n'
        '    "changed": 0,\n'
        '    "finished_at": "<time>+00:00",\n'
        '    "high_water": null,\n'
        '    "id": <n>,\n'
        '    "kind": "full",\n'
        '    "pages": 2,\n'
        '    "started_at": "<time>+00:00",\n'
        '    "templates": 4\n'
        "  },\n"
        '  "last_sync_finished": true,\n'
        '  "organization": "<uuid>",\n'
        '  "sync_warning": null,\n'
        '  "token": "********CRET",\n'
        '  "unfinished_sync": null\n'
        "}\n"
    )

"""Bulk-issue jobs against the real emulator over HTTP: exactly once, resumable, classified."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credly_ops.access import Actor, PermissionDenied, Role
from credly_ops.config import DEMO_ORG_ID, load_settings
from credly_ops.credly.client import CredlyClient
from credly_ops.exports import FORMULA_TRIGGERS, is_plain_number, read_csv_report, safe_cell
from credly_ops.issuance import (
    JOB_DONE,
    JOB_DONE_WITH_FAILURES,
    JOB_INTERRUPTED,
    REPORT_COLUMNS,
    JobBusy,
    JobNotFound,
    create_job,
    create_job_from,
    find_unfinished_job,
    is_running_here,
    job_progress,
    job_report,
    list_jobs,
    prepare,
    record_dry_run,
    report_csv,
    resume_job,
    retry_failed,
    run_job,
    start_job_in_background,
    stop_job,
)
from credly_ops.issuance.decide import add_months
from credly_ops.models import BadgeRule, IssueMethod
from credly_ops.rules import replace_rules
from credly_ops.store import Store
from credly_ops.sync import sync
from credly_ops.workspace import Workspace
from tests.conftest import TEST_TOKEN, emulator_workspace

ADMIN = Actor("admin@example.com", Role.ADMIN)
CSM = Actor("csm@example.com", Role.CSM)
VIEWER = Actor("viewer@example.com", Role.VIEWER)
#: completions some months back: far enough for the renewals 2,300 hours later to lie in the
#: past, near enough for the rules' expiries to lie ahead (the runner decides at the real now)
T0 = (datetime.now(UTC) - timedelta(days=150)).replace(hour=9, minute=30, second=0, microsecond=0)
#: the moment the tests plan at: after every completion, before any badge they issue expires
NOW = datetime.now(UTC)
#: no backoff waits inside the client: the tests exercise the decisions, not the clock
FAST = {"sleep": lambda _seconds: None}

RULES = [
    BadgeRule(course_id="c-issue", template_id="tpl-active", expiration_months=12),
    BadgeRule(course_id="c-retake", template_id="tpl-dup"),
    BadgeRule(
        course_id="c-renew",
        template_id="tpl-renew",
        method=IssueMethod.ISSUE_OR_UPDATE,
        expiration_months=6,
    ),
]


# -- set-up ----------------------------------------------------------------------------------


@pytest.fixture
def ws(world, emulator: str, tmp_path: Path) -> Workspace:
    """A workspace whose client talks to the test emulator, with synced templates and rules."""
    world.add_template(DEMO_ORG_ID, id="tpl-renew", name="Renewable Badge")
    workspace = emulator_workspace(emulator, tmp_path / "cache.duckdb")
    with workspace.client() as client:
        sync(client, workspace.store, actor=ADMIN)
    replace_rules(workspace.store, RULES, actor=ADMIN)
    return workspace


def csv_bytes(rows: list[tuple[str, str, str]], *, names: bool = True) -> bytes:
    """(email, course id, completed at) rows as a completion file."""
    header = "email,first_name,last_name,course_id,completed_at"
    lines = [header] + [
        f"{email},{'Ada' if names else ''},{'Lovelace' if names else ''},{course},{when}"
        for email, course, when in rows
    ]
    return ("\n".join(lines) + "\n").encode()


def at(hours: int) -> str:
    return (T0 + timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M:%S")


def moment(hours: int) -> datetime:
    return T0 + timedelta(hours=hours)


def start(ws: Workspace, data: bytes, actor: Actor = CSM, **kw: Any) -> str:
    kw.setdefault("now", NOW)
    prepared = prepare(ws, actor, data, source_name="completions.csv", **kw)
    return create_job_from(ws, actor, prepared)


def emulator_badges(world) -> list[dict[str, Any]]:
    return world.badges_for(DEMO_ORG_ID)


def signature(badge: dict[str, Any]) -> tuple[str, str, datetime, datetime | None, bool]:
    live = badge["state"] in ("pending", "accepted")
    expires = badge["expires_at"].replace(microsecond=0) if badge["expires_at"] else None
    return (
        badge["recipient_email"].lower(),
        badge["template_id"],
        badge["issued_at"].replace(microsecond=0),
        expires,
        live,
    )


def ledger(store: Store, job_id: str) -> dict[int, dict[str, Any]]:
    with store.session() as cur:
        rows = cur.execute(
            "SELECT row_no, status, outcome, reason, badge_id, error_class, error_message, "
            "attempts FROM ledger WHERE job_id = ? ORDER BY row_no",
            [job_id],
        ).fetchall()
    keys = ("status", "outcome", "reason", "badge_id", "error_class", "error_message", "attempts")
    return {r[0]: dict(zip(keys, r[1:], strict=True)) for r in rows}


def audit_actions(store: Store) -> list[str]:
    with store.session() as cur:
        return [r[0] for r in cur.execute("SELECT action FROM audit ORDER BY id").fetchall()]


def control(emulator: str, path: str, body: dict[str, Any]) -> None:
    base = emulator.removesuffix("/v1")
    httpx.post(f"{base}/_emulator/{path}", json=body, timeout=5).raise_for_status()


# -- issuing ---------------------------------------------------------------------------------


def test_a_job_issues_each_badge_once_with_the_completion_dates(ws: Workspace, world) -> None:
    data = csv_bytes(
        [
            ("ada@example.com", "c-issue", at(0)),
            ("bob@example.com", "c-issue", at(5)),
            ("ada@example.com", "c-retake", at(1)),
            ("ada@example.com", "c-retake", at(30)),
            ("cy@example.com", "no-such-course", at(2)),
            ("not-an-email", "c-issue", at(3)),
        ]
    )
    job_id = start(ws, data)
    assert job_progress(ws.store, job_id).status == "planned"
    result = run_job(ws, CSM, job_id, client_options=FAST)

    assert result.status == JOB_DONE
    assert result.outcomes == {
        "issued": 4,
        "updated": 0,
        "skipped": 1,
        "invalid": 1,
        "failed": 0,
        "pending": 0,
    }
    assert result.reasons == {"new_badge": 3, "bad_email": 1, "no_rule": 1, "retake": 1}
    found = sorted(signature(b) for b in emulator_badges(world))
    assert found == sorted(
        [
            ("ada@example.com", "tpl-active", moment(0), add_months(moment(0), 12), True),
            ("bob@example.com", "tpl-active", moment(5), add_months(moment(5), 12), True),
            ("ada@example.com", "tpl-dup", moment(1), None, True),
            ("ada@example.com", "tpl-dup", moment(30), None, True),
        ]
    )
    # the ledger names each badge; the cache knows them at once; the upload is kept
    rows = ledger(ws.store, job_id)
    issued = {r["badge_id"] for r in rows.values() if r["status"] == "succeeded"}
    assert issued == {b["id"] for b in emulator_badges(world)}
    assert all(r["attempts"] == 1 for r in rows.values() if r["status"] == "succeeded")
    with ws.store.session() as cur:
        cached = {r[0] for r in cur.execute("SELECT id FROM badges").fetchall()}
        uploaded = cur.execute(
            "SELECT count(*) FROM completions WHERE source = ?", [f"upload:{job_id}"]
        ).fetchone()
        job = cur.execute(
            "SELECT created_by, source_name, options, started_at, finished_at FROM jobs "
            "WHERE id = ?",
            [job_id],
        ).fetchone()
    assert issued <= cached
    assert uploaded == (5,)  # every valid completion, whatever its outcome
    assert job[0] == CSM.name and job[1] == "completions.csv"
    assert json.loads(job[2]) == {
        "encoding": None,
        "include_expired": False,
        "include_rejected": False,
        "include_revoked": False,
    }
    assert job[3] is not None and job[4] is not None
    actions = audit_actions(ws.store)
    for action in ("issue.job_created", "issue.run", "issue.job_finished"):
        assert action in actions


def test_the_report_has_one_line_per_input_row(ws: Workspace, world) -> None:
    data = csv_bytes(
        [
            ("ada@example.com", "c-issue", at(0)),
            ("ada@example.com", "c-issue", at(0)),  # the same completion again
            ("bob@example.com", "nope", at(1)),
        ]
    )
    job_id = start(ws, data + b"broken-row@example.com,A,B,c-issue,someday\n")
    run_job(ws, CSM, job_id, client_options=FAST)
    lines = job_report(ws.store, job_id)
    assert [line["row"] for line in lines] == [2, 3, 4, 5]
    assert [(line["outcome"], line["reason"]) for line in lines] == [
        ("issued", "new_badge"),
        ("skipped", "duplicate_row"),
        ("skipped", "no_rule"),
        ("invalid", "bad_date"),
    ]
    assert lines[0]["badge_id"] == emulator_badges(world)[0]["id"]
    assert lines[0]["completed_at"] == moment(0)
    assert set(lines[0]) == set(REPORT_COLUMNS)
    parsed = read_csv_report(report_csv(lines))
    assert [row["outcome"] for row in parsed] == ["issued", "skipped", "skipped", "invalid"]
    assert parsed[0]["completed_at"] == f"{T0:%Y-%m-%dT%H:%M:%SZ}"


def test_update_rows_replace_the_badge_keeping_its_original_issued_at(ws: Workspace, world) -> None:
    original = T0 - timedelta(days=400)
    world.load_badges(
        DEMO_ORG_ID,
        [
            {
                "id": "old-badge",
                "template_id": "tpl-renew",
                "recipient_email": "ada@example.com",
                "issued_to_first_name": "Ada",
                "issued_to_last_name": "Lovelace",
                "state": "accepted",
                "issued_at": original,
                "created_at": original,
                "updated_at": original,
                "expires_at": original + timedelta(days=180),
            }
        ],
    )
    # Bob's first completion issues; his second renews the badge the first one creates
    data = csv_bytes(
        [
            ("ada@example.com", "c-renew", at(0)),
            ("bob@example.com", "c-renew", at(1)),
            ("bob@example.com", "c-renew", at(100)),
        ]
    )
    prepared = prepare(ws, CSM, data, source_name="renewals.csv", now=NOW)
    assert [(r.outcome, r.target_badge_id) for r in prepared.plan.rows] == [
        ("update", "old-badge"),
        ("issue", None),
        ("update", "planned:3"),
    ]
    job_id = create_job_from(ws, CSM, prepared)
    result = run_job(ws, CSM, job_id, client_options=FAST)
    assert result.outcomes["updated"] == 2 and result.outcomes["issued"] == 1

    badges = {b["id"]: b for b in emulator_badges(world)}
    old = badges["old-badge"]
    assert old["state"] == "replaced"
    renewed = badges[old["replacement_badge_id"]]
    assert renewed["issued_at"] == original
    assert renewed["expires_at"] == add_months(moment(0), 6)
    assert renewed["state"] == "accepted"  # a replacement keeps the state
    bob = sorted(
        (b for b in badges.values() if b["recipient_email"] == "bob@example.com"),
        key=lambda b: b["created_at"],
    )
    assert [b["state"] for b in bob] == ["replaced", "pending"]
    assert bob[1]["issued_at"] == moment(1)  # the first completion's date carries on
    assert bob[1]["expires_at"] == add_months(moment(100), 6)
    assert bob[1]["replaces_badge_id"] == bob[0]["id"]
    # the cache saw the replacement at once
    with ws.store.session() as cur:
        state = cur.execute("SELECT state FROM badges WHERE id = 'old-badge'").fetchone()
    assert state == ("replaced",)


@pytest.mark.slow
def test_thousands_of_rows_with_faults_and_a_rate_limit_issue_each_badge_exactly_once(
    ws: Workspace, world, emulator: str
) -> None:
    """The done-when test: 5 % 5xx, 2 % answers lost after processing, and a rate limit."""
    rows: list[tuple[str, str, str]] = []
    expected: list[tuple[str, str, datetime, datetime | None, bool]] = []
    for i in range(700):  # one badge each: 700 rows
        email = f"issue{i}@example.com"
        rows.append((email, "c-issue", at(i)))
        expected.append((email, "tpl-active", moment(i), add_months(moment(i), 12), True))
    for i in range(350):  # two retakes each: 700 rows
        email = f"retake{i}@example.com"
        for hours in (i, i + 1000):
            rows.append((email, "c-retake", at(hours)))
            expected.append((email, "tpl-dup", moment(hours), None, True))
    for i in range(300):  # an issue then its renewal: 600 rows, one live badge + one replaced
        email = f"renew{i}@example.com"
        rows.append((email, "c-renew", at(i)))
        rows.append((email, "c-renew", at(i + 2000)))
        expected.append((email, "tpl-renew", moment(i), add_months(moment(i), 6), False))
        expected.append((email, "tpl-renew", moment(i), add_months(moment(i + 2000), 6), True))
    assert len(rows) == 2_000

    job_id = start(ws, csv_bytes(rows))
    faults = {"fail_rate": 0.05, "timeout_rate": 0.02, "timeout_hold_s": 2, "seed": 20240301}
    # a rate limit any machine exceeds at first: the job paces itself under it
    control(emulator, "faults", {**faults, "rate_limit_rps": 60})
    options = {"timeout": httpx.Timeout(5, read=1.0), "max_attempts": 8}
    result = run_job(ws, CSM, job_id, concurrency=8, client_options=options)
    for _ in range(5):  # faults may outlast a row's attempts: re-drive what is retryable
        if not result.outcomes["failed"]:
            break
        assert result.retryable_failures == result.outcomes["failed"]
        result = retry_failed(ws, CSM, job_id, concurrency=8, client_options=options)
    control(emulator, "faults", {})

    assert result.status == JOB_DONE, result.reasons
    assert result.outcomes["issued"] == 1_700 and result.outcomes["updated"] == 300
    found = sorted(signature(b) for b in emulator_badges(world))
    assert found == sorted(expected)  # each expected badge exactly once, and nothing else
    stats = httpx.get(emulator.removesuffix("/v1") + "/_emulator/stats", timeout=5).json()
    seen = stats["data"]["faults"]
    assert seen.get("timed_out", 0) > 10  # answers were lost after processing …
    assert seen.get("failed_500", 0) + seen.get("failed_503", 0) > 50  # … 5xx answered …
    assert seen.get("rate_limited", 0) > 0  # … and Credly asked the job to slow down


# -- crashes, resumes, retries ---------------------------------------------------------------


class Crash(Exception):
    """The process dies here."""


def crash_on(monkeypatch: pytest.MonkeyPatch, email: str, *, after_sending: bool) -> dict[str, int]:
    """Make the runner die on ``email``'s row: before the request leaves, or after Credly
    processed it but before the answer is recorded."""
    real_issue = CredlyClient.issue
    calls = {"n": 0}

    def issue(self: CredlyClient, req: Any) -> Any:
        if req.recipient_email == email and calls["n"] == 0:
            calls["n"] += 1
            if after_sending:
                real_issue(self, req)
            raise Crash(email)
        return real_issue(self, req)

    monkeypatch.setattr(CredlyClient, "issue", issue)
    return calls


@pytest.mark.parametrize("after_sending", [False, True], ids=["before-send", "after-send"])
def test_a_crash_between_in_flight_and_the_answer_resumes_without_a_duplicate(
    ws: Workspace, world, monkeypatch: pytest.MonkeyPatch, after_sending: bool
) -> None:
    data = csv_bytes([(f"s{i}@example.com", "c-retake", at(i)) for i in range(12)])
    job_id = start(ws, data)
    crash_on(monkeypatch, "s5@example.com", after_sending=after_sending)
    with pytest.raises(Crash):
        run_job(ws, CSM, job_id, concurrency=1, client_options=FAST)

    crashed = job_progress(ws.store, job_id)
    assert crashed.status == JOB_INTERRUPTED and crashed.resumable
    rows = ledger(ws.store, job_id)
    assert rows[7]["status"] == "in_flight"  # s5 is on row 7
    assert len(emulator_badges(world)) == (6 if after_sending else 5)

    monkeypatch.undo()
    resumed = resume_job(ws, CSM, job_id, client_options=FAST)
    assert resumed.status == JOB_DONE
    assert resumed.outcomes["issued"] == 12
    badges = emulator_badges(world)
    assert sorted(signature(b) for b in badges) == sorted(
        (f"s{i}@example.com", "tpl-dup", moment(i), None, True) for i in range(12)
    )  # tpl-dup allows duplicates: only the ledger stands between a resume and a second badge
    rows = ledger(ws.store, job_id)
    s5 = next(b for b in badges if b["recipient_email"] == "s5@example.com")
    assert rows[7]["badge_id"] == s5["id"]
    # the resume's sync brought the badge the first attempt made: no second request
    assert rows[7]["attempts"] == (1 if after_sending else 2)
    assert "issue.resume" in audit_actions(ws.store)


def test_a_job_left_running_by_a_dead_process_is_taken_over(ws: Workspace, world) -> None:
    """What a SIGKILL leaves: status running, a stale heartbeat, rows in flight."""
    data = csv_bytes([(f"s{i}@example.com", "c-retake", at(i)) for i in range(4)])
    job_id = start(ws, data)
    # s0 was sent and processed, s1 was claimed but never left: both are in flight
    with CredlyClient(base_url=ws.settings.api_url, org_id=DEMO_ORG_ID, token=TEST_TOKEN) as c:
        from credly_ops.models import IssueRequest

        c.issue(
            IssueRequest(
                recipient_email="s0@example.com",
                issued_to_first_name="Ada",
                issued_to_last_name="Lovelace",
                badge_template_id="tpl-dup",
                issued_at=moment(0),
            )
        )
    stale = datetime(2024, 1, 1)
    with ws.store.transaction() as cur:
        cur.execute(
            "UPDATE jobs SET status = 'running', started_at = ?, heartbeat_at = ? WHERE id = ?",
            [stale, stale, job_id],
        )
        cur.execute(
            "UPDATE ledger SET status = 'in_flight', attempts = 1 WHERE job_id = ? "
            "AND row_no IN (2, 3)",
            [job_id],
        )
    dead = job_progress(ws.store, job_id)
    assert dead.status == "running" and not dead.alive
    assert dead.display_status == JOB_INTERRUPTED and dead.resumable

    done = resume_job(ws, CSM, job_id, client_options=FAST)
    assert done.status == JOB_DONE and done.outcomes["issued"] == 4
    assert Counter(b["recipient_email"] for b in emulator_badges(world)) == {
        f"s{i}@example.com": 1 for i in range(4)
    }


def failing_transport(emails: set[str], status: int) -> httpx.BaseTransport:
    """Real HTTP, except POSTs for these recipients, which get ``status`` without processing."""
    real = httpx.HTTPTransport()

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.content:
            body = json.loads(request.content)
            if body.get("recipient_email") in emails:
                return httpx.Response(status, json={"data": {"message": "Service Unavailable"}})
        return real.handle_request(request)

    return httpx.MockTransport(handle)


def test_retry_failed_re_drives_only_the_retryable_failures(ws: Workspace, world) -> None:
    data = csv_bytes(
        [
            ("flaky@example.com", "c-issue", at(0)),
            ("taken@example.com", "c-issue", at(1)),
            ("fine@example.com", "c-issue", at(2)),
        ]
    )
    job_id = start(ws, data)
    # after planning, taken@ gets another live badge of the template: Credly will refuse
    world.load_badges(
        DEMO_ORG_ID,
        [
            {
                "id": "elsewhere",
                "template_id": "tpl-active",
                "recipient_email": "taken@example.com",
                "issued_to_first_name": "T",
                "issued_to_last_name": "K",
                "state": "pending",
                "issued_at": T0 - timedelta(days=3),
                "created_at": T0 - timedelta(days=3),
                "updated_at": T0 - timedelta(days=3),
            }
        ],
    )
    options = {**FAST, "transport": failing_transport({"flaky@example.com"}, 503)}
    # no sync at the start: the cache does not know taken@'s badge, so Credly refuses the row
    first = run_job(ws, CSM, job_id, client_options=options, refresh=False)
    assert first.status == JOB_DONE_WITH_FAILURES
    assert first.outcomes == {
        "issued": 1,
        "updated": 0,
        "skipped": 0,
        "invalid": 0,
        "failed": 2,
        "pending": 0,
    }
    rows = ledger(ws.store, job_id)
    assert (rows[2]["status"], rows[2]["error_class"]) == ("failed", "server_error")
    assert (rows[3]["status"], rows[3]["error_class"]) == ("failed", "duplicate")
    assert first.retryable_failures == 1

    second = retry_failed(ws, CSM, job_id, client_options=FAST)
    rows = ledger(ws.store, job_id)
    assert rows[2]["status"] == "succeeded"
    assert (rows[3]["status"], rows[3]["error_class"]) == ("failed", "duplicate")
    assert second.status == JOB_DONE_WITH_FAILURES and second.retryable_failures == 0
    emails = Counter(b["recipient_email"] for b in emulator_badges(world))
    assert emails == {"flaky@example.com": 1, "taken@example.com": 1, "fine@example.com": 1}
    assert "issue.retry_failed" in audit_actions(ws.store)


def test_failure_classes_are_recorded_and_a_refused_token_stops_sending(
    ws: Workspace, world
) -> None:
    data = csv_bytes([(f"s{i}@example.com", "c-issue", at(i)) for i in range(5)])
    job_id = start(ws, data)
    world.add_template(DEMO_ORG_ID, id="tpl-active", name="Active Badge", state="archived")
    # no sync at the start: the cache still calls the template active, so Credly refuses
    archived = run_job(ws, CSM, job_id, concurrency=2, client_options=FAST, refresh=False)
    assert archived.reasons == {"template_inactive": 5}
    assert {r["error_class"] for r in ledger(ws.store, job_id).values()} == {"template_inactive"}
    assert archived.retryable_failures == 0

    world.add_template(DEMO_ORG_ID, id="tpl-active", name="Active Badge")
    job_id = start(ws, csv_bytes([(f"t{i}@example.com", "c-issue", at(i)) for i in range(6)]))
    refused = httpx.MockTransport(
        lambda request: httpx.Response(401, json={"data": {"message": "Unauthorized"}})
    )
    result = run_job(
        ws, CSM, job_id, concurrency=1, client_options={**FAST, "transport": refused}, refresh=False
    )
    rows = ledger(ws.store, job_id)
    assert result.reasons == {"invalid_token": 6}
    assert sum(r["attempts"] for r in rows.values()) == 1  # the rest were never sent
    assert all(TEST_TOKEN not in (r["error_message"] or "") for r in rows.values())
    assert "Not sent" in rows[3]["error_message"]
    assert emulator_badges(world) == []


def test_the_same_file_twice_issues_nothing_new(ws: Workspace, world) -> None:
    data = csv_bytes(
        [
            ("ada@example.com", "c-retake", at(0)),
            ("ada@example.com", "c-retake", at(9)),
            ("bob@example.com", "c-renew", at(1)),
            ("bob@example.com", "c-renew", at(50)),
        ]
    )
    first = start(ws, data)
    # while the first job is unfinished, the same file resumes it instead of making another
    assert (
        find_unfinished_job(ws.store, prepare(ws, CSM, data, source_name="x", now=NOW).sha256)
        == first
    )
    assert start(ws, data) == first
    run_job(ws, CSM, first, client_options=FAST)
    before = sorted(b["id"] for b in emulator_badges(world))

    # a stale cache (the badges unknown to it, and no sync before planning nor before
    # sending) cannot fool the ledger: every row is planned again, and at send time every one
    # is decided again against the first job's ledger rows and found issued or renewed
    with ws.store.transaction() as cur:
        cur.execute("DELETE FROM badges")
    second = start(ws, data, refresh=False)
    assert second != first
    result = run_job(ws, CSM, second, client_options=FAST, refresh=False)
    assert sorted(b["id"] for b in emulator_badges(world)) == before
    assert result.status == JOB_DONE
    assert result.outcomes["issued"] == 0 and result.outcomes["updated"] == 0
    assert result.reasons == {"already_issued": 3, "already_up_to_date": 1}
    assert result.changed_since_plan == 4
    report = {line["row"]: line for line in job_report(ws.store, second)}
    assert report[2]["outcome"] == "skipped" and report[2]["badge_id"] in before
    assert report[2]["planned"] == "issue / new_badge"

    # and with the cache synced, the plan itself says so
    with ws.client() as client:
        sync(client, ws.store, full=True, actor=ADMIN)
    again = prepare(ws, CSM, data, source_name="completions.csv", now=NOW)
    assert again.to_send == 0
    assert again.plan.reasons() == {"already_issued": 3, "already_up_to_date": 1}


# -- permissions, dry runs, preparing --------------------------------------------------------


def test_a_viewer_can_plan_but_cannot_create_or_run_a_job(ws: Workspace, world) -> None:
    data = csv_bytes([("ada@example.com", "c-issue", at(0))])
    prepared = prepare(ws, VIEWER, data, source_name="completions.csv", now=NOW)
    assert prepared.to_send == 1
    with pytest.raises(PermissionDenied):
        create_job_from(ws, VIEWER, prepared)
    job_id = create_job_from(ws, CSM, prepared)
    for attempt in (run_job, resume_job, retry_failed, start_job_in_background):
        with pytest.raises(PermissionDenied):
            attempt(ws, VIEWER, job_id)
    with ws.store.session() as cur:
        jobs = cur.execute("SELECT count(*), min(status) FROM jobs").fetchone()
    assert jobs == (1, "planned")
    assert emulator_badges(world) == []
    assert not is_running_here(job_id)


def test_a_dry_run_writes_only_an_audit_row(ws: Workspace, world) -> None:
    data = csv_bytes([("ada@example.com", "c-issue", at(0)), ("bob@example.com", "x", at(1))])
    before = audit_actions(ws.store)
    prepared = prepare(ws, VIEWER, data, source_name="dry.csv", refresh=False, now=NOW)
    record_dry_run(ws, VIEWER, prepared)
    with ws.store.session() as cur:
        counts = cur.execute(
            "SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM ledger), "
            "(SELECT count(*) FROM completions)"
        ).fetchone()
        detail = cur.execute("SELECT detail FROM audit WHERE action = 'issue.dry_run'").fetchone()
    assert counts == (0, 0, 0)
    assert audit_actions(ws.store) == [*before, "issue.dry_run"]
    assert json.loads(detail[0])["issue"] == 1
    assert emulator_badges(world) == []
    assert "not refreshed" in prepared.freshness.sentence()


def test_prepare_reports_the_readers_bad_rows_and_the_cache_freshness(ws: Workspace) -> None:
    day = f"{T0:%Y-%m-%d}"
    data = (
        "email,first_name,last_name,course_id,completed_at,score\n"
        f"ada@example.com,Ada,L,c-issue,{day},90\n"
        f"bad,Ada,L,c-issue,{day},90\n"
        "bob@example.com,Bob,B,c-issue,2999-01-01,90\n"
        f"cy@example.com,Cy,C,c-issue,{day},lots\n"
        f"di@example.com,Di,D,c-issue,{day},1,extra\n"
    ).encode()
    prepared = prepare(ws, CSM, data, source_name="mixed.csv", now=NOW)
    assert prepared.freshness.synced and "just before planning" in prepared.freshness.sentence()
    assert len(prepared.file.errors) == 4
    invalid = {r.row: (r.reason, r.detail) for r in prepared.plan.rows if r.outcome == "invalid"}
    assert {row: reason for row, (reason, _) in invalid.items()} == {
        3: "bad_email",
        4: "future_date",
        5: "bad_score",
        6: "extra_fields",
    }
    assert "score" in invalid[5][1]
    job_id = create_job_from(ws, CSM, prepared)
    with ws.store.session() as cur:
        message = cur.execute(
            "SELECT error_message FROM ledger WHERE job_id = ? AND row_no = 3", [job_id]
        ).fetchone()
    assert "not an email address" in message[0]
    lines = "\n".join(prepared.summary_lines())
    assert "5 rows read, 1 valid, 4 with errors" in lines
    assert "1 to issue" in lines


def test_prepare_plans_from_the_cache_when_credly_cannot_be_reached(
    ws: Workspace, tmp_path: Path
) -> None:
    offline = Workspace(
        load_settings(
            env="sandbox",
            org_id=DEMO_ORG_ID,
            api_token=TEST_TOKEN,
            api_url="http://127.0.0.1:9/v1",  # nothing listens on the discard port
            db=ws.settings.db_path,
        )
    )
    data = csv_bytes([("ada@example.com", "c-issue", at(0))])
    prepared = prepare(offline, CSM, data, source_name="offline.csv", client_options=FAST, now=NOW)
    assert not prepared.freshness.synced and prepared.freshness.error == "network"
    assert "could not be reached" in prepared.freshness.sentence()
    assert prepared.to_send == 1


def test_create_job_refuses_a_plan_that_repeats_row_numbers(ws: Workspace) -> None:
    from credly_ops.issuance import plan as make_plan
    from credly_ops.models import Completion

    completions = [
        Completion(email="a@example.com", course_id="c-issue", completed_at=T0, row=2),
        Completion(email="b@example.com", course_id="c-issue", completed_at=T0, row=2),
    ]
    doubled = make_plan(completions, {}, {}, {}, now=T0 + timedelta(days=1))
    with pytest.raises(ValueError, match="row numbers"):
        create_job(ws, CSM, doubled, source_name="x.csv", source_bytes=b"x")


# -- running in the background ---------------------------------------------------------------


def test_a_background_job_runs_in_this_process_and_is_listed(ws: Workspace, world) -> None:
    data = csv_bytes([(f"s{i}@example.com", "c-issue", at(i)) for i in range(20)])
    job_id = start(ws, data)
    thread = start_job_in_background(ws, CSM, job_id, 2, client_options=FAST)
    assert is_running_here(job_id)
    with pytest.raises(JobBusy):
        run_job(ws, CSM, job_id)
    thread.join(60)
    assert not thread.is_alive() and not is_running_here(job_id)
    listed = list_jobs(ws.store)
    assert [j.job_id for j in listed] == [job_id]
    assert listed[0].status == JOB_DONE and listed[0].outcomes["issued"] == 20
    assert listed[0].fraction == 1.0 and not listed[0].resumable
    assert len(emulator_badges(world)) == 20


def test_a_stopped_job_is_interrupted_and_resumes(
    ws: Workspace, world, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = csv_bytes([(f"s{i}@example.com", "c-issue", at(i)) for i in range(10)])
    job_id = start(ws, data)
    real_issue = CredlyClient.issue
    sent = threading.Event()

    def issue(self: CredlyClient, req: Any) -> Any:
        result = real_issue(self, req)
        if req.recipient_email == "s2@example.com":
            stop_job(job_id)
        sent.set()
        return result

    monkeypatch.setattr(CredlyClient, "issue", issue)
    stopped = run_job(ws, CSM, job_id, concurrency=1, client_options=FAST)
    assert stopped.status == JOB_INTERRUPTED
    assert stopped.outcomes["issued"] == 3 and stopped.outcomes["pending"] == 7
    # the rows claimed ahead but never sent went back to planned: no look-up needed
    assert {r["status"] for r in ledger(ws.store, job_id).values()} == {"succeeded", "planned"}
    monkeypatch.undo()
    done = resume_job(ws, CSM, job_id, client_options=FAST)
    assert done.status == JOB_DONE and len(emulator_badges(world)) == 10


def test_unknown_jobs_are_named_as_such(ws: Workspace) -> None:
    with pytest.raises(JobNotFound):
        job_progress(ws.store, "bulk-nope")
    with pytest.raises(JobNotFound):
        job_report(ws.store, "bulk-nope")
    with pytest.raises(JobNotFound):
        run_job(ws, CSM, "bulk-nope")
    assert not is_running_here("bulk-nope")


# -- the report, round trip ------------------------------------------------------------------

cell_text = st.text(max_size=40)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "row": st.integers(min_value=2, max_value=200_000),
                "email": cell_text,
                "course_id": cell_text,
                "completed_at": st.one_of(
                    st.none(),
                    st.datetimes(
                        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)
                    ).map(lambda d: d.replace(microsecond=0, tzinfo=UTC)),
                ),
                "outcome": st.sampled_from(
                    ["issued", "updated", "skipped", "invalid", "failed", "pending"]
                ),
                "reason": cell_text,
                "badge_id": cell_text,
                "planned": cell_text,
            }
        ),
        max_size=20,
    )
)
def test_the_report_round_trips_through_csv(lines: list[dict[str, Any]]) -> None:
    parsed = read_csv_report(report_csv(lines))
    assert len(parsed) == len(lines)
    for original, back in zip(lines, parsed, strict=True):
        assert list(back) == list(REPORT_COLUMNS)
        for column in REPORT_COLUMNS:
            assert back[column] == safe_cell(original[column])
            # no cell opens a formula in a spreadsheet (plain numbers such as -5 stay numbers)
            assert not back[column].startswith(FORMULA_TRIGGERS) or is_plain_number(back[column])
        assert back["row"] == str(original["row"])
        assert back["outcome"] == original["outcome"]

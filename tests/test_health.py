"""Integration health: every check in each of its states against the Credly emulator on
loopback and a real cache file, ``credly-ops doctor`` (exit codes, JSON keys), the pure checks
of the parallel work and their registry, and the background monitor."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from credly_ops.access import SYSTEM_ACTOR
from credly_ops.config import DEMO_ORG_ID, SkilljarNotConfigured
from credly_ops.health import HealthMonitor, Status, exit_code, overall, run_checks
from credly_ops.health import checks as pure
from credly_ops.health.checks import Check
from credly_ops.health.gather import SETTING_SYNC_SCHEDULE, HealthReport
from credly_ops.lms import save_completions
from credly_ops.models import AuthorizationToken, BadgeRule, Completion, Environment
from credly_ops.rules import replace_rules
from credly_ops.store import CacheIdentity, Store
from credly_ops.sync import sync
from credly_ops.timeutil import utcnow
from tests.conftest import TEST_TOKEN, emulator_workspace

NO_SKILLJAR = SkilljarNotConfigured(missing=("client_id",))
RULE = BadgeRule(course_id="crs-py", course_title="Python Foundations", template_id="tpl-active")


def control(api_url: str, path: str, body: dict) -> dict:
    answer = httpx.post(f"{api_url.removesuffix('/v1')}/_emulator/{path}", json=body, timeout=10)
    assert answer.is_success, answer.text
    return dict(answer.json()["data"])


def set_token_expiry(api_url: str, world, days: float) -> None:
    token = world.token_book.for_org(DEMO_ORG_ID)[0]
    control(
        api_url, f"orgs/{DEMO_ORG_ID}/authorization_tokens/{token.id}", {"expires_in_days": days}
    )


def by_name(report: HealthReport) -> dict[str, Check]:
    return {c.name: c for c in report.checks}


@pytest.fixture
def healthy(emulator: str, tmp_path: Path):
    """A workspace whose every check is ok: one rule to an active template, a fresh sync."""
    ws = emulator_workspace(emulator, tmp_path / "cache.duckdb")
    replace_rules(ws.store, [RULE], actor=SYSTEM_ACTOR)
    with ws.client() as client:
        sync(client, ws.store, full=True)
    return ws


def test_a_healthy_integration_is_all_ok(healthy) -> None:
    report = run_checks(healthy, NO_SKILLJAR)
    assert [c.status for c in report.checks] == [Status.OK] * len(report.checks), report
    assert set(by_name(report)) == {
        "credly_token",
        "skilljar_credentials",
        "cache_organization",
        "rule_templates",
        "unmapped_courses",
        "sync_freshness",
        "failed_rows",
    }
    assert "expires in 1" in by_name(report)["credly_token"].detail  # 180 days: "179 days"
    assert report.status is Status.OK and report.summary() == "All 7 checks ok"


@pytest.mark.parametrize(
    ("days", "status"), [(20, Status.WARN), (5, Status.FAIL), (-1, Status.FAIL), (60, Status.OK)]
)
def test_the_token_check_follows_the_token_expiry(
    healthy, emulator: str, world, days: float, status: Status
) -> None:
    set_token_expiry(emulator, world, days)
    check = by_name(run_checks(healthy, NO_SKILLJAR))["credly_token"]
    assert check.status is status, check
    if status is not Status.OK:
        assert "Authorization Tokens" in check.action
    assert TEST_TOKEN not in check.detail + check.action


def test_a_wrong_token_fails_and_an_unreachable_credly_fails(tmp_path: Path, emulator) -> None:
    wrong = emulator_workspace(emulator, tmp_path / "a.duckdb", token="not-the-token-SECRET")
    check = by_name(run_checks(wrong, NO_SKILLJAR))["credly_token"]
    assert check.status is Status.FAIL and "refused" in check.detail
    assert "not-the-token-SECRET" not in check.detail
    closed = emulator_workspace("http://127.0.0.1:9/v1", tmp_path / "b.duckdb")
    check = by_name(run_checks(closed, NO_SKILLJAR))["credly_token"]
    assert check.status is Status.FAIL and "could not be reached" in check.detail


def test_a_mapped_template_archived_after_the_rule_fails(healthy, emulator: str) -> None:
    assert by_name(run_checks(healthy, NO_SKILLJAR))["rule_templates"].status is Status.OK
    control(emulator, f"orgs/{DEMO_ORG_ID}/badge_templates/tpl-active/state", {"state": "archived"})
    check = by_name(run_checks(healthy, NO_SKILLJAR))["rule_templates"]
    assert check.status is Status.FAIL
    assert "Python Foundations → Active Badge is archived" in check.detail
    # gone: a rule to a template Credly does not have
    replace_rules(
        healthy.store, [RULE.model_copy(update={"template_id": "tpl-nope"})], actor=SYSTEM_ACTOR
    )
    check = by_name(run_checks(healthy, NO_SKILLJAR))["rule_templates"]
    assert check.status is Status.FAIL and "tpl-nope is gone" in check.detail


def test_a_busy_course_without_a_rule_warns(healthy) -> None:
    now = utcnow()
    with healthy.store.transaction() as cur:
        save_completions(
            cur,
            [
                Completion(
                    email=f"s{i}@example.com",
                    first_name="S",
                    last_name="T",
                    course_id=course,
                    course_title=title,
                    completed_at=now - timedelta(days=days),
                )
                for i, (course, title, days) in enumerate(
                    [
                        ("crs-py", "Python Foundations", 3),  # mapped
                        ("crs-web", "Webinar", 10),
                        ("crs-web", "Webinar", 20),
                        ("crs-old", "Old Course", 200),  # not busy: too long ago
                    ]
                )
            ],
            source="upload",
            loaded_at=now,
        )
    check = by_name(run_checks(healthy, NO_SKILLJAR))["unmapped_courses"]
    assert check.status is Status.WARN
    assert "Webinar (2)" in check.detail and "Old Course" not in check.detail


def test_sync_freshness_follows_the_schedule_setting(healthy) -> None:
    later = utcnow() + timedelta(hours=3)
    check = by_name(run_checks(healthy, NO_SKILLJAR, now=later))["sync_freshness"]
    assert check.status is Status.WARN and "every 60 minutes" in check.detail
    healthy.store.set_setting(SETTING_SYNC_SCHEDULE, "120", actor=SYSTEM_ACTOR)
    check = by_name(run_checks(healthy, NO_SKILLJAR, now=later))["sync_freshness"]
    assert check.status is Status.OK
    overridden = run_checks(healthy, NO_SKILLJAR, now=later, schedule=timedelta(minutes=15))
    assert by_name(overridden)["sync_freshness"].status is Status.WARN


def test_never_synced_warns(emulator: str, tmp_path: Path) -> None:
    ws = emulator_workspace(emulator, tmp_path / "fresh.duckdb")
    check = by_name(run_checks(ws, NO_SKILLJAR))["sync_freshness"]
    assert check.status is Status.WARN and "never been synced" in check.detail


def test_failed_rows_not_retried_warn(healthy) -> None:
    with healthy.store.session() as cur:
        for row_no, status in enumerate(("failed", "failed", "succeeded", "planned")):
            cur.execute(
                "INSERT INTO ledger (job_id, row_no, key, outcome, reason, status, updated_at) "
                "VALUES ('bulk-1', ?, ?, 'issue', 'new', ?, now())",
                [row_no, f"k{row_no}", status],
            )
    check = by_name(run_checks(healthy, NO_SKILLJAR))["failed_rows"]
    assert check.status is Status.WARN and "2 row(s)" in check.detail and "bulk-1" in check.detail


def test_a_cache_of_another_organization_fails(emulator: str, tmp_path: Path) -> None:
    path = tmp_path / "other.duckdb"
    Store(path, identity=CacheIdentity("sandbox", "another-org", emulator)).recorded_identity()
    report = run_checks(emulator_workspace(emulator, path), NO_SKILLJAR)
    check = by_name(report)["cache_organization"]
    assert check.status is Status.FAIL and "another-org" in check.detail
    assert "rule_templates" not in by_name(report)  # nothing else reads that cache
    assert report.status is Status.FAIL


def test_doctor_exit_codes_and_json(
    healthy, emulator: str, world, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from credly_ops.cli import main

    monkeypatch.setenv("CREDLY_ENV", "sandbox")
    monkeypatch.setenv("CREDLY_ORG_ID", DEMO_ORG_ID)
    monkeypatch.setenv("CREDLY_API_TOKEN", TEST_TOKEN)
    monkeypatch.setenv("CREDLY_API_URL", emulator)
    monkeypatch.setenv("CREDLY_OPS_DB", str(healthy.store.path))
    assert main(["doctor", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"status", "checked_at", "checks"} and out["status"] == "ok"
    assert all(set(c) == {"name", "status", "detail", "action"} for c in out["checks"])
    set_token_expiry(emulator, world, 20)
    assert main(["doctor"]) == 1
    text = capsys.readouterr().out
    assert text.startswith("WARN: 1 warning") and "credly_token" in text
    set_token_expiry(emulator, world, 5)
    assert main(["doctor", "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["status"] == "fail"
    assert TEST_TOKEN not in capsys.readouterr().out


def test_doctor_with_an_unusable_configuration_fails_with_a_check(
    monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from credly_ops.cli import main

    monkeypatch.setenv("CREDLY_ENV", "production")  # no organization, no token
    assert main(["doctor", "--json"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "fail" and out["checks"][0]["name"] == "configuration"


# -- pure checks ------------------------------------------------------------------------

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def test_the_token_in_use_is_the_one_marked_current_else_the_first_to_expire() -> None:
    soon = AuthorizationToken(id="a", name="cron", expires_at=NOW + timedelta(days=3))
    later = AuthorizationToken(id="b", name="app", expires_at=NOW + timedelta(days=90))
    assert pure.token_in_use([later, soon]) is soon
    marked = AuthorizationToken.model_validate(
        {"id": "b", "name": "app", "expires_at": "2026-09-01T00:00:00Z", "current": True}
    )
    assert pure.token_in_use([soon, marked]) is marked
    read_only = AuthorizationToken(id="c", expires_at=NOW + timedelta(days=90), write_enabled=False)
    check = pure.check_credly_token(
        [read_only], problem=None, refused=False, forbidden=False, now=NOW
    )
    assert check.status is Status.WARN and "cannot issue" in check.detail
    forbidden = pure.check_credly_token(None, problem="403", refused=False, forbidden=True, now=NOW)
    assert forbidden.status is Status.WARN and "expiry is unknown" in forbidden.detail


def test_check_autopilot_in_each_state() -> None:
    assert pure.check_autopilot(False, None, timedelta(minutes=5)).status is Status.OK
    assert pure.check_autopilot(False, None, None).status is Status.OK
    lagging = pure.check_autopilot(False, None, timedelta(hours=5))
    assert lagging.status is Status.WARN and "5 hours behind" in lagging.detail
    paused = pure.check_autopilot(True, "error rate above 20 %", timedelta(0))
    assert paused.status is Status.FAIL and "error rate above 20 %" in paused.detail


def test_check_webhook_in_each_state() -> None:
    assert pure.check_webhook(False, None, now=NOW).status is Status.OK
    assert pure.check_webhook(True, None, now=NOW).status is Status.WARN
    assert pure.check_webhook(True, NOW - timedelta(hours=2), now=NOW).status is Status.OK
    silent = pure.check_webhook(True, NOW - timedelta(days=9), now=NOW)
    assert silent.status is Status.WARN and "9 days ago" in silent.detail


def test_overall_and_exit_codes() -> None:
    ok, warn, fail = (Check("x", s, "") for s in (Status.OK, Status.WARN, Status.FAIL))
    assert overall([]) is Status.OK and overall([ok, warn]) is Status.WARN
    assert overall([warn, fail, ok]) is Status.FAIL
    assert [exit_code(s) for s in Status] == [0, 1, 2]


def test_automatic_issuing_and_the_webhook_are_checked_where_skilljar_is_configured(
    healthy,
) -> None:
    from pydantic import SecretStr

    from credly_ops.autopilot import pause, resume
    from credly_ops.config import SkilljarSettings
    from credly_ops.health.gather import integration_checks

    skilljar = SkilljarSettings(
        api_url="http://127.0.0.1:9",
        client_id="id",
        client_secret=SecretStr("client-secret-value"),
        webhook_secret=SecretStr("webhook-secret-value"),
    )
    assert integration_checks(healthy, NO_SKILLJAR, now=utcnow()) == []
    checks = {c.name: c for c in integration_checks(healthy, skilljar, now=utcnow())}
    assert checks["automatic_issuing"].status is Status.OK
    assert checks["webhook"].status is Status.WARN  # a secret, and no delivery yet
    pause(healthy.store, SYSTEM_ACTOR, "the hourly cap was reached")
    checks = {c.name: c for c in integration_checks(healthy, skilljar, now=utcnow())}
    assert checks["automatic_issuing"].status is Status.FAIL
    assert "the hourly cap was reached" in checks["automatic_issuing"].detail
    resume(healthy.store, SYSTEM_ACTOR)
    without_hook = skilljar.model_copy(update={"webhook_secret": None})
    checks = {c.name: c for c in integration_checks(healthy, without_hook, now=utcnow())}
    assert checks["webhook"].status is Status.OK
    assert checks["automatic_issuing"].status is Status.OK


def test_the_monitor_answers_at_once_and_refreshes_in_the_background() -> None:
    calls: list[int] = []

    def run() -> HealthReport:
        calls.append(1)
        return HealthReport(NOW, (Check("x", Status.WARN, f"run {len(calls)}"),))

    monitor = HealthMonitor(run, max_age=3600)
    first = monitor.latest()
    assert first is None or first.checks[0].detail == "run 1"
    report = monitor.refresh(timeout=10)
    assert report is not None and report.status is Status.WARN
    assert monitor.latest() is report and len(calls) in (1, 2)


def test_the_cache_identity_check_is_ok_before_any_sync() -> None:
    check = pure.check_cache_organization(None, (Environment.SANDBOX.value, "org"), None)
    assert check.status is Status.OK
    other = pure.check_cache_organization(("sandbox", "a"), ("production", "a"), None)
    assert other.status is Status.FAIL

"""The health checks that speak to Skilljar, against the local Skilljar on loopback: the
credentials (a token grant) and rules whose course Skilljar does not know."""

from __future__ import annotations

from pathlib import Path

from credly_ops.access import SYSTEM_ACTOR
from credly_ops.config import load_skilljar_settings
from credly_ops.health import Status, run_checks
from credly_ops.models import BadgeRule
from credly_ops.rules import replace_rules
from tests.conftest import emulator_workspace
from tests.skilljar.conftest import CLIENT_ID, CLIENT_SECRET, Site


def settings(site: Site, secret: str = CLIENT_SECRET):
    return load_skilljar_settings(
        api_url=site.url, client_id=CLIENT_ID, client_secret=secret, environ={}
    )


def test_skilljar_credentials_and_rule_courses(
    skilljar: Site, emulator: str, tmp_path: Path
) -> None:
    ws = emulator_workspace(emulator, tmp_path / "cache.duckdb")
    rules = [
        BadgeRule(course_id="crs-py", course_title="Python Foundations", template_id="tpl-active"),
        BadgeRule(course_id="crs-gone", course_title="Retired Course", template_id="tpl-active"),
    ]
    replace_rules(ws.store, rules, actor=SYSTEM_ACTOR)
    checks = {c.name: c for c in run_checks(ws, settings(skilljar)).checks}
    assert checks["skilljar_credentials"].status is Status.OK
    unknown = checks["rule_courses"]
    assert unknown.status is Status.WARN
    assert "Retired Course (crs-gone)" in unknown.detail and "crs-py" not in unknown.detail

    replace_rules(ws.store, rules[:1], actor=SYSTEM_ACTOR)
    checks = {c.name: c for c in run_checks(ws, settings(skilljar)).checks}
    assert checks["rule_courses"].status is Status.OK

    wrong = "sj-WRONG-secret-987654"
    checks = {c.name: c for c in run_checks(ws, settings(skilljar, wrong)).checks}
    refused = checks["skilljar_credentials"]
    assert refused.status is Status.FAIL and "refused" in refused.detail
    assert wrong not in refused.detail + refused.action
    assert "rule_courses" not in checks  # not checked without an answer from Skilljar

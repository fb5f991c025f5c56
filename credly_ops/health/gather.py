"""Gather what the checks need — Credly, Skilljar, the cache — and run them.

The network checks (the Credly token and templates, Skilljar) each make one short attempt
(one try, a 10-second timeout): a health run must answer quickly even when a service is down.

The sync schedule the freshness check compares with is the cache setting
``sync_schedule_minutes`` (:data:`SETTING_SYNC_SCHEDULE`; ``credly-ops doctor --sync-every``
overrides it), 60 minutes when unset: the sync is late when the last finished one is older than
twice that.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from credly_ops.config import ConfigError, SkilljarNotConfigured, SkilljarSettings
from credly_ops.credly.client import CredlyClient
from credly_ops.credly.errors import CredlyError, Forbidden, InvalidToken
from credly_ops.health.checks import (
    BUSY_COURSE_WINDOW,
    Check,
    Status,
    check_autopilot,
    check_cache_organization,
    check_credly_token,
    check_failed_rows,
    check_rule_courses,
    check_rule_templates,
    check_skilljar,
    check_sync_freshness,
    check_unmapped_courses,
    check_webhook,
    overall,
)
from credly_ops.models import AuthorizationToken, BadgeRule, BadgeTemplate
from credly_ops.rules import load_rules, load_templates
from credly_ops.store import Store, from_db_time, to_db_time
from credly_ops.sync_history import sync_health
from credly_ops.timeutil import utcnow
from credly_ops.workspace import Workspace

log = logging.getLogger(__name__)

SETTING_SYNC_SCHEDULE = "sync_schedule_minutes"
DEFAULT_SYNC_SCHEDULE = timedelta(hours=1)
NETWORK_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


@dataclass(frozen=True)
class HealthReport:
    checked_at: datetime
    checks: tuple[Check, ...]

    @property
    def status(self) -> Status:
        return overall(self.checks)

    def counts(self) -> dict[Status, int]:
        return {s: sum(1 for c in self.checks if c.status is s) for s in Status}

    def summary(self) -> str:
        """One line: "ok: all 9 checks pass" or "2 failing, 1 warning"."""
        counts = self.counts()
        if self.status is Status.OK:
            return f"All {len(self.checks)} checks ok"
        parts = []
        if counts[Status.FAIL]:
            parts.append(f"{counts[Status.FAIL]} failing")
        if counts[Status.WARN]:
            warns = counts[Status.WARN]
            parts.append(f"{warns} warning" + ("s" if warns > 1 else ""))
        return ", ".join(parts)

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "checked_at": self.checked_at.isoformat(),
            "checks": [c.as_json() for c in self.checks],
        }


def sync_schedule(store: Store) -> timedelta:
    """The sync schedule from the cache setting, or the default (an unusable value too)."""
    text = store.get_setting(SETTING_SYNC_SCHEDULE)
    try:
        minutes = float(text) if text else 0.0
    except ValueError:
        minutes = 0.0
    return timedelta(minutes=minutes) if minutes > 0 else DEFAULT_SYNC_SCHEDULE


@dataclass
class _Credly:
    tokens: list[AuthorizationToken] | None = None
    templates: dict[str, BadgeTemplate] | None = None
    problem: str | None = None
    refused: bool = False
    forbidden: bool = False


def _read_credly(client: CredlyClient) -> _Credly:
    out = _Credly()
    try:
        out.tokens = client.list_authorization_tokens()
    except InvalidToken as exc:
        out.problem, out.refused = str(exc), True
        return out
    except Forbidden as exc:
        out.problem, out.forbidden = str(exc), True
    except CredlyError as exc:
        out.problem = str(exc)
        return out
    try:
        out.templates = {t.id: t for t in client.iter_templates(sort=None)}
    except CredlyError as exc:
        log.info("health: templates not read from Credly (%s)", type(exc).__name__)
    return out


def _credly(ws: Workspace, cache_ok: bool) -> _Credly:
    try:
        if cache_ok:
            client = ws.client(max_attempts=1, timeout=NETWORK_TIMEOUT)
        else:
            client = CredlyClient.from_settings(
                ws.settings, max_attempts=1, timeout=NETWORK_TIMEOUT
            )
    except (CredlyError, ConfigError, OSError, RuntimeError) as exc:
        return _Credly(problem=str(exc) or type(exc).__name__)
    with client:
        return _read_credly(client)


def _skilljar(
    settings: SkilljarSettings | SkilljarNotConfigured,
) -> tuple[Check, Mapping[str, str] | None]:
    if not isinstance(settings, SkilljarSettings):
        return check_skilljar(False, None, refused=False), None
    from credly_ops.skilljar.client import SkilljarClient
    from credly_ops.skilljar.errors import CredentialsRejected, SkilljarError

    try:
        with SkilljarClient.from_settings(
            settings, max_attempts=1, timeout=NETWORK_TIMEOUT
        ) as client:
            courses = client.course_titles()
    except CredentialsRejected as exc:
        return check_skilljar(True, str(exc), refused=True), None
    except SkilljarError as exc:
        return check_skilljar(True, str(exc), refused=False), None
    return check_skilljar(True, None, refused=False), courses


def recent_courses(store: Store, since: datetime) -> dict[str, tuple[str, int]]:
    """Course id (or title, when the completion has no id) → (title, completions since)."""
    with store.session() as cur:
        rows = cur.execute(
            "SELECT coalesce(course_id, course_title), max(course_title), count(*) "
            "FROM completions WHERE completed_at >= ? "
            "AND coalesce(course_id, course_title) IS NOT NULL GROUP BY 1",
            [to_db_time(since)],
        ).fetchall()
    return {str(r[0]): (str(r[1] or r[0]), int(r[2])) for r in rows}


def failed_rows(store: Store) -> dict[str, int]:
    """Job id → ledger rows that failed and were not retried (a retry sets them planned)."""
    with store.session() as cur:
        rows = cur.execute(
            "SELECT job_id, count(*) FROM ledger WHERE status = 'failed' GROUP BY job_id"
        ).fetchall()
    return {str(job): int(n) for job, n in rows}


def _cache_checks(
    ws: Workspace,
    rules: list[BadgeRule],
    *,
    now: datetime,
    schedule: timedelta | None,
) -> list[Check]:
    store = ws.store
    health = sync_health(store, now=lambda: now)
    finished = health.last_sync["finished_at"] if health.last_sync else None
    return [
        check_unmapped_courses(rules, recent_courses(store, now - BUSY_COURSE_WINDOW)),
        check_sync_freshness(
            from_db_time(finished) if finished else None,
            health.message,
            schedule=schedule or sync_schedule(store),
            now=now,
        ),
        check_failed_rows(failed_rows(store)),
    ]


def integration_checks(
    ws: Workspace, skilljar: SkilljarSettings | SkilljarNotConfigured, *, now: datetime
) -> list[Check]:
    """Automatic issuing (paused, or lagging) and the webhook's last delivery — only where
    Skilljar is configured: without it, automatic issuing is off and says so on its page."""
    if not isinstance(skilljar, SkilljarSettings):
        return []
    from credly_ops.autopilot import autopilot_status
    from credly_ops.hooks import last_delivery

    status = autopilot_status(ws.store, skilljar=skilljar, now=now)
    lag = None if status.lag_seconds is None else timedelta(seconds=status.lag_seconds)
    return [
        check_autopilot(status.state.paused, status.state.pause_reason, lag),
        check_webhook(skilljar.webhook_secret is not None, last_delivery(ws.store), now=now),
    ]


def run_checks(
    ws: Workspace,
    skilljar: SkilljarSettings | SkilljarNotConfigured,
    *,
    now: datetime | None = None,
    schedule: timedelta | None = None,
) -> HealthReport:
    """Every check, in the order the page and ``credly-ops doctor`` show them."""
    moment = now or utcnow()
    configured = (ws.settings.env.value, ws.settings.org_id)
    recorded: tuple[str, str] | None = None
    problem: str | None = None
    try:
        identity = ws.store.recorded_identity()
        if identity is not None:
            recorded = (identity.environment, identity.organization_id)
    except ConfigError as exc:  # another organization's cache, an unreadable file
        problem = str(exc)
    cache_ok = problem is None
    credly = _credly(ws, cache_ok)
    checks = [
        check_credly_token(
            credly.tokens,
            problem=credly.problem,
            refused=credly.refused,
            forbidden=credly.forbidden,
            now=moment,
        ),
    ]
    skilljar_check, courses = _skilljar(skilljar)
    checks.append(skilljar_check)
    checks.append(check_cache_organization(recorded, configured, problem))
    if cache_ok:
        rules = load_rules(ws.store)
        templates, source = credly.templates, "as Credly lists them now"
        if templates is None:
            templates, source = load_templates(ws.store), "as of the last sync"
        checks.append(check_rule_templates(rules, templates, source=source))
        if courses is not None:
            checks.append(check_rule_courses(rules, courses))
        checks.extend(_cache_checks(ws, rules, now=moment, schedule=schedule))
        checks.extend(integration_checks(ws, skilljar, now=moment))
    return HealthReport(moment, tuple(checks))


def run_configured_checks(ws: Workspace, *, schedule: timedelta | None = None) -> HealthReport:
    """:func:`run_checks` with Skilljar as configured; an unusable ``[skilljar]`` is a failing
    check, not an error (what the app's monitor runs)."""
    try:
        skilljar = ws.skilljar_settings()
    except ConfigError as exc:
        report = run_checks(ws, SkilljarNotConfigured(missing=()), schedule=schedule)
        broken = Check(
            "skilljar_credentials",
            Status.FAIL,
            f"The Skilljar configuration cannot be used: {exc}",
            "Fix [skilljar] in .streamlit/secrets.toml or the SKILLJAR_* variables.",
        )
        others = tuple(c for c in report.checks if c.name != broken.name)
        return HealthReport(report.checked_at, (broken, *others))
    return run_checks(ws, skilljar, schedule=schedule)

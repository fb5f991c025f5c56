"""The checks, pure: each takes small values and returns one :class:`Check`.

A check says its state (``ok``, ``warn``, ``fail``), one sentence about what it saw and, when
it is not ok, what to do.  Nothing here reads a file, the network or the clock: the gathering
(:mod:`credly_ops.health.gather`) hands every value in, ``now`` included.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from credly_ops.models import AuthorizationToken, BadgeRule, BadgeTemplate

#: the token check warns this many days before the token expires, and fails at ``TOKEN_FAIL``
TOKEN_WARN = timedelta(days=30)
TOKEN_FAIL = timedelta(days=7)
#: a course with completions this recent and no rule is worth a warning
BUSY_COURSE_WINDOW = timedelta(days=90)
#: automatic issuing this far behind the newest completion is lagging
AUTOPILOT_LAG_WARN = timedelta(hours=2)
#: a configured webhook silent this long may be broken
WEBHOOK_SILENCE_WARN = timedelta(days=7)
ROTATE_ADVICE = (
    "Create a new token in Credly (Developers › Authorization Tokens), then set it as "
    "CREDLY_API_TOKEN (or api_token in [credly] of .streamlit/secrets.toml)."
)

OWN_CACHE = "Point CREDLY_OPS_DB (or --db) at this organization's own cache file."


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


_RANK = {Status.OK: 0, Status.WARN: 1, Status.FAIL: 2}


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    action: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "action": self.action,
        }


def overall(checks: Iterable[Check]) -> Status:
    """The worst state among the checks (``ok`` when there are none)."""
    return max((c.status for c in checks), key=_RANK.__getitem__, default=Status.OK)


def exit_code(status: Status) -> int:
    """0 / 1 / 2 for ok / warn / fail: what monitoring (cron, Nagios-style) reads."""
    return _RANK[status]


def _days(delta: timedelta) -> str:
    days = delta.total_seconds() / 86400
    if days < 1:
        return f"{max(delta.total_seconds() / 3600, 0):.0f} hours"
    return f"{int(days)} day" + ("" if int(days) == 1 else "s")


# -- Credly -------------------------------------------------------------------------------


def token_in_use(tokens: Sequence[AuthorizationToken]) -> AuthorizationToken | None:
    """The token this process uses, as far as the listing tells.  Credly does not say which
    record is the caller's, so: a record marked ``current`` (or ``in_use``) when the answer has
    one, else the token that expires first (a read-only token sees only itself, and an
    organization rotating tokens cares first about the one that goes first)."""
    for token in tokens:
        extra = token.model_extra or {}
        if extra.get("current") is True or extra.get("in_use") is True:
            return token
    dated = [t for t in tokens if t.expires_at is not None]
    if dated:
        return min(dated, key=lambda t: t.expires_at or datetime.max)
    return tokens[0] if tokens else None


def check_credly_token(
    tokens: Sequence[AuthorizationToken] | None,
    *,
    problem: str | None,
    refused: bool,
    forbidden: bool,
    now: datetime,
) -> Check:
    """Reachable, permitted, and when it expires.

    ``tokens`` is the listing, or ``None`` when it could not be read: ``refused`` (401: the
    token is wrong, revoked or expired), ``forbidden`` (403: the token may not list tokens, so
    the expiry is unknown) or another ``problem`` (Credly unreachable, an error answer).
    """
    name = "credly_token"
    if tokens is None:
        if refused:
            refusal = f"Credly refused the API token: {problem}"
            return Check(name, Status.FAIL, refusal, ROTATE_ADVICE)
        if forbidden:
            return Check(
                name,
                Status.WARN,
                "The API token works but may not list the organization's tokens, so its expiry "
                "is unknown.",
                "Check the token's expiry in Credly (Developers › Authorization Tokens).",
            )
        return Check(
            name,
            Status.FAIL,
            f"Credly could not be reached: {problem}",
            "Check the network and the API URL; run 'credly-ops doctor' again.",
        )
    token = token_in_use(tokens)
    if token is None:
        return Check(
            name,
            Status.WARN,
            "Credly answered, but listed no authorization token, so the expiry is unknown.",
            "Check the token's expiry in Credly (Developers › Authorization Tokens).",
        )
    label = f"The token {token.name!r}" if token.name else "The token"
    rights = [
        right
        for right, on in (("read", token.read_enabled), ("write", token.write_enabled))
        if on is False
    ]
    if token.expires_at is None:
        status, detail = Status.OK, f"Credly answered. {label} has no expiry date."
    else:
        left = token.expires_at - now
        when = f"{token.expires_at:%Y-%m-%d}"
        if left <= timedelta(0):
            status, detail = Status.FAIL, f"{label} expired on {when}."
        else:
            status = (
                Status.FAIL
                if left <= TOKEN_FAIL
                else Status.WARN
                if left <= TOKEN_WARN
                else Status.OK
            )
            detail = f"{label} expires in {_days(left)}, on {when}."
    if rights:
        cannot = "issue badges" if "write" in rights else "read the organization"
        detail += f" It has no {' and no '.join(rights)} right: it cannot {cannot}."
        status = Status.FAIL if status is Status.FAIL else Status.WARN
    action = "" if status is Status.OK else ROTATE_ADVICE
    return Check(name, status, detail, action)


def check_rule_templates(
    rules: Sequence[BadgeRule], templates: Mapping[str, BadgeTemplate] | None, *, source: str
) -> Check:
    """A rule whose template is archived, draft or gone: its completions are being skipped.
    ``templates`` is Credly's list (or the cache's, ``source`` says which); ``None`` when
    neither could be read."""
    name = "rule_templates"
    if templates is None:
        return Check(name, Status.WARN, "The templates could not be read.", "Run a sync.")
    if not rules:
        return Check(name, Status.OK, "No badge rules yet.")
    broken: list[str] = []
    for rule in rules:
        template = templates.get(rule.template_id)
        title = rule.course_title or rule.course_id
        if template is None:
            broken.append(f"{title} → template {rule.template_id} is gone")
        elif not template.can_issue:
            broken.append(f"{title} → {template.name} is {template.state}")
    if not broken:
        return Check(name, Status.OK, f"All {len(rules)} rules map to active templates ({source}).")
    return Check(
        name,
        Status.FAIL,
        f"{len(broken)} rule(s) map to a template that cannot issue, so their completions are "
        f"skipped: {'; '.join(broken)}.",
        "Re-activate the template in Credly, or map the course to an active template in "
        "Settings (or remove the rule).",
    )


def check_unmapped_courses(
    rules: Sequence[BadgeRule], recent: Mapping[str, tuple[str, int]]
) -> Check:
    """A course with completions in the last 90 days and no rule.  ``recent`` maps a course id
    to (its title, completions in the window)."""
    name = "unmapped_courses"
    mapped = {rule.course_id for rule in rules}
    busy = sorted(
        ((title or course, n) for course, (title, n) in recent.items() if course not in mapped),
        key=lambda item: -item[1],
    )
    if not busy:
        return Check(name, Status.OK, "Every course completed in the last 90 days has a rule.")
    listed = ", ".join(f"{title} ({n:,})" for title, n in busy[:5])
    more = f" and {len(busy) - 5} more" if len(busy) > 5 else ""
    return Check(
        name,
        Status.WARN,
        f"{len(busy)} course(s) completed in the last 90 days have no badge rule: {listed}{more}.",
        "Map them to a template in Settings if they should earn a badge; otherwise ignore.",
    )


def check_skilljar(configured: bool, problem: str | None, *, refused: bool) -> Check:
    """Skilljar's credentials, when configured: a token grant."""
    name = "skilljar_credentials"
    if not configured:
        return Check(name, Status.OK, "Skilljar is not configured (completions come from CSV).")
    if problem is None:
        return Check(name, Status.OK, "Skilljar granted a token with the configured credentials.")
    if refused:
        return Check(
            name,
            Status.FAIL,
            f"Skilljar refused the credentials: {problem}",
            "Set a valid client id and secret (SKILLJAR_CLIENT_ID / SKILLJAR_CLIENT_SECRET, or "
            "[skilljar] in .streamlit/secrets.toml).",
        )
    return Check(
        name,
        Status.FAIL,
        f"Skilljar could not be reached: {problem}",
        "Check the network and SKILLJAR_API_URL.",
    )


def check_rule_courses(rules: Sequence[BadgeRule], courses: Mapping[str, str] | None) -> Check:
    """A rule whose course Skilljar does not know (only when Skilljar answered)."""
    name = "rule_courses"
    if courses is None:
        return Check(name, Status.OK, "Not checked: Skilljar is not configured or did not answer.")
    unknown = [rule for rule in rules if rule.course_id not in courses]
    if not unknown:
        return Check(name, Status.OK, f"Skilljar knows the course of all {len(rules)} rules.")
    listed = ", ".join(f"{r.course_title or r.course_id} ({r.course_id})" for r in unknown[:5])
    return Check(
        name,
        Status.WARN,
        f"{len(unknown)} rule(s) name a course Skilljar does not know: {listed}.",
        "Fix the course id in Settings, or remove the rule if the course was deleted.",
    )


def check_sync_freshness(
    last_finished: datetime | None,
    unfinished: str | None,
    *,
    schedule: timedelta,
    now: datetime,
) -> Check:
    """The last finished sync is no older than twice its schedule, and the last one finished.
    ``unfinished`` is the sync history's sentence about a sync that did not finish."""
    name = "sync_freshness"
    if last_finished is None:
        return Check(name, Status.WARN, "The cache has never been synced.", "Run a sync.")
    age = now - last_finished
    minutes = schedule / timedelta(minutes=1)
    every = _days(schedule) if schedule >= timedelta(days=1) else f"{minutes:.0f} minutes"
    if age > 2 * schedule:
        return Check(
            name,
            Status.WARN,
            f"The last sync finished {_ago(age)} ago, more than twice the schedule (every "
            f"{every}).",
            "Check the scheduled 'credly-ops sync' (cron), or run one now.",
        )
    if unfinished:
        return Check(name, Status.WARN, unfinished, "Run a sync again.")
    fresh = f"The last sync finished {_ago(age)} ago (schedule: every {every})."
    return Check(name, Status.OK, fresh)


def _ago(delta: timedelta) -> str:
    minutes = max(delta.total_seconds(), 0) / 60
    if minutes < 90:
        return f"{minutes:.0f} minutes"
    if minutes < 48 * 60:
        return f"{minutes / 60:.0f} hours"
    return f"{minutes / 1440:.0f} days"


def check_failed_rows(failed: Mapping[str, int]) -> Check:
    """Ledger rows that failed and were not retried, per job."""
    name = "failed_rows"
    total = sum(failed.values())
    if not total:
        return Check(name, Status.OK, "No failed rows waiting for a retry.")
    jobs = sorted(failed.items(), key=lambda item: -item[1])
    listed = ", ".join(f"{job} ({n:,})" for job, n in jobs[:3])
    return Check(
        name,
        Status.WARN,
        f"{total:,} row(s) failed and were not retried, in {len(jobs)} job(s): {listed}.",
        "Open the job in Bulk issue and retry its failed rows (or 'credly-ops issue resume').",
    )


def check_cache_organization(
    recorded: tuple[str, str] | None, configured: tuple[str, str], problem: str | None
) -> Check:
    """The organization the cache records vs the configured one: (environment, org id)."""
    name = "cache_organization"
    if problem is not None:
        return Check(name, Status.FAIL, problem, OWN_CACHE)
    if recorded is None:
        return Check(
            name, Status.OK, "The cache records no organization yet; the first sync records it."
        )
    if recorded != configured:
        return Check(
            name,
            Status.FAIL,
            f"The cache belongs to the {recorded[0]} organization {recorded[1]}, but the "
            f"{configured[0]} organization {configured[1]} is configured.",
            OWN_CACHE,
        )
    mirrors = f"The cache mirrors the {recorded[0]} organization {recorded[1]}."
    return Check(name, Status.OK, mirrors)


# -- automatic issuing and the webhook (read by credly_ops.health.gather) ---


def check_autopilot(paused: bool, reason: str | None, lag: timedelta | None) -> Check:
    """Automatic issuing: paused (with why), or lagging behind the newest completion."""
    name = "automatic_issuing"
    if paused:
        return Check(
            name,
            Status.FAIL,
            f"Automatic issuing is paused: {reason or 'no reason recorded'}. Completions wait.",
            "Read the reason on the Autopilot page, fix it, then resume.",
        )
    if lag is not None and lag > AUTOPILOT_LAG_WARN:
        return Check(
            name,
            Status.WARN,
            f"Automatic issuing is {_ago(lag)} behind the newest completion.",
            "Check that the automatic issuing process runs and is not throttled.",
        )
    return Check(name, Status.OK, "Automatic issuing is running and up to date.")


def check_webhook(configured: bool, last_delivery: datetime | None, *, now: datetime) -> Check:
    """The Skilljar webhook's last delivery (a hint only: the schedule reads the truth)."""
    name = "webhook"
    if not configured:
        return Check(name, Status.OK, "No webhook configured; completions are read on schedule.")
    if last_delivery is None:
        return Check(
            name,
            Status.WARN,
            "The webhook is configured but no delivery has arrived yet.",
            "Check the webhook's URL and secret in Skilljar.",
        )
    silent = now - last_delivery
    if silent > WEBHOOK_SILENCE_WARN:
        return Check(
            name,
            Status.WARN,
            f"The last webhook delivery arrived {_ago(silent)} ago.",
            "Check the webhook in Skilljar; completions are still read on schedule.",
        )
    return Check(name, Status.OK, f"The last webhook delivery arrived {_ago(silent)} ago.")

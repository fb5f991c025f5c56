"""The "Badges Earned" rules, pure (see the README's "Student preview"):

* every badge of the configured organization for the student's **current** email, matched
  case-insensitively after trimming (the cache holds only our organization's badges: sync reads
  nothing else), including badges issued before the integration;
* pending and accepted badges only: revoked, rejected and replaced ones are not shown;
* a pending badge links to its own page on Credly with the call to action "Accept"; an accepted
  one links to the student's Credly dashboard (``<web url>/earner/earned``);
* no table at all while the student has no badge, or when the table is disabled in Settings.

Also how many reminders Credly sent for one badge (the rule is :mod:`credly_ops.reminders`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from credly_ops.models import BadgeState, IssuedBadge, normalize_email
from credly_ops.profile.values import BadgeEarnedRow
from credly_ops.reminders import reminders_sent

DASHBOARD_PATH = "/earner/earned"
ACCEPT_LABEL = "Accept"
DASHBOARD_LABEL = "View on Credly"

_DISABLED_VALUES = frozenset({"false", "0", "no", "off", "disabled"})


def dashboard_url(web_url: str) -> str:
    """The student's Credly dashboard, where an accepted badge links to."""
    return web_url.rstrip("/") + DASHBOARD_PATH


def badge_link(badge: IssuedBadge, web_url: str) -> tuple[str, str]:
    """(call to action, URL): "Accept" on the badge's own page while pending, else the
    student's dashboard."""
    if badge.state == BadgeState.PENDING:
        return ACCEPT_LABEL, badge.accept_badge_url or badge.badge_url or dashboard_url(web_url)
    return DASHBOARD_LABEL, dashboard_url(web_url)


def earned_rows(badges: Iterable[IssuedBadge], email: str, *, web_url: str) -> list[BadgeEarnedRow]:
    """The "Badges Earned" rows for ``email`` out of ``badges`` (newest first): live badges of
    that exact email only. Empty when the student has none."""
    key = normalize_email(email)
    rows = []
    for badge in badges:
        if not badge.is_live or normalize_email(badge.recipient_email) != key:
            continue
        label, url = badge_link(badge, web_url)
        rows.append(
            BadgeEarnedRow(
                badge_id=badge.id,
                template_id=badge.template_id,
                name=badge.badge_template.name or badge.template_id,
                image_url=badge.image_url or badge.badge_template.image_url,
                issued_at=badge.issued_at,
                expires_at=badge.expires_at,
                state=badge.state,
                link_label=label,
                link_url=url,
            )
        )
    rows.sort(key=lambda r: (r.issued_at, r.badge_id), reverse=True)
    return rows


def table_enabled_value(value: str | None) -> bool:
    """The "Badges Earned" switch from its stored text (enabled unless said otherwise)."""
    return value is None or value.strip().lower() not in _DISABLED_VALUES


def sent_at(badge: IssuedBadge) -> datetime:
    """When Credly sent the badge: the start of its reminder clock."""
    return badge.created_at or badge.issued_at


def badge_reminders(badge: IssuedBadge, now: datetime) -> int:
    """Reminders Credly sent for this badge (see :mod:`credly_ops.reminders`)."""
    if badge.state == BadgeState.PENDING:
        pending_until = None
    else:
        pending_until = badge.state_updated_at or sent_at(badge)
    return reminders_sent(
        sent_at=sent_at(badge),
        pending_until=pending_until,
        now=now,
        suppressed=badge.suppress_badge_notification_email,
    )

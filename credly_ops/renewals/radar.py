"""The radar, pure: what expires when, and what will happen about it.

A badge is on the radar when it is live (``pending`` or ``accepted``) and has an expiry within
the next year, or when it is ``accepted`` and its expiry has passed (expired but still accepted:
the student still shows it, and recertification is overdue).

Each badge gets a :class:`RenewalStatus`, read from the completions of the courses whose rules
map to the badge's template, for the same student (emails matched as the engine does):

* ``renews_by_rule`` — a newer completion exists that the engine will turn into a renewal: it
  passed (or the rule does not require a pass, or it carries no status), the course's rule is
  ``update`` or ``issue_or_update``, and the expiry it would give is later than the badge's
  (rule 6: an update never shortens a badge, so that is exactly when the engine renews);
* ``enrolled_again`` — the student came back to the course but that will not renew the badge:
  a newer completion that did not pass, or one under an ``issue`` rule.  The cache holds no
  enrollments today, so "enrolled again" is read from completions only; when enrollments
  reach the cache (a Skilljar completions sync), an in-progress enrollment is one more way to
  be ``enrolled_again`` — add it in :func:`renewal_status`;
* ``nothing`` — nothing newer: outreach is needed.

"Newer" means completed after the badge was issued.  The set of statuses is an enum so a new
one (say, ``reminded``) is one more member and one more branch.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from credly_ops.issuance.decide import add_months
from credly_ops.models import BadgeRule, IssueMethod, normalize_email

#: the windows the radar counts, in days from now ("expiring in the next 30 / 60 / 90 days")
WINDOWS: tuple[int, ...] = (30, 60, 90)
#: how far ahead the radar looks (the chart's twelve months)
HORIZON = timedelta(days=366)
#: the outreach CSV's columns, in order
OUTREACH_COLUMNS: tuple[str, ...] = (
    "email",
    "first_name",
    "last_name",
    "template",
    "course",
    "state",
    "expires",
    "days_left",
    "renewal_status",
)
LIVE = frozenset({"pending", "accepted"})


class RenewalStatus(StrEnum):
    RENEWS_BY_RULE = "renews_by_rule"
    ENROLLED_AGAIN = "enrolled_again"
    NOTHING = "nothing"


RENEWAL_SENTENCES: dict[RenewalStatus, str] = {
    RenewalStatus.RENEWS_BY_RULE: "a newer completion will renew it (update rule)",
    RenewalStatus.ENROLLED_AGAIN: "came back to the course, but that will not renew it",
    RenewalStatus.NOTHING: "nothing newer: reach out",
}


@dataclass(frozen=True)
class RadarBadge:
    """A badge as the radar reads it from the cache."""

    id: str
    template_id: str
    template_name: str
    email: str
    first_name: str
    last_name: str
    state: str
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class RadarCompletion:
    """A completion of a mapped course, as the radar reads it."""

    email: str
    course_id: str
    completed_at: datetime
    status: str | None  # passed | failed | None (counts as passed)


@dataclass(frozen=True)
class ExpiringBadge:
    badge_id: str
    email: str
    first_name: str
    last_name: str
    template_id: str
    template_name: str
    course: str  # the titles of the courses mapped to the template, joined
    state: str
    expires_at: datetime
    days_left: int  # negative once expired
    renewal: RenewalStatus

    @property
    def expired(self) -> bool:
        return self.days_left < 0

    def outreach_row(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "template": self.template_name,
            "course": self.course,
            "state": self.state,
            "expires": f"{self.expires_at:%Y-%m-%d}",
            "days_left": self.days_left,
            "renewal_status": self.renewal.value,
        }

    def as_json(self) -> dict[str, Any]:
        return {"badge_id": self.badge_id, "template_id": self.template_id, **self.outreach_row()}


@dataclass
class TemplateSummary:
    """One template's line: counts per window, expired-but-accepted, and renewal statuses
    (statuses over the badges expiring within the largest window plus the expired ones)."""

    template_id: str
    template_name: str
    course: str
    within: dict[int, int] = field(default_factory=lambda: dict.fromkeys(WINDOWS, 0))
    expired_accepted: int = 0
    renewal: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, Any]:
        return {
            "template_id": self.template_id,
            "template": self.template_name,
            "course": self.course,
            **{f"within_{days}_days": n for days, n in self.within.items()},
            "expired_accepted": self.expired_accepted,
            **{status.value: self.renewal.get(status.value, 0) for status in RenewalStatus},
        }


@dataclass(frozen=True)
class Radar:
    now: datetime
    badges: tuple[ExpiringBadge, ...]

    def expiring(self, days: int) -> list[ExpiringBadge]:
        """Live badges expiring from now to ``days`` days ahead, soonest first."""
        return [b for b in self.badges if not b.expired and b.days_left <= days]

    def expired_accepted(self) -> list[ExpiringBadge]:
        return [b for b in self.badges if b.expired and b.state == "accepted"]

    def outreach(self, days: int) -> list[ExpiringBadge]:
        """Who to contact: expired-but-accepted, then everything expiring within ``days``."""
        return self.expired_accepted() + self.expiring(days)

    def by_template(self) -> list[TemplateSummary]:
        summaries: dict[str, TemplateSummary] = {}
        widest = max(WINDOWS)
        for b in self.badges:
            line = summaries.setdefault(
                b.template_id, TemplateSummary(b.template_id, b.template_name, b.course)
            )
            if b.expired:
                if b.state != "accepted":
                    continue
                line.expired_accepted += 1
            elif b.days_left > widest:
                continue
            for days in WINDOWS:
                if not b.expired and b.days_left <= days:
                    line.within[days] += 1
            line.renewal[b.renewal.value] += 1
        lines = [s for s in summaries.values() if s.expired_accepted or s.within[widest]]
        lines.sort(key=lambda s: (-s.within[widest] - s.expired_accepted, s.template_name))
        return lines

    def per_month(self, months: int = 12) -> list[tuple[str, int]]:
        """Live badges expiring in each of the next ``months`` calendar months (this month
        from today on), as (``YYYY-MM``, count), every month present."""
        first = self.now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        keys = [f"{add_months(first, i):%Y-%m}" for i in range(months)]
        counts = Counter(f"{b.expires_at:%Y-%m}" for b in self.badges if not b.expired)
        return [(key, counts.get(key, 0)) for key in keys]

    def as_json(self, days: int) -> dict[str, Any]:
        return {
            "as_of": self.now.isoformat(),
            "days": days,
            "templates": [s.as_json() for s in self.by_template()],
            "expiring": len(self.expiring(days)),
            "expired_accepted": len(self.expired_accepted()),
            "per_month": [{"month": m, "badges": n} for m, n in self.per_month()],
            "badges": [b.as_json() for b in self.outreach(days)],
        }


def _expiry(when: datetime, rule: BadgeRule) -> datetime | None:
    if not rule.has_expiration:
        return None
    return add_months(when, rule.expiration_months) + timedelta(days=rule.expiration_days)


def _passes(completion: RadarCompletion, rule: BadgeRule) -> bool:
    return not rule.require_pass or completion.status != "failed"


def renewal_status(
    badge: RadarBadge, rules: Sequence[BadgeRule], completions: Iterable[RadarCompletion]
) -> RenewalStatus:
    """What will happen about this badge (see the module docstring).  ``rules`` are the rules
    mapping the badge's template; ``completions`` the student's completions of their courses."""
    by_course = {rule.course_id: rule for rule in rules}
    came_back = False
    for completion in completions:
        rule = by_course.get(completion.course_id)
        if rule is None or completion.completed_at <= badge.issued_at:
            continue
        came_back = True
        if not _passes(completion, rule):
            continue
        if rule.method in (IssueMethod.UPDATE, IssueMethod.ISSUE_OR_UPDATE):
            new_expiry = _expiry(completion.completed_at, rule)
            # an update never shortens; one with no duration makes the badge never expire
            if new_expiry is None or new_expiry > badge.expires_at:
                return RenewalStatus.RENEWS_BY_RULE
    return RenewalStatus.ENROLLED_AGAIN if came_back else RenewalStatus.NOTHING


def build_radar(
    badges: Iterable[RadarBadge],
    rules: Sequence[BadgeRule],
    completions: Iterable[RadarCompletion],
    *,
    now: datetime,
    horizon: timedelta = HORIZON,
) -> Radar:
    """The radar as of ``now``: live badges expiring before ``now + horizon`` and accepted ones
    already expired, each with its renewal status, soonest expiry first."""
    rules_by_template: dict[str, list[BadgeRule]] = defaultdict(list)
    for rule in rules:
        rules_by_template[rule.template_id].append(rule)
    mine: dict[tuple[str, str], list[RadarCompletion]] = defaultdict(list)
    course_template = {rule.course_id: rule.template_id for rule in rules}
    for completion in completions:
        template_id = course_template.get(completion.course_id)
        if template_id is not None:
            mine[(normalize_email(completion.email), template_id)].append(completion)
    out: list[ExpiringBadge] = []
    for badge in badges:
        if badge.state not in LIVE:
            continue
        expired = badge.expires_at < now
        if (expired and badge.state != "accepted") or badge.expires_at >= now + horizon:
            continue
        mapped = rules_by_template.get(badge.template_id, [])
        course = ", ".join(sorted({r.course_title or r.course_id for r in mapped}))
        status = renewal_status(
            badge, mapped, mine.get((normalize_email(badge.email), badge.template_id), [])
        )
        seconds = (badge.expires_at - now).total_seconds()
        out.append(
            ExpiringBadge(
                badge_id=badge.id,
                email=badge.email,
                first_name=badge.first_name,
                last_name=badge.last_name,
                template_id=badge.template_id,
                template_name=badge.template_name,
                course=course,
                state=badge.state,
                expires_at=badge.expires_at,
                days_left=int(seconds // 86400),
                renewal=status,
            )
        )
    out.sort(key=lambda b: (b.expires_at, b.email))
    return Radar(now, tuple(out))

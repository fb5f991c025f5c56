"""One student, as support staff need to see them: the "Badges Earned" table the student sees on
their profile, their registrations, and why each completion did or did not become a badge.

The "Badges Earned" rules (see the domain's "Badges Earned preview"):

* every badge of the configured organization for the student's **current** email, matched
  case-insensitively after trimming (the cache holds only our organization's badges: sync reads
  nothing else), including badges issued before the integration;
* pending and accepted badges only: revoked, rejected and replaced ones are not shown;
* a pending badge links to its own page on Credly with the call to action "Accept"; an accepted
  one links to the student's Credly dashboard (``<web url>/earner/earned``);
* no table at all while the student has no badge, or when the table is disabled in Settings.

Explanations run the issuance engine (:func:`credly_ops.issuance.plan`, automatic mode) on each
completion against the badges that exist, and say the answer as a sentence a support person can
read out: "Completed Cloud Foundations on 3 May 2025, passed → badge issued 3 May, pending for
6 days, 2 reminders sent; accept link: …".

Everything here is pure except the ``load_*``/``student_*`` readers, which take a
:class:`~credly_ops.store.Store`.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from credly_ops.credly import errors as credly_errors
from credly_ops.issuance import compute_expires_at, plan, same_second
from credly_ops.models import (
    BadgeRule,
    BadgeState,
    BadgeTemplate,
    Completion,
    IssuedBadge,
    IssueMethod,
    SuccessStatus,
    TemplateRef,
    normalize_email,
)
from credly_ops.reasons import REASONS, describe
from credly_ops.reminders import reminders_sent
from credly_ops.rules import load_rules, load_templates
from credly_ops.store import SETTING_BADGES_TABLE_ENABLED, Store, from_db_time
from credly_ops.timeutil import utcnow

DASHBOARD_PATH = "/earner/earned"
ACCEPT_LABEL = "Accept"
DASHBOARD_LABEL = "View on Credly"
SUGGESTION_LIMIT = 20

#: what became of a completion, in one word (the explanation's ``verdict``)
VERDICT_ISSUED = "issued"
VERDICT_RENEWED = "renewed"
VERDICT_REVOKED = "revoked"
VERDICT_REJECTED = "rejected"
VERDICT_REPLACED = "replaced"
VERDICT_ISSUE_FAILED = "issue_failed"
VERDICT_MISSING = "missing"
VERDICT_NO_BADGE = "no_badge"
VERDICT_INVALID = "invalid"

_DISABLED_VALUES = frozenset({"false", "0", "no", "off", "disabled"})
_SAFE_SCHEMES = frozenset({"http", "https"})


# -- values ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadgeEarnedRow:
    """One row of the student's "Badges Earned" table, as the student sees it."""

    badge_id: str
    template_id: str
    name: str
    image_url: str | None
    issued_at: datetime
    expires_at: datetime | None
    state: str
    link_label: str
    link_url: str

    @property
    def is_pending(self) -> bool:
        return self.state == BadgeState.PENDING


@dataclass(frozen=True)
class Registration:
    """One course of the student's "Registrations" table (a completion from the LMS)."""

    course_id: str
    course_title: str
    completed_at: datetime
    status: str | None
    score: float | None

    @property
    def result(self) -> str:
        if self.status == SuccessStatus.PASSED:
            return "Passed"
        if self.status == SuccessStatus.FAILED:
            return "Failed"
        return "Complete"


@dataclass(frozen=True)
class LedgerEntry:
    """What a bulk issue (or a single re-issue) recorded for one of the student's completions."""

    job_id: str
    course_id: str
    course_title: str
    completed_at: datetime | None
    status: str
    outcome: str
    error_class: str | None
    error_message: str | None
    badge_id: str | None
    updated_at: datetime


@dataclass(frozen=True)
class Explanation:
    """One completion, what the engine decided for it, and the sentence that says why.

    ``outcome``/``reason`` are the engine's (automatic mode, against the badges that exist);
    ``verdict`` is what became of the completion; ``can_reissue`` marks a completion that should
    have a badge and has none (an issue failed, or nothing was ever sent).
    """

    course_id: str
    course_title: str
    completed_at: datetime
    status: str | None
    outcome: str
    reason: str
    verdict: str
    sentence: str
    badge_id: str | None = None
    badge_state: str | None = None
    link_url: str | None = None
    reminders: int | None = None
    error_class: str | None = None
    error_message: str | None = None
    can_reissue: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "course_id": self.course_id,
            "course_title": self.course_title,
            "completed_at": self.completed_at.isoformat(),
            "status": self.status,
            "outcome": self.outcome,
            "reason": self.reason,
            "verdict": self.verdict,
            "sentence": self.sentence,
            "badge_id": self.badge_id,
            "badge_state": self.badge_state,
            "link_url": self.link_url,
            "reminders": self.reminders,
            "error_class": self.error_class,
            "error_message": self.error_message,
            "can_reissue": self.can_reissue,
        }


@dataclass(frozen=True)
class StudentProfile:
    """Everything the student preview shows for one email."""

    email: str
    first_name: str
    last_name: str
    table_enabled: bool
    badges_earned: list[BadgeEarnedRow]
    registrations: list[Registration]
    explanations: list[Explanation]
    badges: list[IssuedBadge] = field(default_factory=list)

    @property
    def name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p) or self.email

    @property
    def shows_table(self) -> bool:
        """Whether the student's profile shows the "Badges Earned" table at all."""
        return self.table_enabled and bool(self.badges_earned)

    @property
    def known(self) -> bool:
        """Whether the cache holds anything for this email."""
        return bool(self.badges or self.registrations)

    def as_json(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "name": self.name,
            "table_enabled": self.table_enabled,
            "shows_table": self.shows_table,
            "badges_earned": [
                {
                    "badge_id": r.badge_id,
                    "name": r.name,
                    "image_url": r.image_url,
                    "issued_at": r.issued_at.isoformat(),
                    "expires_at": r.expires_at.isoformat() if r.expires_at else None,
                    "state": r.state,
                    "link_label": r.link_label,
                    "link_url": r.link_url,
                }
                for r in (self.badges_earned if self.shows_table else [])
            ],
            "registrations": [
                {
                    "course_id": r.course_id,
                    "course_title": r.course_title,
                    "completed_at": r.completed_at.isoformat(),
                    "status": r.status,
                    "score": r.score,
                }
                for r in self.registrations
            ],
            "explanations": [e.as_json() for e in self.explanations],
        }


# -- the "Badges Earned" rows (pure) ---------------------------------------------------------


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


# -- reading the cache -----------------------------------------------------------------------

_BADGE_SQL = (
    "SELECT id, template_id, template_name, recipient_email, first_name, last_name, "
    "issuer_earner_id, state, issued_at, expires_at, state_updated_at, created_at, updated_at, "
    "badge_url, accept_badge_url, image_url, replaces_badge_id, replacement_badge_id, "
    "suppress_notification, revocation_reason FROM badges WHERE recipient_email = ? "
    "ORDER BY issued_at DESC, id"
)


def _badge_from_row(r: Sequence[Any]) -> IssuedBadge:
    return IssuedBadge(
        id=r[0],
        badge_template=TemplateRef(id=r[1], name=r[2] or "", image_url=r[15]),
        recipient_email=r[3],
        issued_to_first_name=r[4],
        issued_to_last_name=r[5],
        issuer_earner_id=r[6],
        state=r[7],
        issued_at=from_db_time(r[8]),
        expires_at=from_db_time(r[9]),
        state_updated_at=from_db_time(r[10]),
        created_at=from_db_time(r[11]),
        updated_at=from_db_time(r[12]),
        badge_url=r[13],
        accept_badge_url=r[14],
        image_url=r[15],
        replaces_badge_id=r[16],
        replacement_badge_id=r[17],
        suppress_badge_notification_email=bool(r[18]),
        revocation_reason=r[19],
    )


def student_badges(store: Store, email: str) -> list[IssuedBadge]:
    """Every cached badge (any state) of the organization for this email, newest first."""
    with store.session() as cur:
        rows = cur.execute(_BADGE_SQL, [normalize_email(email)]).fetchall()
    return [_badge_from_row(r) for r in rows]


def _status(value: str | None) -> SuccessStatus | None:
    try:
        return SuccessStatus(value) if value else None
    except ValueError:
        return None


def student_completions(store: Store, email: str) -> list[Completion]:
    """The student's completions, oldest first."""
    with store.session() as cur:
        rows = cur.execute(
            "SELECT email, first_name, last_name, course_id, course_title, completed_at, status, "
            "score FROM completions WHERE email = ? ORDER BY completed_at, course_id",
            [normalize_email(email)],
        ).fetchall()
    return [
        Completion(
            email=r[0],
            first_name=r[1] or "",
            last_name=r[2] or "",
            course_id=r[3] or "",
            course_title=r[4] or "",
            completed_at=r[5],  # NOT NULL; stored naive UTC, which Completion reads as UTC
            status=_status(r[6]),
            score=r[7],
        )
        for r in rows
    ]


def student_ledger(store: Store, email: str) -> list[LedgerEntry]:
    """What issue jobs recorded for this email, oldest first."""
    with store.session() as cur:
        rows = cur.execute(
            "SELECT job_id, course_id, course_title, completed_at, status, outcome, error_class, "
            "error_message, badge_id, updated_at FROM ledger WHERE lower(trim(email)) = ? "
            "ORDER BY updated_at, job_id, row_no",
            [normalize_email(email)],
        ).fetchall()
    return [
        LedgerEntry(
            job_id=r[0],
            course_id=r[1] or "",
            course_title=r[2] or "",
            completed_at=from_db_time(r[3]),
            status=r[4],
            outcome=r[5],
            error_class=r[6],
            error_message=r[7],
            badge_id=r[8],
            updated_at=from_db_time(r[9]) or utcnow(),
        )
        for r in rows
    ]


def badges_table_enabled(store: Store) -> bool:
    """Whether the "Badges Earned" table is switched on in Settings (on by default)."""
    return table_enabled_value(store.get_setting(SETTING_BADGES_TABLE_ENABLED))


def badges_earned(store: Store, email: str, *, web_url: str) -> list[BadgeEarnedRow]:
    """The student's "Badges Earned" rows; empty when the table does not appear (no badge, or
    the table is disabled)."""
    if not badges_table_enabled(store):
        return []
    return earned_rows(student_badges(store, email), email, web_url=web_url)


def suggest_emails(store: Store, fragment: str, *, limit: int = SUGGESTION_LIMIT) -> list[str]:
    """Student emails in the cache containing ``fragment`` (those starting with it first)."""
    needle = normalize_email(fragment)
    if not needle:
        return []
    with store.session() as cur:
        rows = cur.execute(
            "SELECT email FROM (SELECT recipient_email AS email FROM badges "
            "UNION SELECT email FROM completions) "
            "WHERE contains(email, ?) ORDER BY NOT starts_with(email, ?), email LIMIT ?",
            [needle, needle, limit],
        ).fetchall()
    return [r[0] for r in rows]


def load_profile(
    store: Store, email: str, *, web_url: str, now: datetime | None = None
) -> StudentProfile:
    """The whole student preview for ``email`` from the cache."""
    key = normalize_email(email)
    with store.held():
        badges = student_badges(store, key)
        completions = student_completions(store, key)
        rules = {r.course_id: r for r in load_rules(store)}
        templates = load_templates(store)
        ledger = student_ledger(store, key)
        enabled = badges_table_enabled(store)
    return build_profile(
        key,
        badges=badges,
        completions=completions,
        rules=rules,
        templates=templates,
        ledger=ledger,
        table_enabled=enabled,
        web_url=web_url,
        now=now or utcnow(),
    )


def build_profile(
    email: str,
    *,
    badges: Sequence[IssuedBadge],
    completions: Sequence[Completion],
    rules: Mapping[str, BadgeRule],
    templates: Mapping[str, BadgeTemplate],
    ledger: Sequence[LedgerEntry],
    table_enabled: bool,
    web_url: str,
    now: datetime,
) -> StudentProfile:
    """The student preview from plain values (pure)."""
    key = normalize_email(email)
    own = [b for b in badges if normalize_email(b.recipient_email) == key]
    first, last = _names(completions, own)
    explanations = [
        explain_completion(
            c, rules=rules, templates=templates, badges=own, ledger=ledger, now=now, web_url=web_url
        )
        for c in sorted(completions, key=lambda c: c.completed_at, reverse=True)
    ]
    registrations = [
        Registration(
            course_id=c.course_id,
            course_title=c.course_title or c.course_id,
            completed_at=c.completed_at,
            status=None if c.status is None else c.status.value,
            score=c.score,
        )
        for c in sorted(completions, key=lambda c: c.completed_at, reverse=True)
    ]
    return StudentProfile(
        email=key,
        first_name=first,
        last_name=last,
        table_enabled=table_enabled,
        badges_earned=earned_rows(own, key, web_url=web_url) if table_enabled else [],
        registrations=registrations,
        explanations=explanations,
        badges=list(own),
    )


def _names(completions: Sequence[Completion], badges: Sequence[IssuedBadge]) -> tuple[str, str]:
    for c in sorted(completions, key=lambda c: c.completed_at, reverse=True):
        if c.first_name or c.last_name:
            return c.first_name, c.last_name
    for b in badges:
        if b.issued_to_first_name or b.issued_to_last_name:
            return b.issued_to_first_name or "", b.issued_to_last_name or ""
    return "", ""


# -- explanations (pure) ---------------------------------------------------------------------


def day(moment: datetime) -> str:
    """``3 May 2025``."""
    return f"{moment.day} {moment:%B %Y}"


def short_day(moment: datetime, reference: datetime) -> str:
    """``3 May`` within the reference's year, ``3 May 2025`` otherwise."""
    return f"{moment.day} {moment:%B}" if moment.year == reference.year else day(moment)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _sent_at(badge: IssuedBadge) -> datetime:
    return badge.created_at or badge.issued_at


def badge_reminders(badge: IssuedBadge, now: datetime) -> int:
    """Reminders Credly sent for this badge (see :mod:`credly_ops.reminders`)."""
    if badge.state == BadgeState.PENDING:
        pending_until = None
    else:
        pending_until = badge.state_updated_at or _sent_at(badge)
    return reminders_sent(
        sent_at=_sent_at(badge),
        pending_until=pending_until,
        now=now,
        suppressed=badge.suppress_badge_notification_email,
    )


def _pending_for(badge: IssuedBadge, now: datetime) -> str:
    days = max((now - _sent_at(badge)).days, 0)
    return "pending for less than a day" if days == 0 else f"pending for {_plural(days, 'day')}"


def live_badge_phrase(badge: IssuedBadge, completed_at: datetime, now: datetime) -> str:
    """ "badge issued 3 May, pending for 6 days, 2 reminders sent; accept link: …"."""
    issued = short_day(badge.issued_at, completed_at)
    parts = [f"badge issued {issued}"]
    if badge.replaces_badge_id:
        parts[0] += " (since renewed)"
    reminders = badge_reminders(badge, now)
    if badge.state == BadgeState.PENDING:
        parts.append(_pending_for(badge, now))
        if badge.suppress_badge_notification_email:
            parts.append("no reminders (notification emails suppressed)")
        else:
            parts.append(f"{_plural(reminders, 'reminder')} sent")
    else:
        accepted = badge.state_updated_at
        when = f" {short_day(accepted, completed_at)}" if accepted else ""
        if reminders == 0:
            parts.append(f"accepted{when} before any reminder")
        else:
            parts.append(f"accepted{when} after {_plural(reminders, 'reminder')}")
    text = ", ".join(parts)
    if badge.expires_at:
        text += f"; expires {day(badge.expires_at)}"
    if badge.state == BadgeState.PENDING:
        link = badge.accept_badge_url or badge.badge_url
        if link:
            text += f"; accept link: {link}"
    return text


def _head(completion: Completion, course: str) -> str:
    text = f"Completed {course} on {day(completion.completed_at)}"
    if completion.status == SuccessStatus.PASSED:
        text += ", passed"
    elif completion.status == SuccessStatus.FAILED:
        text += ", failed"
    return text


def _error_sentence(error_class: str | None) -> str:
    """The sentence for a recorded error: a reason code, or the name of a Credly error class."""
    if not error_class:
        return describe("credly_error")
    if error_class in REASONS:
        return describe(error_class)
    cls = getattr(credly_errors, error_class, None)
    if isinstance(cls, type) and issubclass(cls, credly_errors.CredlyError):
        return describe(cls.kind)
    return error_class


def _last_failure(
    completion: Completion, rule: BadgeRule | None, ledger: Sequence[LedgerEntry]
) -> LedgerEntry | None:
    """The latest ledger entry for this completion, when it is a failure."""
    course_ids = {(completion.course_id or "").strip()} | ({rule.course_id} if rule else set())
    course_ids.discard("")
    title = (completion.course_title or "").strip().casefold()
    latest: LedgerEntry | None = None
    for entry in ledger:
        if entry.completed_at is None or not same_second(
            entry.completed_at, completion.completed_at
        ):
            continue
        same_course = entry.course_id in course_ids or (
            not entry.course_id and title and entry.course_title.strip().casefold() == title
        )
        if same_course and (latest is None or entry.updated_at >= latest.updated_at):
            latest = entry
    return latest if latest is not None and latest.status == "failed" else None


def _chain_end(badge: IssuedBadge, by_id: Mapping[str, IssuedBadge]) -> IssuedBadge:
    """Follow replacements to the badge that carries on (as far as the cache knows)."""
    seen = {badge.id}
    while badge.state == BadgeState.REPLACED:
        nxt = by_id.get(badge.replacement_badge_id or "")
        if nxt is None or nxt.id in seen:
            break
        seen.add(nxt.id)
        badge = nxt
    return badge


def explain_completion(
    completion: Completion,
    *,
    rules: Mapping[str, BadgeRule],
    templates: Mapping[str, BadgeTemplate],
    badges: Sequence[IssuedBadge],
    ledger: Sequence[LedgerEntry] = (),
    now: datetime,
    web_url: str,
) -> Explanation:
    """What became of one completion, and why, in words (see the module docstring)."""
    email = normalize_email(completion.email)
    row = plan(
        [completion], rules, templates, {email: list(badges)}, now=now, mode="automatic"
    ).rows[0]
    rule = rules.get(row.course_id) if row.template_id else None
    if rule is None and row.template_id:
        rule = next((r for r in rules.values() if r.course_id == row.course_id), None)
    course = completion.course_title or (rule.course_title if rule else "") or row.course_id
    head = _head(completion, course)
    status = None if completion.status is None else completion.status.value

    def answer(verdict: str, sentence: str, **kw: Any) -> Explanation:
        return Explanation(
            course_id=row.course_id,
            course_title=course,
            completed_at=completion.completed_at,
            status=status,
            outcome=row.outcome,
            reason=row.reason,
            verdict=verdict,
            sentence=sentence,
            **kw,
        )

    if row.outcome == "invalid":
        return answer(
            VERDICT_INVALID, f"{head} — this completion cannot be used: {describe(row.reason)}"
        )
    if row.reason == "no_rule":
        return answer(
            VERDICT_NO_BADGE,
            f"Course {course} has no badge — nothing to issue for the completion on "
            f"{day(completion.completed_at)}.",
        )
    if row.reason == "ambiguous_course_title":
        return answer(VERDICT_NO_BADGE, f"{head} — no badge: {describe(row.reason)}")
    assert rule is not None
    by_id = {b.id: b for b in badges}
    own = [b for b in badges if b.template_id == rule.template_id]
    template = templates.get(rule.template_id)
    template_name = (template.name if template else "") or rule.template_name or rule.template_id
    completed_at = completion.completed_at

    def live(badge: IssuedBadge, verdict: str, sentence: str) -> Explanation:
        link = dashboard_url(web_url)
        if badge.state == BadgeState.PENDING:
            link = badge.accept_badge_url or badge.badge_url or link
        return answer(
            verdict,
            sentence,
            badge_id=badge.id,
            badge_state=badge.state,
            link_url=link,
            reminders=badge_reminders(badge, now),
        )

    # What exists comes first: a badge issued for this very completion (issued_at equal to
    # completed_at, to the second), whatever the engine would decide today.
    direct = [b for b in own if same_second(b.issued_at, completed_at)]
    issued = max((b for b in direct if b.is_live), key=_newest, default=None)
    if issued is not None:
        phrase = live_badge_phrase(issued, completed_at, now)
        return live(issued, VERDICT_ISSUED, f"{head} → {phrase}.")

    renewed = _renewal_of(completion, rule, own)
    if renewed is not None:
        expiry = day(renewed.expires_at) if renewed.expires_at else "no date"
        sentence = (
            f"{head} → the student's {template_name} badge (first issued "
            f"{day(renewed.issued_at)}) was renewed: it now expires on {expiry}; it is "
            f"{renewed.state}."
        )
        return live(renewed, VERDICT_RENEWED, sentence)

    if direct:
        first = min(direct, key=lambda b: (b.created_at or b.issued_at, b.id))
        end = _chain_end(first, by_id)
        issued_on = short_day(first.issued_at, completed_at)
        changed = end.state_updated_at
        on = f" on {day(changed)}" if changed else ""
        if end.state == BadgeState.REVOKED:
            why = end.revocation_reason or "no reason given"
            return answer(
                VERDICT_REVOKED,
                f"{head} → badge issued {issued_on}, revoked{on}: {why}.",
                badge_id=end.id,
                badge_state=end.state,
            )
        if end.state == BadgeState.REJECTED:
            return answer(
                VERDICT_REJECTED,
                f"{head} → badge issued {issued_on}; the student rejected it{on}.",
                badge_id=end.id,
                badge_state=end.state,
            )
        if end.is_live:
            phrase = live_badge_phrase(end, completed_at, now)
            return live(end, VERDICT_ISSUED, f"{head} → {phrase}.")
        return answer(
            VERDICT_REPLACED,
            f"{head} → badge issued {issued_on}, replaced{on} by a badge the cache does not "
            "hold yet; sync to see it.",
            badge_id=end.id,
            badge_state=end.state,
        )

    if row.reason == "not_passed":
        return answer(
            VERDICT_NO_BADGE,
            f"Completed {course} on {day(completed_at)} but failed the quiz — no badge.",
        )

    failure = _last_failure(completion, rule, ledger)
    if failure is not None:
        message = (failure.error_message or "").strip()
        said = f' (Credly said: "{message[:200]}")' if message else ""
        return answer(
            VERDICT_ISSUE_FAILED,
            f"{head} → issue failed on {day(failure.updated_at)}: "
            f"{_error_sentence(failure.error_class)}{said}",
            error_class=failure.error_class,
            error_message=failure.error_message,
            can_reissue=True,
        )

    matched = by_id.get(row.matched_badge_id or "")
    if row.reason == "before_active_from":
        installed = f" ({day(rule.active_from)})" if rule.active_from else ""
        return answer(
            VERDICT_NO_BADGE,
            f"{head}, before the badge was installed on the course{installed} — no badge: "
            "automatic issuing only goes forward (a CSM can backfill it with a bulk issue).",
        )
    if row.reason == "template_inactive":
        state = template.state if template else "unknown to Credly"
        return answer(
            VERDICT_NO_BADGE,
            f"{head} → no badge: the badge template {template_name} is {state}.",
        )
    if row.reason == "already_up_to_date" and matched is not None:
        lasts = f"until {day(matched.expires_at)}" if matched.expires_at else "without an expiry"
        return live(
            matched,
            VERDICT_NO_BADGE,
            f"{head} → nothing to renew: the student's {template_name} badge already lasts "
            f"{lasts}.",
        )
    if row.reason == "already_has_badge" and matched is not None:
        return answer(
            VERDICT_NO_BADGE,
            f"{head} → no new badge: the student already holds {template_name} (issued "
            f"{day(matched.issued_at)}, {matched.state}) and the template allows one per student.",
            badge_id=matched.id,
            badge_state=matched.state,
        )
    if row.reason == "previously_rejected" and matched is not None:
        when = matched.state_updated_at or matched.issued_at
        return answer(
            VERDICT_NO_BADGE,
            f"{head} → no badge: the student rejected {template_name} on {day(when)}; it is "
            "only issued again when a CSM opts in.",
            badge_id=matched.id,
            badge_state=matched.state,
        )
    if row.outcome in ("issue", "update"):
        what = "issued" if row.outcome == "issue" else "renewed"
        return answer(
            VERDICT_MISSING,
            f"{head} → a {template_name} badge should have been {what}, but Credly has none for "
            "this completion: refresh from Credly, or re-issue it.",
            can_reissue=True,
        )
    return answer(VERDICT_NO_BADGE, f"{head} → no badge: {describe(row.reason)}")


def _newest(badge: IssuedBadge) -> tuple[datetime, str]:
    return (badge.created_at or badge.issued_at, badge.id)


def _renewal_of(
    completion: Completion, rule: BadgeRule, badges: Sequence[IssuedBadge]
) -> IssuedBadge | None:
    """The live badge this completion renewed: a replacement carrying the expiry this
    completion gives (only for rules that update)."""
    if rule.method == IssueMethod.ISSUE or not rule.has_expiration:
        return None
    try:
        expiry = compute_expires_at(completion.completed_at, rule)
    except ValueError:
        return None
    found = [
        b
        for b in badges
        if b.is_live
        and b.replaces_badge_id
        and same_second(b.expires_at, expiry)
        and b.issued_at < completion.completed_at
    ]
    return max(found, key=_newest, default=None)


# -- the preview as the student sees it (HTML) -----------------------------------------------


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def safe_url(url: str | None) -> str:
    """``url`` when it is an absolute http(s) address, else ``""`` (never a script URL)."""
    if not url:
        return ""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return ""
    return url.strip() if parts.scheme.lower() in _SAFE_SCHEMES and parts.netloc else ""


PREVIEW_CSS = """
<style>
.co-profile{font-family:"Helvetica Neue",Helvetica,Arial,sans-serif;color:#1f2933;
  border:1px solid #d9dee4;border-radius:8px;padding:24px 28px;background:#fff;max-width:960px}
.co-profile h2{font-size:1.5rem;margin:0 0 2px 0;font-weight:600}
.co-profile .co-email{color:#5f6b7a;margin:0 0 20px 0;font-size:.95rem}
.co-profile h3{font-size:1.1rem;margin:22px 0 8px 0;font-weight:600}
.co-profile table{border-collapse:collapse;width:100%;font-size:.92rem}
.co-profile th{text-align:left;font-weight:600;color:#5f6b7a;border-bottom:2px solid #e4e7eb;
  padding:8px 10px}
.co-profile td{border-bottom:1px solid #eef0f3;padding:8px 10px;vertical-align:middle}
.co-profile img.co-badge{display:inline-block;width:44px;height:44px;object-fit:contain;
  vertical-align:middle;overflow:hidden;font-size:0;background:#eef2f7;border-radius:6px}
.co-profile a.co-accept{background:#0b6bcb;color:#fff;border-radius:4px;padding:5px 14px;
  text-decoration:none;font-weight:600}
.co-profile a.co-view{color:#0b6bcb;text-decoration:none;font-weight:600}
.co-profile .co-empty{color:#5f6b7a}
</style>
"""


def badges_earned_html(rows: Sequence[BadgeEarnedRow]) -> str:
    """The "Badges Earned" table; ``""`` when there is no row (the table does not appear)."""
    if not rows:
        return ""
    body = []
    for r in rows:
        image = safe_url(r.image_url)
        img = f'<img class="co-badge" src="{_e(image)}" alt="{_e(r.name)}">' if image else ""
        link = safe_url(r.link_url)
        css = "co-accept" if r.is_pending else "co-view"
        action = (
            f'<a class="{css}" href="{_e(link)}" target="_blank" rel="noopener noreferrer">'
            f"{_e(r.link_label)}</a>"
            if link
            else _e(r.link_label)
        )
        expires = day(r.expires_at) if r.expires_at else "Never"
        body.append(
            f'<tr data-badge-id="{_e(r.badge_id)}" data-state="{_e(r.state)}">'
            f"<td>{img}</td><td>{_e(r.name)}</td><td>{_e(day(r.issued_at))}</td>"
            f"<td>{_e(expires)}</td><td>{action}</td></tr>"
        )
    return (
        '<section class="co-badges-earned"><h3>Badges Earned</h3><table>'
        "<thead><tr><th></th><th>Badge</th><th>Issued</th><th>Expires</th><th></th></tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></section>"
    )


def registrations_html(registrations: Sequence[Registration]) -> str:
    """The "Registrations" table of the student's courses."""
    if not registrations:
        rows = '<tr><td colspan="4" class="co-empty">No registrations.</td></tr>'
    else:
        rows = "".join(
            f"<tr><td>{_e(r.course_title)}</td><td>Completed</td>"
            f"<td>{_e(day(r.completed_at))}</td>"
            f"<td>{_e(r.result)}{_e(f' ({r.score:g})') if r.score is not None else ''}</td></tr>"
            for r in registrations
        )
    return (
        '<section class="co-registrations"><h3>Registrations</h3><table>'
        "<thead><tr><th>Course</th><th>Status</th><th>Completed</th><th>Result</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


def preview_html(profile: StudentProfile) -> str:
    """The student's profile as they see it: header, "Badges Earned" (when it appears), then
    "Registrations". Every value is escaped; links are http(s) only."""
    name = profile.name
    table = badges_earned_html(profile.badges_earned) if profile.shows_table else ""
    return (
        f'{PREVIEW_CSS}<div class="co-profile" lang="en">'
        f'<h2>{_e(name)}</h2><p class="co-email">{_e(profile.email)}</p>'
        f"{table}{registrations_html(profile.registrations)}</div>"
    )

"""Why each completion did or did not become a badge.

:func:`explain_completion` runs the issuance engine (:func:`credly_ops.issuance.plan`,
automatic mode) on one completion against the badges that exist, then asks, in this order:

1. can the completion be used at all, and does its course have a badge (:func:`_unusable`)?
2. what exists: a badge issued for this very completion, a renewal it caused, or the chain that
   badge started and where it ended (:func:`_from_badges`)?
3. did the student fail the quiz (:func:`_not_passed`)?
4. did the last issue attempt fail (:func:`_failed_issue`)?
5. otherwise, the engine's reason, with the badge it matched (:func:`_engine_reason`).

The first step that has an answer gives the :class:`~credly_ops.profile.values.Explanation`; its
sentence comes from :mod:`.phrases`.  Everything here is pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from credly_ops.issuance import PlannedRow, compute_expires_at, plan, same_second
from credly_ops.links import CompletionLink
from credly_ops.models import (
    BadgeRule,
    BadgeState,
    BadgeTemplate,
    Completion,
    IssuedBadge,
    IssueMethod,
    normalize_email,
)
from credly_ops.profile.badges import badge_reminders, dashboard_url
from credly_ops.profile.phrases import (
    completion_head,
    day,
    error_sentence,
    live_badge_phrase,
    short_day,
)
from credly_ops.profile.values import (
    VERDICT_INVALID,
    VERDICT_ISSUE_FAILED,
    VERDICT_ISSUED,
    VERDICT_MISSING,
    VERDICT_NO_BADGE,
    VERDICT_REJECTED,
    VERDICT_RENEWED,
    VERDICT_REPLACED,
    VERDICT_REVOKED,
    Explanation,
    LedgerEntry,
)
from credly_ops.reasons import describe


@dataclass(frozen=True)
class _Case:
    """One completion as the engine saw it: what every step of the explanation reads."""

    completion: Completion
    row: PlannedRow
    rule: BadgeRule | None
    course: str
    head: str
    template: BadgeTemplate | None
    template_name: str
    badges: Sequence[IssuedBadge]
    ledger: Sequence[LedgerEntry]
    now: datetime
    web_url: str
    linked: bool = False
    link: CompletionLink | None = None

    @property
    def completed_at(self) -> datetime:
        return self.completion.completed_at

    @property
    def by_id(self) -> dict[str, IssuedBadge]:
        return {b.id: b for b in self.badges}

    def answer(self, verdict: str, sentence: str, **kw: Any) -> Explanation:
        status = None if self.completion.status is None else self.completion.status.value
        return Explanation(
            course_id=self.row.course_id,
            course_title=self.course,
            completed_at=self.completed_at,
            status=status,
            outcome=self.row.outcome,
            reason=self.row.reason,
            verdict=verdict,
            sentence=sentence,
            **kw,
        )

    def live(self, badge: IssuedBadge, verdict: str, sentence: str) -> Explanation:
        """An answer about a badge the student holds: its link and its reminders."""
        link = dashboard_url(self.web_url)
        if badge.state == BadgeState.PENDING:
            link = badge.accept_badge_url or badge.badge_url or link
        return self.answer(
            verdict,
            sentence,
            badge_id=badge.id,
            badge_state=badge.state,
            link_url=link,
            reminders=badge_reminders(badge, self.now),
        )


def explain_completion(
    completion: Completion,
    *,
    rules: Mapping[str, BadgeRule],
    templates: Mapping[str, BadgeTemplate],
    badges: Sequence[IssuedBadge],
    ledger: Sequence[LedgerEntry] = (),
    now: datetime,
    web_url: str,
    link: CompletionLink | None = None,
    linked: bool = False,
) -> Explanation:
    """What became of one completion, and why, in words (see the module docstring).

    With ``linked``, ``link`` is the completion's row of the completion → badge link (``None``:
    the link has no row for it): the badge it earned or renewed is the link's, as on the
    Funnel page; without, the badges are matched here."""
    case = _case(
        completion,
        rules,
        templates,
        badges,
        ledger,
        now=now,
        web_url=web_url,
        linked=linked,
        link=link,
    )
    unusable = _unusable(case)
    if unusable is not None:
        return unusable
    rule = case.rule
    assert rule is not None
    for step in (_from_badges, _not_passed, _failed_issue):
        found = step(case, rule)
        if found is not None:
            return found
    return _engine_reason(case, rule)


def _case(
    completion: Completion,
    rules: Mapping[str, BadgeRule],
    templates: Mapping[str, BadgeTemplate],
    badges: Sequence[IssuedBadge],
    ledger: Sequence[LedgerEntry],
    *,
    now: datetime,
    web_url: str,
    linked: bool = False,
    link: CompletionLink | None = None,
) -> _Case:
    """Plan the completion (automatic mode, against ``badges``) and find its rule and names."""
    email = normalize_email(completion.email)
    row = plan(
        [completion], rules, templates, {email: list(badges)}, now=now, mode="automatic"
    ).rows[0]
    rule = rules.get(row.course_id) if row.template_id else None
    if rule is None and row.template_id:
        rule = next((r for r in rules.values() if r.course_id == row.course_id), None)
    course = completion.course_title or (rule.course_title if rule else "") or row.course_id
    template = templates.get(rule.template_id) if rule else None
    template_name = (
        ((template.name if template else "") or rule.template_name or rule.template_id)
        if rule
        else ""
    )
    return _Case(
        completion=completion,
        row=row,
        rule=rule,
        course=course,
        head=completion_head(completion, course),
        template=template,
        template_name=template_name,
        badges=badges,
        ledger=ledger,
        now=now,
        web_url=web_url,
        linked=linked,
        link=link,
    )


# -- 1. a completion that cannot lead to a badge ---------------------------------------------


def _unusable(case: _Case) -> Explanation | None:
    """An invalid completion, or a course with no badge (or no single one)."""
    row, head = case.row, case.head
    if row.outcome == "invalid":
        return case.answer(
            VERDICT_INVALID, f"{head} — this completion cannot be used: {describe(row.reason)}"
        )
    if row.reason == "no_rule":
        return case.answer(
            VERDICT_NO_BADGE,
            f"Course {case.course} has no badge — nothing to issue for the completion on "
            f"{day(case.completed_at)}.",
        )
    if row.reason == "ambiguous_course_title":
        return case.answer(VERDICT_NO_BADGE, f"{head} — no badge: {describe(row.reason)}")
    return None


# -- 2. what exists comes first --------------------------------------------------------------


def _from_badges(case: _Case, rule: BadgeRule) -> Explanation | None:
    """A badge issued for this very completion (``issued_at`` equal to ``completed_at``, to the
    second), or a renewal it caused, whatever the engine would decide today."""
    if case.linked:
        return _from_link(case)
    own = [b for b in case.badges if b.template_id == rule.template_id]
    direct = [b for b in own if same_second(b.issued_at, case.completed_at)]
    issued = max((b for b in direct if b.is_live), key=_newest, default=None)
    if issued is not None:
        phrase = live_badge_phrase(issued, case.completed_at, case.now)
        return case.live(issued, VERDICT_ISSUED, f"{case.head} → {phrase}.")
    renewed = _renewal_of(case.completion, rule, own)
    if renewed is not None:
        expiry = day(renewed.expires_at) if renewed.expires_at else "no date"
        sentence = (
            f"{case.head} → the student's {case.template_name} badge (first issued "
            f"{day(renewed.issued_at)}) was renewed: it now expires on {expiry}; it is "
            f"{renewed.state}."
        )
        return case.live(renewed, VERDICT_RENEWED, sentence)
    if direct:
        return _where_the_chain_ended(case, direct)
    return None


def _from_link(case: _Case) -> Explanation | None:
    """The badge the completion → badge link gives this completion (the funnel's answer)."""
    link = case.link
    if link is None or not link.has_badge:
        return None
    by_id = case.by_id
    end = by_id.get(link.badge_id or "")
    root = by_id.get(link.root_id or "")
    if end is None or root is None:
        return None
    if link.outcome == "renewed":
        if not end.is_live:
            return _where_the_chain_ended(case, [root])
        expiry = day(end.expires_at) if end.expires_at else "no date"
        sentence = (
            f"{case.head} → the student's {case.template_name} badge (first issued "
            f"{day(end.issued_at)}) was renewed: it now expires on {expiry}; it is "
            f"{end.state}."
        )
        return case.live(end, VERDICT_RENEWED, sentence)
    if root.is_live:
        phrase = live_badge_phrase(root, case.completed_at, case.now)
        return case.live(root, VERDICT_ISSUED, f"{case.head} → {phrase}.")
    return _where_the_chain_ended(case, [root])


def _where_the_chain_ended(case: _Case, direct: Sequence[IssuedBadge]) -> Explanation:
    """The completion's badge is no longer live: follow its replacements and say how it ended
    (revoked, rejected, live again under another id, or replaced by one the cache lacks)."""
    first = min(direct, key=lambda b: (b.created_at or b.issued_at, b.id))
    end = _chain_end(first, case.by_id)
    issued_on = short_day(first.issued_at, case.completed_at)
    changed = end.state_updated_at
    on = f" on {day(changed)}" if changed else ""
    head = case.head
    if end.state == BadgeState.REVOKED:
        why = end.revocation_reason or "no reason given"
        return case.answer(
            VERDICT_REVOKED,
            f"{head} → badge issued {issued_on}, revoked{on}: {why}.",
            badge_id=end.id,
            badge_state=end.state,
        )
    if end.state == BadgeState.REJECTED:
        return case.answer(
            VERDICT_REJECTED,
            f"{head} → badge issued {issued_on}; the student rejected it{on}.",
            badge_id=end.id,
            badge_state=end.state,
        )
    if end.is_live:
        phrase = live_badge_phrase(end, case.completed_at, case.now)
        return case.live(end, VERDICT_ISSUED, f"{head} → {phrase}.")
    return case.answer(
        VERDICT_REPLACED,
        f"{head} → badge issued {issued_on}, replaced{on} by a badge the cache does not "
        "hold yet; sync to see it.",
        badge_id=end.id,
        badge_state=end.state,
    )


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


# -- 3. a failed quiz ------------------------------------------------------------------------


def _not_passed(case: _Case, rule: BadgeRule) -> Explanation | None:
    if case.row.reason != "not_passed":
        return None
    return case.answer(
        VERDICT_NO_BADGE,
        f"Completed {case.course} on {day(case.completed_at)} but failed the quiz — no badge.",
    )


# -- 4. a failed issue -----------------------------------------------------------------------


def _failed_issue(case: _Case, rule: BadgeRule) -> Explanation | None:
    """The latest issue attempt for this completion failed: say what Credly said."""
    failure = _last_failure(case.completion, rule, case.ledger)
    if failure is None:
        return None
    message = (failure.error_message or "").strip()
    said = f' (Credly said: "{message[:200]}")' if message else ""
    return case.answer(
        VERDICT_ISSUE_FAILED,
        f"{case.head} → issue failed on {day(failure.updated_at)}: "
        f"{error_sentence(failure.error_class)}{said}",
        error_class=failure.error_class,
        error_message=failure.error_message,
        can_reissue=True,
    )


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


# -- 5. the engine's reason ------------------------------------------------------------------


def _engine_reason(case: _Case, rule: BadgeRule) -> Explanation:
    """No badge exists for the completion and nothing failed: the engine's reason in words."""
    row, head = case.row, case.head
    if row.reason == "before_active_from":
        installed = f" ({day(rule.active_from)})" if rule.active_from else ""
        return case.answer(
            VERDICT_NO_BADGE,
            f"{head}, before the badge was installed on the course{installed} — no badge: "
            "automatic issuing only goes forward (a CSM can backfill it with a bulk issue).",
        )
    if row.reason == "template_inactive":
        state = case.template.state if case.template else "unknown to Credly"
        return case.answer(
            VERDICT_NO_BADGE,
            f"{head} → no badge: the badge template {case.template_name} is {state}.",
        )
    matched = case.by_id.get(row.matched_badge_id or "")
    if matched is not None:
        held = _already_held(case, matched)
        if held is not None:
            return held
    if row.outcome in ("issue", "update"):
        what = "issued" if row.outcome == "issue" else "renewed"
        return case.answer(
            VERDICT_MISSING,
            f"{head} → a {case.template_name} badge should have been {what}, but Credly has "
            "none for this completion: refresh from Credly, or re-issue it.",
            can_reissue=True,
        )
    return case.answer(VERDICT_NO_BADGE, f"{head} → no badge: {describe(row.reason)}")


def _already_held(case: _Case, matched: IssuedBadge) -> Explanation | None:
    """The engine matched a badge the student holds (or rejected) and so sends nothing."""
    reason, head, name = case.row.reason, case.head, case.template_name
    if reason == "already_up_to_date":
        lasts = f"until {day(matched.expires_at)}" if matched.expires_at else "without an expiry"
        return case.live(
            matched,
            VERDICT_NO_BADGE,
            f"{head} → nothing to renew: the student's {name} badge already lasts {lasts}.",
        )
    if reason == "already_has_badge":
        return case.answer(
            VERDICT_NO_BADGE,
            f"{head} → no new badge: the student already holds {name} (issued "
            f"{day(matched.issued_at)}, {matched.state}) and the template allows one per student.",
            badge_id=matched.id,
            badge_state=matched.state,
        )
    if reason == "previously_rejected":
        when = matched.state_updated_at or matched.issued_at
        return case.answer(
            VERDICT_NO_BADGE,
            f"{head} → no badge: the student rejected {name} on {day(when)}; it is "
            "only issued again when a CSM opts in.",
            badge_id=matched.id,
            badge_state=matched.state,
        )
    return None

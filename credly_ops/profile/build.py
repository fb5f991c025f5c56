"""The student preview from plain values: the registrations, the "Badges Earned" rows and an
explanation per completion, newest first (pure; :func:`credly_ops.profile.reads.load_profile`
reads the values from the cache and calls :func:`build_profile`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from credly_ops.links import CompletionLink
from credly_ops.lms import completion_id
from credly_ops.models import BadgeRule, BadgeTemplate, Completion, IssuedBadge, normalize_email
from credly_ops.profile.badges import earned_rows
from credly_ops.profile.explain import explain_completion
from credly_ops.profile.values import LedgerEntry, Registration, StudentProfile


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
    links: Mapping[str, CompletionLink] | None = None,
) -> StudentProfile:
    """The student preview from plain values (pure).  ``links`` are the completions' rows of
    the completion → badge link by completion id (what the funnel reads): given, they say
    which badge each completion earned or renewed."""
    key = normalize_email(email)
    own = [b for b in badges if normalize_email(b.recipient_email) == key]
    first, last = _names(completions, own)
    explanations = [
        explain_completion(
            c,
            rules=rules,
            templates=templates,
            badges=own,
            ledger=ledger,
            now=now,
            web_url=web_url,
            link=None if links is None else links.get(completion_id(c)),
            linked=links is not None,
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

"""One student, as support staff need to see them: the "Badges Earned" table the student sees on
their profile, their registrations, and why each completion did or did not become a badge.

Where things live:

* :mod:`.values` — what a preview is made of (``StudentProfile``, ``BadgeEarnedRow``,
  ``Registration``, ``LedgerEntry``, ``Explanation``) and the ``VERDICT_*`` words;
* :mod:`.badges` — the "Badges Earned" rules: which badges show, their links, the Settings
  switch, and the reminders a badge has had;
* :mod:`.explain` — why a completion did or did not become a badge (runs the issuance engine);
* :mod:`.phrases` — the English: days, counts, a live badge's state, error sentences;
* :mod:`.build` — the whole preview from plain values;
* :mod:`.reads` — the SQL: a student's badges, completions and ledger rows from the cache, email
  suggestions, and :func:`load_profile`;
* :mod:`.html` — the "Badges Earned" and "Registrations" tables as HTML, and their CSS.

Everything is pure except :mod:`.reads`, whose functions take a :class:`~credly_ops.store.Store`.
Import from ``credly_ops.profile``: the names below are the surface.
"""

from __future__ import annotations

from credly_ops.profile.badges import (
    ACCEPT_LABEL,
    DASHBOARD_LABEL,
    DASHBOARD_PATH,
    badge_link,
    badge_reminders,
    dashboard_url,
    earned_rows,
    table_enabled_value,
)
from credly_ops.profile.build import build_profile
from credly_ops.profile.explain import explain_completion
from credly_ops.profile.html import (
    PREVIEW_CSS,
    badges_earned_html,
    preview_html,
    registrations_html,
    safe_url,
)
from credly_ops.profile.phrases import day, live_badge_phrase, short_day
from credly_ops.profile.reads import (
    SUGGESTION_LIMIT,
    badges_earned,
    badges_table_enabled,
    load_profile,
    student_badges,
    student_completions,
    student_ledger,
    suggest_emails,
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
    BadgeEarnedRow,
    Explanation,
    LedgerEntry,
    Registration,
    StudentProfile,
)

__all__ = [
    "ACCEPT_LABEL",
    "DASHBOARD_LABEL",
    "DASHBOARD_PATH",
    "PREVIEW_CSS",
    "SUGGESTION_LIMIT",
    "VERDICT_INVALID",
    "VERDICT_ISSUED",
    "VERDICT_ISSUE_FAILED",
    "VERDICT_MISSING",
    "VERDICT_NO_BADGE",
    "VERDICT_REJECTED",
    "VERDICT_RENEWED",
    "VERDICT_REPLACED",
    "VERDICT_REVOKED",
    "BadgeEarnedRow",
    "Explanation",
    "LedgerEntry",
    "Registration",
    "StudentProfile",
    "badge_link",
    "badge_reminders",
    "badges_earned",
    "badges_earned_html",
    "badges_table_enabled",
    "build_profile",
    "dashboard_url",
    "day",
    "earned_rows",
    "explain_completion",
    "live_badge_phrase",
    "load_profile",
    "preview_html",
    "registrations_html",
    "safe_url",
    "short_day",
    "student_badges",
    "student_completions",
    "student_ledger",
    "suggest_emails",
    "table_enabled_value",
]

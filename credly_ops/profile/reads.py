"""Reading one student from the cache (DuckDB, through a :class:`~credly_ops.store.Store`): their
badges, completions and ledger rows, the "Badges Earned" switch, email suggestions, and the
whole preview (:func:`load_profile`).  Every SQL statement of the student preview is here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from credly_ops.models import Completion, IssuedBadge, SuccessStatus, TemplateRef, normalize_email
from credly_ops.profile.badges import earned_rows, table_enabled_value
from credly_ops.profile.build import build_profile
from credly_ops.profile.values import BadgeEarnedRow, LedgerEntry, StudentProfile
from credly_ops.rules import load_rules, load_templates
from credly_ops.store import SETTING_BADGES_TABLE_ENABLED, Store, from_db_time
from credly_ops.timeutil import utcnow

SUGGESTION_LIMIT = 20

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

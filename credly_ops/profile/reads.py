"""Reading one student from the cache (DuckDB, through a :class:`~credly_ops.store.Store`): their
badges, completions and ledger rows, the "Badges Earned" switch, email suggestions, and the
whole preview (:func:`load_profile`).  Every SQL statement of the student preview is here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from credly_ops.links import student_links
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


def _records(store: Store, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    """The rows of ``sql``, each a dict by column name (no reading columns by position)."""
    with store.session() as cur:
        cur.execute(sql, params)
        names = [d[0] for d in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _badge_from_record(r: Mapping[str, Any]) -> IssuedBadge:
    return IssuedBadge(
        id=r["id"],
        badge_template=TemplateRef(
            id=r["template_id"], name=r["template_name"] or "", image_url=r["image_url"]
        ),
        recipient_email=r["recipient_email"],
        issued_to_first_name=r["first_name"],
        issued_to_last_name=r["last_name"],
        issuer_earner_id=r["issuer_earner_id"],
        state=r["state"],
        issued_at=from_db_time(r["issued_at"]),
        expires_at=from_db_time(r["expires_at"]),
        state_updated_at=from_db_time(r["state_updated_at"]),
        created_at=from_db_time(r["created_at"]),
        updated_at=from_db_time(r["updated_at"]),
        badge_url=r["badge_url"],
        accept_badge_url=r["accept_badge_url"],
        image_url=r["image_url"],
        replaces_badge_id=r["replaces_badge_id"],
        replacement_badge_id=r["replacement_badge_id"],
        suppress_badge_notification_email=bool(r["suppress_notification"]),
        revocation_reason=r["revocation_reason"],
    )


def student_badges(store: Store, email: str) -> list[IssuedBadge]:
    """Every cached badge (any state) of the organization for this email, newest first."""
    return [_badge_from_record(r) for r in _records(store, _BADGE_SQL, [normalize_email(email)])]


def _status(value: str | None) -> SuccessStatus | None:
    try:
        return SuccessStatus(value) if value else None
    except ValueError:
        return None


def student_completions(store: Store, email: str) -> list[Completion]:
    """The student's completions, oldest first."""
    rows = _records(
        store,
        "SELECT email, first_name, last_name, course_id, course_title, completed_at, status, "
        "score, coalesce(date_only, FALSE) AS date_only FROM completions WHERE email = ? "
        "ORDER BY completed_at, course_id",
        [normalize_email(email)],
    )
    return [
        Completion(
            email=r["email"],
            first_name=r["first_name"] or "",
            last_name=r["last_name"] or "",
            course_id=r["course_id"] or "",
            course_title=r["course_title"] or "",
            # NOT NULL; stored naive UTC, which Completion reads as UTC
            completed_at=r["completed_at"],
            status=_status(r["status"]),
            score=r["score"],
            date_only=bool(r["date_only"]),
        )
        for r in rows
    ]


def student_ledger(store: Store, email: str) -> list[LedgerEntry]:
    """What issue jobs recorded for this email, oldest first."""
    rows = _records(
        store,
        "SELECT job_id, course_id, course_title, completed_at, status, outcome, error_class, "
        "error_message, badge_id, updated_at FROM ledger WHERE lower(trim(email)) = ? "
        "ORDER BY updated_at, job_id, row_no",
        [normalize_email(email)],
    )
    return [
        LedgerEntry(
            job_id=r["job_id"],
            course_id=r["course_id"] or "",
            course_title=r["course_title"] or "",
            completed_at=from_db_time(r["completed_at"]),
            status=r["status"],
            outcome=r["outcome"],
            error_class=r["error_class"],
            error_message=r["error_message"],
            badge_id=r["badge_id"],
            updated_at=from_db_time(r["updated_at"]) or utcnow(),
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
        with store.session() as cur:
            links = student_links(cur, key)
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
        links=links,
    )

"""Support actions on one student: re-read their badges from Credly, re-issue one completion's
badge, revoke a badge.

Each action takes the :class:`~credly_ops.access.Actor` doing it, checks their permission
inside this module (so no page or command can skip it) and leaves an audit row; a re-issue also
leaves a one-row job in the ledger, like a bulk issue does.

================  ==================  ===========================================================
action            permission          what it does
================  ==================  ===========================================================
refresh_student   ``sync``            reads the student's badges live and upserts them into the
                                      cache, forgetting cached ones Credly no longer has
reissue           ``issue``           plans the one completion with the engine (bulk mode,
                                      against the badges Credly holds now) and sends the issue or
                                      update it decides
revoke_badge      ``revoke``          revokes one badge with a reason
================  ==================  ===========================================================
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from credly_ops.access import Actor, Permission, require
from credly_ops.credly.client import CredlyClient
from credly_ops.credly.errors import CredlyError
from credly_ops.issuance import PlannedRow, plan
from credly_ops.models import (
    Completion,
    IssuedBadge,
    IssueRequest,
    ReplaceRequest,
    SuccessStatus,
    normalize_email,
)
from credly_ops.reasons import describe
from credly_ops.rules import load_rules, load_templates
from credly_ops.store import to_db_time, write_audit
from credly_ops.sync import upsert_badges
from credly_ops.timeutil import as_utc, utcnow
from credly_ops.workspace import Workspace

JOB_KIND_REISSUE = "reissue"
_MESSAGE_LIMIT = 500


@dataclass(frozen=True)
class RefreshResult:
    """What a live re-read of one student's badges found."""

    email: str
    badges: int
    changed: int
    removed: int


@dataclass(frozen=True)
class ReissueResult:
    """The engine's decision for the completion and, when it sent something, the badge."""

    job_id: str
    outcome: str
    reason: str
    badge: IssuedBadge | None
    flags: frozenset[str] = frozenset()

    @property
    def sent(self) -> bool:
        return self.badge is not None

    @property
    def sentence(self) -> str:
        if self.badge is not None:
            verb = "issued" if self.outcome == "issue" else "renewed"
            return f"Badge {verb}: {self.badge.badge_template.name or self.badge.template_id}."
        return describe(self.reason)


# -- refresh ---------------------------------------------------------------------------------


def refresh_student(ws: Workspace, actor: Actor, email: str) -> RefreshResult:
    """Re-read this student's badges from Credly now and bring the cache in line."""
    require(actor, Permission.SYNC)
    key = normalize_email(email)
    if not key:
        raise ValueError("an email is required")
    with ws.client() as client:
        badges = list(client.iter_badges(recipient_email_all=key))
    return _store_student_badges(ws, actor, key, badges)


def _store_student_badges(
    ws: Workspace, actor: Actor, key: str, badges: list[IssuedBadge], *, audit: bool = True
) -> RefreshResult:
    """Upsert what Credly holds for the student and forget cached badges of this email that
    Credly no longer has (deleted there)."""
    seen = {b.id for b in badges}
    with ws.store.transaction() as cur:
        changed = upsert_badges(cur, badges, synced_at=utcnow())
        cached = cur.execute("SELECT id FROM badges WHERE recipient_email = ?", [key]).fetchall()
        stale = sorted(r[0] for r in cached if r[0] not in seen)
        for badge_id in stale:
            cur.execute("DELETE FROM badges WHERE id = ?", [badge_id])
        if audit:
            write_audit(
                cur,
                actor=actor.name,
                role=actor.role.value,
                action="student.refresh",
                target=key,
                outcome="ok",
                detail={"badges": len(badges), "changed": changed, "removed": len(stale)},
            )
    return RefreshResult(key, len(badges), changed + len(stale), len(stale))


# -- revoke ----------------------------------------------------------------------------------


def revoke_badge(
    ws: Workspace,
    actor: Actor,
    badge_id: str,
    reason: str,
    *,
    suppress_notification: bool = False,
) -> IssuedBadge:
    """Revoke one badge (admins only) with a reason; the cache and the audit trail follow."""
    require(actor, Permission.REVOKE)
    badge_id, reason = badge_id.strip(), reason.strip()
    if not badge_id:
        raise ValueError("a badge id is required")
    if not reason:
        raise ValueError("a revocation reason is required")
    try:
        with ws.client() as client:
            badge = client.revoke(badge_id, reason, suppress_notification=suppress_notification)
    except CredlyError as exc:
        with ws.store.session() as cur:
            write_audit(
                cur,
                actor=actor.name,
                role=actor.role.value,
                action="badge.revoke",
                target=badge_id,
                outcome="failed",
                detail={"reason": reason, "error": exc.kind, "message": str(exc)[:_MESSAGE_LIMIT]},
            )
        raise
    with ws.store.transaction() as cur:
        upsert_badges(cur, [badge], synced_at=utcnow())
        write_audit(
            cur,
            actor=actor.name,
            role=actor.role.value,
            action="badge.revoke",
            target=badge_id,
            outcome="ok",
            detail={
                "reason": reason,
                "email": normalize_email(badge.recipient_email),
                "template_id": badge.template_id,
            },
        )
    return badge


# -- re-issue --------------------------------------------------------------------------------


def find_completion(
    ws: Workspace, email: str, course: str, completed_at: datetime
) -> Completion | None:
    """The cached completion of ``email`` for ``course`` (its id, or its title when the
    completion has no id) at ``completed_at`` (to the second)."""
    key, course = normalize_email(email), course.strip()
    moment = to_db_time(as_utc(completed_at).replace(microsecond=0))
    with ws.store.session() as cur:
        row = cur.execute(
            "SELECT email, first_name, last_name, course_id, course_title, completed_at, status, "
            "score FROM completions WHERE email = ? AND date_trunc('second', completed_at) = ? "
            "AND (course_id = ? OR (coalesce(course_id, '') = '' AND "
            "lower(trim(course_title)) = lower(?))) ORDER BY course_id LIMIT 1",
            [key, moment, course, course],
        ).fetchone()
    if row is None:
        return None
    status = row[6] if row[6] in {s.value for s in SuccessStatus} else None
    return Completion(
        email=row[0],
        first_name=row[1] or "",
        last_name=row[2] or "",
        course_id=row[3] or "",
        course_title=row[4] or "",
        completed_at=row[5],  # NOT NULL; stored naive UTC, which Completion reads as UTC
        status=status,
        score=row[7],
    )


def reissue(
    ws: Workspace,
    actor: Actor,
    email: str,
    course_id: str,
    completed_at: datetime,
    *,
    include_rejected: bool = False,
) -> ReissueResult:
    """Issue (or renew) the badge for one cached completion, exactly as a bulk issue would.

    The engine plans the completion in bulk mode against the student's badges as Credly holds
    them now (read live, and written to the cache); an ``issue`` or ``update`` decision is sent,
    anything else is reported with its reason. Every attempt leaves a one-row ``reissue`` job in
    the ledger and an audit row; a Credly error is recorded as a failed row, then raised.
    """
    require(actor, Permission.ISSUE)
    completion = find_completion(ws, email, course_id, completed_at)
    if completion is None:
        raise LookupError(
            f"no completion of {course_id!r} by {normalize_email(email)} at "
            f"{as_utc(completed_at).isoformat()} in the cache"
        )
    key = completion.email_key
    rules = {r.course_id: r for r in load_rules(ws.store)}
    templates = load_templates(ws.store)
    job_id = f"{JOB_KIND_REISSUE}-{uuid.uuid4().hex[:16]}"
    started = utcnow()
    with ws.client() as client:
        current = list(client.iter_badges(recipient_email_all=key))
        _store_student_badges(ws, actor, key, current, audit=False)
        row = plan(
            [completion],
            rules,
            templates,
            {key: current},
            now=started,
            mode="bulk",
            include_rejected=include_rejected,
        ).rows[0]
        if not row.sends:
            _record(ws, actor, job_id, row, started, status="skipped")
            return ReissueResult(job_id, row.outcome, row.reason, None, row.flags)
        try:
            badges = _send(client, row, key)
        except CredlyError as exc:
            _record(ws, actor, job_id, row, started, status="failed", error=exc)
            raise
    _record(ws, actor, job_id, row, started, status="succeeded", badges=badges)
    return ReissueResult(job_id, row.outcome, row.reason, badges[-1], row.flags)


def _send(client: CredlyClient, row: PlannedRow, email: str) -> list[IssuedBadge]:
    """Send one planned issue or update; returns the badges to cache (the new one last)."""
    assert row.issued_at is not None
    if row.outcome == "issue":
        result = client.issue(
            IssueRequest(
                recipient_email=row.email,
                issued_to_first_name=row.first_name,
                issued_to_last_name=row.last_name,
                badge_template_id=row.template_id,
                issued_at=row.issued_at,
                expires_at=row.expires_at,
            )
        )
        return [result.badge]
    assert row.target_badge_id is not None
    new = client.replace(
        row.target_badge_id,
        ReplaceRequest(
            badge_template_id=row.template_id,
            issued_at=row.issued_at,
            expires_at=row.expires_at,
        ),
        recipient_email=email,
    )
    old = client.get_badge(row.target_badge_id)
    return [old, new]


def _record(
    ws: Workspace,
    actor: Actor,
    job_id: str,
    row: PlannedRow,
    started: datetime,
    *,
    status: str,
    badges: list[IssuedBadge] | None = None,
    error: CredlyError | None = None,
) -> None:
    """The one-row job, its ledger row, the cache and the audit row, in one unit of work."""
    finished = utcnow()
    badge_id = badges[-1].id if badges else None
    message = str(error)[:_MESSAGE_LIMIT] if error is not None else None
    options = {
        "email": row.email_key,
        "course_id": row.course_id,
        "completed_at": row.completed_at.isoformat() if row.completed_at else None,
    }
    with ws.store.transaction() as cur:
        cur.execute(
            "INSERT INTO jobs (id, kind, created_at, created_by, source_name, status, options, "
            "rows, started_at, finished_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)",
            [
                job_id,
                JOB_KIND_REISSUE,
                to_db_time(started),
                actor.name,
                "student preview",
                "failed" if status == "failed" else "done",
                json.dumps(options),
                to_db_time(started),
                to_db_time(finished),
                to_db_time(finished),
            ],
        )
        cur.execute(
            "INSERT INTO ledger (job_id, row_no, key, email, first_name, last_name, course_id, "
            "course_title, completed_at, template_id, outcome, reason, flags, issued_at, "
            "expires_at, target_badge_id, status, badge_id, error_class, error_message, "
            "attempts, updated_at) VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
            "?, ?, ?, ?)",
            [
                job_id,
                row.key,
                row.email_key,
                row.first_name,
                row.last_name,
                row.course_id,
                row.course_title,
                to_db_time(row.completed_at),
                row.template_id,
                row.outcome,
                row.reason,
                ",".join(sorted(row.flags)),
                to_db_time(row.issued_at),
                to_db_time(row.expires_at),
                row.target_badge_id,
                status,
                badge_id,
                error.kind if error is not None else None,
                message,
                0 if status == "skipped" else 1,
                to_db_time(finished),
            ],
        )
        if badges:
            upsert_badges(cur, badges, synced_at=finished)
        write_audit(
            cur,
            actor=actor.name,
            role=actor.role.value,
            action="badge.reissue",
            target=row.email_key,
            job_id=job_id,
            outcome="failed" if status == "failed" else ("ok" if badges else "skipped"),
            detail={
                **options,
                "outcome": row.outcome,
                "reason": row.reason,
                "badge_id": badge_id,
                "error": error.kind if error is not None else None,
            },
        )

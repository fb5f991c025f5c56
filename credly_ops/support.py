"""Support actions on one student: re-read their badges from Credly, re-issue one completion's
badge, revoke a badge.

Each action takes the :class:`~credly_ops.access.Actor` doing it, checks their permission
inside this module (so no page or command can skip it) and leaves an audit row; a re-issue also
leaves a one-row job in the ledger, its row committed in flight before the request, like a bulk
issue does.

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

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from credly_ops import ledger
from credly_ops.access import Actor, Permission, require
from credly_ops.credly.errors import CredlyError
from credly_ops.issuance.decide import DecideOptions
from credly_ops.issuance.jobs import new_job_id, new_row
from credly_ops.issuance.plan import PlannedRow, idempotency_key, plan
from credly_ops.issuance.run import run_claimed
from credly_ops.links import relink
from credly_ops.models import (
    Completion,
    IssuedBadge,
    SuccessStatus,
    normalize_email,
)
from credly_ops.reasons import describe
from credly_ops.rules import load_rules, load_templates
from credly_ops.store import to_db_time, write_audit
from credly_ops.sync import upsert_badges
from credly_ops.timeutil import as_utc, utcnow
from credly_ops.workspace import Workspace

JOB_KIND_REISSUE = ledger.JOB_KIND_REISSUE
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
        if stale:
            relink(cur, [key])
        if audit:
            write_audit(
                cur,
                actor=actor,
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
                actor=actor,
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
            actor=actor,
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
    include_revoked: bool = False,
    include_expired: bool = False,
    client_options: Mapping[str, Any] | None = None,
) -> ReissueResult:
    """Issue (or renew) the badge for one cached completion, exactly as a bulk issue would.

    The student's badges are read live from Credly into the cache, then the completion becomes
    a one-row ``reissue`` job sent by the same runner as a bulk issue: decided again at send
    time against the cache and the ledger of every job, committed in flight before the request
    goes out, looked up before any re-send. A re-issue of a completion whose earlier re-issue
    job was interrupted resumes that job instead of making another. A Credly error is recorded
    as a failed row, then raised.
    """
    require(actor, Permission.ISSUE)
    completion = find_completion(ws, email, course_id, completed_at)
    if completion is None:
        raise LookupError(
            f"no completion of {course_id!r} by {normalize_email(email)} at "
            f"{as_utc(completed_at).isoformat()} in the cache"
        )
    opt_ins = DecideOptions(
        include_rejected=include_rejected,
        include_revoked=include_revoked,
        include_expired=include_expired,
    )
    key = completion.email_key
    with ws.client(**dict(client_options or {})) as client:
        current = list(client.iter_badges(recipient_email_all=key))
    _store_student_badges(ws, actor, key, current, audit=False)
    rules = {r.course_id: r for r in load_rules(ws.store)}
    row = plan(
        [completion],
        rules,
        load_templates(ws.store),
        {key: current},
        now=utcnow(),
        mode="bulk",
        options=opt_ins,
    ).rows[0]
    job_id = _reissue_job(ws, actor, row, completion, opt_ins=opt_ins)
    progress, outcome = run_claimed(
        ws, actor, job_id, action="issue.run", refresh=False, client_options=client_options
    )
    with ws.store.session() as cur:
        status, reason, badge_id, decided = job_report_rows(cur, job_id)[0]
    error = outcome.errors.get(row.row)
    made = outcome.made.get(row.row)
    if made is None and status == "succeeded":  # settled from the badge Credly holds
        made = next((b for b in current if b.id == badge_id), None)
    result_outcome = "failed" if status == "failed" else ("ok" if made else "skipped")
    ws.store.audit(
        actor=actor,
        action="badge.reissue",
        target=key,
        job_id=job_id,
        outcome=result_outcome,
        detail={
            "email": key,
            "course_id": row.course_id,
            "completed_at": row.completed_at.isoformat() if row.completed_at else None,
            "outcome": decided,
            "reason": reason,
            "badge_id": badge_id,
            "error": error.kind if error is not None else None,
        },
    )
    if error is not None:
        raise error
    if progress.status == "interrupted" and made is None:
        raise RuntimeError(f"the re-issue job {job_id} was interrupted; re-issue again to resume")
    return ReissueResult(job_id, decided, reason, made, row.flags)


def job_report_rows(cur: Any, job_id: str) -> list[tuple[str, str, str | None, str]]:
    """(status, reason, badge id, outcome) of each row of a job."""
    return [
        (str(r[0]), str(r[1]), r[2], str(r[3]))
        for r in cur.execute(
            "SELECT status, reason, badge_id, outcome FROM ledger WHERE job_id = ? ORDER BY row_no",
            [job_id],
        ).fetchall()
    ]


def _completion_key(row: PlannedRow) -> str:
    """What identifies the completion of a re-issue, whatever was decided for it."""
    return idempotency_key(row.email, row.template_id, row.completed_at, date_only=row.date_only)


def _reissue_job(
    ws: Workspace,
    actor: Actor,
    row: PlannedRow,
    completion: Completion,
    *,
    opt_ins: DecideOptions,
) -> str:
    """The unfinished re-issue job of this completion, or a new one-row job for it."""
    now = utcnow()
    with ws.store.transaction() as cur:
        existing = ledger.unfinished_job(cur, ledger.JOB_KIND_REISSUE, _completion_key(row))
        if existing is not None:
            return existing
        job_id = new_job_id(now, ledger.JOB_KIND_REISSUE)
        ledger.insert_job(
            cur,
            job_id=job_id,
            kind=ledger.JOB_KIND_REISSUE,
            created_at=now,
            created_by=actor.name,
            source_name="student preview",
            source_sha256=_completion_key(row),
            status=ledger.JOB_PLANNED,
            options={
                "email": row.email_key,
                "course_id": row.course_id,
                "completed_at": row.completed_at.isoformat() if row.completed_at else None,
                **opt_ins.as_options(),
            },
            rows=1,
        )
        status = completion.status.value if completion.status is not None else None
        ledger.insert_rows(cur, job_id, [replace(new_row(row), success_status=status)], now)
    return job_id

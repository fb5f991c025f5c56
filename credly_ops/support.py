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

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from credly_ops.access import Actor, Permission, require
from credly_ops.credly.client import CredlyClient
from credly_ops.credly.errors import CredlyError
from credly_ops.issuance import DecideOptions, PlannedRow, plan
from credly_ops.models import (
    Completion,
    IssuedBadge,
    IssueRequest,
    ReplaceRequest,
    SuccessStatus,
    normalize_email,
    request_expiry,
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
) -> ReissueResult:
    """Issue (or renew) the badge for one cached completion, exactly as a bulk issue would.

    The engine plans the completion in bulk mode against the student's badges as Credly holds
    them now (read live, and written to the cache); an ``issue`` or ``update`` decision is sent,
    anything else is reported with its reason. Every attempt leaves a one-row ``reissue`` job in
    the ledger and an audit row; a Credly error is recorded as a failed row, then raised. As in
    a bulk job, the row is committed ``in_flight`` before the request goes out, so a process
    that stops before Credly answers leaves a trace; the next re-issue of the completion settles
    such a row once it is :data:`ABANDONED_AFTER` old, from the badges Credly then holds.
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
            options=DecideOptions(include_rejected=include_rejected),
        ).rows[0]
        _settle_abandoned_attempts(ws, actor, row, current, now=started)
        if not row.sends:
            _record_skip(ws, actor, job_id, row, started)
            return ReissueResult(job_id, row.outcome, row.reason, None, row.flags)
        _begin(ws, actor, job_id, row, started)  # committed before the request goes out
        try:
            badges = _send(client, row, key)
        except CredlyError as exc:
            _finish(ws, actor, job_id, row, status="failed", error=exc)
            raise
    _finish(ws, actor, job_id, row, status="succeeded", badges=badges)
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
                expires_at=request_expiry(row.expires_at),
            )
        )
        return [result.badge]
    assert row.target_badge_id is not None
    new = client.replace(
        row.target_badge_id,
        ReplaceRequest(
            badge_template_id=row.template_id,
            issued_at=row.issued_at,
            expires_at=request_expiry(row.expires_at),
        ),
        recipient_email=email,
    )
    old = client.get_badge(row.target_badge_id)
    return [old, new]


def _options(row: PlannedRow) -> dict[str, str | None]:
    return {
        "email": row.email_key,
        "course_id": row.course_id,
        "completed_at": row.completed_at.isoformat() if row.completed_at else None,
    }


def _insert(
    cur: Any,
    actor: Actor,
    job_id: str,
    row: PlannedRow,
    started: datetime,
    *,
    job_status: str,
    row_status: str,
    finished: datetime | None,
) -> None:
    """The one-row job and its ledger row."""
    cur.execute(
        "INSERT INTO jobs (id, kind, created_at, created_by, source_name, status, options, "
        "rows, started_at, finished_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)",
        [
            job_id,
            JOB_KIND_REISSUE,
            to_db_time(started),
            actor.name,
            "student preview",
            job_status,
            json.dumps(_options(row)),
            to_db_time(started),
            to_db_time(finished),
            to_db_time(finished or started),
        ],
    )
    cur.execute(
        "INSERT INTO ledger (job_id, row_no, key, email, first_name, last_name, course_id, "
        "course_title, completed_at, template_id, outcome, reason, flags, issued_at, "
        "expires_at, target_badge_id, status, attempts, updated_at) "
        "VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            row_status,
            0 if row_status == "skipped" else 1,
            to_db_time(finished or started),
        ],
    )


def _audit(
    cur: Any,
    actor: Actor,
    job_id: str,
    row: PlannedRow,
    *,
    outcome: str,
    facts: dict[str, str | None],
    action: str = "badge.reissue",
) -> None:
    """An audit row about the completion of ``row``: the completion, then ``facts``."""
    write_audit(
        cur,
        actor=actor,
        action=action,
        target=row.email_key,
        job_id=job_id,
        outcome=outcome,
        detail={**_options(row), **facts},
    )


def _decided(
    row: PlannedRow, badge_id: str | None = None, error: CredlyError | None = None
) -> dict[str, str | None]:
    return {
        "outcome": row.outcome,
        "reason": row.reason,
        "badge_id": badge_id,
        "error": error.kind if error is not None else None,
    }


def _record_skip(
    ws: Workspace, actor: Actor, job_id: str, row: PlannedRow, started: datetime
) -> None:
    """A decision that sends nothing: the finished one-row job and its audit row at once."""
    with ws.store.transaction() as cur:
        _insert(
            cur,
            actor,
            job_id,
            row,
            started,
            job_status="done",
            row_status="skipped",
            finished=utcnow(),
        )
        _audit(cur, actor, job_id, row, outcome="skipped", facts=_decided(row))


def _begin(ws: Workspace, actor: Actor, job_id: str, row: PlannedRow, started: datetime) -> None:
    """The job ``running`` and its row ``in_flight``, committed before anything is sent: a
    process that stops before Credly answers leaves that trace, which the next re-issue of the
    completion settles (:func:`_settle_abandoned_attempts`)."""
    with ws.store.transaction() as cur:
        _insert(
            cur,
            actor,
            job_id,
            row,
            started,
            job_status="running",
            row_status="in_flight",
            finished=None,
        )


def _finish(
    ws: Workspace,
    actor: Actor,
    job_id: str,
    row: PlannedRow,
    *,
    status: str,
    badges: list[IssuedBadge] | None = None,
    error: CredlyError | None = None,
) -> None:
    """Credly's answer: the row's result, the job's end, the cache and the audit row, at once."""
    finished = utcnow()
    badge_id = badges[-1].id if badges else None
    with ws.store.transaction() as cur:
        _close(
            cur,
            job_id,
            status=status,
            badge_id=badge_id,
            error_class=error.kind if error is not None else None,
            message=str(error)[:_MESSAGE_LIMIT] if error is not None else None,
            at=finished,
        )
        if badges:
            upsert_badges(cur, badges, synced_at=finished)
        _audit(
            cur,
            actor,
            job_id,
            row,
            outcome="failed" if status == "failed" else "ok",
            facts=_decided(row, badge_id, error),
        )


def _close(
    cur: Any,
    job_id: str,
    *,
    status: str,
    badge_id: str | None,
    error_class: str | None,
    message: str | None,
    at: datetime,
) -> None:
    """Set the one-row job's result: its ledger row's status and the job's end."""
    cur.execute(
        "UPDATE ledger SET status = ?, badge_id = ?, error_class = ?, error_message = ?, "
        "updated_at = ? WHERE job_id = ? AND row_no = 1",
        [status, badge_id, error_class, message, to_db_time(at), job_id],
    )
    cur.execute(
        "UPDATE jobs SET status = ?, finished_at = ?, heartbeat_at = ? WHERE id = ?",
        ["failed" if status == "failed" else "done", to_db_time(at), to_db_time(at), job_id],
    )


#: a re-issue still ``in_flight`` after this long was abandoned (its process stopped before
#: Credly answered): no request, retries included, lasts anywhere near it
ABANDONED_AFTER = timedelta(minutes=10)
#: the error class of an abandoned re-issue that never took effect
ERROR_INTERRUPTED = "interrupted"


def _settle_abandoned_attempts(
    ws: Workspace, actor: Actor, row: PlannedRow, current: list[IssuedBadge], *, now: datetime
) -> None:
    """Close earlier re-issues of this completion left ``in_flight``, by the badges Credly
    holds now (just read): the badge is there, and no other ledger row accounts for it →
    ``succeeded`` with its id; otherwise → ``failed`` (:data:`ERROR_INTERRUPTED`: the request
    never took effect)."""
    if row.completed_at is None or not row.template_id:
        return
    with ws.store.transaction() as cur:
        abandoned = cur.execute(
            "SELECT l.job_id, l.outcome, l.target_badge_id FROM ledger l JOIN jobs j "
            "ON j.id = l.job_id WHERE j.kind = ? AND l.status = 'in_flight' AND l.email = ? "
            "AND l.template_id = ? AND l.completed_at = ? AND j.started_at < ?",
            [
                JOB_KIND_REISSUE,
                row.email_key,
                row.template_id,
                to_db_time(row.completed_at),
                to_db_time(now - ABANDONED_AFTER),
            ],
        ).fetchall()
        if not abandoned:
            return
        # a badge another ledger row already accounts for was made by that row, not these
        claimed = {
            r[0]
            for r in cur.execute(
                "SELECT badge_id FROM ledger WHERE email = ? AND status = 'succeeded' "
                "AND badge_id IS NOT NULL",
                [row.email_key],
            ).fetchall()
        }
        for job_id, outcome, target in abandoned:
            landed = _landed(current, row, outcome, target)
            if landed in claimed:
                landed = None
            _close(
                cur,
                job_id,
                status="failed" if landed is None else "succeeded",
                badge_id=landed,
                error_class=ERROR_INTERRUPTED if landed is None else None,
                message="The process stopped before Credly answered; the badge was not issued."
                if landed is None
                else None,
                at=now,
            )
            _audit(
                cur,
                actor,
                job_id,
                row,
                outcome="failed" if landed is None else "ok",
                facts={"badge_id": landed},
                action="badge.reissue.settled",
            )


def _landed(
    current: list[IssuedBadge], row: PlannedRow, outcome: str, target: str | None
) -> str | None:
    """The badge an abandoned issue or update created, if Credly holds it."""
    if outcome == "update":
        replaced = next((b for b in current if b.id == target), None)
        return replaced.replacement_badge_id if replaced is not None else None
    assert row.completed_at is not None
    second = row.completed_at.replace(microsecond=0)
    for badge in current:
        if (
            badge.template_id == row.template_id
            and badge.is_live
            and as_utc(badge.issued_at).replace(microsecond=0) == second
        ):
            return badge.id
    return None

"""Preparing an upload: file bytes → completions → an incremental sync → the plan. Nothing is
sent to Credly but the sync's reads, and nothing is written but the sync (a dry run writes one
audit row).

**Freshness.** :func:`prepare` first brings the cache up to date with an incremental sync when
Credly can be reached (waiting for a sync another process is running), so the plan sees the
organization's current badges; when it cannot (or ``refresh=False``), the plan uses the cache as
it is and :class:`CacheFreshness` says how old it is — a plan made so is *stale*, and is only
sent when the person says so.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from credly_ops.access import Actor, Permission, require
from credly_ops.completions import CompletionFile, RejectedRow, RowError, read_completions
from credly_ops.credly.errors import CredlyError
from credly_ops.issuance.decide import NO_OPT_INS, DecideOptions
from credly_ops.issuance.plan import InvalidRow, Plan, plan
from credly_ops.models import BadgeRule, IssuedBadge, TemplateRef, normalize_email
from credly_ops.reasons import describe
from credly_ops.rules import load_rules, load_templates
from credly_ops.store import Store, from_db_time
from credly_ops.sync import last_sync, sync
from credly_ops.sync_history import SyncRunning
from credly_ops.timeutil import ago, utcnow
from credly_ops.workspace import Workspace

#: reason codes for rows the reader could not parse, by the field at fault; the first bad field
#: of a row names its reason, and the reader's own sentences go into the row's detail
READER_REASONS: dict[str, str] = {
    "email": "bad_email",
    "first_name": "bad_name",
    "last_name": "bad_name",
    "name": "bad_name",
    "completed_at": "bad_date",
    "course_id": "no_course",
    "course_title": "no_course",
    "status": "bad_status",
    "score": "bad_score",
    "": "extra_fields",
}


@dataclass(frozen=True)
class CacheFreshness:
    """How current the badges a plan was made against are."""

    #: an incremental sync ran just before planning
    synced: bool
    #: when the cache was last synced (after that sync, when it ran)
    last_sync_at: datetime | None
    #: why Credly could not be reached (an error class), when a sync was tried and failed
    error: str | None = None
    changed: int = 0

    def sentence(self, now: datetime | None = None) -> str:
        age = ago(self.last_sync_at, now or utcnow())
        if self.synced:
            return (
                f"The cache was synced with Credly just before planning ({self.changed:,} "
                "badges changed), so the plan sees Credly's current badges."
            )
        if self.error is not None:
            return (
                f"Credly could not be reached ({describe(self.error)}); the plan uses the cache "
                f"as last synced {age}."
            )
        return f"The plan uses the cache as last synced {age} (not refreshed)."


@dataclass(frozen=True)
class Prepared:
    """An upload, read and planned: what the page and the command line show before sending."""

    plan: Plan
    file: CompletionFile
    source_name: str
    source_bytes: bytes = field(repr=False)
    sha256: str
    freshness: CacheFreshness
    opt_ins: DecideOptions = NO_OPT_INS
    encoding: str | None = None

    @property
    def options(self) -> dict[str, Any]:
        """The job options recorded with a job made from this plan: the opt-ins (so each row
        is decided again at send time with them) and the file's encoding."""
        return {**self.opt_ins.as_options(), "encoding": self.encoding}

    @property
    def stale(self) -> bool:
        """Credly could not be reached to sync before planning."""
        return self.freshness.error is not None

    @property
    def to_send(self) -> int:
        counts = self.plan.counts()
        return counts["issue"] + counts["update"]

    def summary_lines(self) -> list[str]:
        """The plan summary as lines of plain text (the command line shows these)."""
        file = self.file
        counts = self.plan.counts()
        lines = [
            f"{self.source_name}: {file.rows_read:,} rows read, {len(file.completions):,} valid, "
            f"{file.rows_with_errors:,} with errors",
            self.freshness.sentence(),
            f"plan: {counts['issue']:,} to issue, {counts['update']:,} to update, "
            f"{counts['skip']:,} skipped, {counts['invalid']:,} invalid",
        ]
        for reason, n in self.plan.reasons().items():
            lines.append(f"  {n:>7,}  {reason}: {describe(reason)}")
        for flag, n in self.plan.flag_counts().items():
            lines.append(f"  {n:>7,}  flagged {flag}")
        return lines


def source_sha256(data: bytes) -> str:
    return hashlib.sha256(bytes(data)).hexdigest()


def reader_invalid_rows(
    errors: Sequence[RowError], rejected: Sequence[RejectedRow] = ()
) -> list[InvalidRow]:
    """The reader's bad rows as the planner's ``invalid_rows``, with what each row said.

    The first bad field of a row names its reason (:data:`READER_REASONS`; a date in the future
    is ``future_date``); the detail joins every problem of the row as ``column: sentence``.
    """
    by_row: dict[int, list[RowError]] = {}
    for error in errors:
        by_row.setdefault(error.row, []).append(error)
    said = {values.row: values for values in rejected}
    out: list[InvalidRow] = []
    for number, problems in by_row.items():
        first = problems[0]
        code = READER_REASONS.get(first.field, "extra_fields")
        if code == "bad_date" and "future" in first.reason:
            code = "future_date"
        detail = "; ".join(f"{p.column}: {p.reason}" if p.column else p.reason for p in problems)
        values = said.get(number)
        if values is None:
            out.append(InvalidRow(number, code, detail))
            continue
        out.append(
            InvalidRow(
                number,
                code,
                detail,
                email=values.email,
                course_id=values.course_id,
                course_title=values.course_title,
                completed_at=values.completed_at,
                first_name=values.first_name,
                last_name=values.last_name,
            )
        )
    return out


def badges_for_emails(store: Store, emails: Iterable[str]) -> dict[str, list[IssuedBadge]]:
    """The cached badges (any template, any state) of these students, by normalized email.

    One query. The badges are built without validation (they come from our own cache) and carry
    what the engine reads: id, state, recipient, template, issued_at and expires_at.
    """
    keys = sorted({normalize_email(e) for e in emails if e})
    if not keys:
        return {}
    with store.session() as cur:
        rows = cur.execute(
            "SELECT id, template_id, template_name, recipient_email, first_name, last_name, "
            "state, issued_at, expires_at, state_updated_at, replaces_badge_id, "
            "replacement_badge_id FROM badges "
            "WHERE recipient_email IN (SELECT unnest(?::VARCHAR[]))",
            [keys],
        ).fetchall()
    out: dict[str, list[IssuedBadge]] = {}
    for r in rows:
        issued_at = from_db_time(r[7])
        if issued_at is None:  # the schema says NOT NULL; a badge without a date decides nothing
            continue
        badge = IssuedBadge.model_construct(
            id=r[0],
            badge_template=TemplateRef.model_construct(id=r[1], name=r[2] or ""),
            recipient_email=r[3],
            issued_to_first_name=r[4],
            issued_to_last_name=r[5],
            state=r[6],
            issued_at=issued_at,
            expires_at=from_db_time(r[8]),
            state_updated_at=from_db_time(r[9]),
            replaces_badge_id=r[10],
            replacement_badge_id=r[11],
        )
        out.setdefault(r[3], []).append(badge)
    return out


#: how long a plan waits for a sync another process is running before it plans without one
WAIT_FOR_SYNC_SECONDS = 60.0


def refresh_cache(
    ws: Workspace, actor: Actor, client_options: Mapping[str, Any] | None = None
) -> CacheFreshness:
    """An incremental sync when Credly can be reached; otherwise say how old the cache is.

    When another process is syncing (a cron ``credly-ops sync``), this waits for it, up to
    :data:`WAIT_FOR_SYNC_SECONDS`, and then syncs the little that changed since."""
    deadline = time.monotonic() + WAIT_FOR_SYNC_SECONDS
    try:
        while True:
            try:
                with ws.client(**dict(client_options or {})) as client:
                    result = sync(client, ws.store, actor=actor)
                break
            except SyncRunning:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(1.0)
    except (CredlyError, OSError, ValueError, SyncRunning) as exc:
        info = last_sync(ws.store)
        if isinstance(exc, CredlyError):
            kind = exc.kind
        else:
            kind = "sync_running" if isinstance(exc, SyncRunning) else "network"
        return CacheFreshness(False, info["finished_at"] if info else None, error=kind)
    info = last_sync(ws.store)
    return CacheFreshness(True, info["finished_at"] if info else utcnow(), changed=result.changed)


def cache_freshness(store: Store) -> CacheFreshness:
    info = last_sync(store)
    return CacheFreshness(False, info["finished_at"] if info else None)


def prepare(
    ws: Workspace,
    actor: Actor,
    data: bytes,
    *,
    source_name: str,
    include_rejected: bool = False,
    include_revoked: bool = False,
    include_expired: bool = False,
    encoding: str | None = None,
    refresh: bool = True,
    now: datetime | None = None,
    client_options: Mapping[str, Any] | None = None,
) -> Prepared:
    """Read an uploaded file and plan it against the cache (synced first when ``refresh``).

    Raises :class:`~credly_ops.completions.CompletionFileError` when the file as a whole cannot
    be used. Nothing is sent to Credly but the sync's reads, and nothing is written but the sync.
    ``client_options`` go to the Credly client of the sync.
    """
    require(actor, Permission.VIEW)
    opt_ins = DecideOptions(
        include_rejected=include_rejected,
        include_revoked=include_revoked,
        include_expired=include_expired,
    )
    moment = now or utcnow()
    data = bytes(data)
    file = read_completions(data, now=moment, encoding=encoding)
    freshness = refresh_cache(ws, actor, client_options) if refresh else cache_freshness(ws.store)
    rules: dict[str, BadgeRule] = {r.course_id: r for r in load_rules(ws.store)}
    templates = load_templates(ws.store)
    badges = badges_for_emails(ws.store, (c.email for c in file.completions))
    decided = plan(
        file.completions,
        rules,
        templates,
        badges,
        now=moment,
        mode="bulk",
        options=opt_ins,
        invalid_rows=reader_invalid_rows(file.errors, file.rejected),
    )
    return Prepared(
        plan=decided,
        file=file,
        source_name=source_name,
        source_bytes=data,
        sha256=source_sha256(data),
        freshness=freshness,
        opt_ins=opt_ins,
        encoding=encoding,
    )


def record_dry_run(ws: Workspace, actor: Actor, prepared: Prepared) -> None:
    """A dry run: the plan was shown and nothing was sent; one audit row says so."""
    counts = prepared.plan.counts()
    ws.store.audit(
        actor=actor,
        action="issue.dry_run",
        target=prepared.source_name,
        outcome="ok",
        detail={
            "sha256": prepared.sha256,
            "rows": len(prepared.plan),
            **counts,
            "reasons": prepared.plan.reasons(),
            "options": prepared.options,
        },
    )

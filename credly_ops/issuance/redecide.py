"""Deciding a job's rows again, against the freshest state, just before they are sent.

A plan is a proposal: between the plan and the send, another job (a second CSM's upload, a
single re-issue, automatic issuing, in this process or another) may have issued or renewed a
badge for the same student, an admin may have revoked one, a rule may have changed. So every
row is decided again — by the same engine, :func:`~credly_ops.issuance.plan.plan` — against a
:class:`Snapshot` of

* the rules and templates in the cache now,
* the students' badges in the cache, **overlaid with the ledger of every job**: a badge a job
  made that the cache does not hold yet is added (pending, or with the state of the badge it
  replaced), and a badge a job replaced is marked replaced even where the cache still calls it
  live, so nothing that landed is missed between two syncs;
* which rows of other jobs are ``in_flight`` for the same student and template right now.

A row whose student and template have a row in flight in a live job (one whose runner's
heartbeat is fresh) **waits**: deciding it now could send the same completion twice. A row in
flight in a dead job is *uncertain*: it may have reached Credly, so the runner looks it up
before sending.

:func:`redecide` decides the rows given together, like one upload: a job's rows of one student
and template are decided in completed_at order, each against the badges the earlier ones will
leave, exactly as the plan did.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import duckdb

from credly_ops import ledger
from credly_ops.issuance.decide import NO_OPT_INS, DecideOptions, Mode
from credly_ops.issuance.plan import PlannedRow, is_planned_id, plan
from credly_ops.ledger import History, LedgerRow
from credly_ops.models import (
    BadgeRule,
    BadgeState,
    BadgeTemplate,
    Completion,
    IssuedBadge,
    SuccessStatus,
    TemplateRef,
    normalize_email,
)
from credly_ops.rules import load_rules, load_templates
from credly_ops.store import Store

_STATUSES = {s.value for s in SuccessStatus}


@dataclass(frozen=True)
class Snapshot:
    """What a re-decision reads: rules, templates, badges as Credly holds them (cache + ledger)
    and the rows in flight in other jobs."""

    rules: Mapping[str, BadgeRule]
    templates: Mapping[str, BadgeTemplate]
    badges_by_email: Mapping[str, Sequence[IssuedBadge]]
    #: (email, template) → rows of other jobs (or of earlier runs) in flight, and their jobs
    in_flight: Mapping[tuple[str, str], Sequence[History]] = field(default_factory=dict)
    #: badges other ledger rows made (so a row in doubt can tell its own badge from theirs)
    claimed: frozenset[str] = frozenset()


#: decisions that mean "the badge this row would make is there already"
_LANDED = frozenset({"already_issued", "already_up_to_date"})


@dataclass(frozen=True)
class Redecision:
    row: LedgerRow
    decided: PlannedRow
    #: another live job is sending for this student and template: decide again later
    wait: bool = False
    #: a dead job's row for this student and template was in flight: look Credly up first
    uncertain: bool = False
    #: the row was in doubt (sent before) and its badge is there, made by no other row: it
    #: is the row's own badge, and the row succeeded with it
    landed: str | None = None

    @property
    def changed(self) -> bool:
        """Whether the decision differs from the row's current one (outcome or reason)."""
        return (self.decided.outcome, self.decided.reason) != (self.row.outcome, self.row.reason)


def _badge(
    badge_id: str,
    email: str,
    template_id: str,
    state: str,
    issued_at: datetime,
    expires_at: datetime | None,
    name: str,
) -> IssuedBadge:
    return IssuedBadge.model_construct(
        id=badge_id,
        badge_template=TemplateRef.model_construct(id=template_id, name=name),
        recipient_email=email,
        state=state,
        issued_at=issued_at,
        expires_at=expires_at,
        state_updated_at=None,
        replaces_badge_id=None,
        replacement_badge_id=None,
    )


def overlay(
    cached: Mapping[str, Sequence[IssuedBadge]],
    rows: Sequence[History],
    created: Mapping[str, Mapping[int, str]],
) -> dict[str, list[IssuedBadge]]:
    """The cached badges with what the ledger says jobs made or replaced since.

    ``created`` resolves an old update row's ``planned:<row>`` target within its job.
    """
    out: dict[str, dict[str, IssuedBadge]] = {
        email: {b.id: b for b in badges} for email, badges in cached.items()
    }
    for h in rows:
        if h.status != ledger.ROW_SUCCEEDED or not h.badge_id or h.issued_at is None:
            continue
        issued_at: datetime = h.issued_at
        email = normalize_email(h.email)
        badges = out.setdefault(email, {})
        state = BadgeState.PENDING.value
        if h.outcome == "update":
            target = h.target_badge_id
            if target and is_planned_id(target):
                number = target.split(":", 1)[1].split("~", 1)[0]
                target = created.get(h.job_id, {}).get(int(number)) if number.isdigit() else None
            old = badges.get(target) if target else None
            if old is not None:
                if old.state in (BadgeState.PENDING, BadgeState.ACCEPTED):
                    state = str(old.state)
                if old.id != h.badge_id:
                    badges[old.id] = old.model_copy(update={"state": BadgeState.REPLACED.value})
        if h.badge_id not in badges:
            name = next((b.badge_template.name for b in badges.values()), "")
            badges[h.badge_id] = _badge(
                h.badge_id, email, h.template_id, state, issued_at, h.expires_at, name
            )
    return {email: list(badges.values()) for email, badges in out.items()}


def take_snapshot(
    store: Store,
    cur: duckdb.DuckDBPyConnection,
    rows: Sequence[LedgerRow],
    *,
    exclude: Collection[tuple[str, int]] = (),
) -> Snapshot:
    """The state ``rows`` are decided against; ``cur`` is the unit of work that will record
    the decisions (so the ledger read and the claim are one transaction). ``exclude`` names
    (job, row) pairs that are the rows themselves, not rows of other jobs."""
    from credly_ops.issuance.upload import badges_for_emails

    emails = {normalize_email(r.email) for r in rows}
    rules = {r.course_id: r for r in load_rules(store)}
    templates = load_templates(store)
    cached = badges_for_emails(store, emails)
    past = ledger.history(cur, emails)
    created = ledger.created_badges(cur, {h.job_id for h in past if h.outcome == "update"})
    badges = overlay(cached, past, created)
    mine = set(exclude)
    in_flight: dict[tuple[str, str], list[History]] = {}
    claimed: set[str] = set()
    for h in past:
        if (h.job_id, h.row_no) in mine:
            continue
        if h.status == ledger.ROW_IN_FLIGHT:
            in_flight.setdefault((normalize_email(h.email), h.template_id), []).append(h)
        elif h.badge_id:
            claimed.add(h.badge_id)
    return Snapshot(rules, templates, badges, in_flight, frozenset(claimed))


def completion_of(row: LedgerRow) -> Completion:
    status = SuccessStatus(row.success_status) if row.success_status in _STATUSES else None
    return Completion(
        email=row.email,
        first_name=row.first_name,
        last_name=row.last_name,
        course_id=row.course_id,
        course_title=row.course_title,
        completed_at=row.completed_at,
        status=status,
        row=row.row_no,
        date_only=row.date_only,
    )


def redecide(
    rows: Sequence[LedgerRow],
    snap: Snapshot,
    *,
    now: datetime,
    mode: Mode = "bulk",
    options: DecideOptions = NO_OPT_INS,
    running_here: Iterable[str] = (),
) -> list[Redecision]:
    """Decide ``rows`` again against ``snap``; ``running_here`` names the jobs that run in
    this process (others are alive while their heartbeat is fresh).

    Rows come back in the order given. A row with a live job's row in flight for its student
    and template is marked ``wait`` (its decision is what it would be now, for display only).
    """
    here = set(running_here)
    planned = plan(
        [completion_of(r) for r in rows],
        snap.rules,
        snap.templates,
        snap.badges_by_email,
        now=now,
        mode=mode,
        options=options,
    ).rows
    by_number = {d.row: d for d in planned}
    out: list[Redecision] = []
    for row in rows:
        key = (normalize_email(row.email), by_number[row.row_no].template_id or row.template_id)
        others = snap.in_flight.get(key, ())
        wait = any(h.job_id in here or h.job_alive(now) for h in others)
        uncertain = bool(others) and not wait
        decided = by_number[row.row_no]
        landed = None
        in_doubt = row.status == ledger.ROW_IN_FLIGHT or row.attempts > 0
        if (
            in_doubt
            and decided.reason in _LANDED
            and decided.matched_badge_id
            and decided.matched_badge_id not in snap.claimed
        ):
            landed = decided.matched_badge_id
        out.append(Redecision(row, decided, wait=wait, uncertain=uncertain, landed=landed))
    return out


def as_decided(r: Redecision) -> ledger.Decided:
    d = r.decided
    return ledger.Decided(
        row_no=r.row.row_no,
        outcome=d.outcome,
        reason=d.reason,
        flags=d.flags,
        template_id=d.template_id or r.row.template_id,
        issued_at=d.issued_at,
        expires_at=d.expires_at,
        target_badge_id=d.target_badge_id,
        matched_badge_id=d.matched_badge_id,
    )

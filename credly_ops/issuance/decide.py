"""What the engine does with one completion: a pure function from plain values to a value.

``decide()`` applies the issuing rules of the domain in this order, and the first that
answers wins:

1. invalid input ........................ ``invalid``: bad_email (missing, malformed, or
                                           holding a control character such as NUL),
                                           bad_date, no_course, future_date
2. no rule for the course ............... ``skip / no_rule``
3. failed, and the rule requires a pass . ``skip / not_passed``
9. before the rule's ``active_from`` .... automatic mode: ``skip / before_active_from``;
                                           bulk mode: carries on, flagged ``backfill``
4. template not active .................. ``skip / template_inactive``
5. a live badge already carries this
   completion (see below) ............... ``skip / already_issued``
10. a rejected or revoked badge carries
   this very completion ................. ``skip / previously_rejected`` or
                                           ``skip / previously_revoked``; with the caller's
                                           opt-in (``include_rejected`` / ``include_revoked``)
                                           the rules carry on and the row is flagged so.
                                           A dead badge of *another* completion never blocks
                                           and never flags.
6. the rule's method, where a *live* badge is ``pending`` or ``accepted``:
   ``issue``            no live badge → ``issue / new_badge``; live badge and the template
                        allows duplicates → ``issue / retake``; else ``skip / already_has_badge``
   ``update``           live badge → ``update / renewal``; else ``skip / no_existing_badge``
   ``issue_or_update``  live badge → ``update / renewal``; else ``issue / new_badge``
   An update never shortens a badge: when the live badge already expires at or after the new
   ``expires_at`` (the same second or later), or neither expires, the row is
   ``skip / already_up_to_date``. Equal expiries make a re-run of a file a no-op; "or later"
   keeps an older completion arriving after a newer one from cutting a badge short. A live
   badge that **never expires** is updated when the rule has a duration: it gets the rule's
   expiry from this completion (the rule's policy changed since it was issued), flagged
   ``adds_expiry``.
11. an issue or renewal whose ``expires_at`` is already past ``now`` is
   ``skip / already_expired``, unless the caller opts in (``include_expired``): then it is
   sent, flagged ``already_expired``. Nobody gets an "accept your badge" email for a badge
   that has already expired.

Rule 9 sits between 3 and 4 because it is part of what makes a completion *eligible* (rule,
pass, at or after ``active_from``), the same three gates the funnel counts. An issue that
would send a badge without a first or last name is ``invalid / missing_name``: Credly refuses
such a badge, so nothing is sent; one whose name holds a control character (a NUL byte) is
``invalid / bad_name``. An expiration duration that runs past the calendar is
``skip / expiry_out_of_range``. The opt-ins are one value, :class:`DecideOptions`.

**Which badge carries a completion** (:func:`carries_completion`, the one place that says it):
the badge's ``issued_at`` is the completion's ``completed_at`` to the second in UTC; or, for
a completion given as a date only (``Completion.date_only``), any moment of that UTC day. A
badge issued at exactly 00:00:00 UTC may have come from a date-only completion (Credly keeps
no trace of that), so it carries every completion of its UTC day, timestamped or not: a
completion given first as a date and later with its time of day never earns a second badge.
The price is that a real completion at exactly midnight UTC and a retake later that same day
count as one completion; the error goes the safe way (no second badge).

Dates: an issued badge carries ``issued_at`` = completed_at (never "now": a backfill carries
the real date) and, when the rule has a duration, ``expires_at`` = completed_at + months (the
day clamped to the month's end: Jan 31 + 1 month = Feb 28/29) + days. An update keeps the
original badge's ``issued_at`` and takes its new ``expires_at`` from the new completion, so
``Decision.issued_at`` is the ``issued_at`` the resulting badge carries on Credly. A decision's
``expires_at`` of ``None`` means "no expiry"; a request sends it as "never expires" (see
:func:`credly_ops.models.request_expiry`).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple, Protocol

from credly_ops.models import (
    CONTROL_CHARACTERS,
    LIVE_STATES,
    BadgeRule,
    BadgeState,
    BadgeTemplate,
    Completion,
    IssuedBadge,
    IssueMethod,
    SuccessStatus,
    TemplateState,
    has_control_character,
    normalize_email,
)
from credly_ops.timeutil import as_utc

Outcome = Literal["issue", "update", "skip", "invalid"]
Mode = Literal["bulk", "automatic"]

OUTCOMES: tuple[Outcome, ...] = ("issue", "update", "skip", "invalid")

#: flag: a bulk upload issues for a completion before the rule's ``active_from``
FLAG_BACKFILL = "backfill"
#: flag: this completion's badge was rejected by the student; issued anew as the caller opted in
FLAG_PREVIOUSLY_REJECTED = "previously_rejected"
#: flag: this completion's badge was revoked by an admin; issued anew as the caller opted in
FLAG_PREVIOUSLY_REVOKED = "previously_revoked"
#: flag: the badge's expiry has already passed; sent as the caller opted in
FLAG_ALREADY_EXPIRED = "already_expired"
#: flag: the update gives a badge that never expired the rule's expiry
FLAG_ADDS_EXPIRY = "adds_expiry"

FLAGS: frozenset[str] = frozenset(
    {
        FLAG_BACKFILL,
        FLAG_PREVIOUSLY_REJECTED,
        FLAG_PREVIOUSLY_REVOKED,
        FLAG_ALREADY_EXPIRED,
        FLAG_ADDS_EXPIRY,
    }
)

INVALID_REASONS: frozenset[str] = frozenset(
    {"bad_email", "bad_date", "no_course", "future_date", "missing_name", "bad_name"}
)
SKIP_REASONS: frozenset[str] = frozenset(
    {
        "no_rule",
        "ambiguous_course_title",
        "not_passed",
        "before_active_from",
        "template_inactive",
        "already_issued",
        "already_has_badge",
        "no_existing_badge",
        "already_up_to_date",
        "duplicate_row",
        "previously_rejected",
        "previously_revoked",
        "already_expired",
        "expiry_out_of_range",
    }
)
ISSUE_REASONS: frozenset[str] = frozenset({"new_badge", "retake"})
UPDATE_REASONS: frozenset[str] = frozenset({"renewal"})

# Deliberately plain: one "@", no whitespace and no control character (a NUL byte, a line
# break), a dot in the domain. Credly is the final judge.
_PART = rf"[^@\s{CONTROL_CHARACTERS}]+"
_EMAIL = re.compile(rf"{_PART}@{_PART}\.{_PART}")


@dataclass(frozen=True, slots=True)
class DecideOptions:
    """What the caller opted in to for a run (all off by default).

    ``include_rejected`` / ``include_revoked``: a completion whose own badge was rejected by the
    student / revoked by an admin is issued anew (rule 10). ``include_expired``: a badge whose
    expiry has already passed is sent all the same (rule 11). Each opted-in row is flagged.
    """

    include_rejected: bool = False
    include_revoked: bool = False
    include_expired: bool = False

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> DecideOptions:
        """The opt-ins recorded with a job (its options as JSON)."""
        return cls(
            include_rejected=bool(options.get("include_rejected")),
            include_revoked=bool(options.get("include_revoked")),
            include_expired=bool(options.get("include_expired")),
        )

    def as_options(self) -> dict[str, bool]:
        return {
            "include_rejected": self.include_rejected,
            "include_revoked": self.include_revoked,
            "include_expired": self.include_expired,
        }


#: no opt-ins: the default of every caller
NO_OPT_INS = DecideOptions()
_DEFAULT_OPTIONS = NO_OPT_INS


class BadgeView(Protocol):
    """What the rules read from a badge; ``IssuedBadge`` and a plan's simulated badges fit."""

    @property
    def id(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def issued_at(self) -> datetime: ...

    @property
    def expires_at(self) -> datetime | None: ...


class Decision(NamedTuple):
    """The engine's answer for one completion (a named tuple: cheap to make, 100,000 times).

    ``target_badge_id`` is the live badge an update replaces. ``matched_badge_id`` is the badge
    that made the decision a skip: the badge that already carries this completion
    (``already_issued``), the live badge that blocks a second one (``already_has_badge``) or
    already has the expiry (``already_up_to_date``), or this completion's rejected or revoked
    badge (``previously_rejected``, ``previously_revoked``).

    The fields are in the order :class:`~credly_ops.issuance.plan.PlannedRow` holds them.
    """

    outcome: Outcome
    reason: str
    flags: frozenset[str] = frozenset()
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    target_badge_id: str | None = None
    matched_badge_id: str | None = None

    @property
    def sends(self) -> bool:
        """Whether this decision makes a call to Credly."""
        return self.outcome in ("issue", "update")


# Hot-path constants: decide() runs once per row of uploads of 100,000 rows.
_FAILED = SuccessStatus.FAILED.value
_UPDATE = IssueMethod.UPDATE.value
_UPDATING_METHODS = frozenset({IssueMethod.UPDATE.value, IssueMethod.ISSUE_OR_UPDATE.value})
_REJECTED = BadgeState.REJECTED.value
_ENDED_STATES = frozenset({BadgeState.REJECTED.value, BadgeState.REVOKED.value})
_ACTIVE = TemplateState.ACTIVE.value
_NO_FLAGS: frozenset[str] = frozenset()
_BACKFILL = frozenset({FLAG_BACKFILL})
_PREVIOUSLY_REJECTED = frozenset({FLAG_PREVIOUSLY_REJECTED})
_PREVIOUSLY_REVOKED = frozenset({FLAG_PREVIOUSLY_REVOKED})
_ALREADY_EXPIRED = frozenset({FLAG_ALREADY_EXPIRED})
_ADDS_EXPIRY = frozenset({FLAG_ADDS_EXPIRY})

#: the skips that name no badge, made once: a decision is an immutable value
_PLAIN_SKIPS: dict[str, Decision] = {
    reason: Decision(outcome="skip", reason=reason) for reason in SKIP_REASONS
}


def _utc(moment: datetime) -> datetime:
    """``as_utc`` without the work when the value is UTC already (the common case)."""
    return moment if moment.tzinfo is UTC else as_utc(moment)


def to_second(moment: datetime) -> datetime:
    """``moment`` in UTC with the microseconds dropped: the precision the rules compare at."""
    moment = _utc(moment)
    return moment.replace(microsecond=0) if moment.microsecond else moment


def _midnight(second: datetime) -> datetime:
    """The start of the UTC day of ``second`` (a moment already in UTC)."""
    return second.replace(hour=0, minute=0, second=0, microsecond=0)


def _at_midnight(second: datetime) -> bool:
    return not (second.hour or second.minute or second.second)


def carries_completion(
    issued_at: datetime, completed_at: datetime, *, date_only: bool = False
) -> bool:
    """Whether a badge issued at ``issued_at`` is the badge of a completion at ``completed_at``.

    The one definition every part of the engine goes by (see the module docstring): the same
    second in UTC; or the same UTC day when the completion is date-only (``date_only``) or the
    badge was issued at exactly 00:00:00 UTC (it may have come from a date-only completion).
    """
    issued = to_second(issued_at)
    done = to_second(completed_at)
    if issued == done:
        return True
    if issued.date() != done.date():
        return False
    return date_only or _at_midnight(issued)


def carries_completion_sql(issued_at: str, completed_at: str, date_only: str) -> str:
    """:func:`carries_completion` as a SQL condition over column expressions (naive UTC
    timestamps, as the cache keeps them): its twin for the completion → badge link
    (:mod:`credly_ops.links`), kept beside it so the two cannot drift apart."""
    issued, done = f"date_trunc('second', {issued_at})", f"date_trunc('second', {completed_at})"
    same_day = f"date_trunc('day', {issued_at}) = date_trunc('day', {completed_at})"
    midnight = f"{issued} = date_trunc('day', {issued_at})"
    return f"({issued} = {done} OR ({same_day} AND ({date_only} OR {midnight})))"


def expires_at_sql(completed_at: str, months: str, days: str) -> str:
    """:func:`compute_expires_at` as a SQL expression (``NULL`` when the rule has no
    duration): months first, the day clamped to the month's end, then days."""
    return (
        f"(CASE WHEN coalesce({months}, 0) = 0 AND coalesce({days}, 0) = 0 THEN NULL "
        f"ELSE {completed_at} + to_months(coalesce({months}, 0)) "
        f"+ to_days(coalesce({days}, 0)) END)"
    )


_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_in_month(year: int, month: int) -> int:
    if month == 2 and calendar.isleap(year):
        return 29
    return _DAYS_IN_MONTH[month - 1]


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus whole calendar months, the day clamped to the target month's end.

    Jan 31 + 1 month is Feb 29 in a leap year and Feb 28 otherwise. Raises ``ValueError`` when
    the result falls outside the years a ``datetime`` can hold.
    """
    if not months:
        return moment
    index = moment.month - 1 + months
    year = moment.year + index // 12
    month = index % 12 + 1
    if not 1 <= year <= 9999:
        raise ValueError(f"year {year} is out of range")
    return moment.replace(year=year, month=month, day=min(moment.day, _days_in_month(year, month)))


def compute_expires_at(completed_at: datetime, rule: BadgeRule) -> datetime | None:
    """``completed_at`` + the rule's months + days, or ``None`` when the rule has no duration.

    Raises ``ValueError`` when the result does not fit in a ``datetime``.
    """
    if not rule.has_expiration:
        return None
    moment = add_months(_utc(completed_at), rule.expiration_months)
    if not rule.expiration_days:
        return moment
    try:
        return moment + timedelta(days=rule.expiration_days)
    except OverflowError as exc:
        raise ValueError("expiry is out of range") from exc


def same_second(a: datetime | None, b: datetime | None) -> bool:
    """Equal to the second in UTC; two missing values are equal, one missing is not."""
    if a is None or b is None:
        return a is None and b is None
    return to_second(a) == to_second(b)


def lasts_at_least(current: datetime | None, new: datetime | None) -> bool:
    """Whether a badge expiring at ``current`` already lasts until ``new`` (to the second).

    ``None`` means "never expires", later than any moment. (The rules add an expiry to a badge
    that never expires when its rule has one: see the module docstring.)
    """
    if current is None:
        return True
    if new is None:
        return False
    return to_second(current) >= to_second(new)


def invalid_reason(completion: Completion, *, now: datetime) -> str | None:
    """Why a completion cannot be used at all (rule 1), or ``None`` when it can."""
    if not isinstance(completion.email, str) or not _EMAIL.fullmatch(completion.email.strip()):
        return "bad_email"
    completed_at = completion.completed_at
    if not isinstance(completed_at, datetime):
        return "bad_date"
    if not (completion.course_id or "").strip() and not (completion.course_title or "").strip():
        return "no_course"
    if _utc(completed_at) > _utc(now):
        return "future_date"
    return None


def _skip(reason: str, *, matched: str | None = None) -> Decision:
    if matched is None:
        return _PLAIN_SKIPS[reason]
    return Decision(outcome="skip", reason=reason, matched_badge_id=matched)


def _order(badge: BadgeView) -> tuple[datetime, str]:
    """Which of two badges is the later: issued_at, then id."""
    return (_utc(badge.issued_at), badge.id)


def _latest(badges: list[BadgeView]) -> BadgeView:
    return badges[0] if len(badges) == 1 else max(badges, key=_order)


class BadgePool:
    """One student's badges of one template, indexed for the rules.

    Live badges (pending, accepted) are found by the second they were issued at, by their UTC
    day (an index built on the first date-only look-up) and by which is the latest; rejected
    and revoked badges are kept for rule 10 and found with :func:`carries_completion`.
    Replaced badges never block and never flag (their replacement carries on) and are not
    kept. Every live look-up is O(1) (ties within one second or one day aside), so a student
    with thousands of retakes in one upload costs no more per row than one with a single
    completion.
    """

    __slots__ = ("_days", "_ended", "_live", "_midnights", "_top")

    def __init__(self, badges: Iterable[BadgeView] = ()) -> None:
        self._live: dict[datetime, list[BadgeView]] = {}
        self._days: dict[datetime, list[BadgeView]] | None = None
        self._midnights = 0  # live badges issued at exactly 00:00:00 UTC
        self._top: datetime | None = None
        self._ended: list[BadgeView] = []
        for badge in badges:
            self.add(badge)

    def add(self, badge: BadgeView) -> None:
        if badge.state in LIVE_STATES:
            second = to_second(badge.issued_at)
            self._live.setdefault(second, []).append(badge)
            if _at_midnight(second):
                self._midnights += 1
            if self._days is not None:
                self._days.setdefault(_midnight(second), []).append(badge)
            if self._top is None or second > self._top:
                self._top = second
        elif badge.state in _ENDED_STATES:
            self._ended.append(badge)

    def replace(self, target_id: str, replacement: BadgeView) -> bool:
        """Put ``replacement`` where the live badge ``target_id`` was; ``False`` if not found.

        A replacement keeps its target's issued_at (that is what Credly's replace does).
        """
        second = to_second(replacement.issued_at)
        found = _swap(self._live.get(second, []), target_id, replacement)
        if found and self._days is not None:
            _swap(self._days.get(_midnight(second), []), target_id, replacement)
        return found

    @property
    def has_live(self) -> bool:
        return self._top is not None

    def live_at(self, moment: datetime, *, date_only: bool = False) -> BadgeView | None:
        """The live badge that carries a completion at ``moment``, if any (the latest of
        several); see :func:`carries_completion`."""
        live = self._live
        if not live:
            return None
        second = to_second(moment)
        if date_only:
            days = self._days
            if days is None:
                days = self._days = {}
                for bucket in live.values():
                    for badge in bucket:
                        days.setdefault(_midnight(to_second(badge.issued_at)), []).append(badge)
            found = days.get(_midnight(second))
            return _latest(found) if found else None
        found = live.get(second)
        if self._midnights and not _at_midnight(second):
            at_midnight = live.get(_midnight(second))
            if at_midnight:
                found = at_midnight + found if found else at_midnight
        return _latest(found) if found else None

    def ended_for(self, moment: datetime, *, date_only: bool = False) -> BadgeView | None:
        """The rejected or revoked badge that carries a completion at ``moment``, if any (the
        latest of several)."""
        if not self._ended:
            return None
        found = [
            b for b in self._ended if carries_completion(b.issued_at, moment, date_only=date_only)
        ]
        return _latest(found) if found else None

    def latest_live(self) -> BadgeView | None:
        if self._top is None:
            return None
        return _latest(self._live[self._top])


def _swap(bucket: list[BadgeView], target_id: str, replacement: BadgeView) -> bool:
    for position, badge in enumerate(bucket):
        if badge.id == target_id:
            bucket[position] = replacement
            return True
    return False


def decide(
    completion: Completion,
    rule: BadgeRule | None,
    template: BadgeTemplate | None,
    existing: Sequence[IssuedBadge],
    *,
    now: datetime,
    mode: Mode = "bulk",
    options: DecideOptions = _DEFAULT_OPTIONS,
) -> Decision:
    """Decide what to do with one completion; see the module docstring for the rules.

    ``existing`` is this student's badges from the organization, any template and any state;
    only the ones with this completion's email (compared normalized) and the rule's template
    count. ``now`` is the moment "future" and "already expired" are measured against.
    """
    problem = invalid_reason(completion, now=now)
    if problem is not None:
        return Decision(outcome="invalid", reason=problem)
    if rule is None:
        return _PLAIN_SKIPS["no_rule"]
    email = completion.email_key
    pool = BadgePool(
        b
        for b in existing
        if b.template_id == rule.template_id and normalize_email(b.recipient_email) == email
    )
    return decide_valid(completion, rule, template, pool, now=now, mode=mode, options=options)


def decide_valid(
    completion: Completion,
    rule: BadgeRule,
    template: BadgeTemplate | None,
    pool: BadgePool,
    *,
    now: datetime,
    mode: Mode = "bulk",
    options: DecideOptions = _DEFAULT_OPTIONS,
) -> Decision:
    """Rules 3 to 11 for a completion that passed rule 1 and has a rule.

    ``pool`` holds this student's badges of the rule's template; the planner keeps one per
    student and template and applies each planned row to it.
    """
    if rule.require_pass and completion.status == _FAILED:
        return _PLAIN_SKIPS["not_passed"]

    completed_at = completion.completed_at
    if completed_at.tzinfo is not UTC:
        completed_at = as_utc(completed_at)
    flags = _NO_FLAGS
    if rule.active_from is not None and completed_at < _utc(rule.active_from):
        if mode == "automatic":
            return _PLAIN_SKIPS["before_active_from"]
        flags = _BACKFILL

    if template is None or template.state != _ACTIVE:
        return _PLAIN_SKIPS["template_inactive"]

    date_only = completion.date_only
    same = pool.live_at(completed_at, date_only=date_only)
    if same is not None:
        return _skip("already_issued", matched=same.id)

    ended = pool.ended_for(completed_at, date_only=date_only)
    if ended is not None:
        if ended.state == _REJECTED:
            if not options.include_rejected:
                return _skip("previously_rejected", matched=ended.id)
            flags = flags | _PREVIOUSLY_REJECTED
        else:
            if not options.include_revoked:
                return _skip("previously_revoked", matched=ended.id)
            flags = flags | _PREVIOUSLY_REVOKED

    latest = pool.latest_live()
    method = rule.method
    if latest is not None and method in _UPDATING_METHODS:
        try:
            expires_at = compute_expires_at(completed_at, rule)
        except ValueError:
            return _PLAIN_SKIPS["expiry_out_of_range"]
        current = latest.expires_at
        if current is None and expires_at is not None:
            flags = flags | _ADDS_EXPIRY
        elif lasts_at_least(current, expires_at):
            return _skip("already_up_to_date", matched=latest.id)
        if expires_at is not None and expires_at < _utc(now):
            if not options.include_expired:
                return _PLAIN_SKIPS["already_expired"]
            flags = flags | _ALREADY_EXPIRED
        return Decision(
            outcome="update",
            reason="renewal",
            flags=flags,
            issued_at=_utc(latest.issued_at),
            expires_at=expires_at,
            target_badge_id=latest.id,
        )
    if method == _UPDATE:
        return _PLAIN_SKIPS["no_existing_badge"]

    # The method issues from here on: ``issue``, or ``issue_or_update`` with no live badge.
    if latest is not None and not template.allow_duplicate_badges:
        return _skip("already_has_badge", matched=latest.id)
    reason = "retake" if latest is not None else "new_badge"
    first_name, last_name = completion.first_name or "", completion.last_name or ""
    if not first_name.strip() or not last_name.strip():
        return Decision(outcome="invalid", reason="missing_name")
    if has_control_character(first_name) or has_control_character(last_name):
        return Decision(outcome="invalid", reason="bad_name")
    try:
        expires_at = compute_expires_at(completed_at, rule)
    except ValueError:
        return _PLAIN_SKIPS["expiry_out_of_range"]
    if expires_at is not None and expires_at < _utc(now):
        if not options.include_expired:
            return _PLAIN_SKIPS["already_expired"]
        flags = flags | _ALREADY_EXPIRED
    return Decision(
        outcome="issue",
        reason=reason,
        flags=flags,
        issued_at=completed_at,
        expires_at=expires_at,
    )

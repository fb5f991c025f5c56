"""A whole upload, decided: the plan a person reviews before anything is sent.

``plan()`` is pure, like ``decide()``. It adds what only a whole upload can know:

- **Rule look-up.** By course id; when a row has no course id, by its course title, matched
  exactly after trimming and ignoring case among the rules' titles. A title that two rules
  share is ``skip / ambiguous_course_title``.
- **Duplicate rows.** Rows repeating the same completion (normalized email, course,
  completed_at to the second) are decided once; the later ones in the file are
  ``skip / duplicate_row``. A date-only row (``Completion.date_only``) is the same completion
  as any row of that student and course on the same UTC day, date-only or timestamped.
- **Order and simulation.** A student's rows are applied in completed_at order (ties in file
  order), each against the student's badges *as the earlier rows leave them*: a planned issue
  adds a ``pending`` badge, a planned update swaps its target for the replacement, which keeps
  the target's state and issued_at and carries the new expiry. Simulated badges carry
  placeholder ids ``planned:<row>`` (see :func:`planned_badge_id`), so a later update may
  target ``planned:7``: the badge row 7 will create. Send the rows in :meth:`Plan.actionable`
  order and the badge a placeholder names always exists before a row needs it.
- **Scale.** Badges are indexed per (student, template) in a :class:`BadgePool`, so every row
  costs the same whatever the size of the upload or of one student's pile of retakes.

The rows come back in input row order, one per completion and one per row the reader could
not parse (``invalid_rows``), whatever their outcome.

The idempotency key (:func:`idempotency_key`) is the key of a *completion*: the first 32 hex
digits of the SHA-256 of ``normalized email | template id | completed_at`` where the moment is
UTC ISO-8601 to the second (``2024-02-03T09:00:00+00:00``), or the UTC day (``2024-02-03``) for
a date-only completion. No outcome is in it: a row planned ``issue`` may become an ``update``
when it is decided again at send time, and it is still the same completion. For an issue,
completed_at *is* the badge's ``issued_at``; for an update it is the renewing completion's
moment, not the original badge's ``issued_at`` (which every renewal of that badge shares), so
two renewals of one badge get two keys. The same completion always gets the same key, in any
upload, so a ledger can tell "already sent" from "new". Keys are unique among a plan's issue
and update rows; skip and invalid rows send nothing and may share one.
"""

from __future__ import annotations

import gc
import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter, le
from typing import NamedTuple, cast

from credly_ops.issuance.decide import (
    _DEFAULT_OPTIONS,
    _PLAIN_SKIPS,
    OUTCOMES,
    BadgePool,
    DecideOptions,
    Decision,
    Mode,
    Outcome,
    _midnight,
    _utc,
    decide_valid,
    invalid_reason,
)
from credly_ops.models import (
    BadgeRule,
    BadgeState,
    BadgeTemplate,
    Completion,
    IssuedBadge,
    normalize_email,
)

PLANNED_PREFIX = "planned:"

#: the pool of a student with no badge of a template yet; read, never written
_NO_BADGES = BadgePool()
_DUPLICATE = Decision(outcome="skip", reason="duplicate_row")
_SENDING = frozenset({"issue", "update"})


def planned_badge_id(row: int) -> str:
    """The placeholder id of the badge a planned row will create."""
    return f"{PLANNED_PREFIX}{row}"


def is_planned_id(badge_id: str | None) -> bool:
    """Whether ``badge_id`` names a badge an earlier row of the same plan will create."""
    return bool(badge_id) and str(badge_id).startswith(PLANNED_PREFIX)


def _moment_text(moment: datetime | None, date_only: bool) -> str:
    if moment is None:
        return ""
    moment = _utc(moment)
    if date_only:
        return moment.date().isoformat()
    return moment.isoformat(timespec="seconds")


def idempotency_key(
    email: str, template_id: str, completed_at: datetime | None, *, date_only: bool = False
) -> str:
    """The key of a completion, which a ledger keeps for its row; see the module docstring."""
    text = f"{normalize_email(email)}|{template_id}|{_moment_text(completed_at, date_only)}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class PlannedRow(NamedTuple):
    """One input row and what the engine decided for it (immutable; a named tuple, so a plan
    of 100,000 rows is cheap to build and ``pandas.DataFrame(plan.rows)`` just works).

    ``planned_badge_id`` is the placeholder the row's badge has inside the plan (issue and
    update rows only); a later row's ``target_badge_id`` may name it. ``detail`` carries the
    reader's message for rows it could not parse. ``date_only`` is the completion's: its
    completed-at value had no time of day.
    """

    row: int
    email: str
    course_id: str
    course_title: str
    completed_at: datetime | None
    first_name: str
    last_name: str
    template_id: str
    outcome: Outcome
    reason: str
    flags: frozenset[str]
    issued_at: datetime | None
    expires_at: datetime | None
    target_badge_id: str | None
    matched_badge_id: str | None
    planned_badge_id: str | None = None
    detail: str = ""
    date_only: bool = False

    @property
    def email_key(self) -> str:
        return normalize_email(self.email)

    @property
    def key(self) -> str:
        """The idempotency key of the row's completion (see the module docstring), worked out
        when asked for."""
        return idempotency_key(
            self.email, self.template_id, self.completed_at, date_only=self.date_only
        )

    @property
    def sends(self) -> bool:
        return self.outcome in ("issue", "update")

    def as_record(self) -> dict[str, object]:
        """The row as plain values for a table, an export or a ledger: every field, the
        ``key``, and the flags as a sorted list."""
        record: dict[str, object] = dict(self._asdict())
        record["flags"] = sorted(self.flags)
        record["key"] = self.key
        return record


@dataclass(frozen=True)
class Plan:
    """The decided upload: ``rows`` in input row order, plus summaries."""

    rows: list[PlannedRow]
    now: datetime
    mode: Mode = "bulk"
    options: DecideOptions = _DEFAULT_OPTIONS

    def __len__(self) -> int:
        return len(self.rows)

    def counts(self) -> dict[str, int]:
        """Rows per outcome; every outcome is present, zero or not."""
        tally = Counter(r.outcome for r in self.rows)
        return {outcome: tally.get(outcome, 0) for outcome in OUTCOMES}

    def reasons(self) -> dict[str, int]:
        """Rows per reason code, most frequent first (ties by code)."""
        tally = Counter(r.reason for r in self.rows)
        return dict(sorted(tally.items(), key=lambda item: (-item[1], item[0])))

    def flag_counts(self) -> dict[str, int]:
        """Rows per flag, most frequent first (ties by flag)."""
        tally = Counter(flag for r in self.rows for flag in r.flags)
        return dict(sorted(tally.items(), key=lambda item: (-item[1], item[0])))

    def actionable(self) -> list[PlannedRow]:
        """Issue and update rows in the order to send them: completed_at, then row.

        This is the order the plan applied them in, so a row whose ``target_badge_id`` is a
        placeholder always comes after the row that creates that badge.
        """
        sending = [(i, r) for i, r in enumerate(self.rows) if r.sends]
        sending.sort(key=lambda item: (_sort_moment(item[1].completed_at), item[1].row, item[0]))
        return [r for _, r in sending]


def _sort_moment(moment: datetime | None) -> datetime:
    return _utc(moment) if moment is not None else datetime.min.replace(tzinfo=UTC)


@dataclass(slots=True)
class _Lookup:
    by_id: dict[str, BadgeRule]
    by_title: dict[str, dict[str, BadgeRule]] = field(default_factory=dict)

    @classmethod
    def build(cls, rules: Mapping[str, BadgeRule]) -> _Lookup:
        lookup = cls(by_id={key.strip(): rule for key, rule in rules.items()})
        for rule in rules.values():
            title = rule.course_title.strip().casefold()
            if title:
                lookup.by_title.setdefault(title, {})[rule.course_id] = rule
        return lookup

    def resolve(self, completion: Completion) -> tuple[BadgeRule | None, str | None]:
        """The rule for a completion, or ``None`` and the skip reason."""
        course_id = (completion.course_id or "").strip()
        if course_id:
            rule = self.by_id.get(course_id)
            return (rule, None) if rule is not None else (None, "no_rule")
        title = (completion.course_title or "").strip().casefold()
        matches = self.by_title.get(title, {})
        if len(matches) == 1:
            return next(iter(matches.values())), None
        return None, ("ambiguous_course_title" if matches else "no_rule")


def _course_key(completion: Completion) -> tuple[str, str]:
    """What identifies the course of a completion no rule matched."""
    course_id = (completion.course_id or "").strip()
    if course_id:
        return ("course", course_id)
    return ("title", (completion.course_title or "").strip().casefold())


def _index_badges(
    badges_by_email: Mapping[str, Sequence[IssuedBadge]],
) -> dict[tuple[str, str], BadgePool]:
    index: dict[tuple[str, str], BadgePool] = {}
    seen: set[str] = set()
    for badges in badges_by_email.values():
        for badge in badges:
            if badge.id in seen:
                continue
            seen.add(badge.id)
            key = (normalize_email(badge.recipient_email), badge.template_id)
            pool = index.get(key)
            if pool is None:
                pool = index[key] = BadgePool()
            pool.add(badge)
    return index


class _SimulatedBadge(NamedTuple):
    """A badge as the plan expects Credly to hold it after earlier rows are sent."""

    id: str
    state: str
    issued_at: datetime
    expires_at: datetime | None


def _simulate(pool: BadgePool, decision: Decision, *, badge_id: str) -> None:
    """Apply a planned issue or update to the student's badges of this template."""
    if decision.issued_at is None:
        return
    if decision.outcome == "issue":
        pool.add(
            _SimulatedBadge(badge_id, BadgeState.PENDING, decision.issued_at, decision.expires_at)
        )
        return
    target = pool.latest_live()  # decide() always updates the latest live badge
    if target is not None and decision.target_badge_id is not None:
        replacement = _SimulatedBadge(
            badge_id, target.state, decision.issued_at, decision.expires_at
        )
        pool.replace(decision.target_badge_id, replacement)


def _planned_row(
    number: int,
    completion: Completion,
    moment: datetime | None,
    rule: BadgeRule | None,
    decision: Decision,
    planned_id: str | None = None,
) -> PlannedRow:
    course_title = completion.course_title.strip()
    if rule is None:
        template_id = ""
        course_id = completion.course_id.strip()
    else:
        template_id = rule.template_id
        course_id = rule.course_id
        course_title = course_title or rule.course_title
    email = completion.email.strip() if isinstance(completion.email, str) else ""
    head = (number, email, course_id, course_title, moment)
    names = (completion.first_name.strip(), completion.last_name.strip(), template_id)
    # tuple.__new__ straight from the parts: a Decision's fields are the row's, in order
    tail = (planned_id, "", completion.date_only is True)
    return _new_row(PlannedRow, head + names + decision + tail)


_new_row = tuple.__new__


class InvalidRow(NamedTuple):
    """A row the reader could not turn into a completion, as the planner takes it: its number,
    reason code and detail, and what the row said (so a report shows it beside the reason)."""

    row: int
    reason: str
    detail: str
    email: str = ""
    course_id: str = ""
    course_title: str = ""
    completed_at: datetime | None = None
    first_name: str = ""
    last_name: str = ""


def _reader_row(entry: InvalidRow) -> PlannedRow:
    return PlannedRow(
        row=entry.row,
        email=entry.email,
        course_id=entry.course_id,
        course_title=entry.course_title,
        completed_at=entry.completed_at,
        first_name=entry.first_name,
        last_name=entry.last_name,
        template_id="",
        outcome="invalid",
        reason=entry.reason,
        flags=frozenset(),
        issued_at=None,
        expires_at=None,
        target_badge_id=None,
        matched_badge_id=None,
        detail=entry.detail,
    )


def plan(
    completions: Sequence[Completion],
    rules: Mapping[str, BadgeRule],
    templates: Mapping[str, BadgeTemplate],
    badges_by_email: Mapping[str, Sequence[IssuedBadge]],
    *,
    now: datetime,
    mode: Mode = "bulk",
    options: DecideOptions = _DEFAULT_OPTIONS,
    invalid_rows: Sequence[InvalidRow | tuple[int, str, str]] = (),
) -> Plan:
    """Decide every row of an upload; see the module docstring.

    ``rules`` maps course id → rule, ``templates`` template id → template, and
    ``badges_by_email`` holds the organization's badges for the students in the upload (keys
    are not trusted: each badge is matched by its own ``recipient_email``). A completion's row
    number is its ``row``, or its position + 2 when it has none (row 1 is a file's header).
    ``invalid_rows`` are rows the reader could not turn into completions, as
    :class:`InvalidRow` (or a plain (row number, reason code, detail)); they appear as
    ``invalid`` rows carrying what the row said. ``options`` are the caller's opt-ins
    (:class:`~credly_ops.issuance.decide.DecideOptions`), kept on the plan.
    """
    with _cycle_collector_paused():
        return _plan(
            completions,
            rules,
            templates,
            badges_by_email,
            now=_utc(now),
            mode=mode,
            options=options,
            invalid_rows=invalid_rows,
        )


@contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """Hold Python's cycle collector while a plan is built.

    Planning makes hundreds of thousands of small objects and no reference cycles; left on,
    the collector keeps re-walking every live object in the process and takes more time than
    the planning itself. Whoever had it on gets it back on, in any thread order.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _plan(
    completions: Sequence[Completion],
    rules: Mapping[str, BadgeRule],
    templates: Mapping[str, BadgeTemplate],
    badges_by_email: Mapping[str, Sequence[IssuedBadge]],
    *,
    now: datetime,
    mode: Mode,
    options: DecideOptions,
    invalid_rows: Sequence[InvalidRow | tuple[int, str, str]],
) -> Plan:
    lookup = _Lookup.build(rules)
    badges = _index_badges(badges_by_email)
    by_id = lookup.by_id
    rows: list[PlannedRow | None] = [None] * len(completions)
    numbers = [c.row if c.row is not None else i + 2 for i, c in enumerate(completions)]
    seen: set[tuple[str, str | tuple[str, str], datetime]] = set()
    # the UTC days of every row / of the date-only rows, kept only when the upload has any
    # date-only row (rule 8: a date-only row is the same completion as any row of its day)
    any_date_only = any(c.date_only is True for c in completions)
    days: set[tuple[str, str | tuple[str, str], datetime]] = set()
    date_only_days: set[tuple[str, str | tuple[str, str], datetime]] = set()
    # per student: (completed_at, position, rule), decided in that order once all are known
    by_student: dict[str, list[tuple[datetime, int, BadgeRule]]] = defaultdict(list)

    # pass 1, in file order: what a row is on its own (invalid, no rule, a repeat)
    for i, completion in enumerate(completions):
        problem = invalid_reason(completion, now=now)
        if problem is not None:
            moment = completion.completed_at
            rows[i] = _planned_row(
                numbers[i],
                completion,
                _utc(moment) if isinstance(moment, datetime) else None,
                None,
                Decision(outcome="invalid", reason=problem),
            )
            continue
        moment = completion.completed_at
        if moment.tzinfo is not UTC:
            moment = _utc(moment)
        course_id = completion.course_id.strip()
        rule = by_id.get(course_id) if course_id else None
        lookup_problem = None
        if rule is None:
            rule, lookup_problem = lookup.resolve(completion)
        # a matched course is its rule's id; an unmatched one a ("course"|"title", key) pair
        course_key = rule.course_id if rule is not None else _course_key(completion)
        email_key = completion.email.strip().lower()
        second = moment.replace(microsecond=0) if moment.microsecond else moment
        identity = (email_key, course_key, second)
        if any_date_only:
            day = (email_key, course_key, _midnight(second))
            if (
                day in days if completion.date_only is True else day in date_only_days
            ) or identity in seen:
                rows[i] = _planned_row(numbers[i], completion, moment, rule, _DUPLICATE)
                continue
            days.add(day)
            if completion.date_only is True:
                date_only_days.add(day)
        elif identity in seen:
            rows[i] = _planned_row(numbers[i], completion, moment, rule, _DUPLICATE)
            continue
        seen.add(identity)
        if rule is None:
            rows[i] = _planned_row(
                numbers[i], completion, moment, None, _PLAIN_SKIPS[lookup_problem or "no_rule"]
            )
            continue
        by_student[email_key].append((moment, i, rule))

    # pass 2, student by student in completed_at order: the rules, against the badges as the
    # student's earlier rows leave them
    used_ids: set[str] = set()
    for email_key, entries in by_student.items():
        if len(entries) > 1:
            entries.sort()  # (moment, position): positions are unique, rules never compared
        last = len(entries) - 1
        for n, (moment, i, rule) in enumerate(entries):
            pool_key = (email_key, rule.template_id)
            pool = badges.get(pool_key, _NO_BADGES)
            completion = completions[i]
            decision = decide_valid(
                completion,
                rule,
                templates.get(rule.template_id),
                pool,
                now=now,
                mode=mode,
                options=options,
            )
            badge_id = None
            if decision.outcome in _SENDING:
                badge_id = planned_badge_id(numbers[i])
                if badge_id in used_ids:
                    badge_id = f"{badge_id}~{i}"
                used_ids.add(badge_id)
                if n < last:  # only the student's later rows read the pool
                    if pool is _NO_BADGES:
                        pool = badges[pool_key] = BadgePool()
                    _simulate(pool, decision, badge_id=badge_id)
            rows[i] = _planned_row(numbers[i], completion, moment, rule, decision, badge_id)

    planned = cast(list[PlannedRow], rows)  # every position is filled by one of the passes
    if invalid_rows:
        planned.extend(_reader_row(InvalidRow(*entry)) for entry in invalid_rows)
    if not _in_row_order(planned):
        planned.sort(key=attrgetter("row"))  # stable: equal row numbers keep their input order
    return Plan(rows=planned, now=now, mode=mode, options=options)


def _in_row_order(rows: list[PlannedRow]) -> bool:
    numbers = [r.row for r in rows]
    return all(map(le, numbers, numbers[1:]))

"""The funnel a program manager reads: completions → eligible → issued → accepted, as SQL.

Every measure is one function taking a source (a :class:`~credly_ops.store.Store` or an open
DuckDB cursor) and a :class:`FunnelFilter`.  The first measure asked for a filter in a unit of
work runs :func:`prepare`, which reads the badges and the completions once each and leaves
small aggregate tables behind (temporary, private to the cursor); every later measure for the
same filter in the same unit of work reads those.  Pass one cursor (``with store.session() as
cur``) to share that work; pass the store and each call opens its own unit of work.

**Badges.**  A replace chain (``replaces_badge_id`` / ``replacement_badge_id``: a renewal on
Credly) counts as *one* issued badge.  Its state, template and recipient are the live end's;
its issue moment is the chain root's ``issued_at``; it was *sent* (the emails' clock) at the
root's ``coalesce(created_at, issued_at)``; when accepted, its acceptance time is the live
end's ``state_updated_at`` (Credly keeps the original acceptance time across a replace).
A chain is followed through ``replaces_badge_id``, which Credly sets on every
replacement.

**Reminders** follow :mod:`credly_ops.reminders` to the letter: moments one and four days
after each badge's own ``coalesce(created_at, issued_at)``; a moment counts while the badge
was pending, strictly before it left ``pending`` (a change exactly at a moment means that
reminder was not sent), and at or before *now*; none for suppressed notifications.  A badge
left ``pending`` at ``coalesce(state_updated_at, updated_at)``; a replaced badge whose chain
ends accepted left it no later than the chain's acceptance (a replace re-stamps the old
badge's ``state_updated_at`` with the replace time).  A chain's reminders are the sum of its
badges'; a pending chain is split by the reminders its live end has had (0, 1 or 2).

**Acceptance by reminders** ("do reminders work?") counts accepted chains by how many
reminder moments had passed, strictly, when they were accepted: 0 before the first reminder
(accepting exactly at the one-day moment is before it), 1 between the reminders, 2 after the
second.  The three always add up to ``accepted``.  Time to accept is measured from the moment
the chain was sent; acceptance rate is accepted ÷ issued.

**Linking badges to courses.**  Badge rules map a course to a template (several courses may
share one).  A badge comes from a completion when a completion with the same email, of a
course whose rule maps to the badge's template, has ``completed_at`` equal to the badge's
``issued_at`` (the issuing engine's idempotency key; the match compares a 64-bit hash of the
three, so a false match needs a hash collision).  A badge matching none is *not from a
completion* (issued by hand or before the integration): it belongs to its template, never to a
course.  When courses sharing a template both match, the lowest course id wins.

**Completions.**  A completion finds its rule by course id, or, without a course id, by a
course title that exactly one rule has (trimmed, case-insensitive).  It is *eligible* when a
rule exists, it passed (no status counts as passed; a rule may not require a pass) and it is
at or after the rule's ``active_from``.  The side exits derived from completions are
``no_rule``, ``ambiguous_course_title``, ``not_passed``, ``before_active_from`` and
``template_inactive`` (eligible, the template is not active now, and no badge came from it).
The bulk-issue ledger adds *failed to issue* (the latest row per key has status ``failed``)
and its own ``skip`` reasons (the latest row per key, reasons other than the derived ones).

**Filters.**  A date range (inclusive days, UTC) applies to completions by ``completed_at``
and to badges by the chosen basis: ``completion`` uses the chain's ``issued_at`` (the
completion date the badge carries), ``issue`` the moment Credly created it (a backfill's
``issued_at`` is historical).  Course and template filters apply to completions through their
rule and to badges through the link (course) or the live end (template); the email-domain
filter to both.  The ledger is filtered by its own course, template and email, and by
``completed_at`` (basis ``completion``) or ``updated_at`` (basis ``issue``).  ``now`` (default:
the moment the unit of work first prepared the filter) is when pending badges are looked at.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any, Literal, cast, get_args

import duckdb
import pandas as pd

from credly_ops import timeutil
from credly_ops.reminders import REMINDER_OFFSETS
from credly_ops.store import Store, from_db_time, to_db_time

DateBasis = Literal["completion", "issue"]
Dimension = Literal["course", "template", "domain"]
Source = Store | duckdb.DuckDBPyConnection

#: skip reasons the funnel derives from completions and rules (the ledger's copies of these
#: are not counted again)
DERIVED_REASONS: tuple[str, ...] = (
    "no_rule",
    "ambiguous_course_title",
    "not_passed",
    "before_active_from",
    "template_inactive",
)
#: acceptance phases, by how many reminder moments had passed when a badge was accepted
PHASES: tuple[str, ...] = (
    "before_first_reminder",
    "between_reminders",
    "after_second_reminder",
)
#: a row of a breakdown is a laggard when its acceptance rate is this far below the overall
#: rate, over at least this many issued badges
LAGGARD_MARGIN = 0.10
LAGGARD_MIN_ISSUED = 20
#: time-to-accept histogram bins, in hours: (lower, upper], the first one [0, 1]; the
#: boundaries at 24 h and 96 h are the reminder moments, so each bin sits in one phase
ACCEPT_BINS: tuple[tuple[float, float, str], ...] = (
    (0, 1, "≤ 1 h"),
    (1, 6, "1–6 h"),
    (6, 24, "6–24 h"),
    (24, 48, "1–2 days"),
    (48, 96, "2–4 days"),
    (96, 168, "4–7 days"),
    (168, 336, "1–2 weeks"),
    (336, 720, "2–4 weeks"),
    (720, math.inf, "over 4 weeks"),
)


class FunnelError(ValueError):
    """A filter that cannot be used (the message says which field and why)."""


@dataclass(frozen=True)
class FunnelFilter:
    """What the funnel looks at: a date range, a course, a template, an email domain.

    ``since`` and ``until`` are inclusive UTC days; either may be left open.  ``now`` is the
    moment pending badges are looked at (``None``: when the filter is first prepared).
    """

    since: date | None = None
    until: date | None = None
    by: DateBasis = "completion"
    course_id: str | None = None
    template_id: str | None = None
    domain: str | None = None
    now: datetime | None = None

    def __post_init__(self) -> None:
        if self.by not in get_args(DateBasis):
            raise FunnelError(f"by must be 'completion' or 'issue', not {self.by!r}")
        for name in ("since", "until"):
            value = getattr(self, name)
            if isinstance(value, datetime):
                object.__setattr__(self, name, timeutil.as_utc(value).date())
            elif value is not None and not isinstance(value, date):
                raise FunnelError(f"{name} must be a date")
        if self.since and self.until and self.since > self.until:
            raise FunnelError(f"since ({self.since}) is after until ({self.until})")
        for name in ("course_id", "template_id"):
            object.__setattr__(self, name, (getattr(self, name) or "").strip() or None)
        domain = (self.domain or "").strip().lower().lstrip("@")
        object.__setattr__(self, "domain", domain or None)
        if self.now is not None:
            object.__setattr__(self, "now", timeutil.as_utc(self.now))

    def at(self, now: datetime) -> FunnelFilter:
        return replace(self, now=now)

    def window(self) -> tuple[datetime | None, datetime | None]:
        """The date range as naive UTC moments: [start, end)."""
        start = datetime.combine(self.since, time()) if self.since else None
        end = datetime.combine(self.until + timedelta(days=1), time()) if self.until else None
        return start, end

    def previous(self, today: date | None = None) -> FunnelFilter | None:
        """The period of equal length just before this one (``None`` without a start).

        An open end is taken as ``today`` (default: the day of ``now``)."""
        if self.since is None:
            return None
        until = self.until or today or (self.now or timeutil.utcnow()).date()
        days = (until - self.since).days + 1
        return replace(
            self, since=self.since - timedelta(days=days), until=self.since - timedelta(days=1)
        )

    def describe(self) -> dict[str, str | None]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "by": self.by,
            "course_id": self.course_id,
            "template_id": self.template_id,
            "domain": self.domain,
        }


@dataclass(frozen=True)
class CompletionCounts:
    completions: int
    eligible: int


@dataclass(frozen=True)
class BadgeStates:
    issued: int
    accepted: int
    pending: int
    rejected: int
    revoked: int


@dataclass(frozen=True)
class TimeToAccept:
    accepted: int
    median_hours: float | None
    p90_hours: float | None


@dataclass(frozen=True)
class RemindersSent:
    total: int
    badges: int

    @property
    def per_badge(self) -> float | None:
        return self.total / self.badges if self.badges else None


@dataclass(frozen=True)
class FunnelSummary:
    """Every headline number for one filter (what ``credly-ops funnel --json`` prints)."""

    filter: FunnelFilter
    as_of: datetime
    completions: int
    eligible: int
    issued: int
    accepted: int
    pending: int
    pending_by_reminders: dict[str, int]
    rejected: int
    revoked: int
    failed: int
    skipped: dict[str, int]
    reminders_sent: int
    reminders_per_badge: float | None
    acceptance_rate: float | None
    accepted_by_phase: dict[str, int]
    median_hours_to_accept: float | None
    p90_hours_to_accept: float | None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "completions": self.completions,
            "eligible": self.eligible,
            "issued": self.issued,
            "accepted": self.accepted,
            "pending": self.pending,
            "pending_by_reminders": dict(self.pending_by_reminders),
            "rejected": self.rejected,
            "revoked": self.revoked,
            "failed": self.failed,
            "skipped": dict(self.skipped),
            "reminders_sent": self.reminders_sent,
            "reminders_per_badge": _round(self.reminders_per_badge, 4),
            "acceptance_rate": _round(self.acceptance_rate, 6),
            "median_hours_to_accept": _round(self.median_hours_to_accept, 2),
            "p90_hours_to_accept": _round(self.p90_hours_to_accept, 2),
            "as_of": self.as_of.isoformat(),
            "filter": self.filter.describe(),
        }
        for phase in PHASES:
            out[f"accepted_{phase}"] = self.accepted_by_phase[phase]
        return out


@dataclass(frozen=True)
class FunnelReport:
    """A summary and every table the funnel page draws by default, for one filter."""

    summary: FunnelSummary
    by_course: pd.DataFrame
    by_template: pd.DataFrame
    cohorts: pd.DataFrame
    time_to_accept: pd.DataFrame
    over_time: pd.DataFrame


@dataclass(frozen=True)
class FilterOptions:
    courses: list[tuple[str, str]] = field(default_factory=list)  # (id, title)
    templates: list[tuple[str, str]] = field(default_factory=list)  # (id, name)
    domains: list[str] = field(default_factory=list)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


# -- SQL building blocks -----------------------------------------------------------------------


def _micros(offset: timedelta) -> int:
    return int(offset / timedelta(microseconds=1))


def reminders_sql(sent: str, until: str, suppressed: str, now: str = "$now") -> str:
    """SQL for :func:`credly_ops.reminders.reminders_sent` over column expressions.

    In whole microseconds: a moment counts when it lies strictly before the *cut*, which is
    when the badge left ``pending`` or, while it is pending (or left it after ``now``), just
    after ``now``.
    """
    sent_us, until_us, now_us = f"epoch_us({sent})", f"epoch_us({until})", f"epoch_us({now})"
    cut = (
        f"(CASE WHEN {until_us} IS NULL OR {until_us} > {now_us} THEN {now_us} + 1 "
        f"ELSE {until_us} END)"
    )
    terms = [f"({sent_us} + {_micros(offset)} < {cut})::INTEGER" for offset in REMINDER_OFFSETS]
    return f"(CASE WHEN {suppressed} THEN 0 ELSE {' + '.join(terms)} END)"


def _reminders_us_sql(sent_us: str, cut_us: str, suppressed: str) -> str:
    """:func:`reminders_sql` over columns already in microseconds: the moments strictly
    before the cut (see there)."""
    terms = [f"({sent_us} + {_micros(offset)} < {cut_us})::INTEGER" for offset in REMINDER_OFFSETS]
    return f"(CASE WHEN {suppressed} THEN 0 ELSE {' + '.join(terms)} END)"


def _until_sql(alias: str, sent: str, chain_accepted: str | None = None) -> str:
    """When a badge left ``pending`` (NULL while pending)."""
    own = f"coalesce({alias}.state_updated_at, {alias}.updated_at, {sent})"
    left = own if chain_accepted is None else f"least({own}, {chain_accepted})"
    return f"(CASE WHEN {alias}.state = 'pending' THEN NULL ELSE {left} END)"


def _accepted_sql(alias: str) -> str:
    return (
        f"(CASE WHEN {alias}.state = 'accepted' THEN coalesce({alias}.state_updated_at, "
        f"{alias}.updated_at, {alias}.created_at, {alias}.issued_at) END)"
    )


def _bin_sql(hours: str) -> str:
    cases = " ".join(
        f"WHEN {hours} <= {upper} THEN {i}" for i, (_, upper, _) in enumerate(ACCEPT_BINS[:-1])
    )
    return f"(CASE WHEN {hours} IS NULL THEN NULL {cases} ELSE {len(ACCEPT_BINS) - 1} END)"


def _domain_sql(email: str) -> str:
    return f"lower(split_part({email}, '@', 2))"


_RULE_FIELDS = (
    "course_id",
    "course_title",
    "template_id",
    "template_name",
    "require_pass",
    "active_from",
    "template_active",
)
_ONLY_ONE = ", ".join(f"CASE WHEN count(*) = 1 THEN any_value({c}) END" for c in _RULE_FIELDS)
# rules, with a lookup key: course ids as they are, titles prefixed by \x01 (a title that
# several rules share finds no rule: it is ambiguous)
_RULES_SQL = f"""
CREATE OR REPLACE TEMP TABLE fn_rules AS
WITH r AS (
    SELECT r.course_id, coalesce(nullif(r.course_title, ''), r.course_id) AS course_title,
           r.template_id,
           coalesce(nullif(r.template_name, ''), t.name, r.template_id) AS template_name,
           r.require_pass, r.active_from, coalesce(t.state = 'active', FALSE) AS template_active,
           lower(trim(coalesce(r.course_title, ''))) AS title_key
    FROM badge_rules r LEFT JOIN templates t ON t.id = r.template_id
)
SELECT trim(course_id) AS lookup, FALSE AS ambiguous, * EXCLUDE (title_key) FROM r
UNION ALL
SELECT chr(1) || title_key, count(*) > 1, {_ONLY_ONE}
FROM r WHERE title_key <> '' GROUP BY title_key
"""

#: how a completion row (alias ``c``) finds its rule in ``fn_rules``
_LOOKUP = """CASE WHEN trim(coalesce(c.course_id, '')) <> '' THEN trim(c.course_id)
        ELSE chr(1) || lower(trim(coalesce(c.course_title, ''))) END"""

# templates whose completion keys (email, template, completed_at) may repeat: shared by
# several courses, or reached by a completion through its course title (the same completion
# may also have been loaded with its course id)
_COMPLEX_SQL = f"""
CREATE OR REPLACE TEMP TABLE fn_complex AS
SELECT template_id FROM fn_rules WHERE course_id IS NOT NULL
GROUP BY 1 HAVING count(DISTINCT course_id) > 1
UNION
SELECT DISTINCT r.template_id FROM completions c JOIN fn_rules r ON r.lookup = {_LOOKUP}
WHERE trim(coalesce(c.course_id, '')) = '' AND r.course_id IS NOT NULL
"""

# the badges of replace chains (a small share of all badges), each with its chain's root:
# read once (two conjunctive filters, which the scan applies before reading other columns),
# then walked
_MEMBERS_SQL = (
    """
CREATE OR REPLACE TEMP TABLE fn_rel AS
SELECT * FROM (SELECT {0} FROM badges WHERE replaces_badge_id IS NOT NULL)
UNION ALL
SELECT * FROM (
    SELECT {0} FROM badges WHERE replacement_badge_id IS NOT NULL AND replaces_badge_id IS NULL
)
""".format(
        "id, replaces_badge_id AS parent, recipient_email, template_id, state, issued_at, "
        "created_at, state_updated_at, updated_at, suppress_notification"
    ),
    """
CREATE OR REPLACE TEMP TABLE fn_m AS
WITH RECURSIVE walk(root_id, id, depth) AS (
    SELECT id, id, 0 FROM fn_rel WHERE parent IS NULL OR parent NOT IN (SELECT id FROM fn_rel)
    UNION ALL
    SELECT w.root_id, r.id, w.depth + 1 FROM walk w JOIN fn_rel r ON r.parent = w.id
    WHERE w.depth < 64
)
SELECT w.root_id, w.depth, r.* EXCLUDE (parent) FROM walk w JOIN fn_rel r USING (id)
""",
)


def _comp_cte(where: str) -> str:
    """``comp``: completions with their rule, course, template and derived exit reason."""
    return f"""comp AS (
    SELECT c.id, c.email, c.first_name, c.last_name, c.completed_at, c.status,
           coalesce(r.course_id, nullif(trim(c.course_id), ''), trim(c.course_title))
               AS course_id,
           coalesce(r.course_title, nullif(trim(c.course_title), ''), trim(c.course_id))
               AS course_title,
           r.template_id, r.template_name, coalesce(r.template_active, FALSE) AS template_active,
           CASE WHEN r.ambiguous THEN 'ambiguous_course_title'
                WHEN r.course_id IS NULL THEN 'no_rule'
                WHEN r.require_pass AND c.status = 'failed' THEN 'not_passed'
                WHEN c.completed_at < r.active_from THEN 'before_active_from'
           END AS exit_reason
    FROM completions c LEFT JOIN fn_rules r ON r.lookup = {_LOOKUP}
    WHERE {where}
)"""


class _Where:
    """Conditions and their named parameters, built from a filter."""

    def __init__(self, flt: FunnelFilter) -> None:
        start, end = flt.window()
        self.flt = flt
        self.params: dict[str, Any] = {}
        if start is not None:
            self.params["start"] = start
        if end is not None:
            self.params["end"] = end
        if flt.course_id:
            self.params["course"] = flt.course_id
        if flt.template_id:
            self.params["template"] = flt.template_id
        if flt.domain:
            self.params["at_domain"] = "@" + flt.domain
        if flt.now is not None:
            self.params["now"] = to_db_time(flt.now)

    def range(self, column: str) -> list[str]:
        out = []
        if "start" in self.params:
            out.append(f"{column} >= $start")
        if "end" in self.params:
            out.append(f"{column} < $end")
        return out

    def domain(self, column: str) -> list[str]:
        return [f"suffix(lower({column}), $at_domain)"] if self.flt.domain else []

    @staticmethod
    def join(conditions: list[str]) -> str:
        return " AND ".join(conditions) if conditions else "TRUE"

    def used(self, sql: str) -> dict[str, Any]:
        """Only the parameters the SQL names (DuckDB refuses unused ones)."""
        return {k: v for k, v in self.params.items() if f"${k}" in sql}

    # -- the badge stream --------------------------------------------------------------------

    def badge_stream(self) -> str:
        """``WITH …, stream AS (…)``: one row per replace chain in scope, linked to its
        completion (needs the ``fn_rules``, ``fn_complex`` and ``fn_m`` tables)."""
        flt = self.flt
        templates: list[str] = []
        if flt.template_id:
            templates.append("template_id = $template")
        if flt.course_id:
            templates.append(
                "template_id IN (SELECT template_id FROM fn_rules WHERE course_id = $course)"
            )
        single_date = "coalesce(b.created_at, b.issued_at)" if flt.by == "issue" else "b.issued_at"
        single = [
            *self.range(single_date),
            *(f"b.{c}" for c in templates),
            *self.domain("b.recipient_email"),
        ]
        keys = [f"r.{c}" for c in templates]
        if flt.by == "completion":
            keys += self.range("c.completed_at")
        keys += self.domain("c.email")
        final = [
            *self.range("badge_date"),
            *(["ch.template_id = $template"] if flt.template_id else []),
            *(["k.course_id = $course"] if flt.course_id else []),
            *self.domain("ch.email"),
        ]
        e_sent, b_sent, m_sent = (f"coalesce({a}.created_at, {a}.issued_at)" for a in "ebm")
        end_reminders = reminders_sql(e_sent, _until_sql("e", e_sent), "e.suppress_notification")
        member_reminders = reminders_sql(
            m_sent, _until_sql("m", m_sent, "h.accepted_at"), "m.suppress_notification"
        )
        single_reminders = _reminders_us_sql("sent_us", "cut_us", "suppress_notification")
        badge_date = "ch.sent_at" if flt.by == "issue" else "ch.issued_at"
        return f"""
WITH
ends AS (
    SELECT * FROM fn_m
    QUALIFY row_number() OVER (PARTITION BY root_id ORDER BY depth DESC, id DESC) = 1
),
multi AS (
    SELECT r.id AS root_id, e.id AS end_id, e.recipient_email AS email, e.template_id,
           e.state, r.issued_at, coalesce(r.created_at, r.issued_at) AS sent_at,
           {_accepted_sql("e")} AS accepted_at, {end_reminders} AS end_reminders
    FROM fn_m r JOIN ends e ON e.root_id = r.id
    WHERE r.depth = 0
),
multi_reminders AS (
    SELECT m.root_id, sum({member_reminders})::INTEGER AS reminders_total
    FROM fn_m m JOIN multi h ON h.root_id = m.root_id
    GROUP BY m.root_id
),
single_times AS (
    SELECT b.id, b.recipient_email, b.template_id, b.state, b.issued_at,
           b.suppress_notification, {b_sent} AS sent_at, epoch_us({b_sent}) AS sent_us,
           CASE WHEN b.state <> 'pending' THEN epoch_us(coalesce(
               b.state_updated_at, b.updated_at, b.created_at, b.issued_at)) END AS left_us
    FROM badges b
    WHERE b.replaces_badge_id IS NULL AND b.replacement_badge_id IS NULL
      AND {self.join(single)}
),
single_cut AS (
    SELECT *, CASE WHEN left_us IS NULL OR left_us > epoch_us($now) THEN epoch_us($now) + 1
                   ELSE left_us END AS cut_us
    FROM single_times
),
chain AS (
    SELECT id AS root_id, id AS end_id, recipient_email AS email, template_id, state, issued_at,
           sent_at, CASE WHEN state = 'accepted' THEN make_timestamp(left_us) END AS accepted_at,
           {single_reminders} AS end_reminders, NULL::INTEGER AS reminders_total
    FROM single_cut
    UNION ALL
    SELECT h.*, t.reminders_total FROM multi h JOIN multi_reminders t USING (root_id)
),
comp_keys AS (
    SELECT hash(c.email, r.template_id, c.completed_at) AS k, r.course_id, r.template_id
    FROM completions c JOIN fn_rules r ON r.lookup = {_LOOKUP}
    WHERE r.course_id IS NOT NULL AND {self.join(keys)}
),
keys AS (
    SELECT k, course_id FROM comp_keys
    WHERE template_id NOT IN (SELECT template_id FROM fn_complex)
    UNION ALL
    SELECT k, min(course_id) FROM comp_keys
    WHERE template_id IN (SELECT template_id FROM fn_complex)
    GROUP BY k
),
stream AS (
    SELECT ch.end_id, ch.email, ch.template_id, k.course_id, ch.state, ch.issued_at,
           {badge_date} AS badge_date, ch.accepted_at,
           CASE WHEN ch.accepted_at IS NOT NULL
                THEN greatest(epoch_us(ch.accepted_at) - epoch_us(ch.sent_at), 0) / 3600e6
           END AS hours_to_accept,
           CASE WHEN ch.state = 'pending' THEN ch.end_reminders END AS pending_reminders,
           coalesce(ch.reminders_total, ch.end_reminders) AS reminders_total
    FROM chain ch LEFT JOIN keys k ON k.k = hash(ch.email, ch.template_id, ch.issued_at)
    WHERE {self.join(final)}
)"""

    def completions(self) -> str:
        """``comp`` restricted to the filter, as the CTE ``scoped``."""
        flt = self.flt
        on_rows = self.join([*self.range("c.completed_at"), *self.domain("c.email")])
        scope = []
        if flt.course_id:
            scope.append("course_id = $course")
        if flt.template_id:
            scope.append("template_id = $template")
        return f"""{_comp_cte(on_rows)},
scoped AS (SELECT * FROM comp WHERE {self.join(scope)})"""


# -- preparing a unit of work ------------------------------------------------------------------


#: the badge counts of a group of chains, by name, and the condition each counts
_BADGE_COUNTS: dict[str, str | None] = {
    "issued": None,
    "accepted": "state = 'accepted'",
    "pending": "state = 'pending'",
    "pending_0": "pending_reminders = 0",
    "pending_1": "pending_reminders = 1",
    "pending_2": "pending_reminders >= 2",
    "rejected": "state = 'rejected'",
    "revoked": "state = 'revoked'",
}


def _badge_stats() -> str:
    """The badge counts of a group of chains (rows of the stream)."""
    counts = [
        f"count(*){f' FILTER (WHERE {condition})' if condition else ''}::BIGINT AS {name}"
        for name, condition in _BADGE_COUNTS.items()
    ]
    return ", ".join([*counts, "coalesce(sum(reminders_total), 0)::BIGINT AS reminders_sent"])


#: the same counts, summed over rows of ``fn_g``
_FINE_STATS = ", ".join(
    f"coalesce(sum({name}), 0)::BIGINT AS {name}" for name in [*_BADGE_COUNTS, "reminders_sent"]
)
#: ``fn_g`` groups the chains by these; each row also keeps the hours to accept of its
#: accepted chains, so that exact quantiles of any grouping come from the small table
_GROUP_COLUMNS = ("course_id", "template_id", "month")
#: ``fn_g`` with the template of badges not from a completion (one course row per template)
_FN_G = "(SELECT *, CASE WHEN course_id IS NULL THEN template_id END AS orphan_template FROM fn_g)"


def _hours_stats(h: str = "h") -> str:
    """From hours to accept: the median and 90th percentile, and how many were accepted
    before the first reminder, between the reminders and after the second (a badge accepted
    exactly at a reminder moment did not get that reminder)."""
    first, second = (offset / timedelta(hours=1) for offset in REMINDER_OFFSETS[:2])
    return f"""quantile_cont({h}, [0.5, 0.9]) AS hours_quantiles,
           count({h}) FILTER (WHERE {h} <= {first})::BIGINT
               AS accepted_before_first_reminder,
           count({h}) FILTER (WHERE {h} > {first} AND {h} <= {second})::BIGINT
               AS accepted_between_reminders,
           count({h}) FILTER (WHERE {h} > {second})::BIGINT AS accepted_after_second_reminder"""


def _hours_sql(keys: str = "") -> str:
    """:func:`_hours_stats` from the hours kept in ``fn_g``, by ``keys`` (or overall)."""
    select = f"{keys}, " if keys else ""
    group = "GROUP BY ALL" if keys else ""
    return f"""
    SELECT {select}{_hours_stats()}
    FROM (SELECT {select}unnest(hours) AS h FROM {_FN_G}) {group}"""


def _tagged(source: str = "stream") -> str:
    return f"""tagged AS (
    SELECT *, date_trunc('month', badge_date)::DATE AS month FROM {source}
)"""


@contextmanager
def _cursor(source: Source) -> Iterator[duckdb.DuckDBPyConnection]:
    if isinstance(source, Store):
        with source.session() as cur:
            yield cur
    else:
        yield source


def prepare(cur: duckdb.DuckDBPyConnection, flt: FunnelFilter) -> FunnelFilter:
    """Aggregate the filter's badges, completions and ledger rows in ``cur``, unless this
    cursor already did; returns the filter with its ``now`` fixed."""
    key = json.dumps(flt.describe(), sort_keys=True)
    try:
        row = cur.execute("SELECT key, now FROM fn_key").fetchone()
    except duckdb.CatalogException:
        row = None
    if row is not None and row[0] == key:
        prepared_at = cast(datetime, from_db_time(row[1]))
        if flt.now is None or flt.now == prepared_at:
            return flt.at(prepared_at)
    resolved = flt if flt.now else flt.at(timeutil.utcnow())
    where = _Where(resolved)
    cur.execute("DROP TABLE IF EXISTS fn_key")
    for sql in (_RULES_SQL, _COMPLEX_SQL, *_MEMBERS_SQL):
        cur.execute(sql)
    for sql in (_badges_sql(where), _completions_sql(where), _ledger_sql(where)):
        cur.execute(sql, where.used(sql))
    cur.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE fn_all AS
        SELECT * FROM (SELECT {_FINE_STATS} FROM fn_g), ({_hours_sql()})
        """
    )
    cur.execute(
        "CREATE TEMP TABLE fn_key AS SELECT ? AS key, ?::TIMESTAMP AS now",
        [
            key,
            to_db_time(resolved.now),
        ],
    )
    return resolved


def _badges_sql(where: _Where) -> str:
    keys = ", ".join(_GROUP_COLUMNS)
    return f"""
CREATE OR REPLACE TEMP TABLE fn_g AS
{where.badge_stream()},
{_tagged()}
SELECT {keys}, {_badge_stats()},
       list(hours_to_accept) FILTER (WHERE hours_to_accept IS NOT NULL) AS hours
FROM tagged GROUP BY {keys}
"""


def _completions_sql(where: _Where) -> str:
    """``fn_c``: completions counted by course, template, exit reason and eligibility.

    Rows are grouped by their rule look-up first and resolved on the groups; only eligible
    completions of inactive templates are looked at one by one (did a badge come from them
    before the template was retired?)."""
    flt = where.flt
    rows = where.join([*where.range("c.completed_at"), *where.domain("c.email")])
    scope = []
    if flt.course_id:
        scope.append("course_id = $course")
    if flt.template_id:
        scope.append("template_id = $template")
    eligible = (
        "NOT coalesce(r.require_pass AND b.status = 'failed', FALSE) "
        "AND NOT coalesce(b.completed_at < r.active_from, FALSE)"
    )
    return f"""
CREATE OR REPLACE TEMP TABLE fn_c AS
WITH base AS NOT MATERIALIZED (
    SELECT {_LOOKUP} AS lookup, c.course_id, c.course_title, c.status, c.completed_at, c.email
    FROM completions c WHERE {rows}
),
grouped AS (
    SELECT b.lookup, any_value(b.course_id) AS raw_id, any_value(b.course_title) AS raw_title,
           b.status = 'failed' AS failed, coalesce(b.completed_at < r.active_from, FALSE) AS early,
           count(*)::BIGINT AS n
    FROM base b LEFT JOIN fn_rules r ON r.lookup = b.lookup
    GROUP BY b.lookup, failed, early
),
resolved AS (
    SELECT g.lookup, g.n,
           coalesce(r.course_id, nullif(trim(g.raw_id), ''), trim(g.raw_title)) AS course_id,
           coalesce(r.course_title, nullif(trim(g.raw_title), ''), trim(g.raw_id))
               AS course_title,
           r.template_id, r.template_name, coalesce(r.template_active, FALSE) AS template_active,
           CASE WHEN r.ambiguous THEN 'ambiguous_course_title'
                WHEN r.course_id IS NULL THEN 'no_rule'
                WHEN r.require_pass AND g.failed THEN 'not_passed'
                WHEN g.early THEN 'before_active_from'
           END AS exit_reason
    FROM grouped g LEFT JOIN fn_rules r ON r.lookup = g.lookup
),
scoped AS (SELECT * FROM resolved WHERE {where.join(scope)}),
inactive_keys AS (
    SELECT hash(recipient_email, template_id, issued_at) AS k FROM badges
    WHERE template_id IN (SELECT template_id FROM fn_rules WHERE NOT template_active)
),
issued_inactive AS (
    SELECT b.lookup, count(*)::BIGINT AS issued
    FROM base b JOIN fn_rules r ON r.lookup = b.lookup
    WHERE NOT r.template_active AND r.course_id IS NOT NULL AND {eligible}
      AND hash(b.email, r.template_id, b.completed_at) IN (SELECT k FROM inactive_keys)
    GROUP BY b.lookup
),
inactive AS (
    SELECT s.lookup, any_value(s.course_id) AS course_id,
           any_value(s.course_title) AS course_title, any_value(s.template_id) AS template_id,
           any_value(s.template_name) AS template_name, sum(s.n)::BIGINT AS n
    FROM scoped s WHERE s.exit_reason IS NULL AND NOT s.template_active GROUP BY s.lookup
),
counted AS (
    SELECT course_id, course_title, template_id, template_name, exit_reason AS reason,
           exit_reason IS NULL AS eligible, n
    FROM scoped WHERE exit_reason IS NOT NULL OR template_active
    UNION ALL
    SELECT i.course_id, i.course_title, i.template_id, i.template_name, NULL, TRUE,
           coalesce(d.issued, 0)
    FROM inactive i LEFT JOIN issued_inactive d USING (lookup)
    UNION ALL
    SELECT i.course_id, i.course_title, i.template_id, i.template_name, 'template_inactive',
           TRUE, i.n - coalesce(d.issued, 0)
    FROM inactive i LEFT JOIN issued_inactive d USING (lookup)
)
SELECT course_id, any_value(course_title) AS course_title, template_id,
       any_value(template_name) AS template_name, reason, eligible, sum(n)::BIGINT AS n
FROM counted WHERE n > 0
GROUP BY course_id, template_id, reason, eligible
"""


def _ledger_sql(where: _Where) -> str:
    """``fn_l``: the latest ledger row of each key, in scope."""
    flt = where.flt
    conditions = where.range("completed_at" if flt.by == "completion" else "updated_at")
    if flt.course_id:
        conditions.append("course_id = $course")
    if flt.template_id:
        conditions.append("template_id = $template")
    conditions += where.domain("email")
    return f"""
CREATE OR REPLACE TEMP TABLE fn_l AS
WITH latest AS (
    SELECT nullif(course_id, '') AS course_id, template_id, coalesce(email, '') AS email,
           completed_at, updated_at, outcome, reason, status
    FROM ledger
    WHERE rowid IN (
        SELECT arg_max(rowid, (updated_at, job_id, row_no)) FROM ledger GROUP BY key
    )
)
SELECT course_id, template_id, {_domain_sql("email")} AS domain, outcome, reason, status
FROM latest WHERE {where.join(conditions)}
"""


# -- measures ------------------------------------------------------------------------------------


def _all_badges(cur: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    cur.execute("SELECT * FROM fn_all")
    row = cur.fetchone()
    names = [d[0] for d in cur.description or ()]
    return dict(zip(names, row or (), strict=False))


def _int(value: Any) -> int:
    return 0 if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)


def completion_counts(source: Source, flt: FunnelFilter) -> CompletionCounts:
    """Stages 1 and 2: completions, and those eligible for a badge."""
    with _cursor(source) as cur:
        prepare(cur, flt)
        row = cur.execute(
            "SELECT coalesce(sum(n), 0), coalesce(sum(n) FILTER (WHERE eligible), 0) FROM fn_c"
        ).fetchone()
    assert row is not None
    return CompletionCounts(int(row[0]), int(row[1]))


def badge_states(source: Source, flt: FunnelFilter) -> BadgeStates:
    """Stage 3 and where badges are now: issued (a chain counts once) by the live end's state."""
    with _cursor(source) as cur:
        prepare(cur, flt)
        row = _all_badges(cur)
    return BadgeStates(
        *(_int(row.get(k)) for k in ("issued", "accepted", "pending", "rejected", "revoked"))
    )


def pending_by_reminders(source: Source, flt: FunnelFilter) -> dict[str, int]:
    """Pending badges split by the reminders sent so far: ``{"0": …, "1": …, "2": …}``."""
    with _cursor(source) as cur:
        prepare(cur, flt)
        row = _all_badges(cur)
    return {str(n): _int(row.get(f"pending_{n}")) for n in range(len(REMINDER_OFFSETS) + 1)}


def acceptance_rate(source: Source, flt: FunnelFilter) -> float | None:
    """Accepted ÷ issued (``None`` when nothing was issued)."""
    states = badge_states(source, flt)
    return states.accepted / states.issued if states.issued else None


def _quantiles(value: Any) -> tuple[float | None, float | None]:
    if value is None or not hasattr(value, "__len__") or len(value) != 2:
        return None, None
    median, p90 = list(value)
    return (None if median is None else float(median)), (None if p90 is None else float(p90))


def time_to_accept(source: Source, flt: FunnelFilter) -> TimeToAccept:
    """Median and 90th percentile of the hours from sending to acceptance."""
    with _cursor(source) as cur:
        prepare(cur, flt)
        row = _all_badges(cur)
    median, p90 = _quantiles(row.get("hours_quantiles"))
    return TimeToAccept(_int(row.get("accepted")), median, p90)


def acceptance_by_reminders(source: Source, flt: FunnelFilter) -> dict[str, int]:
    """Accepted badges by when: before the first reminder, between them, after the second."""
    with _cursor(source) as cur:
        prepare(cur, flt)
        row = _all_badges(cur)
    return {phase: _int(row.get(f"accepted_{phase}")) for phase in PHASES}


def reminders_total(source: Source, flt: FunnelFilter) -> RemindersSent:
    """Reminder emails Credly sent for the issued badges (every badge of a chain), and how
    many chains they were for."""
    with _cursor(source) as cur:
        prepare(cur, flt)
        row = _all_badges(cur)
    return RemindersSent(_int(row.get("reminders_sent")), _int(row.get("issued")))


def failed_to_issue(source: Source, flt: FunnelFilter) -> int:
    """Bulk-issue rows whose latest attempt failed."""
    with _cursor(source) as cur:
        prepare(cur, flt)
        row = cur.execute("SELECT count(*) FROM fn_l WHERE status = 'failed'").fetchone()
    return int(row[0]) if row else 0


def skipped_by_reason(source: Source, flt: FunnelFilter) -> dict[str, int]:
    """Completions that will not get a badge, by reason code (largest first): the reasons
    derived from completions, then the bulk-issue ledger's other skips."""
    derived = ", ".join(f"'{r}'" for r in DERIVED_REASONS)
    with _cursor(source) as cur:
        prepare(cur, flt)
        rows = cur.execute(
            f"""
            SELECT reason, sum(n)::BIGINT FROM (
                SELECT reason, n FROM fn_c WHERE reason IS NOT NULL
                UNION ALL
                SELECT reason, 1 FROM fn_l WHERE outcome = 'skip' AND reason NOT IN ({derived})
            ) GROUP BY reason ORDER BY 2 DESC, 1
            """
        ).fetchall()
    return {str(reason): int(count) for reason, count in rows}


def summary(source: Source, flt: FunnelFilter) -> FunnelSummary:
    """Every headline number, in one unit of work."""
    with _cursor(source) as cur:
        resolved = prepare(cur, flt)
        comps = completion_counts(cur, resolved)
        states = badge_states(cur, resolved)
        timing = time_to_accept(cur, resolved)
        reminders = reminders_total(cur, resolved)
        return FunnelSummary(
            filter=flt,
            as_of=cast(datetime, resolved.now),
            completions=comps.completions,
            eligible=comps.eligible,
            issued=states.issued,
            accepted=states.accepted,
            pending=states.pending,
            pending_by_reminders=pending_by_reminders(cur, resolved),
            rejected=states.rejected,
            revoked=states.revoked,
            failed=failed_to_issue(cur, resolved),
            skipped=skipped_by_reason(cur, resolved),
            reminders_sent=reminders.total,
            reminders_per_badge=reminders.per_badge,
            acceptance_rate=acceptance_rate(cur, resolved),
            accepted_by_phase=acceptance_by_reminders(cur, resolved),
            median_hours_to_accept=timing.median_hours,
            p90_hours_to_accept=timing.p90_hours,
        )


# -- tables ------------------------------------------------------------------------------------

_COUNT_COLUMNS = (
    "completions",
    "eligible",
    "issued",
    "accepted",
    "pending",
    "pending_0",
    "pending_1",
    "pending_2",
    "rejected",
    "revoked",
    "failed",
    "accepted_before_first_reminder",
    "accepted_between_reminders",
    "accepted_after_second_reminder",
    "reminders_sent",
)
#: the columns naming a row of each breakdown; the measures follow
BREAKDOWN_COLUMNS: dict[Dimension, tuple[str, ...]] = {
    "course": ("course_id", "course_title", "template_id", "template_name"),
    "template": ("template_id", "template_name"),
    "domain": ("domain",),
}
MEASURE_COLUMNS: tuple[str, ...] = (
    *_COUNT_COLUMNS,
    "acceptance_rate",
    "median_hours_to_accept",
    "p90_hours_to_accept",
    "laggard",
)
_COMPLETION_MEASURES = (
    "sum(n)::BIGINT AS completions, coalesce(sum(n) FILTER (WHERE eligible), 0)::BIGINT AS eligible"
)
_TEMPLATE_NAMES = """(
    SELECT id, coalesce(max(name) FILTER (WHERE synced), max(name)) AS name FROM (
        SELECT id, name, TRUE AS synced FROM templates
        UNION ALL SELECT template_id, template_name, FALSE FROM fn_rules
    ) GROUP BY id
)"""


def breakdown(source: Source, flt: FunnelFilter, by: Dimension = "course") -> pd.DataFrame:
    """The funnel per course, per template or per email domain, sorted by acceptance rate
    (lowest first, then most issued), laggards flagged.

    Per course, the badges not from a completion get one row per template with no course id;
    a course without a rule has no template.  Per template, completions without a rule make
    a row with no template.  Columns: ``BREAKDOWN_COLUMNS[by]``, then :data:`MEASURE_COLUMNS`.
    """
    if by not in BREAKDOWN_COLUMNS:
        raise FunnelError(f"breakdown by course, template or domain, not {by!r}")
    with _cursor(source) as cur:
        resolved = prepare(cur, flt)
        if by == "domain":
            where = _Where(resolved)
            sql = _domain_sql_breakdown(where)
            frame = cur.execute(sql, where.used(sql)).df()
        else:
            frame = cur.execute(_BREAKDOWN_SQL[by]).df()
    return _finish_breakdown(frame, by)


def _badge_groups(keys: str) -> str:
    """The badge measures by ``keys`` (columns of ``fn_g`` or ``orphan_template``)."""
    on = " AND ".join(f"f.{k} IS NOT DISTINCT FROM q.{k}" for k in keys.split(", "))
    return f"""
    SELECT f.*, q.* EXCLUDE ({keys}) FROM (
        SELECT {keys}, {_FINE_STATS} FROM {_FN_G} GROUP BY ALL
    ) f LEFT JOIN ({_hours_sql(keys)}) q ON {on}"""


_BREAKDOWN_SQL: dict[Dimension, str] = {
    "course": f"""
WITH c AS (
    SELECT course_id, any_value(course_title) AS course_title,
           any_value(template_id) AS course_template, {_COMPLETION_MEASURES}
    FROM fn_c GROUP BY course_id
),
b AS ({_badge_groups("course_id, orphan_template")}),
l AS (SELECT course_id, count(*) FILTER (WHERE status = 'failed') AS failed
      FROM fn_l GROUP BY 1),
j AS (
    SELECT coalesce(c.course_id, b.course_id) AS course_id, b.orphan_template, c.course_title,
           c.course_template, c.completions, c.eligible,
           b.* EXCLUDE (course_id, orphan_template)
    FROM c FULL OUTER JOIN b
      ON c.course_id IS NOT DISTINCT FROM b.course_id AND b.orphan_template IS NULL
),
k AS (
    SELECT coalesce(j.course_id, l.course_id) AS course_id, j.* EXCLUDE (course_id), l.failed
    FROM j FULL OUTER JOIN l ON j.orphan_template IS NULL AND j.course_id = l.course_id
),
named AS (
    SELECT k.*, coalesce(k.orphan_template, k.course_template, r.template_id) AS tid,
           CASE WHEN k.orphan_template IS NULL
                THEN coalesce(k.course_title, r.course_title, k.course_id) END AS title
    FROM k LEFT JOIN (SELECT * FROM fn_rules WHERE NOT ambiguous AND lookup = course_id) r
      ON r.course_id = k.course_id
)
SELECT n.course_id, n.title AS course_title, n.tid AS template_id,
       coalesce(t.name, n.tid) AS template_name,
       n.* EXCLUDE (course_id, title, tid, orphan_template, course_template, course_title)
FROM named n LEFT JOIN {_TEMPLATE_NAMES} t ON t.id = n.tid
""",
    "template": f"""
WITH c AS (
    SELECT template_id, {_COMPLETION_MEASURES} FROM fn_c GROUP BY 1
),
b AS ({_badge_groups("template_id")}),
l AS (SELECT template_id, count(*) FILTER (WHERE status = 'failed') AS failed
      FROM fn_l GROUP BY 1),
k AS (
    SELECT coalesce(c.template_id, b.template_id, l.template_id) AS tid,
           c.* EXCLUDE (template_id), b.* EXCLUDE (template_id), l.* EXCLUDE (template_id)
    FROM c FULL OUTER JOIN b ON c.template_id IS NOT DISTINCT FROM b.template_id
    FULL OUTER JOIN l ON coalesce(c.template_id, b.template_id) IS NOT DISTINCT FROM l.template_id
)
SELECT k.tid AS template_id, coalesce(t.name, k.tid) AS template_name, k.* EXCLUDE (tid)
FROM k LEFT JOIN {_TEMPLATE_NAMES} t ON t.id = k.tid
""",
}


def _domain_sql_breakdown(where: _Where) -> str:
    """Per email domain: read afresh (the prepared tables do not keep emails)."""
    return f"""
{where.badge_stream()},
{_tagged()},
{where.completions()},
c AS (
    SELECT {_domain_sql("email")} AS domain, count(*)::BIGINT AS completions,
           count(*) FILTER (WHERE exit_reason IS NULL)::BIGINT AS eligible
    FROM scoped GROUP BY 1
),
b AS (
    SELECT {_domain_sql("email")} AS domain, {_badge_stats()},
           {_hours_stats("hours_to_accept")}
    FROM tagged GROUP BY 1
),
l AS (SELECT domain, count(*) FILTER (WHERE status = 'failed') AS failed FROM fn_l GROUP BY 1)
SELECT coalesce(c.domain, b.domain, l.domain) AS domain,
       c.* EXCLUDE (domain), b.* EXCLUDE (domain), l.* EXCLUDE (domain)
FROM c FULL OUTER JOIN b ON c.domain = b.domain
FULL OUTER JOIN l ON coalesce(c.domain, b.domain) = l.domain
"""


def _split_quantiles(frame: pd.DataFrame) -> pd.DataFrame:
    pairs = [_quantiles(v) for v in frame.pop("hours_quantiles")]
    frame["median_hours_to_accept"] = pd.Series(
        [p[0] for p in pairs], index=frame.index, dtype="float64"
    )
    frame["p90_hours_to_accept"] = pd.Series(
        [p[1] for p in pairs], index=frame.index, dtype="float64"
    )
    return frame


def _rate(frame: pd.DataFrame) -> pd.Series:
    issued = frame["issued"].where(frame["issued"] > 0)
    return (frame["accepted"] / issued).astype("float64")


def _finish_breakdown(frame: pd.DataFrame, by: Dimension) -> pd.DataFrame:
    frame = _split_quantiles(frame)
    for column in _COUNT_COLUMNS:
        frame[column] = frame[column].fillna(0).astype("int64")
    frame["acceptance_rate"] = _rate(frame)
    total_issued = int(frame["issued"].sum())
    if total_issued:
        overall = float(frame["accepted"].sum()) / total_issued
        frame["laggard"] = (frame["issued"] >= LAGGARD_MIN_ISSUED) & (
            frame["acceptance_rate"] < overall - LAGGARD_MARGIN
        )
    else:
        frame["laggard"] = False
    frame["laggard"] = frame["laggard"].astype(bool)
    frame = frame.sort_values(
        ["acceptance_rate", "issued"], ascending=[True, False], na_position="last"
    )
    return frame[[*BREAKDOWN_COLUMNS[by], *MEASURE_COLUMNS]].reset_index(drop=True)


def cohorts(source: Source, flt: FunnelFilter) -> pd.DataFrame:
    """Acceptance by issue-month cohort (the month of each badge's date on the chosen basis):
    ``month``, ``issued``, ``accepted``, ``pending`` (and by reminders sent), ``rejected``,
    ``revoked``, ``reminders_sent`` and ``acceptance_rate``."""
    with _cursor(source) as cur:
        prepare(cur, flt)
        frame = cur.execute(f"SELECT month, {_FINE_STATS} FROM fn_g GROUP BY 1 ORDER BY 1").df()
    frame["month"] = pd.to_datetime(frame["month"])
    frame["acceptance_rate"] = _rate(frame)
    return frame


def time_to_accept_histogram(source: Source, flt: FunnelFilter) -> pd.DataFrame:
    """Accepted badges by time to accept, in :data:`ACCEPT_BINS`, each bin with its phase."""
    with _cursor(source) as cur:
        prepare(cur, flt)
        rows = cur.execute(
            f"SELECT {_bin_sql('h')} AS bin, count(*) "
            "FROM (SELECT unnest(hours) AS h FROM fn_g) GROUP BY 1"
        ).fetchall()
    counts = {int(b): int(n) for b, n in rows}
    first, second = (offset / timedelta(hours=1) for offset in REMINDER_OFFSETS[:2])
    records = []
    for i, (lower, upper, label) in enumerate(ACCEPT_BINS):
        phase = PHASES[0] if upper <= first else PHASES[1] if upper <= second else PHASES[2]
        records.append(
            {
                "bin": label,
                "lower_hours": lower,
                "upper_hours": upper,
                "phase": phase,
                "badges": counts.get(i, 0),
            }
        )
    return pd.DataFrame.from_records(records)


def acceptance_over_time(source: Source, flt: FunnelFilter) -> pd.DataFrame:
    """Acceptance at each sync, from the snapshots of badge states (a replaced badge is not
    counted: its replacement stands for it).  Snapshots know templates only: a course filter
    uses its rule's template; the date range applies to when the snapshot was taken; the
    email-domain filter does not apply."""
    where = _Where(flt)
    conditions = where.range("taken_at")
    if flt.template_id:
        conditions.append("template_id = $template")
    if flt.course_id:
        conditions.append(
            "template_id IN (SELECT template_id FROM badge_rules WHERE course_id = $course)"
        )
    sql = f"""
        SELECT taken_at,
               coalesce(sum(badges) FILTER (WHERE state <> 'replaced'), 0)::BIGINT AS issued,
               coalesce(sum(badges) FILTER (WHERE state = 'accepted'), 0)::BIGINT AS accepted,
               coalesce(sum(badges) FILTER (WHERE state = 'pending'), 0)::BIGINT AS pending,
               coalesce(sum(badges) FILTER (WHERE state = 'rejected'), 0)::BIGINT AS rejected,
               coalesce(sum(badges) FILTER (WHERE state = 'revoked'), 0)::BIGINT AS revoked
        FROM badge_snapshots WHERE {where.join(conditions)}
        GROUP BY sync_id, taken_at ORDER BY taken_at
    """
    with _cursor(source) as cur:
        frame = cur.execute(sql, where.used(sql)).df()
    frame["acceptance_rate"] = _rate(frame)
    return frame


#: the columns of :func:`students`
STUDENT_COLUMNS = (
    "email",
    "first_name",
    "last_name",
    "course_id",
    "course_title",
    "completed_at",
    "status",
    "outcome",
    "badge_id",
    "badge_state",
    "issued_at",
    "accepted_at",
    "hours_to_accept",
    "reminders_sent",
)


def students(source: Source, flt: FunnelFilter, *, limit: int | None = None) -> pd.DataFrame:
    """One row per completion in scope with the badge that came from it (``outcome`` says
    why there is none: a derived skip reason, ``template_inactive`` or ``not_issued``), and one
    per badge in scope not from a completion (``not_from_a_completion``); newest first.

    Narrow the filter to a course for that course's students.
    """
    with _cursor(source) as cur:
        resolved = prepare(cur, flt)
        where = _Where(resolved)
        sql = f"""
{where.badge_stream()},
{where.completions()},
rows AS (
    SELECT c.email, c.first_name, c.last_name, c.course_id, c.course_title, c.completed_at,
           c.status,
           CASE WHEN b.end_id IS NOT NULL THEN 'issued'
                WHEN c.exit_reason IS NOT NULL THEN c.exit_reason
                WHEN NOT c.template_active THEN 'template_inactive'
                ELSE 'not_issued' END AS outcome,
           b.end_id AS badge_id, b.state AS badge_state, b.issued_at, b.accepted_at,
           b.hours_to_accept, b.reminders_total AS reminders_sent
    FROM scoped c
    LEFT JOIN stream b
      ON hash(b.email, b.template_id, b.issued_at) = hash(c.email, c.template_id, c.completed_at)
     AND b.course_id = c.course_id
    UNION ALL
    SELECT b.email, NULL, NULL, NULL, NULL, NULL, NULL, 'not_from_a_completion', b.end_id,
           b.state, b.issued_at, b.accepted_at, b.hours_to_accept, b.reminders_total
    FROM stream b WHERE b.course_id IS NULL
)
SELECT * FROM rows ORDER BY coalesce(completed_at, issued_at) DESC, email, badge_id
{"" if limit is None else f"LIMIT {int(limit)}"}
"""
        return cur.execute(sql, where.used(sql)).df()


def badge_reminders(source: Source, flt: FunnelFilter) -> pd.DataFrame:
    """Reminders sent for every cached badge (each badge of a chain separately), as of the
    filter's ``now``: columns ``id``, ``root_id`` (its chain's first badge) and ``reminders``.
    The other filter fields do not apply."""
    now = flt.now or timeutil.utcnow()
    m_sent = "coalesce(m.created_at, m.issued_at)"
    reminders = reminders_sql(
        m_sent, _until_sql("m", m_sent, "m.chain_accepted"), "m.suppress_notification"
    )
    sql = f"""
WITH ends AS (
    SELECT root_id, {_accepted_sql("fn_m")} AS chain_accepted FROM fn_m
    QUALIFY row_number() OVER (PARTITION BY root_id ORDER BY depth DESC, id DESC) = 1
),
members AS (
    SELECT m.id, m.root_id, m.state, m.created_at, m.issued_at, m.state_updated_at,
           m.updated_at, m.suppress_notification, e.chain_accepted
    FROM fn_m m JOIN ends e USING (root_id)
    UNION ALL
    SELECT id, id, state, created_at, issued_at, state_updated_at, updated_at,
           suppress_notification, NULL FROM badges
    WHERE replaces_badge_id IS NULL AND replacement_badge_id IS NULL
)
SELECT m.id, m.root_id, {reminders} AS reminders FROM members m ORDER BY m.id
"""
    with _cursor(source) as cur:
        for members in _MEMBERS_SQL:
            cur.execute(members)
        return cur.execute(sql, {"now": to_db_time(now)}).df()


def cache_counts(source: Source) -> tuple[int, int]:
    """How many completions and badges the cache holds (to tell an empty cache apart)."""
    with _cursor(source) as cur:
        row = cur.execute(
            "SELECT (SELECT count(*) FROM completions), (SELECT count(*) FROM badges)"
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def filter_options(source: Source, *, domains: bool = False) -> FilterOptions:
    """What the filters can choose from: courses with a rule or a completion, templates, and
    with ``domains`` the email domains of completions and badges (most frequent first, at
    most 200; this reads every email)."""
    with _cursor(source) as cur:
        courses = cur.execute(
            """
            SELECT course_id, coalesce(max(title) FILTER (WHERE ruled), max(title)) AS title
            FROM (
                SELECT course_id, coalesce(nullif(course_title, ''), course_id) AS title,
                       TRUE AS ruled
                FROM badge_rules
                UNION ALL
                SELECT trim(course_id), coalesce(nullif(trim(title), ''), trim(course_id)), FALSE
                FROM (
                    SELECT course_id, any_value(course_title) AS title FROM completions
                    GROUP BY course_id
                ) WHERE trim(coalesce(course_id, '')) <> ''
            ) GROUP BY 1 ORDER BY 2, 1
            """
        ).fetchall()
        templates = cur.execute(
            """
            SELECT id, coalesce(max(name) FILTER (WHERE synced), max(name)) AS name FROM (
                SELECT id, name, TRUE AS synced FROM templates
                UNION ALL
                SELECT template_id, coalesce(nullif(template_name, ''), template_id), FALSE
                FROM badge_rules
            ) GROUP BY 1 ORDER BY 2, 1
            """
        ).fetchall()
        found = []
        if domains:
            found = cur.execute(
                f"""
            SELECT domain FROM (
                SELECT {_domain_sql("email")} AS domain FROM completions
                UNION ALL
                SELECT {_domain_sql("recipient_email")} FROM badges
            ) WHERE domain <> '' GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 200
            """
            ).fetchall()
    return FilterOptions(
        courses=[(str(a), str(b)) for a, b in courses],
        templates=[(str(a), str(b)) for a, b in templates],
        domains=[str(d) for (d,) in found],
    )


def full_report(source: Source, flt: FunnelFilter) -> FunnelReport:
    """The summary and every table the funnel page shows by default, in one unit of work."""
    with _cursor(source) as cur:
        resolved = prepare(cur, flt)
        return FunnelReport(
            summary=replace(summary(cur, resolved), filter=flt),
            by_course=breakdown(cur, resolved, "course"),
            by_template=breakdown(cur, resolved, "template"),
            cohorts=cohorts(cur, resolved),
            time_to_accept=time_to_accept_histogram(cur, resolved),
            over_time=acceptance_over_time(cur, resolved),
        )


def summary_rows(result: FunnelSummary) -> list[dict[str, Any]]:
    """The summary as (measure, value) rows, for a CSV or a text table."""
    rows: list[dict[str, Any]] = []
    for key, value in result.as_json().items():
        if isinstance(value, Mapping):
            rows.extend({"measure": f"{key}.{k}", "value": v} for k, v in value.items())
        else:
            rows.append({"measure": key, "value": value})
    return rows

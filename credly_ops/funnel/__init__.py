"""The funnel a program manager reads: completions → eligible → issued → accepted, as SQL.

Where things live (import from ``credly_ops.funnel``; the names below are the surface):

* :mod:`.filter` — :class:`FunnelFilter` and :class:`~.filter.Where`, which turns a filter into
  SQL conditions and named parameters;
* :mod:`.measures` — the headline numbers (:func:`summary` and one function per number);
* :mod:`.breakdowns` — the funnel per course, template or email domain, laggards flagged;
* :mod:`.tables` — cohorts, the time-to-accept histogram, acceptance over time, students, and
  the reminders of every badge;
* :mod:`.options` — what the filters can choose from; :mod:`.report` — the page's default read;
* :mod:`.prepare` — the aggregate tables a unit of work reads once per filter;
* :mod:`.stream` and :mod:`.sql` — the SQL the rest is built from: the chains and completions
  in scope, reminders as SQL, the rules look-up.

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

from credly_ops.funnel.breakdowns import (
    BREAKDOWN_COLUMNS,
    LAGGARD_MARGIN,
    LAGGARD_MIN_ISSUED,
    MEASURE_COLUMNS,
    Dimension,
    breakdown,
)
from credly_ops.funnel.filter import DateBasis, FunnelError, FunnelFilter
from credly_ops.funnel.measures import (
    DERIVED_REASONS,
    BadgeStates,
    CompletionCounts,
    FunnelSummary,
    IssuedOutside,
    RemindersSent,
    TimeToAccept,
    acceptance_by_reminders,
    acceptance_rate,
    badge_states,
    blocked_retakes,
    completion_counts,
    failed_to_issue,
    issued_outside,
    pending_by_reminders,
    reminders_total,
    renewed,
    skipped_by_reason,
    summary,
    summary_rows,
    time_to_accept,
)
from credly_ops.funnel.options import FilterOptions, cache_counts, filter_options
from credly_ops.funnel.prepare import prepare
from credly_ops.funnel.report import FunnelReport, full_report
from credly_ops.funnel.sql import Source, reminders_sql
from credly_ops.funnel.tables import (
    ACCEPT_BINS,
    STUDENT_COLUMNS,
    acceptance_over_time,
    badge_reminders,
    cohorts,
    students,
    time_to_accept_histogram,
)
from credly_ops.reminders import PHASES

__all__ = [
    "ACCEPT_BINS",
    "BREAKDOWN_COLUMNS",
    "DERIVED_REASONS",
    "LAGGARD_MARGIN",
    "LAGGARD_MIN_ISSUED",
    "MEASURE_COLUMNS",
    "PHASES",
    "STUDENT_COLUMNS",
    "BadgeStates",
    "CompletionCounts",
    "DateBasis",
    "Dimension",
    "FilterOptions",
    "FunnelError",
    "FunnelFilter",
    "FunnelReport",
    "FunnelSummary",
    "IssuedOutside",
    "RemindersSent",
    "Source",
    "TimeToAccept",
    "acceptance_by_reminders",
    "acceptance_over_time",
    "acceptance_rate",
    "badge_reminders",
    "badge_states",
    "blocked_retakes",
    "breakdown",
    "cache_counts",
    "cohorts",
    "completion_counts",
    "failed_to_issue",
    "filter_options",
    "full_report",
    "issued_outside",
    "pending_by_reminders",
    "prepare",
    "reminders_sql",
    "reminders_total",
    "renewed",
    "skipped_by_reason",
    "students",
    "summary",
    "summary_rows",
    "time_to_accept",
    "time_to_accept_histogram",
]

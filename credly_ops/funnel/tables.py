"""The funnel's other tables: acceptance by issue-month cohort, the time-to-accept
histogram, acceptance at each sync, one row per student, and the reminders of every badge.
"""

from __future__ import annotations

import math
from datetime import timedelta

import pandas as pd

from credly_ops import timeutil
from credly_ops.funnel.filter import FunnelFilter, Where
from credly_ops.funnel.measures import acceptance_rates
from credly_ops.funnel.prepare import FINE_STATS, prepare
from credly_ops.funnel.sql import (
    MEMBERS_SQL,
    Source,
    accepted_sql,
    cursor,
    reminders_sql,
    until_sql,
)
from credly_ops.funnel.stream import badge_stream, scoped_completions
from credly_ops.reminders import PHASES, REMINDER_OFFSETS
from credly_ops.store import to_db_time

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


def _bin_sql(hours: str) -> str:
    cases = " ".join(
        f"WHEN {hours} <= {upper} THEN {i}" for i, (_, upper, _) in enumerate(ACCEPT_BINS[:-1])
    )
    return f"(CASE WHEN {hours} IS NULL THEN NULL {cases} ELSE {len(ACCEPT_BINS) - 1} END)"


def cohorts(source: Source, flt: FunnelFilter) -> pd.DataFrame:
    """Acceptance by issue-month cohort (the month of each badge's date on the chosen basis;
    the badges of completions, as the summary counts them):
    ``month``, ``issued``, ``accepted``, ``pending`` (and by reminders sent), ``rejected``,
    ``revoked``, ``reminders_sent`` and ``acceptance_rate``."""
    with cursor(source) as cur:
        prepare(cur, flt)
        frame = cur.execute(
            f"SELECT month, {FINE_STATS} FROM fn_g WHERE course_id IS NOT NULL "
            "GROUP BY 1 ORDER BY 1"
        ).df()
    frame["month"] = pd.to_datetime(frame["month"])
    frame["acceptance_rate"] = acceptance_rates(frame)
    return frame


def time_to_accept_histogram(source: Source, flt: FunnelFilter) -> pd.DataFrame:
    """Accepted badges of completions by time to accept, in :data:`ACCEPT_BINS`, each bin with
    its phase."""
    with cursor(source) as cur:
        prepare(cur, flt)
        rows = cur.execute(
            f"SELECT {_bin_sql('h')} AS bin, count(*) "
            "FROM (SELECT unnest(hours) AS h FROM fn_g WHERE course_id IS NOT NULL) GROUP BY 1"
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
    where = Where(flt)
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
    with cursor(source) as cur:
        frame = cur.execute(sql, where.used(sql)).df()
    frame["acceptance_rate"] = acceptance_rates(frame)
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
    """One row per completion in scope with its link's outcome — ``issued`` or ``renewed``
    with the badge chain, else why there is none: a skip reason, ``failed``,
    ``blocked_retake`` or ``not_issued`` — and one per badge in scope no known completion
    earned (``not_from_a_completion``); newest first.

    Narrow the filter to a course for that course's students.
    """
    with cursor(source) as cur:
        resolved = prepare(cur, flt)
        where = Where(resolved)
        sql = f"""
{badge_stream(where)},
{scoped_completions(where)},
rows AS (
    SELECT c.email, m.first_name, m.last_name, c.course_id, c.course_title, c.completed_at,
           m.status,
           CASE c.outcome WHEN 'skipped' THEN c.reason WHEN 'none' THEN 'not_issued'
                ELSE c.outcome END AS outcome,
           b.end_id AS badge_id, b.state AS badge_state, b.issued_at, b.accepted_at,
           b.hours_to_accept, b.reminders_total AS reminders_sent
    FROM scoped c
    LEFT JOIN completions m ON m.id = c.completion_id
    LEFT JOIN stream b ON b.completion_id = c.completion_id
    UNION ALL
    SELECT b.email, NULL, NULL, NULL, NULL, NULL, NULL, 'not_from_a_completion', b.end_id,
           b.state, b.issued_at, b.accepted_at, b.hours_to_accept, b.reminders_total
    FROM stream b WHERE b.completion_id IS NULL
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
        m_sent, until_sql("m", m_sent, "m.chain_accepted"), "m.suppress_notification"
    )
    sql = f"""
WITH ends AS (
    SELECT root_id, {accepted_sql("fn_m")} AS chain_accepted FROM fn_m
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
    with cursor(source) as cur:
        for members in MEMBERS_SQL:
            cur.execute(members)
        return cur.execute(sql, {"now": to_db_time(now)}).df()

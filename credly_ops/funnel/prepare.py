"""Preparing a unit of work: :func:`prepare` reads the badges, the completions and the ledger
once for a filter and leaves small aggregate tables in the cursor (``fn_g`` badge counts by
course, template and month, with the hours to accept; ``fn_c`` completions by course,
template and exit reason; ``fn_l`` the latest ledger row per key; ``fn_all`` the totals),
which every measure of the same filter then reads.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import cast

import duckdb

from credly_ops import timeutil
from credly_ops.funnel.filter import FunnelFilter, Where
from credly_ops.funnel.sql import COMPLEX_SQL, LOOKUP, MEMBERS_SQL, RULES_SQL, domain_sql
from credly_ops.funnel.stream import badge_stream, tagged
from credly_ops.reminders import REMINDER_OFFSETS
from credly_ops.store import from_db_time, to_db_time

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


def badge_stats() -> str:
    """The badge counts of a group of chains (rows of the stream)."""
    counts = [
        f"count(*){f' FILTER (WHERE {condition})' if condition else ''}::BIGINT AS {name}"
        for name, condition in _BADGE_COUNTS.items()
    ]
    return ", ".join([*counts, "coalesce(sum(reminders_total), 0)::BIGINT AS reminders_sent"])


#: the same counts, summed over rows of ``fn_g``
FINE_STATS = ", ".join(
    f"coalesce(sum({name}), 0)::BIGINT AS {name}" for name in [*_BADGE_COUNTS, "reminders_sent"]
)
#: ``fn_g`` groups the chains by these; each row also keeps the hours to accept of its
#: accepted chains, so that exact quantiles of any grouping come from the small table
_GROUP_COLUMNS = ("course_id", "template_id", "month")
#: ``fn_g`` with the template of badges not from a completion (one course row per template)
FN_G = "(SELECT *, CASE WHEN course_id IS NULL THEN template_id END AS orphan_template FROM fn_g)"


def hours_stats(h: str = "h") -> str:
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


def hours_sql(keys: str = "") -> str:
    """:func:`hours_stats` from the hours kept in ``fn_g``, by ``keys`` (or overall)."""
    select = f"{keys}, " if keys else ""
    group = "GROUP BY ALL" if keys else ""
    return f"""
    SELECT {select}{hours_stats()}
    FROM (SELECT {select}unnest(hours) AS h FROM {FN_G}) {group}"""


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
    where = Where(resolved)
    cur.execute("DROP TABLE IF EXISTS fn_key")
    for sql in (RULES_SQL, COMPLEX_SQL, *MEMBERS_SQL):
        cur.execute(sql)
    for sql in (_badges_sql(where), _completions_sql(where), _ledger_sql(where)):
        cur.execute(sql, where.used(sql))
    cur.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE fn_all AS
        SELECT * FROM (SELECT {FINE_STATS} FROM fn_g), ({hours_sql()})
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


def _badges_sql(where: Where) -> str:
    keys = ", ".join(_GROUP_COLUMNS)
    return f"""
CREATE OR REPLACE TEMP TABLE fn_g AS
{badge_stream(where)},
{tagged()}
SELECT {keys}, {badge_stats()},
       list(hours_to_accept) FILTER (WHERE hours_to_accept IS NOT NULL) AS hours
FROM tagged GROUP BY {keys}
"""


def _completions_sql(where: Where) -> str:
    """``fn_c``: completions counted by course, template, exit reason and eligibility.

    Rows are grouped by their rule look-up first and resolved on the groups; only eligible
    completions of inactive templates are looked at one by one (did a badge come from them
    before the template was retired?)."""
    rows = where.join([*where.range("c.completed_at"), *where.domain("c.email")])
    scope = where.course_and_template()
    eligible = (
        "NOT coalesce(r.require_pass AND b.status = 'failed', FALSE) "
        "AND NOT coalesce(b.completed_at < r.active_from, FALSE)"
    )
    return f"""
CREATE OR REPLACE TEMP TABLE fn_c AS
WITH base AS NOT MATERIALIZED (
    SELECT {LOOKUP} AS lookup, c.course_id, c.course_title, c.status, c.completed_at, c.email
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


def _ledger_sql(where: Where) -> str:
    """``fn_l``: the latest ledger row of each key, in scope."""
    flt = where.flt
    conditions = where.range("completed_at" if flt.by == "completion" else "updated_at")
    conditions += where.course_and_template()
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
SELECT course_id, template_id, {domain_sql("email")} AS domain, outcome, reason, status
FROM latest WHERE {where.join(conditions)}
"""

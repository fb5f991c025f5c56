"""Preparing a unit of work: :func:`prepare` reads the completion → badge link
(:mod:`credly_ops.links`) for a filter and leaves small aggregate tables in the cursor
(``fn_g`` badge counts by course, template and month, with the hours to accept — a row with
no course is a chain no known completion earned; ``fn_c`` completions by course, template,
eligibility and outcome; ``fn_l`` the completions whose latest attempt failed; ``fn_all`` the
totals of the badges of completions, ``fn_out`` those of the badges issued outside), which
every measure of the same filter then reads.  Every table is a plain aggregate over the link.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import cast

import duckdb

from credly_ops import timeutil
from credly_ops.funnel.filter import FunnelFilter, Where
from credly_ops.funnel.sql import RULES_SQL, domain_sql
from credly_ops.funnel.stream import badge_stream, scoped_completions, tagged
from credly_ops.links import DERIVED_REASONS
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


def hours_sql(keys: str = "", *, linked: bool = False) -> str:
    """:func:`hours_stats` from the hours kept in ``fn_g``, by ``keys`` (or overall; only the
    badges of completions with ``linked``)."""
    select = f"{keys}, " if keys else ""
    group = "GROUP BY ALL" if keys else ""
    only = "WHERE course_id IS NOT NULL" if linked else ""
    return f"""
    SELECT {select}{hours_stats()}
    FROM (SELECT {select}unnest(hours) AS h FROM {FN_G} {only}) {group}"""


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
    cur.execute(RULES_SQL)
    for sql in (_badges_sql(where), _completions_sql(where), _ledger_sql(where)):
        cur.execute(sql, where.used(sql))
    cur.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE fn_all AS
        SELECT * FROM (SELECT {FINE_STATS} FROM fn_g WHERE course_id IS NOT NULL),
                      ({hours_sql(linked=True)})
        """
    )
    cur.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE fn_out AS
        SELECT {FINE_STATS} FROM fn_g WHERE course_id IS NULL
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
SELECT {keys}, {badge_stats()}, count(*) FILTER (WHERE outcome = 'renewed')::BIGINT AS renewed,
       list(hours_to_accept) FILTER (WHERE hours_to_accept IS NOT NULL) AS hours
FROM tagged GROUP BY {keys}
"""


def _completions_sql(where: Where) -> str:
    """``fn_c``: the completions in scope counted by course, template, eligibility and their
    link's outcome and reason (``reason`` is the derived one, or ``NULL``)."""
    derived = ", ".join(f"'{r}'" for r in DERIVED_REASONS)
    return f"""
CREATE OR REPLACE TEMP TABLE fn_c AS
WITH {scoped_completions(where)}
SELECT s.course_id, any_value(s.course_title) AS course_title, s.template_id,
       any_value(r.template_name) AS template_name,
       CASE WHEN s.outcome = 'skipped' AND s.reason IN ({derived}) THEN s.reason END AS reason,
       s.eligible, s.outcome, s.reason AS link_reason, count(*)::BIGINT AS n
FROM scoped s
LEFT JOIN (SELECT * FROM fn_rules WHERE NOT ambiguous AND lookup = course_id) r
  ON r.course_id = s.course_id
GROUP BY s.course_id, s.template_id, s.eligible, s.outcome, s.reason
"""


def _ledger_sql(where: Where) -> str:
    """``fn_l``: the completions in scope whose latest issue attempt failed."""
    return f"""
CREATE OR REPLACE TEMP TABLE fn_l AS
WITH {scoped_completions(where)}
SELECT course_id, template_id, {domain_sql("email")} AS domain, outcome, reason,
       'failed' AS status
FROM scoped WHERE outcome = 'failed'
"""

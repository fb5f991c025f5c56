"""The funnel per course, per template or per email domain (:func:`breakdown`), sorted by
acceptance rate with laggards flagged.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd

from credly_ops.funnel.filter import FunnelError, FunnelFilter, Where
from credly_ops.funnel.measures import acceptance_rates, quantiles
from credly_ops.funnel.prepare import FINE_STATS, FN_G, badge_stats, hours_sql, hours_stats, prepare
from credly_ops.funnel.sql import Source, cursor, domain_sql
from credly_ops.funnel.stream import badge_stream, scoped_completions, tagged

Dimension = Literal["course", "template", "domain"]

#: a row of a breakdown is a laggard when its acceptance rate is this far below the overall
#: rate, over at least this many issued badges
LAGGARD_MARGIN = 0.10
LAGGARD_MIN_ISSUED = 20

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

    Per course, the badges issued outside (no known completion) get one row per template
    with no course id; a course without a rule has no template.  Per template and per domain
    only the badges of completions count (the summary's population); per template,
    completions without a rule make a row with no template.  Columns:
    ``BREAKDOWN_COLUMNS[by]``, then :data:`MEASURE_COLUMNS`.
    """
    if by not in BREAKDOWN_COLUMNS:
        raise FunnelError(f"breakdown by course, template or domain, not {by!r}")
    with cursor(source) as cur:
        resolved = prepare(cur, flt)
        if by == "domain":
            where = Where(resolved)
            sql = _domain_breakdown_sql(where)
            frame = cur.execute(sql, where.used(sql)).df()
        else:
            frame = cur.execute(_BREAKDOWN_SQL[by]).df()
    return _finish_breakdown(frame, by)


def _badge_groups(keys: str, *, linked: bool = False) -> str:
    """The badge measures by ``keys`` (columns of ``fn_g`` or ``orphan_template``); only the
    badges of completions with ``linked``."""
    on = " AND ".join(f"f.{k} IS NOT DISTINCT FROM q.{k}" for k in keys.split(", "))
    only = "WHERE course_id IS NOT NULL" if linked else ""
    return f"""
    SELECT f.*, q.* EXCLUDE ({keys}) FROM (
        SELECT {keys}, {FINE_STATS} FROM {FN_G} {only} GROUP BY ALL
    ) f LEFT JOIN ({hours_sql(keys, linked=linked)}) q ON {on}"""


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
b AS ({_badge_groups("template_id", linked=True)}),
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


def _domain_breakdown_sql(where: Where) -> str:
    """Per email domain: read afresh (the prepared tables do not keep emails)."""
    return f"""
{badge_stream(where)},
{tagged()},
{scoped_completions(where)},
c AS (
    SELECT {domain_sql("email")} AS domain, count(*)::BIGINT AS completions,
           count(*) FILTER (WHERE eligible)::BIGINT AS eligible
    FROM scoped GROUP BY 1
),
b AS (
    SELECT {domain_sql("email")} AS domain, {badge_stats()},
           {hours_stats("hours_to_accept")}
    FROM tagged WHERE completion_id IS NOT NULL GROUP BY 1
),
l AS (SELECT domain, count(*) FILTER (WHERE status = 'failed') AS failed FROM fn_l GROUP BY 1)
SELECT coalesce(c.domain, b.domain, l.domain) AS domain,
       c.* EXCLUDE (domain), b.* EXCLUDE (domain), l.* EXCLUDE (domain)
FROM c FULL OUTER JOIN b ON c.domain = b.domain
FULL OUTER JOIN l ON coalesce(c.domain, b.domain) = l.domain
"""


def _split_quantiles(frame: pd.DataFrame) -> pd.DataFrame:
    pairs = [quantiles(v) for v in frame.pop("hours_quantiles")]
    frame["median_hours_to_accept"] = pd.Series(
        [p[0] for p in pairs], index=frame.index, dtype="float64"
    )
    frame["p90_hours_to_accept"] = pd.Series(
        [p[1] for p in pairs], index=frame.index, dtype="float64"
    )
    return frame


def _finish_breakdown(frame: pd.DataFrame, by: Dimension) -> pd.DataFrame:
    frame = _split_quantiles(frame)
    for column in _COUNT_COLUMNS:
        frame[column] = frame[column].fillna(0).astype("int64")
    frame["acceptance_rate"] = acceptance_rates(frame)
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

"""The rows the funnel counts, as SQL CTEs built from a filter's :class:`~.filter.Where`:
one row per replace chain in scope, linked to its completion (:func:`badge_stream`), and
the completions in scope with their rule and exit reason (:func:`scoped_completions`).
"""

from __future__ import annotations

from credly_ops.funnel.filter import Where
from credly_ops.funnel.sql import (
    LOOKUP,
    accepted_sql,
    comp_cte,
    reminders_sql,
    reminders_us_sql,
    until_sql,
)


def badge_stream(where: Where) -> str:
    """``WITH …, stream AS (…)``: one row per replace chain in scope, linked to its
    completion (needs the ``fn_rules``, ``fn_complex`` and ``fn_m`` tables)."""
    flt = where.flt
    templates: list[str] = []
    if flt.template_id:
        templates.append("template_id = $template")
    if flt.course_id:
        templates.append(
            "template_id IN (SELECT template_id FROM fn_rules WHERE course_id = $course)"
        )
    single_date = "coalesce(b.created_at, b.issued_at)" if flt.by == "issue" else "b.issued_at"
    single = [
        *where.range(single_date),
        *(f"b.{c}" for c in templates),
        *where.domain("b.recipient_email"),
    ]
    keys = [f"r.{c}" for c in templates]
    if flt.by == "completion":
        keys += where.range("c.completed_at")
    keys += where.domain("c.email")
    final = [
        *where.range("badge_date"),
        *(["ch.template_id = $template"] if flt.template_id else []),
        *(["k.course_id = $course"] if flt.course_id else []),
        *where.domain("ch.email"),
    ]
    e_sent, b_sent, m_sent = (f"coalesce({a}.created_at, {a}.issued_at)" for a in "ebm")
    end_reminders = reminders_sql(e_sent, until_sql("e", e_sent), "e.suppress_notification")
    member_reminders = reminders_sql(
        m_sent, until_sql("m", m_sent, "h.accepted_at"), "m.suppress_notification"
    )
    single_reminders = reminders_us_sql("sent_us", "cut_us", "suppress_notification")
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
           {accepted_sql("e")} AS accepted_at, {end_reminders} AS end_reminders
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
      AND {where.join(single)}
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
    FROM completions c JOIN fn_rules r ON r.lookup = {LOOKUP}
    WHERE r.course_id IS NOT NULL AND {where.join(keys)}
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
    WHERE {where.join(final)}
)"""


def scoped_completions(where: Where) -> str:
    """``comp`` restricted to the filter, as the CTE ``scoped``."""
    on_rows = where.join([*where.range("c.completed_at"), *where.domain("c.email")])
    scope = where.course_and_template()
    return f"""{comp_cte(on_rows)},
scoped AS (SELECT * FROM comp WHERE {where.join(scope)})"""


def tagged(source: str = "stream") -> str:
    return f"""tagged AS (
    SELECT *, date_trunc('month', badge_date)::DATE AS month FROM {source}
)"""

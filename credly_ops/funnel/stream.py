"""The rows the funnel counts, as SQL CTEs over the completion → badge link
(:mod:`credly_ops.links`) and a filter's :class:`~.filter.Where`: the rows with a badge chain
(:func:`badge_stream`: one per completion that was issued or renewed a badge, one per chain no
known completion earned) and the completions in scope (:func:`scoped_completions`).
"""

from __future__ import annotations

from credly_ops.funnel.filter import Where
from credly_ops.funnel.sql import reminders_us_sql


def badge_date_sql(where: Where) -> str:
    """The date a badge row is filtered and grouped by: on the ``completion`` basis the
    completion's moment (a chain's ``issued_at`` when no completion is known); on the
    ``issue`` basis when Credly sent the badge (a renewal: when the renewed badge was sent)."""
    if where.flt.by == "issue":
        return "CASE WHEN outcome = 'renewed' THEN end_sent_at ELSE sent_at END"
    return "coalesce(completed_at, issued_at)"


def badge_stream(where: Where) -> str:
    """``WITH …, stream AS (…)``: one row per link row with a badge chain in scope: the chain's
    live end, state, acceptance, hours to accept and reminders (as of ``$now``)."""
    date = badge_date_sql(where)
    rows = [
        "root_id IS NOT NULL",
        *where.range(date),
        *where.course_and_template(),
        *where.domain("email"),
    ]
    cut = (
        "CASE WHEN end_left_at IS NULL OR epoch_us(end_left_at) > epoch_us($now) "
        "THEN epoch_us($now) + 1 ELSE epoch_us(end_left_at) END"
    )
    end_reminders = reminders_us_sql("epoch_us(end_sent_at)", f"({cut})", "end_suppressed")
    return f"""
WITH
stream AS (
    SELECT completion_id, outcome, badge_id AS end_id, email, template_id, course_id, state,
           issued_at, {date} AS badge_date, accepted_at,
           CASE WHEN accepted_at IS NOT NULL
                THEN greatest(epoch_us(accepted_at) - epoch_us(sent_at), 0) / 3600e6
           END AS hours_to_accept,
           CASE WHEN state = 'pending' THEN {end_reminders} END AS pending_reminders,
           prior_reminders + {end_reminders} AS reminders_total
    FROM completion_links WHERE {where.join(rows)}
)"""


def scoped_completions(where: Where) -> str:
    """The completions in scope, each with its link (outcome, reason, chain), as the CTE
    ``scoped``."""
    rows = [
        "completion_id IS NOT NULL",
        *where.range("completed_at"),
        *where.course_and_template(),
        *where.domain("email"),
    ]
    return f"""scoped AS (SELECT * FROM completion_links WHERE {where.join(rows)})"""


def tagged(source: str = "stream") -> str:
    return f"""tagged AS (
    SELECT *, date_trunc('month', badge_date)::DATE AS month FROM {source}
)"""

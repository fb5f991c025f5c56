"""The funnel's SQL building blocks: reminders as SQL (:func:`reminders_sql`, the twin of
:func:`credly_ops.reminders.reminders_sent`), when a badge left ``pending`` or was accepted,
the rules look-up table, the replace chains' members, the completions with their rule, and
the cursor a measure runs on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import duckdb

from credly_ops.reminders import REMINDER_OFFSETS
from credly_ops.store import Store

Source = Store | duckdb.DuckDBPyConnection


@contextmanager
def cursor(source: Source) -> Iterator[duckdb.DuckDBPyConnection]:
    """The open cursor given, or a unit of work of the store given."""
    if isinstance(source, Store):
        with source.session() as cur:
            yield cur
    else:
        yield source


def micros(offset: timedelta) -> int:
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
    terms = [f"({sent_us} + {micros(offset)} < {cut})::INTEGER" for offset in REMINDER_OFFSETS]
    return f"(CASE WHEN {suppressed} THEN 0 ELSE {' + '.join(terms)} END)"


def reminders_us_sql(sent_us: str, cut_us: str, suppressed: str) -> str:
    """:func:`reminders_sql` over columns already in microseconds: the moments strictly
    before the cut (see there)."""
    terms = [f"({sent_us} + {micros(offset)} < {cut_us})::INTEGER" for offset in REMINDER_OFFSETS]
    return f"(CASE WHEN {suppressed} THEN 0 ELSE {' + '.join(terms)} END)"


def until_sql(alias: str, sent: str, chain_accepted: str | None = None) -> str:
    """When a badge left ``pending`` (NULL while pending)."""
    own = f"coalesce({alias}.state_updated_at, {alias}.updated_at, {sent})"
    left = own if chain_accepted is None else f"least({own}, {chain_accepted})"
    return f"(CASE WHEN {alias}.state = 'pending' THEN NULL ELSE {left} END)"


def accepted_sql(alias: str) -> str:
    return (
        f"(CASE WHEN {alias}.state = 'accepted' THEN coalesce({alias}.state_updated_at, "
        f"{alias}.updated_at, {alias}.created_at, {alias}.issued_at) END)"
    )


def domain_sql(email: str) -> str:
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
RULES_SELECT = f"""
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
RULES_SQL = f"CREATE OR REPLACE TEMP TABLE fn_rules AS {RULES_SELECT}"

#: how a completion row (alias ``c``) finds its rule in ``fn_rules``
LOOKUP = """CASE WHEN trim(coalesce(c.course_id, '')) <> '' THEN trim(c.course_id)
        ELSE chr(1) || lower(trim(coalesce(c.course_title, ''))) END"""

# templates whose completion keys (email, template, completed_at) may repeat: shared by
# several courses, or reached by a completion through its course title (the same completion
# may also have been loaded with its course id)
COMPLEX_SQL = f"""
CREATE OR REPLACE TEMP TABLE fn_complex AS
SELECT template_id FROM fn_rules WHERE course_id IS NOT NULL
GROUP BY 1 HAVING count(DISTINCT course_id) > 1
UNION
SELECT DISTINCT r.template_id FROM completions c JOIN fn_rules r ON r.lookup = {LOOKUP}
WHERE trim(coalesce(c.course_id, '')) = '' AND r.course_id IS NOT NULL
"""

# the badges of replace chains (a small share of all badges), each with its chain's root:
# read once (two conjunctive filters, which the scan applies before reading other columns),
# then walked
MEMBERS_SQL = (
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


def comp_cte(where: str) -> str:
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
    FROM completions c LEFT JOIN fn_rules r ON r.lookup = {LOOKUP}
    WHERE {where}
)"""

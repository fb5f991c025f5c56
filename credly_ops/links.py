"""The completion → badge link: one row per completion with the badge chain it earned or
renewed, its outcome and why — and one row per badge chain no known completion earned.

The funnel and the Student preview read this table, so they cannot disagree; it is kept up to
date where the facts arrive (:func:`relink` for the students touched): completions saved
(:func:`credly_ops.lms.save_completions`), badges written to the cache (a sync page, the bulk
issue's cache flush: :func:`credly_ops.sync.upsert_badges`), ledger rows decided or finished
(:mod:`credly_ops.ledger`), rules saved (every student).  :func:`rebuild` (``credly-ops sync
--relink``, and the schema migration) builds it afresh for an existing cache.

**Matching.**  A completion finds its rule as the funnel does (course id, else a title exactly
one rule has) and so its template.  A chain (a badge and its replacements, followed through
``replaces_badge_id``) carries the completion when its first badge's ``issued_at`` carries
the completion by :func:`credly_ops.issuance.decide.carries_completion` — the engine's own
rule, in SQL (:func:`~credly_ops.issuance.decide.carries_completion_sql`): the same second, or
the same UTC day for a date-only completion or a badge issued at 00:00:00.  Several chains:
a live one first, then the latest sent.  Several completions carried by one chain (the same
completion loaded by course id and by title, courses sharing a template at the same second):
the lowest course id (then completion id) has it; the others are ``skipped`` /
``already_issued``, as the engine would answer them.

Otherwise the completion *renewed* a chain: the ledger says so (its latest row for the
completion is an ``update`` that succeeded, with the new badge), or a live replacement badge
of the student's template carries the expiry this completion gives
(:func:`~credly_ops.issuance.decide.expires_at_sql`, rules that update and expire) and was
issued before it — what the Student preview has always called "renewed".

**Outcomes** (``outcome`` / ``reason``), the first that applies:

* ``issued`` / ``same_second`` or ``same_day`` — a chain carries it (whatever its state now);
* ``renewed`` / ``renewal`` — it renewed a chain;
* ``skipped`` / a derived reason — ``no_rule``, ``ambiguous_course_title``, ``not_passed``,
  ``before_active_from`` (not eligible), ``template_inactive`` (eligible, template retired);
* from the latest ledger row for this completion (same email, template and second):
  ``failed`` / the row's reason when its last attempt failed; ``blocked_retake`` /
  ``already_has_badge``; ``skipped`` / the row's reason for any other skip;
* ``blocked_retake`` / ``already_has_badge`` — the rule issues, the template allows one badge
  per student and the student has a live one (a bulk issue would skip it);
* ``none`` / ``not_issued`` — eligible, nothing sent yet.

Chains no completion links to are rows with no completion: ``outside`` / ``no_completion``
(issued by the native integration, by hand, or before the first sync).

**Chain facts** are copied onto each row (state of the live end, the first badge's
``issued_at`` and sending time, acceptance, the end's times for its reminders, the reminders
of the chain's earlier badges), so the funnel is a plain aggregate over this one table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cache

import duckdb

from credly_ops.store import to_db_time
from credly_ops.timeutil import utcnow

#: every outcome a row can have
OUTCOMES = ("issued", "renewed", "skipped", "failed", "blocked_retake", "none", "outside")
#: outcomes of a completion that got a badge
BADGE_OUTCOMES = ("issued", "renewed")
#: the reasons derived from a completion and the rules (no ledger needed)
DERIVED_REASONS = (
    "no_rule",
    "ambiguous_course_title",
    "not_passed",
    "before_active_from",
    "template_inactive",
)

LINK_COLUMNS = (
    "completion_id",
    "email",
    "course_id",
    "course_title",
    "template_id",
    "completed_at",
    "eligible",
    "outcome",
    "reason",
    "root_id",
    "badge_id",
    "state",
    "issued_at",
    "sent_at",
    "accepted_at",
    "end_sent_at",
    "end_left_at",
    "end_suppressed",
    "prior_reminders",
    "linked_at",
)

_SCOPE_TABLE = "link_scope"
#: a relink for at least WHOLE_MIN students and 1/WHOLE_SHARE as many as the link has rows
#: rebuilds it all (an upload of most of the students: cheaper than picking them out)
WHOLE_SHARE = 4
WHOLE_MIN = 10_000


def _in_scope(column: str, scoped: bool) -> str:
    return f"{column} IN (SELECT email FROM {_SCOPE_TABLE})" if scoped else "TRUE"


@cache
def _link_sql(scoped: bool) -> str:
    """The rows of the link for every student (or those in ``link_scope``)."""
    # imported when first needed: the issuance package imports modules that import this one
    from credly_ops.funnel.sql import LOOKUP, RULES_SELECT
    from credly_ops.issuance.decide import (
        carries_completion_sql,
        expires_at_sql,
    )

    carries = carries_completion_sql("ch.issued_at", "c.completed_at", "c.date_only")
    expiry = expires_at_sql("c.completed_at", "c.expiration_months", "c.expiration_days")
    reminders = _prior_reminders_sql()
    b_scope = _in_scope("recipient_email", scoped)
    return f"""
WITH
rules AS ({RULES_SELECT}),
rule_more AS (
    SELECT course_id, method, expiration_months, expiration_days FROM badge_rules
),
comp AS (
    SELECT c.id AS completion_id, c.email, c.completed_at,
           coalesce(c.date_only, FALSE) AS date_only,
           coalesce(r.course_id, nullif(trim(c.course_id), ''), trim(c.course_title))
               AS course_id,
           coalesce(r.course_title, nullif(trim(c.course_title), ''), trim(c.course_id))
               AS course_title,
           r.template_id, coalesce(r.template_active, FALSE) AS template_active,
           m.method, m.expiration_months, m.expiration_days,
           coalesce(t.allow_duplicate_badges, FALSE) AS allow_duplicates,
           CASE WHEN r.ambiguous THEN 'ambiguous_course_title'
                WHEN r.course_id IS NULL THEN 'no_rule'
                WHEN r.require_pass AND c.status = 'failed' THEN 'not_passed'
                WHEN c.completed_at < r.active_from THEN 'before_active_from'
           END AS exit_reason
    FROM completions c
    LEFT JOIN rules r ON r.lookup = {LOOKUP}
    LEFT JOIN rule_more m ON m.course_id = r.course_id
    LEFT JOIN templates t ON t.id = r.template_id
    WHERE {_in_scope("c.email", scoped)}
),
rel AS (
    SELECT id, replaces_badge_id AS parent FROM badges
    WHERE (replaces_badge_id IS NOT NULL OR replacement_badge_id IS NOT NULL) AND {b_scope}
),
walk AS (
    WITH RECURSIVE w(root_id, id, depth) AS (
        SELECT id, id, 0 FROM rel WHERE parent IS NULL OR parent NOT IN (SELECT id FROM rel)
        UNION ALL
        SELECT w.root_id, r.id, w.depth + 1 FROM w JOIN rel r ON r.parent = w.id
        WHERE w.depth < 64
    )
    SELECT * FROM w
),
members AS (
    SELECT w.root_id, w.depth, b.* FROM walk w JOIN badges b ON b.id = w.id
),
ends AS (
    SELECT * FROM members
    QUALIFY row_number() OVER (PARTITION BY root_id ORDER BY depth DESC, id DESC) = 1
),
multi AS (
    SELECT r.id AS root_id, e.id AS end_id, r.recipient_email AS email, r.template_id,
           e.state, r.issued_at, coalesce(r.created_at, r.issued_at) AS sent_at,
           {_accepted("e")} AS accepted_at, e.created_at AS end_created,
           e.issued_at AS end_issued, e.state_updated_at AS end_state_updated,
           e.updated_at AS end_updated, e.suppress_notification AS end_suppressed
    FROM members r JOIN ends e ON e.root_id = r.id WHERE r.depth = 0
),
prior AS (
    SELECT m.root_id, sum({reminders})::INTEGER AS prior_reminders
    FROM members m JOIN multi h ON h.root_id = m.root_id
    WHERE m.id <> h.end_id GROUP BY m.root_id
),
chains AS (
    SELECT id AS root_id, id AS end_id, recipient_email AS email, template_id, state,
           issued_at, coalesce(created_at, issued_at) AS sent_at, {_accepted("badges")}
               AS accepted_at, created_at AS end_created, issued_at AS end_issued,
           state_updated_at AS end_state_updated, updated_at AS end_updated,
           suppress_notification AS end_suppressed, 0 AS prior_reminders
    FROM badges
    WHERE replaces_badge_id IS NULL AND replacement_badge_id IS NULL AND {b_scope}
    UNION ALL
    SELECT h.*, coalesce(p.prior_reminders, 0) FROM multi h LEFT JOIN prior p USING (root_id)
),
candidates AS (
    SELECT c.completion_id, any_value(c.course_id) AS course_id,
           arg_max(ch.root_id, (ch.state IN ('pending', 'accepted'), ch.sent_at, ch.root_id))
               AS root_id,
           arg_max(date_trunc('second', ch.issued_at) = date_trunc('second', c.completed_at),
                   (ch.state IN ('pending', 'accepted'), ch.sent_at, ch.root_id)) AS exact
    FROM comp c JOIN chains ch
      ON ch.email = c.email AND ch.template_id = c.template_id
     AND date_trunc('day', ch.issued_at) = date_trunc('day', c.completed_at)
    WHERE {carries}
    GROUP BY c.completion_id
),
direct AS (
    SELECT completion_id, course_id, root_id,
           CASE WHEN exact THEN 'same_second' ELSE 'same_day' END AS how
    FROM candidates
),
ledger_latest AS (
    SELECT lower(trim(email)) AS email, template_id,
           date_trunc('second', completed_at) AS second, outcome, reason, status, badge_id
    FROM ledger
    WHERE completed_at IS NOT NULL AND template_id IS NOT NULL
      AND {_in_scope("lower(trim(email))", scoped)}
    QUALIFY row_number() OVER (
        PARTITION BY lower(trim(email)), template_id, date_trunc('second', completed_at)
        ORDER BY updated_at DESC, job_id DESC, row_no DESC
    ) = 1
),
first_of AS (
    SELECT root_id, arg_min(completion_id, (course_id, completion_id)) AS completion_id
    FROM direct GROUP BY root_id
),
carried AS (
    SELECT d.completion_id, d.how, f.root_id
    FROM direct d LEFT JOIN first_of f USING (completion_id)
),
renewal AS (
    SELECT c.completion_id, m.root_id, 0 AS evidence, m.created_at, m.id
    FROM comp c
    JOIN ledger_latest l
      ON l.email = c.email AND l.template_id = c.template_id
     AND l.second = date_trunc('second', c.completed_at)
    JOIN members m ON m.id = l.badge_id
    WHERE l.outcome = 'update' AND l.status = 'succeeded'
    UNION ALL
    SELECT c.completion_id, m.root_id, 1, m.created_at, m.id
    FROM comp c JOIN members m
      ON m.recipient_email = c.email AND m.template_id = c.template_id
    WHERE m.replaces_badge_id IS NOT NULL AND m.state IN ('pending', 'accepted')
      AND c.method IN ('update', 'issue_or_update')
      AND date_trunc('second', m.expires_at) = date_trunc('second', {expiry})
      AND m.issued_at < c.completed_at
),
renewed AS (
    SELECT completion_id, root_id FROM renewal
    WHERE completion_id NOT IN (SELECT completion_id FROM direct)
    QUALIFY row_number() OVER (
        PARTITION BY completion_id ORDER BY evidence, created_at DESC NULLS LAST, id DESC
    ) = 1
),
retakes AS (
    SELECT DISTINCT c.completion_id
    FROM comp c JOIN chains ch ON ch.email = c.email AND ch.template_id = c.template_id
    WHERE ch.state IN ('pending', 'accepted') AND c.method = 'issue' AND NOT c.allow_duplicates
      AND c.exit_reason IS NULL
      AND c.completion_id NOT IN (SELECT completion_id FROM direct)
),
decided AS (
    SELECT c.*, coalesce(d.root_id, n.root_id) AS root_id,
           c.exit_reason IS NULL AS eligible,
           CASE WHEN d.root_id IS NOT NULL THEN 'issued'
                WHEN d.how IS NOT NULL THEN 'skipped'
                WHEN n.root_id IS NOT NULL THEN 'renewed'
                WHEN c.exit_reason IS NOT NULL OR NOT c.template_active THEN 'skipped'
                WHEN l.status = 'failed' THEN 'failed'
                WHEN l.outcome = 'skip' AND l.reason = 'already_has_badge' THEN 'blocked_retake'
                WHEN l.outcome = 'skip' THEN 'skipped'
                WHEN v.completion_id IS NOT NULL THEN 'blocked_retake'
                ELSE 'none' END AS outcome,
           CASE WHEN d.root_id IS NOT NULL THEN d.how
                WHEN d.how IS NOT NULL THEN 'already_issued'
                WHEN n.root_id IS NOT NULL THEN 'renewal'
                WHEN c.exit_reason IS NOT NULL THEN c.exit_reason
                WHEN NOT c.template_active THEN 'template_inactive'
                WHEN l.status = 'failed' OR l.outcome = 'skip' THEN l.reason
                WHEN v.completion_id IS NOT NULL THEN 'already_has_badge'
                ELSE 'not_issued' END AS reason
    FROM comp c
    LEFT JOIN carried d USING (completion_id)
    LEFT JOIN renewed n USING (completion_id)
    LEFT JOIN ledger_latest l
      ON l.email = c.email AND l.template_id = c.template_id
     AND l.second = date_trunc('second', c.completed_at)
    LEFT JOIN retakes v USING (completion_id)
)
SELECT d.completion_id, d.email, d.course_id, d.course_title, d.template_id, d.completed_at,
       d.eligible, d.outcome, d.reason, {_CHAIN_COLUMNS}, $linked_at
FROM decided d LEFT JOIN chains ch ON ch.root_id = d.root_id
UNION ALL
SELECT NULL, ch.email, NULL, NULL, ch.template_id, NULL, FALSE, 'outside', 'no_completion',
       {_CHAIN_COLUMNS}, $linked_at
FROM chains ch
WHERE ch.root_id NOT IN (SELECT root_id FROM decided WHERE root_id IS NOT NULL)
"""


_CHAIN_COLUMNS = (
    "ch.root_id, ch.end_id, ch.state, ch.issued_at, ch.sent_at, ch.accepted_at, "
    "coalesce(ch.end_created, ch.end_issued), "
    "CASE WHEN ch.state <> 'pending' THEN coalesce(ch.end_state_updated, ch.end_updated, "
    "ch.end_created, ch.end_issued) END, ch.end_suppressed, ch.prior_reminders"
)


def _accepted(alias: str) -> str:
    return (
        f"(CASE WHEN {alias}.state = 'accepted' THEN coalesce({alias}.state_updated_at, "
        f"{alias}.updated_at, {alias}.created_at, {alias}.issued_at) END)"
    )


def _prior_reminders_sql() -> str:
    """Reminders of a chain's earlier badge ``m`` (replaced: it left ``pending`` no later
    than the chain's acceptance); see :func:`credly_ops.funnel.sql.reminders_sql`."""
    from credly_ops.funnel.sql import reminders_sql, until_sql

    sent = "coalesce(m.created_at, m.issued_at)"
    return reminders_sql(
        sent,
        until_sql("m", sent, "h.accepted_at"),
        "m.suppress_notification",
        now="TIMESTAMP '9999-12-31'",
    )


def relink(cur: duckdb.DuckDBPyConnection, emails: Iterable[str] | None = None) -> int:
    """Bring the link up to date for these students (normalized emails; ``None``: everyone),
    inside the caller's unit of work.  Returns how many rows were written."""
    scoped = emails is not None
    params: dict[str, object] = {"linked_at": to_db_time(utcnow())}
    if scoped:
        wanted = sorted({e for e in emails or () if e})
        if not wanted:
            return 0
        if len(wanted) >= WHOLE_MIN and len(wanted) * WHOLE_SHARE >= _row_count(cur):
            # most students: building the whole link is cheaper than picking them out
            scoped = False
    if scoped:
        cur.execute(f"CREATE OR REPLACE TEMP TABLE {_SCOPE_TABLE} (email VARCHAR)")
        cur.execute(f"INSERT INTO {_SCOPE_TABLE} SELECT unnest(?::VARCHAR[])", [wanted])
        cur.execute(
            f"DELETE FROM completion_links WHERE email IN (SELECT email FROM {_SCOPE_TABLE})"
        )
    else:
        cur.execute("DELETE FROM completion_links")
    columns = ", ".join(LINK_COLUMNS)
    cur.execute(f"INSERT INTO completion_links ({columns}) {_link_sql(scoped)}", params)
    rows = cur.execute(
        "SELECT count(*) FROM completion_links"
        + (f" WHERE email IN (SELECT email FROM {_SCOPE_TABLE})" if scoped else "")
    ).fetchall()
    if scoped:
        cur.execute(f"DROP TABLE IF EXISTS {_SCOPE_TABLE}")
    return int(rows[0][0])


def _row_count(cur: duckdb.DuckDBPyConnection) -> int:
    rows = cur.execute("SELECT count(*) FROM completion_links").fetchall()
    return int(rows[0][0])


def rebuild(cur: duckdb.DuckDBPyConnection) -> int:
    """The whole link afresh (an existing cache, or after the rules changed)."""
    return relink(cur, None)


def link_stamp(cur: duckdb.DuckDBPyConnection) -> str:
    """A short text that changes whenever the link does (rows relinked, added or removed): what
    a page keys its cached reads by, so a badge issued by another process shows at once."""
    rows = cur.execute("SELECT count(*), max(linked_at) FROM completion_links").fetchall()
    count, latest = rows[0] if rows else (0, None)
    return f"{count}:{latest.isoformat() if latest else '-'}"


def linked_at(cur: duckdb.DuckDBPyConnection) -> datetime | None:
    rows = cur.execute("SELECT max(linked_at) FROM completion_links").fetchall()
    return rows[0][0] if rows else None


@dataclass(frozen=True)
class CompletionLink:
    """One completion's row of the link, as the Student preview reads it."""

    completion_id: str
    outcome: str
    reason: str
    root_id: str | None
    badge_id: str | None

    @property
    def has_badge(self) -> bool:
        return self.outcome in BADGE_OUTCOMES


def student_links(cur: duckdb.DuckDBPyConnection, email: str) -> dict[str, CompletionLink]:
    """The link rows of one student's completions (a normalized email), by completion id."""
    rows = cur.execute(
        "SELECT completion_id, outcome, reason, root_id, badge_id FROM completion_links "
        "WHERE email = ? AND completion_id IS NOT NULL",
        [email],
    ).fetchall()
    return {str(r[0]): CompletionLink(str(r[0]), str(r[1]), str(r[2]), r[3], r[4]) for r in rows}

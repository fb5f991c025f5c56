"""What the funnel's filters can choose from, and whether the cache holds anything."""

from __future__ import annotations

from dataclasses import dataclass, field

from credly_ops.funnel.sql import Source, cursor, domain_sql


@dataclass(frozen=True)
class FilterOptions:
    courses: list[tuple[str, str]] = field(default_factory=list)  # (id, title)
    templates: list[tuple[str, str]] = field(default_factory=list)  # (id, name)
    domains: list[str] = field(default_factory=list)


def cache_counts(source: Source) -> tuple[int, int]:
    """How many completions and badges the cache holds (to tell an empty cache apart)."""
    with cursor(source) as cur:
        row = cur.execute(
            "SELECT (SELECT count(*) FROM completions), (SELECT count(*) FROM badges)"
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def filter_options(source: Source, *, domains: bool = False) -> FilterOptions:
    """What the filters can choose from: courses with a rule or a completion, templates, and
    with ``domains`` the email domains of completions and badges (most frequent first, at
    most 200; this reads every email)."""
    with cursor(source) as cur:
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
                SELECT {domain_sql("email")} AS domain FROM completions
                UNION ALL
                SELECT {domain_sql("recipient_email")} FROM badges
            ) WHERE domain <> '' GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 200
            """
            ).fetchall()
    return FilterOptions(
        courses=[(str(a), str(b)) for a, b in courses],
        templates=[(str(a), str(b)) for a, b in templates],
        domains=[str(d) for (d,) in found],
    )

"""Funnel benchmark: 1,000,000 badges and 1,200,000 completions, built directly in DuckDB
(``--scale``: 10,000,000 and 12,000,000, the funnel only).

Prints one JSON object with medians over the repeats of:

* ``link_build_seconds``: building the completion → badge link for the whole cache
  (``credly_ops.links.rebuild``: ``credly-ops sync --relink``, or opening an older cache);

* ``funnel_seconds``: every funnel query for one filter setting (all time): the headline
  numbers, the per-course and per-template tables, cohorts, the time-to-accept histogram and
  acceptance over time (``credly_ops.funnel.full_report``), in one unit of work;
* ``funnel_last_90_days_seconds``: the same for the page's default period;
* ``page_seconds``: one cold AppTest run of ``pages/funnel.py`` against the same cache (the
  page's read cache is cleared before each run; its default view: the last 90 days, and the
  90 days before for the changes);
* ``floor_seconds``: the plain scan ``SELECT count(*), count(DISTINCT recipient_email) FROM
  badges`` on the same data, in the same run, and ``funnel_vs_floor``, the ratio of the two;
* ``upkeep``: what keeping the link costs — a 100,000-row upload's save of its completions
  (``lms.save_completions``) and a full sync of 100,000 badges (every page upserted, then the
  link rebuilt), each timed with and without the link's upkeep on a cache of that size;
* with ``--scale``: ``peak_memory_mb`` (the process's peak resident set) and
  ``cache_file_mb``.

Targets on 2 cores: every funnel query (all time, last 90 days) ≤ 0.25 s and ≤ 3 × the scan,
the page ≤ 1 s; at scale the all-time funnel ≤ 2 s; the upkeep ≤ 10 % each.  Pass a smaller
badge count as the first argument for a quick run (completions are 1.2 × badges).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from credly_ops import funnel, links  # noqa: E402
from credly_ops.schema import MIGRATIONS  # noqa: E402
from credly_ops.store import Store, to_db_time  # noqa: E402

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
SCALE = "--scale" in sys.argv[1:]
BADGES = int(ARGS[0]) if ARGS else (10_000_000 if SCALE else 1_000_000)
COMPLETIONS = BADGES * 6 // 5
UPKEEP_ROWS = 100_000
REPEATS = 5
PAGE_REPEATS = 3
ANCHOR = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
INDEXES = ("badges_email", "badges_updated", "completions_email", "ledger_key")

# 12 courses: 11 with a rule (two share a template; one template is archived), 1 unmapped
COURSES = [(f"course-{n:02d}", f"Course {n:02d}") for n in range(12)]
TEMPLATE_OF = {n: f"tpl-{min(n, 9):02d}" for n in range(11)}  # courses 9 and 10 share tpl-09
ARCHIVED = "tpl-07"
DOMAINS = [
    "acme.com",
    "globex.com",
    "initech.com",
    "hooli.com",
    "umbrella.com",
    "tyrell.com",
    "gmail.com",
    "outlook.com",
    "yahoo.com",
    "proton.me",
]


def build_world(path: Path, badges: int = BADGES, completions: int = COMPLETIONS) -> dict[str, int]:
    """Write the world into a fresh cache file; returns its row counts."""
    store = Store(path)
    anchor = to_db_time(ANCHOR)
    with store.session() as cur:
        # secondary indexes are rebuilt once at the end: far faster than row by row
        for index in INDEXES:
            cur.execute(f"DROP INDEX IF EXISTS {index}")
        cur.execute("SELECT setseed(0.42)")
        for tid in sorted(set(TEMPLATE_OF.values())):
            cur.execute(
                "INSERT INTO templates (id, name, state, synced_at) VALUES (?, ?, ?, ?)",
                [tid, f"Badge {tid[-2:]}", "archived" if tid == ARCHIVED else "active", anchor],
            )
        for n, (course_id, title) in enumerate(COURSES[:11]):
            cur.execute(
                "INSERT INTO badge_rules (course_id, course_title, template_id, template_name, "
                "method, require_pass, active_from, updated_at, updated_by) "
                "VALUES (?, ?, ?, ?, 'issue', TRUE, ?, ?, 'bench')",
                [
                    course_id,
                    title,
                    TEMPLATE_OF[n],
                    f"Badge {TEMPLATE_OF[n][-2:]}",
                    to_db_time(ANCHOR.replace(year=2023)),
                    anchor,
                ],
            )
        # completions: 500k students over 10 domains, 12 courses, two years, 5% failed
        cur.execute(
            """
            INSERT INTO completions (id, email, first_name, last_name, course_id, course_title,
                                     completed_at, status, score, source, loaded_at)
            SELECT 'c' || lpad(i::VARCHAR, 8, '0'),
                   's' || s || '@' || (?::VARCHAR[])[1 + s % 10],
                   'First' || s, 'Last' || s,
                   'course-' || lpad((i % 12)::VARCHAR, 2, '0'),
                   'Course ' || lpad((i % 12)::VARCHAR, 2, '0'),
                   ?::TIMESTAMP - to_seconds((random() * 730 * 86400)::BIGINT),
                   CASE WHEN random() < 0.05 THEN 'failed' ELSE 'passed' END,
                   70.0, 'bench', ?::TIMESTAMP
            FROM (SELECT i, (i * 7919) % 500000 AS s FROM generate_series(0, ? - 1) t(i))
            """,
            [DOMAINS, anchor, anchor, completions],
        )
        # badges: one per eligible completion (issued_at = completed_at), in the order the
        # ids fall, until the badge budget (less replacements and pre-integration) is spent
        replacements = badges // 100
        unlinked = badges // 200
        linked = badges - replacements - unlinked
        cur.execute(
            """
            INSERT INTO badges (id, template_id, template_name, recipient_email, first_name,
                                last_name, state, issued_at, state_updated_at, created_at,
                                updated_at, suppress_notification, synced_at)
            WITH eligible AS (
                SELECT c.id, c.email, c.first_name, c.last_name, c.completed_at, r.template_id,
                       random() AS roll, random() AS delay
                FROM completions c JOIN badge_rules r ON r.course_id = c.course_id
                WHERE c.status = 'passed'
                ORDER BY c.id
                LIMIT ?
            ), decided AS (
                SELECT *, CASE
                    WHEN roll < 0.25 THEN completed_at + to_seconds((delay * 86e3)::BIGINT)
                    WHEN roll < 0.42 THEN completed_at + to_seconds((86400 + delay * 259e3)::BIGINT)
                    WHEN roll < 0.55 THEN completed_at + to_seconds((345600 + delay * 3e6)::BIGINT)
                    WHEN roll < 0.57 THEN completed_at + to_seconds((delay * 500e3)::BIGINT)
                    WHEN roll < 0.58 THEN completed_at + to_seconds((delay * 3e6)::BIGINT)
                END AS changed,
                CASE WHEN roll < 0.55 THEN 'accepted' WHEN roll < 0.57 THEN 'rejected'
                     WHEN roll < 0.58 THEN 'revoked' ELSE 'pending' END AS st
                FROM eligible
            )
            SELECT 'b' || id, template_id, 'Badge ' || right(template_id, 2), email, first_name,
                   last_name,
                   CASE WHEN changed > ?::TIMESTAMP THEN 'pending' ELSE st END,
                   completed_at,
                   CASE WHEN changed > ?::TIMESTAMP THEN NULL ELSE changed END,
                   completed_at, coalesce(changed, completed_at), roll > 0.98, ?::TIMESTAMP
            FROM decided
            """,
            [linked, anchor, anchor, anchor],
        )
        # renewals: some live badges are replaced 30 days after issue, keeping their state
        cur.execute(
            """
            CREATE TEMP TABLE renewed AS
            SELECT id, 'r' || id AS new_id, issued_at + INTERVAL 30 DAY AS at
            FROM badges WHERE state IN ('pending', 'accepted')
              AND issued_at < ?::TIMESTAMP - INTERVAL 31 DAY
            ORDER BY id DESC LIMIT ?
            """,
            [anchor, replacements],
        )
        cur.execute(
            """
            INSERT INTO badges (id, template_id, template_name, recipient_email, first_name,
                                last_name, state, issued_at, state_updated_at, created_at,
                                updated_at, replaces_badge_id, suppress_notification, synced_at)
            SELECT n.new_id, b.template_id, b.template_name, b.recipient_email, b.first_name,
                   b.last_name, b.state, b.issued_at, b.state_updated_at, n.at, n.at, b.id,
                   b.suppress_notification, b.synced_at
            FROM renewed n JOIN badges b ON b.id = n.id
            """
        )
        cur.execute(
            """
            UPDATE badges SET state = 'replaced', state_updated_at = n.at, updated_at = n.at,
                              replacement_badge_id = n.new_id
            FROM renewed n WHERE badges.id = n.id
            """
        )
        # pre-integration badges: no completion behind them
        cur.execute(
            """
            INSERT INTO badges (id, template_id, template_name, recipient_email, state,
                                issued_at, state_updated_at, created_at, updated_at, synced_at)
            SELECT 'legacy' || i, 'tpl-0' || (i % 7), 'Badge 0' || (i % 7),
                   'legacy' || i || '@' || (?::VARCHAR[])[1 + i % 10],
                   CASE WHEN i % 5 = 0 THEN 'pending' ELSE 'accepted' END,
                   ?::TIMESTAMP - INTERVAL 800 DAY,
                   CASE WHEN i % 5 = 0 THEN NULL
                        ELSE ?::TIMESTAMP - INTERVAL 799 DAY END,
                   ?::TIMESTAMP - INTERVAL 800 DAY, ?::TIMESTAMP - INTERVAL 799 DAY, ?::TIMESTAMP
            FROM generate_series(1, ?) t(i)
            """,
            [DOMAINS, anchor, anchor, anchor, anchor, anchor, unlinked],
        )
        # twelve monthly syncs' snapshots (state counts of the badges issued by then)
        cur.execute(
            """
            INSERT INTO badge_snapshots (sync_id, taken_at, template_id, state, badges)
            SELECT k, ?::TIMESTAMP - to_days((30 * (12 - k))::INTEGER), template_id, state,
                   count(*)
            FROM badges, generate_series(1, 12) t(k)
            WHERE issued_at <= ?::TIMESTAMP - to_days((30 * (12 - k))::INTEGER)
            GROUP BY ALL
            """,
            [anchor, anchor],
        )
        # a bulk-issue ledger: failures and skips
        cur.execute(
            """
            INSERT INTO ledger (job_id, row_no, key, email, course_id, completed_at, template_id,
                                outcome, reason, status, error_class, updated_at)
            SELECT 'job-' || (i % 10), i, md5('k' || (i % 40000)), email, course_id, completed_at,
                   'tpl-01', CASE WHEN i % 3 = 0 THEN 'skip' ELSE 'issue' END,
                   CASE WHEN i % 3 = 0 THEN 'already_has_badge' ELSE 'new_badge' END,
                   CASE WHEN i % 3 = 0 THEN 'planned' WHEN i % 7 = 0 THEN 'failed'
                        ELSE 'succeeded' END,
                   CASE WHEN i % 7 = 0 THEN 'RateLimited' END,
                   ?::TIMESTAMP - to_seconds(i::BIGINT)
            FROM (SELECT row_number() OVER () AS i, email, course_id, completed_at
                  FROM completions LIMIT 50000)
            """,
            [anchor],
        )
        cur.execute(MIGRATIONS[1][1])
        counts = cur.execute(
            "SELECT (SELECT count(*) FROM badges), (SELECT count(*) FROM completions), "
            "(SELECT count(*) FROM ledger)"
        ).fetchone()
    assert counts is not None
    return {"badges": counts[0], "completions": counts[1], "ledger_rows": counts[2]}


def _median(func: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.duckdb"
        started = time.perf_counter()
        sizes = build_world(path)
        build_seconds = time.perf_counter() - started
        store = Store(path)
        started = time.perf_counter()
        with store.transaction() as cur:
            sizes["links"] = links.rebuild(cur)
        link_seconds = time.perf_counter() - started
        flt = funnel.FunnelFilter(now=ANCHOR)
        recent = funnel.FunnelFilter(
            since=(ANCHOR - timedelta(days=89)).date(), until=ANCHOR.date(), now=ANCHOR
        )

        def all_queries(chosen: funnel.FunnelFilter = flt) -> None:
            with store.session() as cur:
                funnel.full_report(cur, chosen)

        def floor() -> None:
            with store.session() as cur:
                cur.execute(
                    "SELECT count(*), count(DISTINCT recipient_email) FROM badges"
                ).fetchall()

        with store.held():  # the file stays open: time the queries, not opening it
            all_queries()  # warm the file cache once
            funnel_seconds = _median(all_queries, REPEATS)
            recent_seconds = _median(lambda: all_queries(recent), REPEATS)
            floor_seconds = _median(floor, REPEATS)
        out: dict[str, object] = {
            "benchmark": "funnel-scale" if SCALE else "funnel",
            **sizes,
            "build_seconds": round(build_seconds, 2),
            "link_build_seconds": round(link_seconds, 2),
            "funnel_seconds": round(funnel_seconds, 3),
            "funnel_last_90_days_seconds": round(recent_seconds, 3),
            "floor_seconds": round(floor_seconds, 4),
            "funnel_vs_floor": round(funnel_seconds / floor_seconds, 1),
            "funnel_last_90_days_vs_floor": round(recent_seconds / floor_seconds, 1),
        }
        if SCALE:
            out["cache_file_mb"] = round(path.stat().st_size / 2**20, 1)
            out["peak_memory_mb"] = round(_peak_memory_mb(), 1)
            out["targets"] = {"funnel_seconds": 2.0}
        else:
            page_seconds, page_errors, page_charts = _page_runs(path, Path(tmp))
            out |= {
                "page_seconds": round(page_seconds, 3),
                "page_exceptions": page_errors,
                "page_charts": page_charts,
                "upkeep": _upkeep(Path(tmp)),
                "targets": {
                    "funnel_seconds": 0.25,
                    "funnel_vs_floor": 3.0,
                    "page_seconds": 1.0,
                    "upkeep_extra": 0.10,
                },
            }
        out["repeats"] = {"funnel": REPEATS, "page": PAGE_REPEATS}
    print(json.dumps(out))


def _peak_memory_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _upkeep(tmp: Path) -> dict[str, float]:
    """The extra time the link costs a 100,000-row upload's save and a full sync of 100,000
    badges, each on a cache of that size, with and without its upkeep (medians)."""
    from credly_ops import lms
    from credly_ops import sync as sync_module
    from credly_ops.access import SYSTEM_ACTOR
    from credly_ops.models import BadgeTemplate, Completion
    from credly_ops.profile.reads import _badge_from_record

    path = tmp / "upkeep.duckdb"
    build_world(path, UPKEEP_ROWS, UPKEEP_ROWS * 6 // 5)
    store = Store(path)
    with store.transaction() as cur:
        links.rebuild(cur)
        cur.execute("SELECT * FROM badges")
        names = [d[0] for d in cur.description or ()]
        badges = [_badge_from_record(dict(zip(names, r, strict=True))) for r in cur.fetchall()]
        templates = [
            BadgeTemplate(id=t, name=n, state=st)
            for t, n, st in cur.execute("SELECT id, name, state FROM templates").fetchall()
        ]
        emails = [e for (e,) in cur.execute("SELECT DISTINCT email FROM completions").fetchall()]
    upload = [
        Completion(
            email=emails[n % len(emails)],
            first_name="Ada",
            last_name="Lovelace",
            course_id=f"course-{n % 12:02d}",
            completed_at=ANCHOR - timedelta(days=1, seconds=n),
        )
        for n in range(UPKEEP_ROWS)
    ]

    class Pages:
        def list_templates(self) -> list[BadgeTemplate]:
            return templates

        def high_volume_pages(self) -> list[list[object]]:
            return [badges[i : i + 1000] for i in range(0, len(badges), 1000)]

        def badges_page(self, page: int, *, sort: str) -> tuple[list[object], object]:
            raise AssertionError("a full sync reads the high-volume pages")

    def save() -> None:
        with store.transaction() as cur:
            lms.save_completions(cur, upload, source="bench-upload", loaded_at=ANCHOR)
            cur.execute("DELETE FROM completions WHERE source = 'bench-upload'")

    def full_sync() -> None:
        sync_module.sync(Pages(), store, full=True, actor=SYSTEM_ACTOR)  # type: ignore[arg-type]

    timings: dict[str, float] = {}
    for name, step in (("upload_save", save), ("full_sync", full_sync)):
        with_link = _median(step, 3)
        keep = (lms.relink, sync_module.rebuild, sync_module.relink)
        lms.relink = sync_module.rebuild = sync_module.relink = lambda *a, **k: 0  # type: ignore[assignment]
        try:
            without = _median(step, 3)
        finally:
            lms.relink, sync_module.rebuild, sync_module.relink = keep  # type: ignore[assignment]
        timings[f"{name}_seconds"] = round(with_link, 3)
        timings[f"{name}_without_link_seconds"] = round(without, 3)
        timings[f"{name}_extra"] = round(with_link / without - 1, 3)
    return timings


def _page_runs(path: Path, tmp: Path) -> tuple[float, int, int]:
    """Median cold AppTest run of the page (its default view: the last 90 days) against the
    cache at ``path``; also the exceptions and charts of the last run."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from credly_ops import config

    os.environ["CREDLY_OPS_DB"] = str(path)
    os.environ["CREDLY_ENV"] = "demo"
    config.DEFAULT_SECRETS_PATH = tmp / "no-secrets.toml"  # only this cache, whatever is set up
    import ui

    times: list[float] = []
    app = None
    for _ in range(PAGE_REPEATS):
        ui.workspace.clear()
        st.cache_data.clear()
        app = AppTest.from_file(str(ROOT / "pages" / "funnel.py"), default_timeout=120)
        started = time.perf_counter()
        app.run()
        times.append(time.perf_counter() - started)
    assert app is not None
    return statistics.median(times), len(app.exception), len(app.get("plotly_chart"))


if __name__ == "__main__":
    main()

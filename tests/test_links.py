"""The completion → badge link: the engine's matching rule in SQL, each outcome, kept up to date
where the facts arrive, and the same answer on the Funnel page and the Student preview."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from credly_ops import funnel, ledger, links
from credly_ops.access import SYSTEM_ACTOR
from credly_ops.funnel import FunnelFilter
from credly_ops.issuance.decide import (
    carries_completion,
    carries_completion_sql,
    compute_expires_at,
    expires_at_sql,
)
from credly_ops.lms import save_completions
from credly_ops.models import BadgeRule, BadgeTemplate, Completion, IssuedBadge, TemplateRef
from credly_ops.profile import build_profile, load_profile
from credly_ops.rules import replace_rules
from credly_ops.store import Store, to_db_time
from credly_ops.sync import upsert_badges, upsert_templates

NOW = datetime(2024, 6, 30, 12, tzinfo=UTC)
WHEN = datetime(2024, 6, 3, 9, 41, tzinfo=UTC)


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def badge(
    id: str,
    email: str,
    issued: datetime,
    state: str = "pending",
    *,
    template: str = "T_A",
    replaces: str | None = None,
    replacement: str | None = None,
    expires: datetime | None = None,
    created: datetime | None = None,
) -> IssuedBadge:
    return IssuedBadge(
        id=id,
        state=state,
        recipient_email=email,
        issued_to_first_name="Ada",
        issued_to_last_name="Lovelace",
        issued_at=issued,
        created_at=created or issued,
        updated_at=created or issued,
        state_updated_at=None if state == "pending" else (created or issued) + timedelta(hours=3),
        expires_at=expires,
        badge_template=TemplateRef(id=template, name=template),
        replaces_badge_id=replaces,
        replacement_badge_id=replacement,
    )


def completion(email: str, when: datetime, course: str = "C1", **kw: Any) -> Completion:
    return Completion(
        email=email,
        first_name="Ada",
        last_name="Lovelace",
        course_id=course,
        completed_at=when,
        **kw,
    )


RULES = [
    BadgeRule(course_id="C1", template_id="T_A"),  # issue, one badge per student
    BadgeRule(course_id="C2", template_id="T_R", method="issue_or_update", expiration_months=12),
]


def store_with(
    path: Path,
    badges: list[IssuedBadge],
    completions: list[Completion],
    rules: list[BadgeRule] = RULES,
) -> Store:
    store = Store(path)
    replace_rules(store, rules, actor=SYSTEM_ACTOR)
    with store.transaction() as cur:
        upsert_templates(
            cur,
            [BadgeTemplate(id="T_A", name="Alpha"), BadgeTemplate(id="T_R", name="Renewable")],
            synced_at=NOW,
        )
        upsert_badges(cur, badges, synced_at=NOW)
        save_completions(cur, completions, source="test", loaded_at=NOW)
    return store


def link_rows(store: Store) -> list[tuple[Any, ...]]:
    with store.session() as cur:
        return cur.execute(
            "SELECT email, completed_at, outcome, reason, root_id, badge_id FROM completion_links "
            "ORDER BY email, completed_at NULLS LAST, root_id"
        ).fetchall()


def summary(store: Store) -> funnel.FunnelSummary:
    return funnel.summary(store, FunnelFilter(now=NOW))


# -- the engine's rule, in SQL -----------------------------------------------------------------

MOMENTS = [
    at(2024, 6, 3),
    at(2024, 6, 3, 0, 0, 0) + timedelta(microseconds=1),
    at(2024, 6, 3, 9, 41),
    at(2024, 6, 3, 9, 41) + timedelta(microseconds=500_000),
    at(2024, 6, 3, 9, 41, 1),
    at(2024, 6, 3, 23, 59, 59) + timedelta(microseconds=999_999),
    at(2024, 6, 4),
    at(2024, 6, 2, 23, 59, 59),
]


def test_the_link_matches_as_the_engine_does() -> None:
    cases = [
        (issued, done, date_only)
        for issued, done in itertools.product(MOMENTS, MOMENTS)
        for date_only in (False, True)
    ]
    con = duckdb.connect()
    con.execute("CREATE TABLE c (i TIMESTAMP, d TIMESTAMP, o BOOLEAN)")
    con.executemany(
        "INSERT INTO c VALUES (?, ?, ?)",
        [[to_db_time(i), to_db_time(d), o] for i, d, o in cases],
    )
    sql = f"SELECT {carries_completion_sql('i', 'd', 'o')} FROM c ORDER BY rowid"
    got = [r[0] for r in con.execute(sql).fetchall()]
    expected = [carries_completion(i, d, date_only=o) for i, d, o in cases]
    assert got == expected
    assert any(expected) and not all(expected)


@pytest.mark.parametrize(
    ("when", "months", "days"),
    [
        (at(2024, 1, 31, 10), 1, 0),  # Feb 29 in a leap year
        (at(2023, 1, 31, 10), 1, 0),  # Feb 28
        (at(2024, 3, 31, 23, 59, 59), 1, 3),
        (at(2024, 6, 3, 9, 41), 0, 45),
        (at(2024, 6, 3, 9, 41), 0, 0),
        (at(2024, 8, 31), 18, 1),
    ],
)
def test_the_renewal_expiry_is_the_engines(when: datetime, months: int, days: int) -> None:
    rule = BadgeRule(course_id="C", template_id="T", expiration_months=months, expiration_days=days)
    row = (
        duckdb.connect()
        .execute(
            f"SELECT {expires_at_sql('?::TIMESTAMP', str(months), str(days))}", [to_db_time(when)]
        )
        .fetchone()
    )
    expected = compute_expires_at(when, rule)
    assert row is not None
    assert row[0] == (None if expected is None else to_db_time(expected))


# -- what is wrong in issue 13, each case --------------------------------------------------------


def test_a_sub_second_completion_is_linked_to_its_badge(tmp_path: Path) -> None:
    store = store_with(
        tmp_path / "c.duckdb",
        [badge("b1", "ada@example.com", WHEN, "accepted")],
        [completion("ada@example.com", WHEN + timedelta(microseconds=500_000))],
    )
    assert [r[2:] for r in link_rows(store)] == [("issued", "same_second", "b1", "b1")]
    result = summary(store)
    assert (result.eligible, result.issued, result.accepted, result.issued_outside) == (1, 1, 1, 0)
    people = funnel.students(store, FunnelFilter(now=NOW))
    assert people["outcome"].tolist() == ["issued"]


def test_a_date_only_completion_is_linked_to_its_days_badge(tmp_path: Path) -> None:
    store = store_with(
        tmp_path / "c.duckdb",
        [badge("b1", "ada@example.com", WHEN)],
        [completion("ada@example.com", at(2024, 6, 3), date_only=True)],
    )
    assert [r[2:4] for r in link_rows(store)] == [("issued", "same_day")]
    assert summary(store).issued == 1


def test_a_renewal_counts_once_for_its_completion_and_both_pages_say_renewed(
    tmp_path: Path,
) -> None:
    first, again = at(2023, 5, 1, 9), at(2024, 5, 2, 9)
    store = store_with(
        tmp_path / "c.duckdb",
        [
            badge(
                "r1",
                "ada@example.com",
                first,
                "replaced",
                template="T_R",
                expires=at(2024, 5, 1, 9),
                replacement="r2",
            ),
            badge(
                "r2",
                "ada@example.com",
                first,
                "accepted",
                template="T_R",
                replaces="r1",
                expires=at(2025, 5, 2, 9),
                created=again,
            ),
        ],
        [
            completion("ada@example.com", first, "C2"),
            completion("ada@example.com", again, "C2"),
        ],
    )
    rows = link_rows(store)
    assert [r[2:] for r in rows] == [
        ("issued", "same_second", "r1", "r2"),
        ("renewed", "renewal", "r1", "r2"),
    ]
    result = summary(store)
    assert (result.completions, result.eligible, result.issued, result.renewed) == (2, 2, 2, 1)
    assert (result.issued_outside, result.skipped) == (0, {})
    people = funnel.students(store, FunnelFilter(now=NOW))
    by_date = dict(zip(people["completed_at"], people["outcome"], strict=True))
    assert by_date[again.replace(tzinfo=None)] == "renewed"
    profile = load_profile(store, "ada@example.com", web_url="https://www.credly.com", now=NOW)
    verdicts = {e.completed_at: (e.verdict, e.badge_id) for e in profile.explanations}
    assert verdicts[again] == ("renewed", "r2")
    assert verdicts[first] == ("issued", "r2")


def test_re_running_a_file_leaves_the_skip_counts_unchanged(tmp_path: Path) -> None:
    people = [f"s{n}@example.com" for n in range(5)]
    store = store_with(
        tmp_path / "c.duckdb",
        [badge(f"b{n}", email, WHEN + timedelta(minutes=n)) for n, email in enumerate(people)],
        [completion(email, WHEN + timedelta(minutes=n)) for n, email in enumerate(people)],
    )
    before = summary(store)
    for job in ("job-1", "job-2"):  # the same file twice: every row already issued
        with store.transaction() as cur:
            ledger.insert_rows(
                cur, job, [_skip(job, n, email) for n, email in enumerate(people)], NOW
            )
        after = summary(store)
        assert after.skipped == before.skipped == {}
        assert (after.issued, after.failed) == (5, 0)


def _skip(job: str, n: int, email: str) -> ledger.NewRow:
    return ledger.NewRow(
        row_no=n + 1,
        key=f"{job}-{n}",
        email=email,
        first_name="Ada",
        last_name="Lovelace",
        course_id="C1",
        course_title="",
        completed_at=WHEN + timedelta(minutes=n),
        date_only=False,
        success_status=None,
        template_id="T_A",
        outcome="skip",
        reason="already_issued",
        flags=frozenset(),
        issued_at=None,
        expires_at=None,
        target_badge_id=None,
        matched_badge_id=f"b{n}",
    )


def test_badges_with_no_known_completion_are_counted_apart(tmp_path: Path) -> None:
    store = store_with(
        tmp_path / "c.duckdb",
        [
            badge("b1", "ada@example.com", WHEN, "accepted"),
            badge("n1", "native@example.com", at(2023, 1, 1), "accepted"),
            badge("n2", "hand@example.com", at(2023, 2, 1)),
        ],
        [completion("ada@example.com", WHEN)],
    )
    result = summary(store)
    assert (result.completions, result.issued, result.accepted) == (1, 1, 1)
    assert (result.issued_outside, result.accepted_outside) == (2, 1)
    assert result.outside_acceptance_rate == 0.5 and result.acceptance_rate == 1.0
    assert [r[2] for r in link_rows(store)] == ["issued", "outside", "outside"]


def test_a_retake_on_a_one_badge_template_is_a_blocked_retake(tmp_path: Path) -> None:
    store = store_with(
        tmp_path / "c.duckdb",
        [badge("b1", "ada@example.com", WHEN, "accepted")],
        [
            completion("ada@example.com", WHEN),
            completion("ada@example.com", WHEN + timedelta(days=20)),  # a retake
            completion("bob@example.com", WHEN),  # eligible, nothing sent yet
        ],
    )
    result = summary(store)
    assert (result.eligible, result.issued, result.blocked_retakes) == (3, 1, 1)
    assert result.skipped == {}
    people = funnel.students(store, FunnelFilter(now=NOW))
    assert sorted(people["outcome"]) == ["blocked_retake", "issued", "not_issued"]


# -- kept up to date where the facts arrive ----------------------------------------------------


def test_the_link_follows_completions_badges_and_ledger_rows(tmp_path: Path) -> None:
    store = store_with(tmp_path / "c.duckdb", [], [])
    with store.transaction() as cur:
        save_completions(
            cur,
            [completion("ada@example.com", WHEN), completion("bob@example.com", WHEN)],
            source="skilljar",
            loaded_at=NOW,
        )
    assert [r[2] for r in link_rows(store)] == ["none", "none"]
    with store.transaction() as cur:  # a sync page brings Ada's badge
        upsert_badges(cur, [badge("b1", "ada@example.com", WHEN)], synced_at=NOW)
    assert [r[2] for r in link_rows(store)] == ["issued", "none"]
    with store.transaction() as cur:  # Bob's issue fails
        row = _skip("job-1", 0, " Bob@Example.com")  # as the file spelt it
        ledger.insert_rows(cur, "job-1", [_issue(row)], NOW)
        ledger.finish_rows(
            cur, "job-1", [ledger.Finish(row_no=1, status="failed", error_class="server")], NOW
        )
    assert [r[2] for r in link_rows(store)] == ["issued", "failed"]
    assert summary(store).failed == 1
    with store.session() as cur:
        incremental = _without_stamp(cur)
        links.rebuild(cur)
        assert _without_stamp(cur) == incremental


def _issue(row: ledger.NewRow) -> ledger.NewRow:
    from dataclasses import replace

    return replace(
        row, outcome="issue", reason="new_badge", matched_badge_id=None, completed_at=WHEN
    )


def _without_stamp(cur: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    columns = ", ".join(c for c in links.LINK_COLUMNS if c != "linked_at")
    return cur.execute(f"SELECT {columns} FROM completion_links ORDER BY ALL").fetchall()


def test_an_older_cache_gets_its_link_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    store = store_with(
        path, [badge("b1", "ada@example.com", WHEN)], [completion("ada@example.com", WHEN)]
    )
    with store.transaction() as cur:  # as a cache from before the link
        cur.execute("DROP TABLE completion_links")
        cur.execute("DROP INDEX completions_email")
        cur.execute("ALTER TABLE completions DROP COLUMN date_only")
        cur.execute("CREATE INDEX completions_email ON completions (email)")
        cur.execute("DELETE FROM schema_version WHERE version = 9")
    reopened = Store(path)
    assert [r[2:] for r in link_rows(reopened)] == [("issued", "same_second", "b1", "b1")]


def test_the_preview_without_a_link_still_matches_by_itself() -> None:
    profile = build_profile(
        "ada@example.com",
        badges=[badge("b1", "ada@example.com", WHEN)],
        completions=[completion("ada@example.com", WHEN)],
        rules={r.course_id: r for r in RULES},
        templates={"T_A": BadgeTemplate(id="T_A", name="Alpha")},
        ledger=[],
        table_enabled=True,
        web_url="https://www.credly.com",
        now=NOW,
    )
    assert profile.explanations[0].verdict == "issued"


def test_sync_relink_rebuilds_the_link_from_the_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from credly_ops import cli

    path = tmp_path / "c.duckdb"
    store = store_with(
        path, [badge("b1", "ada@example.com", WHEN)], [completion("ada@example.com", WHEN)]
    )
    with store.transaction() as cur:
        cur.execute("DELETE FROM completion_links")  # as if it had been lost
    assert link_rows(store) == []
    assert cli.main(["--db", str(path), "sync", "--relink", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["links"] == 1
    assert [r[2:] for r in link_rows(store)] == [("issued", "same_second", "b1", "b1")]


def test_the_funnel_equals_an_independent_pandas_computation_on_every_case(
    tmp_path: Path,
) -> None:
    from tests.test_funnel_page import _independent

    first, again = at(2023, 5, 1, 9), at(2024, 5, 2, 9)
    path = tmp_path / "cases.duckdb"
    store = store_with(
        path,
        [
            badge("b1", "ada@example.com", WHEN, "accepted"),  # its completion: sub-second
            badge("b2", "bea@example.com", at(2024, 6, 4, 15), "pending"),  # date-only
            badge(
                "r1",
                "cy@example.com",
                first,
                "replaced",
                template="T_R",
                expires=at(2024, 5, 1, 9),
                replacement="r2",
            ),
            badge(
                "r2",
                "cy@example.com",
                first,
                "accepted",
                template="T_R",
                replaces="r1",
                expires=at(2025, 5, 2, 9),
                created=again,
            ),  # renewed by cy's second
            badge("n1", "native@example.com", at(2023, 1, 1), "accepted"),  # outside
            badge("n2", "hand@example.com", at(2023, 2, 1), "rejected"),  # outside
        ],
        [
            completion("ada@example.com", WHEN + timedelta(microseconds=500_000)),
            completion("ada@example.com", WHEN + timedelta(days=20)),  # a blocked retake
            completion("bea@example.com", at(2024, 6, 4), date_only=True),
            completion("cy@example.com", first, "C2"),
            completion("cy@example.com", again, "C2"),
            completion("dan@example.com", WHEN),  # its issue failed
            completion("eve@example.com", WHEN, "C9"),  # no rule
        ],
    )
    with store.transaction() as cur:
        row = _issue(_skip("job-1", 0, "dan@example.com"))
        ledger.insert_rows(cur, "job-1", [row], NOW)
        ledger.finish_rows(
            cur, "job-1", [ledger.Finish(row_no=1, status="failed", error_class="server")], NOW
        )
    got = summary(store).as_json()
    expected = _independent(path, NOW)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key
    assert (got["issued"], got["renewed"], got["issued_outside"], got["failed"]) == (4, 1, 2, 1)
    assert (got["blocked_retakes"], got["skipped"]) == (1, {"no_rule": 1})

"""plan(): a whole upload, decided row by row with what only the whole upload can know."""

from __future__ import annotations

import gc
import hashlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credly_ops.issuance import (
    FLAG_ADDS_EXPIRY,
    FLAG_ALREADY_EXPIRED,
    FLAG_BACKFILL,
    FLAG_PREVIOUSLY_REJECTED,
    FLAG_PREVIOUSLY_REVOKED,
    INVALID_REASONS,
    ISSUE_REASONS,
    SKIP_REASONS,
    UPDATE_REASONS,
    DecideOptions,
    Plan,
    PlannedRow,
    decide,
    idempotency_key,
    is_planned_id,
    plan,
    planned_badge_id,
)
from credly_ops.issuance.plan import InvalidRow
from credly_ops.models import BadgeRule, BadgeTemplate, Completion, IssuedBadge
from credly_ops.reasons import REASONS
from tests.issuance.test_decide import (
    ACTIVE_FROM,
    EMAIL,
    NOW,
    make_badge,
    make_completion,
    make_rule,
    make_template,
)

T0 = datetime(2024, 2, 1, 9, 0, tzinfo=UTC)


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


def row(number: int, **changes: Any) -> Completion:
    changes.setdefault("completed_at", day(number))
    return make_completion(row=number, **changes)


def make_plan(
    completions: list[Completion],
    *,
    rules: list[BadgeRule] | None = None,
    templates: list[BadgeTemplate] | None = None,
    badges: list[IssuedBadge] | None = None,
    **kw: Any,
) -> Plan:
    rules = rules if rules is not None else [make_rule()]
    templates = templates if templates is not None else [make_template()]
    by_email: dict[str, list[IssuedBadge]] = {}
    for badge in badges or []:
        by_email.setdefault(badge.recipient_email, []).append(badge)
    return plan(
        completions,
        {r.course_id: r for r in rules},
        {t.id: t for t in templates},
        by_email,
        now=kw.pop("now", NOW),
        **kw,
    )


def outcomes(p: Plan) -> list[tuple[int, str, str]]:
    return [(r.row, r.outcome, r.reason) for r in p.rows]


# ---------------------------------------------------------------- shape and summaries


def test_rows_come_back_in_input_row_order_with_summaries() -> None:
    completions = [
        row(4, course_id="NOPE"),
        row(2),
        row(3, email="bad"),
        row(5, status="failed"),
    ]
    p = make_plan(completions)
    assert outcomes(p) == [
        (2, "issue", "new_badge"),
        (3, "invalid", "bad_email"),
        (4, "skip", "no_rule"),
        (5, "skip", "not_passed"),
    ]
    assert p.counts() == {"issue": 1, "update": 0, "skip": 2, "invalid": 1}
    assert p.reasons() == {"bad_email": 1, "new_badge": 1, "no_rule": 1, "not_passed": 1}
    assert len(p) == 4


def test_planned_row_carries_the_completion_and_the_decision() -> None:
    p = make_plan([row(2, email="  Ada@Example.com ", course_title="")])
    (only,) = p.rows
    assert only.email == "Ada@Example.com"
    assert only.email_key == EMAIL
    assert (only.course_id, only.course_title, only.template_id) == ("C1", "Intro to Engines", "T1")
    assert (only.first_name, only.last_name) == ("Ada", "Lovelace")
    assert only.completed_at == only.issued_at == day(2)
    assert only.expires_at == datetime(2025, 2, 3, 9, 0, tzinfo=UTC)
    assert only.planned_badge_id == "planned:2"
    assert only.sends
    assert p.actionable() == [only]


def test_a_row_as_a_record() -> None:
    (only,) = make_plan([row(2, completed_at=ACTIVE_FROM - timedelta(days=3))]).rows
    record = only.as_record()
    assert record["key"] == only.key
    assert record["flags"] == ["backfill"]
    assert record["row"] == 2 and record["outcome"] == "issue"
    assert set(record) == set(PlannedRow._fields) | {"key"}


def test_rows_without_numbers_are_numbered_like_a_file() -> None:
    completions = [make_completion(completed_at=day(i)) for i in range(3)]
    assert [r.row for r in make_plan(completions).rows] == [2, 3, 4]


def test_reader_errors_merge_into_row_order() -> None:
    p = make_plan(
        [row(2), row(5, email="grace@example.com")],
        invalid_rows=[(4, "bad_date", "completed_at: 'soon' is not a date"), (3, "x", "y")],
    )
    assert [(r.row, r.outcome, r.reason) for r in p.rows] == [
        (2, "issue", "new_badge"),
        (3, "invalid", "x"),
        (4, "invalid", "bad_date"),
        (5, "issue", "new_badge"),
    ]
    assert p.rows[2].detail == "completed_at: 'soon' is not a date"
    assert p.counts()["invalid"] == 2


def test_an_invalid_row_carries_what_the_file_said() -> None:
    said = InvalidRow(
        3,
        "bad_email",
        "Email: 'ada(at)example.com' is not an email address.",
        email="ada(at)example.com",
        course_id="C1",
        completed_at=T0,
        first_name="Ada",
        last_name="Lovelace",
    )
    (only,) = make_plan([], invalid_rows=[said]).rows
    assert (only.row, only.outcome, only.reason, only.detail) == (3, "invalid", *said[1:3])
    assert (only.email, only.course_id, only.completed_at) == ("ada(at)example.com", "C1", T0)
    assert (only.first_name, only.last_name, only.template_id) == ("Ada", "Lovelace", "")
    assert not only.sends and only.planned_badge_id is None


def test_plan_does_not_touch_the_callers_badges() -> None:
    badges = [make_badge("B1", "accepted")]
    by_email = {EMAIL: badges}
    before = [b.model_dump() for b in badges]
    p = plan(
        [row(2), row(3)],
        {"C1": make_rule(method="update")},
        {"T1": make_template()},
        by_email,
        now=NOW,
    )
    assert [r.outcome for r in p.rows] == ["update", "update"]
    assert [b.model_dump() for b in by_email[EMAIL]] == before


def test_planned_rows_are_immutable() -> None:
    (only,) = make_plan([row(2)]).rows
    with pytest.raises(AttributeError):
        only.outcome = "skip"  # type: ignore[misc]
    assert only.outcome == "issue"


# ---------------------------------------------------------------- duplicate rows (rule 8)


def test_repeated_rows_are_decided_once() -> None:
    moment = day(1)
    completions = [
        row(2, completed_at=moment),
        row(3, email=" ADA@example.com ", completed_at=moment + timedelta(microseconds=300)),
        row(4, completed_at=moment + timedelta(seconds=1)),  # another moment: not a repeat
        row(5, course_id="", course_title="intro to engines", completed_at=moment),  # same course
    ]
    p = make_plan(completions, templates=[make_template(allow_duplicate_badges=True)])
    assert outcomes(p) == [
        (2, "issue", "new_badge"),
        (3, "skip", "duplicate_row"),
        (4, "issue", "retake"),
        (5, "skip", "duplicate_row"),
    ]


def test_a_repeat_of_an_invalid_row_stays_invalid() -> None:
    p = make_plan(
        [row(2, email="bad", completed_at=day(1)), row(3, email="bad", completed_at=day(1))]
    )
    assert [r.reason for r in p.rows] == ["bad_email", "bad_email"]


def test_repeats_of_an_unmapped_course_are_duplicates() -> None:
    p = make_plan(
        [row(2, course_id="X", completed_at=day(1)), row(3, course_id="X", completed_at=day(1))]
    )
    assert [r.reason for r in p.rows] == ["no_rule", "duplicate_row"]


# ---------------------------------------------------------------- order and simulation


def test_retakes_apply_in_completion_order_and_chain_updates() -> None:
    """Three retakes, listed newest first: the oldest issues, the others renew in turn."""
    rule = make_rule(method="issue_or_update", expiration_months=12)
    completions = [
        row(2, completed_at=datetime(2024, 3, 1, tzinfo=UTC)),
        row(3, completed_at=datetime(2023, 3, 1, tzinfo=UTC)),
        row(4, completed_at=datetime(2022, 3, 1, tzinfo=UTC)),
    ]
    p = make_plan(completions, rules=[rule], options=DecideOptions(include_expired=True))
    by_row = {r.row: r for r in p.rows}
    assert outcomes(p) == [
        (2, "update", "renewal"),
        (3, "update", "renewal"),
        (4, "issue", "new_badge"),
    ]
    assert by_row[4].issued_at == datetime(2022, 3, 1, tzinfo=UTC)
    assert by_row[3].target_badge_id == "planned:4"
    assert by_row[2].target_badge_id == "planned:3"
    # an update keeps the original issued_at and takes its expiry from its own completion
    assert by_row[3].issued_at == by_row[2].issued_at == datetime(2022, 3, 1, tzinfo=UTC)
    assert by_row[3].expires_at == datetime(2024, 3, 1, tzinfo=UTC)
    assert by_row[2].expires_at == datetime(2025, 3, 1, tzinfo=UTC)
    assert [r.row for r in p.actionable()] == [4, 3, 2]
    # rule active from 2024-01-01: the two older completions are backfills
    assert [FLAG_BACKFILL in r.flags for r in p.rows] == [False, True, True]
    # the badges rows 3 and 4 give expire before now: sent only as the CSM opted in
    assert [FLAG_ALREADY_EXPIRED in r.flags for r in p.rows] == [False, True, True]


def test_retakes_whose_badges_would_already_be_expired_are_skipped() -> None:
    """Rule 11 in a plan: the expired retakes send nothing, the live one issues."""
    rule = make_rule(method="issue_or_update", expiration_months=12)
    completions = [
        row(2, completed_at=datetime(2024, 3, 1, tzinfo=UTC)),
        row(3, completed_at=datetime(2023, 3, 1, tzinfo=UTC)),
        row(4, completed_at=datetime(2022, 3, 1, tzinfo=UTC)),
    ]
    p = make_plan(completions, rules=[rule])
    assert outcomes(p) == [
        (2, "issue", "new_badge"),
        (3, "skip", "already_expired"),
        (4, "skip", "already_expired"),
    ]
    assert p.rows[0].expires_at == datetime(2025, 3, 1, tzinfo=UTC)


def test_an_earlier_planned_issue_blocks_a_second_one() -> None:
    p = make_plan([row(3), row(2)])
    assert outcomes(p) == [(2, "issue", "new_badge"), (3, "skip", "already_has_badge")]
    assert p.rows[1].matched_badge_id == "planned:2"


def test_a_template_allowing_duplicates_issues_each_retake() -> None:
    p = make_plan([row(2), row(3), row(4)], templates=[make_template(allow_duplicate_badges=True)])
    assert [r.reason for r in p.rows] == ["new_badge", "retake", "retake"]
    assert [r.planned_badge_id for r in p.rows] == ["planned:2", "planned:3", "planned:4"]


def test_updates_chain_from_a_real_badge() -> None:
    existing = make_badge("REAL", "accepted", issued_at=datetime(2022, 5, 5, tzinfo=UTC))
    p = make_plan([row(2), row(3)], rules=[make_rule(method="update")], badges=[existing])
    assert [r.target_badge_id for r in p.rows] == ["REAL", "planned:2"]
    assert [r.issued_at for r in p.rows] == [datetime(2022, 5, 5, tzinfo=UTC)] * 2
    assert is_planned_id(p.rows[1].target_badge_id)
    assert not is_planned_id(p.rows[0].target_badge_id)


def test_an_update_then_the_same_expiry_is_up_to_date() -> None:
    """Two completions on one day under a days-free rule give the same expiry: renew once."""
    existing = make_badge("REAL", "accepted")
    rule = make_rule(method="update", expiration_months=1)
    p = make_plan(
        [
            row(2, completed_at=datetime(2024, 1, 31, tzinfo=UTC)),
            row(3, course_id="C2", completed_at=datetime(2024, 1, 30, tzinfo=UTC)),
        ],
        rules=[
            rule,
            make_rule(
                course_id="C2",
                method="update",
                expiration_months=1,
                expiration_days=0,
                course_title="",
            ),
        ],
        badges=[existing],
        now=datetime(2024, 2, 15, tzinfo=UTC),
    )
    # Jan 30 + 1 month and Jan 31 + 1 month both clamp to Feb 29
    assert outcomes(p) == [(2, "skip", "already_up_to_date"), (3, "update", "renewal")]
    assert p.rows[0].matched_badge_id == "planned:3"


def test_two_courses_on_one_template_share_the_students_badge() -> None:
    rules = [make_rule(), make_rule(course_id="C2", course_title="Engines, again")]
    p = make_plan(
        [row(2, course_id="C2", completed_at=day(1)), row(3, completed_at=day(1))],
        rules=rules,
        templates=[make_template(allow_duplicate_badges=True)],
    )
    assert outcomes(p) == [(2, "issue", "new_badge"), (3, "skip", "already_issued")]
    assert p.rows[1].matched_badge_id == "planned:2"


def test_students_are_simulated_apart() -> None:
    p = make_plan([row(2), row(3, email="grace@example.com")])
    assert [r.reason for r in p.rows] == ["new_badge", "new_badge"]


def _apply(p: Plan, badges: list[IssuedBadge]) -> list[IssuedBadge]:
    """What Credly holds after the plan's rows were sent, in order."""
    real: dict[str, str] = {}
    result = list(badges)
    for r in p.actionable():
        new_id = f"sent-{r.row}"
        assert r.planned_badge_id is not None
        real[r.planned_badge_id] = new_id
        if r.outcome == "update":
            target = real.get(r.target_badge_id or "", r.target_badge_id)
            result = [
                b.model_copy(update={"state": "replaced"}) if b.id == target else b for b in result
            ]
        assert r.issued_at is not None
        result.append(
            make_badge(
                new_id,
                "pending",
                issued_at=r.issued_at,
                expires_at=r.expires_at,
                template_id=r.template_id,
                email=r.email_key,
            )
        )
    return result


def test_running_the_same_file_twice_sends_nothing_the_second_time() -> None:
    rules = [
        make_rule(method="issue_or_update"),
        make_rule(course_id="C2", template_id="T2", course_title="Other"),
    ]
    templates = [make_template(), make_template(id="T2", allow_duplicate_badges=True)]
    existing = [make_badge("OLD", "accepted", issued_at=datetime(2021, 1, 1, tzinfo=UTC))]
    completions = [
        row(2),
        row(3, completed_at=day(40)),
        row(4, email="grace@example.com", course_id="C2"),
        row(5, email="grace@example.com", course_id="C2", completed_at=day(60)),
        row(6, email="alan@example.com"),
    ]
    first = make_plan(completions, rules=rules, templates=templates, badges=existing)
    assert first.counts() == {"issue": 3, "update": 2, "skip": 0, "invalid": 0}
    after = _apply(first, existing)
    second = make_plan(completions, rules=rules, templates=templates, badges=after)
    assert second.counts()["issue"] == second.counts()["update"] == 0
    assert second.reasons() == {"already_issued": 3, "already_up_to_date": 2}


# ---------------------------------------------------------------- rule 9 and rule 10


def test_backfill_rows_are_flagged_in_bulk_and_skipped_automatically() -> None:
    early = row(2, completed_at=ACTIVE_FROM - timedelta(days=1))
    late = row(3, email="grace@example.com", completed_at=ACTIVE_FROM)
    bulk = make_plan([early, late])
    assert [r.flags for r in bulk.rows] == [frozenset({FLAG_BACKFILL}), frozenset()]
    assert bulk.flag_counts() == {FLAG_BACKFILL: 1}
    automatic = make_plan([early, late], mode="automatic")
    assert outcomes(automatic) == [(2, "skip", "before_active_from"), (3, "issue", "new_badge")]
    assert automatic.mode == "automatic"


@pytest.mark.parametrize(
    ("state", "options", "flag"),
    [
        ("rejected", DecideOptions(include_rejected=True), FLAG_PREVIOUSLY_REJECTED),
        ("revoked", DecideOptions(include_revoked=True), FLAG_PREVIOUSLY_REVOKED),
    ],
)
def test_a_dead_badge_of_the_same_completion_is_skipped_unless_opted_in(
    state: str, options: DecideOptions, flag: str
) -> None:
    """Re-running a cumulative export does not undo a revocation; a new completion of the same
    student is issued as usual, unflagged; with the opt-in, the old one is issued anew, once."""
    dead = make_badge("R1", state, issued_at=day(2))
    completions = [
        row(2),
        row(3, course_id="C2", completed_at=day(2)),
        row(4, completed_at=day(2) + timedelta(hours=1)),
    ]
    rules = [make_rule(), make_rule(course_id="C2", course_title="")]
    templates = [make_template(allow_duplicate_badges=True)]
    skipped = make_plan(completions, rules=rules, templates=templates, badges=[dead])
    assert outcomes(skipped) == [
        (2, "skip", f"previously_{state}"),
        (3, "skip", f"previously_{state}"),  # the same completion through another course
        (4, "issue", "new_badge"),
    ]
    assert skipped.rows[0].matched_badge_id == "R1"
    assert skipped.rows[2].flags == frozenset()
    included = make_plan(
        completions, rules=rules, templates=templates, badges=[dead], options=options
    )
    assert outcomes(included) == [
        (2, "issue", "new_badge"),
        (3, "skip", "already_issued"),  # issued anew once, not twice
        (4, "issue", "retake"),
    ]
    assert included.rows[0].flags == {flag}
    assert included.rows[2].flags == frozenset()
    assert included.options == options


# ---------------------------------------------------------------- course title look-up

TITLED = [
    make_rule(course_id="C1", course_title="Intro to Engines"),
    make_rule(course_id="C2", course_title="Advanced", template_id="T2"),
    make_rule(course_id="C3", course_title="advanced ", template_id="T3"),
    make_rule(course_id="C4", course_title=""),
]


def test_title_lookup() -> None:
    completions = [
        row(2, course_id="", course_title="  INTRO TO ENGINES "),
        row(3, course_id="", course_title="Advanced"),
        row(4, course_id="", course_title="Intro to Engine"),
        row(5, course_id="C9", course_title="Intro to Engines"),  # an id wins: no title fallback
        row(6, course_id=" C1 ", course_title="whatever"),
    ]
    p = make_plan(completions, rules=TITLED)
    assert outcomes(p) == [
        (2, "issue", "new_badge"),
        (3, "skip", "ambiguous_course_title"),
        (4, "skip", "no_rule"),
        (5, "skip", "no_rule"),
        (6, "skip", "already_has_badge"),
    ]
    assert p.rows[0].course_id == "C1"
    assert p.rows[0].template_id == "T1"


# ---------------------------------------------------------------- keys


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def test_key_is_a_documented_hash() -> None:
    expected = _sha("ada@example.com|T1|2024-02-03T09:00:00+00:00")
    assert idempotency_key(" Ada@Example.com", "T1", day(2) + timedelta(microseconds=7)) == expected
    (only,) = make_plan([row(2)]).rows
    assert only.key == expected
    day_only = _sha("ada@example.com|T1|2024-02-03")
    assert idempotency_key(EMAIL, "T1", day(2), date_only=True) == day_only
    (dated,) = make_plan(
        [row(2, completed_at=datetime(2024, 2, 3, tzinfo=UTC), date_only=True)]
    ).rows
    assert (dated.date_only, dated.key) == (True, day_only)


def test_keys_are_deterministic_and_distinguish_what_matters() -> None:
    completions = [
        row(2),
        row(3, email="grace@example.com"),
        row(4, email="GRACE@example.com", completed_at=day(3)),
    ]
    first = make_plan(completions)
    again = make_plan(list(reversed(completions)))
    assert [r.key for r in first.rows] == [r.key for r in again.rows]
    # row 4 repeats row 3's completion: another outcome (a skip), the same key
    assert first.rows[2].reason == "duplicate_row" and first.rows[2].key == first.rows[1].key
    assert len({r.key for r in first.rows}) == 2
    base = idempotency_key(EMAIL, "T1", day(2))
    assert idempotency_key(EMAIL, "T2", day(2)) != base
    assert idempotency_key(EMAIL, "T1", day(2) + timedelta(seconds=1)) != base
    assert idempotency_key("grace@example.com", "T1", day(2)) != base
    assert idempotency_key(EMAIL, "T1", day(2), date_only=True) != base
    same_day = day(2).replace(hour=23, minute=59)
    assert idempotency_key(EMAIL, "T1", same_day, date_only=True) == idempotency_key(
        EMAIL, "T1", day(2), date_only=True
    )
    assert len(base) == 32 and int(base, 16) >= 0


def test_a_completion_keeps_its_key_when_its_outcome_changes() -> None:
    """A row planned ``issue`` may be decided ``update`` at send time: the same completion."""
    planned_issue = make_plan([row(3)], rules=[make_rule(method="issue_or_update")]).rows[0]
    existing = make_badge("REAL", "accepted", issued_at=day(1))
    planned_update = make_plan(
        [row(3)], rules=[make_rule(method="issue_or_update")], badges=[existing]
    ).rows[0]
    assert (planned_issue.outcome, planned_update.outcome) == ("issue", "update")
    assert planned_issue.key == planned_update.key


def test_renewals_of_one_badge_get_different_keys() -> None:
    existing = make_badge("REAL", "accepted")
    p = make_plan([row(2), row(3)], rules=[make_rule(method="update")], badges=[existing])
    assert p.rows[0].issued_at == p.rows[1].issued_at
    assert p.rows[0].key != p.rows[1].key


def test_planned_badge_id() -> None:
    assert planned_badge_id(12) == "planned:12"
    assert is_planned_id("planned:12")
    assert not is_planned_id("8d1c-real")
    assert not is_planned_id(None)


def test_colliding_row_numbers_still_get_distinct_placeholders() -> None:
    completions = [row(2), make_completion(row=2, email="grace@example.com")]
    ids = [r.planned_badge_id for r in make_plan(completions).rows]
    assert len(set(ids)) == 2 and all(is_planned_id(i) for i in ids)


# ---------------------------------------------------------------- scale


def _large_upload(rows: int) -> tuple[list[Completion], dict[str, list[IssuedBadge]]]:
    students = rows * 2 // 5
    completions = [
        Completion(
            email=f"Student{i % students}@Example.com",
            first_name="S",
            last_name="T",
            course_id=f"C{(i * 7) % 20}" if i % 9 else "",
            course_title="" if i % 9 else f"course {(i * 7) % 20}",
            completed_at=T0 - timedelta(hours=i % 9000, minutes=i % 60),
            status=None,
            score=None,
            row=i + 2,
        )
        for i in range(rows)
    ]
    badges: dict[str, list[IssuedBadge]] = {}
    for i in range(0, students, 3):
        email = f"student{i}@example.com"
        badges[email] = [make_badge(f"B{i}", "accepted", template_id=f"T{i % 20}", email=email)]
    return completions, badges


LARGE_TEMPLATES = {
    f"T{i}": make_template(id=f"T{i}", allow_duplicate_badges=i % 2 == 0) for i in range(20)
}
LARGE_RULES = {
    f"C{i}": make_rule(
        course_id=f"C{i}",
        course_title=f"Course {i}",
        template_id=f"T{i}",
        method=("issue", "update", "issue_or_update")[i % 3],
    )
    for i in range(20)
}


@pytest.mark.slow
def test_planning_100k_rows_covers_every_row() -> None:
    """Correctness at scale (its speed is measured in benchmarks/bench_issue.py)."""
    completions, badges = _large_upload(100_000)
    p = plan(completions, LARGE_RULES, LARGE_TEMPLATES, badges, now=T0)
    assert len(p.rows) == 100_000
    assert [r.row for r in p.rows] == [c.row for c in completions]
    counts = p.counts()
    assert counts["issue"] > 10_000 and counts["update"] > 10_000 and counts["skip"] > 10_000


def test_one_student_with_thousands_of_retakes() -> None:
    """A trainer retaking one course 5,000 times: every row planned, the right ones sent
    (the indexed look-ups that keep this linear are timed in benchmarks/bench_issue.py)."""
    rows = 5_000
    completions = [
        Completion(
            email="trainer@example.com",
            first_name="T",
            last_name="R",
            course_id="C1",
            course_title="",
            # never at 00:00:00 UTC: a badge issued then carries every completion of its day
            completed_at=T0 - timedelta(minutes=i, seconds=30),
            status=None,
            score=None,
            row=i + 2,
        )
        for i in range(rows)
    ]
    for method, duplicates, sends in [
        ("issue", True, rows),
        ("issue_or_update", False, rows),
        ("issue", False, 1),
    ]:
        p = make_plan(
            completions,
            rules=[make_rule(method=method)],
            templates=[make_template(allow_duplicate_badges=duplicates)],
        )
        assert sum(1 for r in p.rows if r.sends) == sends


# ---------------------------------------------------------------- properties

EMAILS = st.sampled_from(
    [EMAIL, " ADA@example.com", "grace@example.com", "bad", "", "alan@example.org "]
)
MOMENTS = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)
COMPLETIONS = st.builds(
    Completion,
    email=EMAILS | st.text(max_size=12),
    first_name=st.sampled_from(["Ada", "", " "]),
    last_name=st.sampled_from(["Lovelace", ""]),
    course_id=st.sampled_from(["C1", "C2", "C3", "", " C1", "X"]),
    course_title=st.sampled_from(["", "Intro to Engines", "advanced", "ADVANCED ", "Nope"]),
    completed_at=MOMENTS,
    status=st.sampled_from([None, "passed", "failed"]),
    row=st.one_of(st.none(), st.integers(min_value=1, max_value=40)),
    date_only=st.booleans(),
)
RULES = st.lists(
    st.builds(
        make_rule,
        course_id=st.sampled_from(["C1", "C2", "C3"]),
        course_title=st.sampled_from(["", "Intro to Engines", "Advanced"]),
        template_id=st.sampled_from(["T1", "T2"]),
        method=st.sampled_from(["issue", "update", "issue_or_update"]),
        expiration_months=st.integers(min_value=0, max_value=40),
        expiration_days=st.integers(min_value=0, max_value=400),
        require_pass=st.booleans(),
        active_from=st.one_of(st.none(), MOMENTS),
    ),
    max_size=3,
)
TEMPLATES = st.lists(
    st.builds(
        make_template,
        id=st.sampled_from(["T1", "T2"]),
        state=st.sampled_from(["active", "draft", "archived"]),
        allow_duplicate_badges=st.booleans(),
    ),
    max_size=2,
)
BADGES = st.lists(
    st.builds(
        make_badge,
        badge_id=st.text(alphabet="abc123", min_size=1, max_size=6),
        state=st.sampled_from(["pending", "accepted", "rejected", "revoked", "replaced"]),
        issued_at=MOMENTS,
        expires_at=st.one_of(st.none(), MOMENTS),
        template_id=st.sampled_from(["T1", "T2"]),
        email=st.sampled_from([EMAIL, "Grace@example.com ", "alan@example.org"]),
    ),
    max_size=6,
)
REASONS_BY_OUTCOME = {
    "issue": ISSUE_REASONS,
    "update": UPDATE_REASONS,
    "skip": SKIP_REASONS,
    "invalid": INVALID_REASONS,
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    completions=st.lists(COMPLETIONS, max_size=25),
    rules=RULES,
    templates=TEMPLATES,
    badges=BADGES,
    mode=st.sampled_from(["bulk", "automatic"]),
    options=st.builds(
        DecideOptions,
        include_rejected=st.booleans(),
        include_revoked=st.booleans(),
        include_expired=st.booleans(),
    ),
    invalid_rows=st.lists(
        st.tuples(st.integers(min_value=1, max_value=40), st.just("bad_date"), st.text(max_size=5)),
        max_size=3,
    ),
)
def test_plan_never_raises_and_keeps_every_row_once(
    completions: list[Completion],
    rules: list[BadgeRule],
    templates: list[BadgeTemplate],
    badges: list[IssuedBadge],
    mode: str,
    options: DecideOptions,
    invalid_rows: list[tuple[int, str, str]],
) -> None:
    p = make_plan(
        completions,
        rules=rules,
        templates=templates,
        badges=badges,
        mode=mode,
        options=options,
        invalid_rows=invalid_rows,
    )
    expected_numbers = Counter(
        [c.row if c.row is not None else i + 2 for i, c in enumerate(completions)]
        + [number for number, _, _ in invalid_rows]
    )
    assert Counter(r.row for r in p.rows) == expected_numbers
    assert [r.row for r in p.rows] == sorted(r.row for r in p.rows)
    for r in p.rows:
        assert isinstance(r, PlannedRow)
        assert r.reason in REASONS_BY_OUTCOME[r.outcome]
        assert r.reason in REASONS
        if r.sends:
            assert r.issued_at is not None and r.planned_badge_id is not None
        if r.outcome == "issue":
            assert r.issued_at == r.completed_at
        if r.outcome == "update":
            assert r.target_badge_id is not None
    sending = [r for r in p.rows if r.sends]
    assert len({r.key for r in sending}) == len(sending)
    assert len({r.planned_badge_id for r in sending}) == len(sending)
    # every placeholder an update targets is created by a row that is sent before it
    order = {r.planned_badge_id: n for n, r in enumerate(p.actionable())}
    for n, r in enumerate(p.actionable()):
        if is_planned_id(r.target_badge_id):
            assert order[r.target_badge_id] < n
    assert sum(p.counts().values()) == len(p.rows)


@settings(max_examples=150, deadline=None)
@given(completion=COMPLETIONS, rules=RULES, templates=TEMPLATES, badges=BADGES)
def test_a_one_row_plan_agrees_with_decide(
    completion: Completion,
    rules: list[BadgeRule],
    templates: list[BadgeTemplate],
    badges: list[IssuedBadge],
) -> None:
    p = make_plan([completion], rules=rules, templates=templates, badges=badges)
    (planned,) = p.rows
    rule_map = {r.course_id: r for r in rules}
    template_map = {t.id: t for t in templates}
    if (completion.course_id or "").strip() or planned.outcome == "invalid":
        rule = rule_map.get(completion.course_id.strip())
        alone = decide(
            completion,
            rule,
            template_map.get(rule.template_id) if rule else None,
            badges,
            now=NOW,
        )
        assert (planned.outcome, planned.reason) == (alone.outcome, alone.reason)
        assert (planned.issued_at, planned.expires_at) == (alone.issued_at, alone.expires_at)
        assert planned.target_badge_id == alone.target_badge_id


def test_planning_gives_the_cycle_collector_back_as_it_found_it() -> None:
    assert gc.isenabled()
    make_plan([row(2)])
    assert gc.isenabled()
    gc.disable()
    try:
        make_plan([row(2)])
        assert not gc.isenabled()
    finally:
        gc.enable()


# ---------------------------------------------------------------- date-only completions (rule 8)

MAY_1 = datetime(2024, 5, 1, tzinfo=UTC)


def dated(number: int, moment: datetime = MAY_1, **changes: Any) -> Completion:
    return row(number, completed_at=moment, date_only=True, **changes)


@pytest.mark.parametrize(
    ("completions", "expected"),
    [
        # a date-only row, then the same day with a time: one completion
        (
            [dated(2), row(3, completed_at=MAY_1 + timedelta(hours=14, minutes=3))],
            [(2, "issue", "new_badge"), (3, "skip", "duplicate_row")],
        ),
        # the other way round, whatever the order in the file
        (
            [row(2, completed_at=MAY_1 + timedelta(hours=14)), dated(3)],
            [(2, "issue", "new_badge"), (3, "skip", "duplicate_row")],
        ),
        ([dated(2), dated(3)], [(2, "issue", "new_badge"), (3, "skip", "duplicate_row")]),
        # two times of one day are two completions (a retake), and the next day is another day
        (
            [
                row(2, completed_at=MAY_1 + timedelta(hours=9)),
                row(3, completed_at=MAY_1 + timedelta(hours=15)),
                dated(4, MAY_1 + timedelta(days=1)),
            ],
            [(2, "issue", "new_badge"), (3, "issue", "retake"), (4, "issue", "retake")],
        ),
        # another student, another course: not a repeat
        (
            [dated(2), dated(3, email="grace@example.com"), dated(4, course_id="C2")],
            [(2, "issue", "new_badge"), (3, "issue", "new_badge"), (4, "skip", "no_rule")],
        ),
    ],
)
def test_a_date_only_row_is_the_same_completion_as_any_row_of_its_day(
    completions: list[Completion], expected: list[tuple[int, str, str]]
) -> None:
    p = make_plan(completions, templates=[make_template(allow_duplicate_badges=True)])
    assert outcomes(p) == expected


def test_a_date_only_row_is_already_issued_against_a_badge_of_its_day() -> None:
    badge = make_badge("B1", "accepted", issued_at=MAY_1 + timedelta(hours=16, minutes=20))
    p = make_plan(
        [dated(2)], templates=[make_template(allow_duplicate_badges=True)], badges=[badge]
    )
    assert outcomes(p) == [(2, "skip", "already_issued")]
    assert p.rows[0].matched_badge_id == "B1"


def test_a_timed_row_is_already_issued_against_the_badge_of_its_date_only_twin() -> None:
    """An upload of dates only, then the LMS's export with times: no second badge."""
    templates = [make_template(allow_duplicate_badges=True)]
    first = make_plan([dated(2)], templates=templates)
    (issued,) = first.rows
    badge = make_badge("B1", "pending", issued_at=issued.issued_at or MAY_1)
    second = make_plan(
        [row(2, completed_at=MAY_1 + timedelta(hours=10, minutes=12))],
        templates=templates,
        badges=[badge],
    )
    assert outcomes(second) == [(2, "skip", "already_issued")]


def test_across_two_courses_a_date_only_row_and_a_timed_row_earn_one_badge() -> None:
    rules = [make_rule(), make_rule(course_id="C2", course_title="")]
    completions = [
        row(2, course_id="C2", completed_at=MAY_1 + timedelta(hours=8)),
        dated(3),
    ]
    p = make_plan(completions, rules=rules, templates=[make_template(allow_duplicate_badges=True)])
    assert outcomes(p) == [(2, "skip", "already_issued"), (3, "issue", "new_badge")]
    assert p.rows[0].matched_badge_id == "planned:3"


# ---------------------------------------------------------------- a badge that never expires


def test_a_badge_that_never_expires_is_given_the_rules_expiry_once() -> None:
    forever = make_badge(
        "REAL", "accepted", issued_at=datetime(2022, 5, 5, tzinfo=UTC), expires_at=None
    )
    p = make_plan([row(2), row(3)], rules=[make_rule(method="update")], badges=[forever])
    assert outcomes(p) == [(2, "update", "renewal"), (3, "update", "renewal")]
    assert [r.flags for r in p.rows] == [frozenset({FLAG_ADDS_EXPIRY}), frozenset()]
    assert p.flag_counts() == {FLAG_ADDS_EXPIRY: 1}
    again = make_plan(
        [row(2)],
        rules=[make_rule(method="update")],
        badges=[forever.model_copy(update={"expires_at": p.rows[0].expires_at})],
    )
    assert outcomes(again) == [(2, "skip", "already_up_to_date")]

"""Badge rules as people save them: active_from is the moment the badge is installed (rule 9)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from credly_ops.access import Actor, Role
from credly_ops.models import BadgeRule, BadgeTemplate
from credly_ops.rules import (
    check_rules,
    load_rules,
    read_rules_csv,
    replace_rules,
    rules_csv,
    settle_active_from,
)
from credly_ops.store import Store
from credly_ops.timeutil import utcnow

ADMIN = Actor("admin@example.com", Role.ADMIN)
INSTALLED = datetime(2024, 1, 15, 8, 0, tzinfo=UTC)
SAVED = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
TEMPLATES = {
    "T1": BadgeTemplate(id="T1", name="Engines"),
    "T2": BadgeTemplate(id="T2", name="Engines II"),
}


def rule(course_id: str = "C1", template_id: str = "T1", **kw: object) -> BadgeRule:
    return BadgeRule(course_id=course_id, template_id=template_id, **kw)  # type: ignore[arg-type]


def test_a_blank_active_from_is_the_moment_of_the_save() -> None:
    (settled,) = settle_active_from([rule()], {}, saved_at=SAVED)
    assert settled.active_from == SAVED


def test_the_same_course_and_template_keep_the_moment_the_badge_was_installed() -> None:
    installed = {("C1", "T1"): INSTALLED, ("C2", "T1"): INSTALLED}
    kept, moved, other = settle_active_from(
        [rule(), rule("C2", "T2"), rule("C3")], installed, saved_at=SAVED
    )
    assert kept.active_from == INSTALLED
    assert moved.active_from == SAVED  # another template: another badge, installed now
    assert other.active_from == SAVED


def test_a_named_active_from_wins() -> None:
    named = datetime(2023, 3, 3, tzinfo=UTC)
    (settled,) = settle_active_from(
        [rule(active_from=named)], {("C1", "T1"): INSTALLED}, saved_at=SAVED
    )
    assert settled.active_from == named


def test_a_legacy_rule_without_active_from_gets_the_moment_of_the_save() -> None:
    (settled,) = settle_active_from([rule()], {("C1", "T1"): None}, saved_at=SAVED)
    assert settled.active_from == SAVED


def _import(store: Store, text: str) -> list[BadgeRule]:
    check = check_rules(read_rules_csv(text.encode()), TEMPLATES, first_row=2)
    assert check.ok, check.errors
    return replace_rules(store, check.rules, actor=ADMIN, fill_active_from=True)


def test_importing_a_file_with_a_blank_column_and_again_keeps_the_first_moment(
    store: Store,
) -> None:
    before = utcnow()
    _import(store, "course_id,template_id,active_from\nC1,T1,\nC2,T1,2024-01-15T08:00:00Z\n")
    after = utcnow()
    first = {r.course_id: r.active_from for r in load_rules(store)}
    assert first["C1"] is not None and before <= first["C1"] <= after + timedelta(seconds=1)
    assert first["C2"] == INSTALLED
    # the same file again, later, with the column still blank: nothing moves
    _import(store, "course_id,template_id,active_from\nC1,T1,\nC2,T1,\n")
    assert {r.course_id: r.active_from for r in load_rules(store)} == first
    # the course now maps to another template: a new badge, installed at this save
    _import(store, "course_id,template_id\nC1,T2\nC2,T1\n")
    third = {r.course_id: r.active_from for r in load_rules(store)}
    assert third["C2"] == INSTALLED
    assert third["C1"] is not None and third["C1"] > first["C1"]


def test_the_export_writes_active_from_and_reads_back_the_same(store: Store) -> None:
    _import(store, "course_id,template_id,active_from\nC1,T1,\nC2,T2,2024-01-15T08:00:00Z\n")
    saved = load_rules(store)
    exported = rules_csv(saved)
    rows = read_rules_csv(exported)
    assert all(row["active_from"] for row in rows)
    again = check_rules(rows, TEMPLATES, first_row=2)
    assert [r.active_from for r in again.rules] == [r.active_from for r in saved]


def test_code_that_saves_a_rule_without_active_from_sets_no_limit(store: Store) -> None:
    saved = replace_rules(store, [rule()], actor=ADMIN)
    assert [r.active_from for r in saved] == [None]
    assert [r.active_from for r in load_rules(store)] == [None]

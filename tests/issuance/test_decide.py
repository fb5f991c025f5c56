"""decide(): one completion, the issuing rules of the domain, one decision."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from credly_ops.credly import errors
from credly_ops.issuance import (
    FLAG_ADDS_EXPIRY,
    FLAG_ALREADY_EXPIRED,
    FLAG_BACKFILL,
    FLAG_PREVIOUSLY_REJECTED,
    FLAG_PREVIOUSLY_REVOKED,
    FLAGS,
    INVALID_REASONS,
    ISSUE_REASONS,
    SKIP_REASONS,
    UPDATE_REASONS,
    BadgePool,
    DecideOptions,
    Decision,
    add_months,
    carries_completion,
    compute_expires_at,
    decide,
    lasts_at_least,
    same_second,
)
from credly_ops.models import (
    COMPLETION_FIELDS,
    BadgeRule,
    BadgeTemplate,
    Completion,
    IssuedBadge,
)
from credly_ops.reasons import FLAGS as FLAG_SENTENCES
from credly_ops.reasons import REASONS, describe, describe_flag

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
COMPLETED = datetime(2024, 3, 15, 10, 30, tzinfo=UTC)
ACTIVE_FROM = datetime(2024, 1, 1, tzinfo=UTC)
EMAIL = "ada@example.com"


def make_completion(**changes: Any) -> Completion:
    fields: dict[str, Any] = {
        "email": EMAIL,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "course_id": "C1",
        "course_title": "Intro to Engines",
        "completed_at": COMPLETED,
        "status": "passed",
    }
    fields.update(changes)
    return Completion(**fields)


def unchecked_completion(**values: Any) -> Completion:
    """A completion with values its own checks refuse: what a caller bypassing them gets."""
    completion = object.__new__(Completion)
    for name in COMPLETION_FIELDS:
        object.__setattr__(completion, name, values.get(name))
    return completion


def make_rule(**changes: Any) -> BadgeRule:
    fields: dict[str, Any] = {
        "course_id": "C1",
        "course_title": "Intro to Engines",
        "template_id": "T1",
        "template_name": "Engines",
        "method": "issue",
        "expiration_months": 12,
        "active_from": ACTIVE_FROM,
    }
    fields.update(changes)
    return BadgeRule(**fields)


def make_template(**changes: Any) -> BadgeTemplate:
    fields: dict[str, Any] = {"id": "T1", "name": "Engines", "state": "active"}
    fields.update(changes)
    return BadgeTemplate(**fields)


def make_badge(
    badge_id: str = "B1",
    state: str = "accepted",
    *,
    issued_at: datetime = datetime(2023, 1, 10, 9, 0, tzinfo=UTC),
    expires_at: datetime | None = datetime(2024, 1, 10, 9, 0, tzinfo=UTC),
    template_id: str = "T1",
    email: str = EMAIL,
) -> IssuedBadge:
    return IssuedBadge(
        id=badge_id,
        state=state,
        recipient_email=email,
        issued_at=issued_at,
        expires_at=expires_at,
        badge_template={"id": template_id, "name": "Engines"},
    )


def run(
    completion: Completion | None = None,
    rule: BadgeRule | str | None = "default",
    template: BadgeTemplate | str | None = "default",
    existing: list[IssuedBadge] | None = None,
    **kw: Any,
) -> Decision:
    return decide(
        completion or make_completion(),
        make_rule() if rule == "default" else rule,  # type: ignore[arg-type]
        make_template() if template == "default" else template,  # type: ignore[arg-type]
        existing or [],
        now=kw.pop("now", NOW),
        **kw,
    )


# ---------------------------------------------------------------- one case per reason code

SAME_MOMENT_BADGE = make_badge("B9", "pending", issued_at=COMPLETED)
EXPIRES_NEW = datetime(2025, 3, 15, 10, 30, tzinfo=UTC)

REASON_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("bad_email", {"completion": make_completion(email="ada.example.com")}, "invalid", "bad_email"),
    (
        "bad_date",
        {
            "completion": unchecked_completion(
                email=EMAIL,
                first_name="Ada",
                last_name="Lovelace",
                course_id="C1",
                course_title="",
                completed_at="yesterday",
            )
        },
        "invalid",
        "bad_date",
    ),
    (
        "no_course",
        {"completion": make_completion(course_id=" ", course_title="")},
        "invalid",
        "no_course",
    ),
    (
        "future_date",
        {"completion": make_completion(completed_at=NOW + timedelta(seconds=1))},
        "invalid",
        "future_date",
    ),
    (
        "missing_name",
        {"completion": make_completion(last_name="  ")},
        "invalid",
        "missing_name",
    ),
    (
        "bad_name",
        {"completion": make_completion(first_name="A\x00da")},
        "invalid",
        "bad_name",
    ),
    ("no_rule", {"rule": None}, "skip", "no_rule"),
    ("not_passed", {"completion": make_completion(status="failed")}, "skip", "not_passed"),
    (
        "before_active_from",
        {
            "completion": make_completion(completed_at=datetime(2023, 5, 1, tzinfo=UTC)),
            "mode": "automatic",
        },
        "skip",
        "before_active_from",
    ),
    (
        "template_inactive",
        {"template": make_template(state="archived")},
        "skip",
        "template_inactive",
    ),
    ("already_issued", {"existing": [SAME_MOMENT_BADGE]}, "skip", "already_issued"),
    ("already_has_badge", {"existing": [make_badge()]}, "skip", "already_has_badge"),
    ("no_existing_badge", {"rule": make_rule(method="update")}, "skip", "no_existing_badge"),
    (
        "already_up_to_date",
        {"rule": make_rule(method="update"), "existing": [make_badge(expires_at=EXPIRES_NEW)]},
        "skip",
        "already_up_to_date",
    ),
    (
        "previously_rejected",
        {"existing": [make_badge(state="rejected", issued_at=COMPLETED)]},
        "skip",
        "previously_rejected",
    ),
    (
        "previously_revoked",
        {"existing": [make_badge(state="revoked", issued_at=COMPLETED)]},
        "skip",
        "previously_revoked",
    ),
    (
        "already_expired",
        {"rule": make_rule(expiration_months=2)},
        "skip",
        "already_expired",
    ),
    (
        "expiry_out_of_range",
        {"rule": make_rule(expiration_months=12 * 10_000)},
        "skip",
        "expiry_out_of_range",
    ),
    ("new_badge", {}, "issue", "new_badge"),
    (
        "retake",
        {"template": make_template(allow_duplicate_badges=True), "existing": [make_badge()]},
        "issue",
        "retake",
    ),
    (
        "renewal",
        {"rule": make_rule(method="issue_or_update"), "existing": [make_badge()]},
        "update",
        "renewal",
    ),
]

#: reasons only a whole upload can produce; test_plan.py covers them
PLAN_ONLY_REASONS = {"duplicate_row", "ambiguous_course_title"}


@pytest.mark.parametrize(
    ("name", "inputs", "outcome", "reason"), REASON_CASES, ids=[c[0] for c in REASON_CASES]
)
def test_each_reason_code(name: str, inputs: dict[str, Any], outcome: str, reason: str) -> None:
    decision = run(**inputs)
    assert (decision.outcome, decision.reason) == (outcome, reason)


def test_reason_table_covers_every_code() -> None:
    every = INVALID_REASONS | SKIP_REASONS | ISSUE_REASONS | UPDATE_REASONS
    assert {c[3] for c in REASON_CASES} == every - PLAN_ONLY_REASONS


def test_every_decision_reason_has_a_sentence() -> None:
    every = INVALID_REASONS | SKIP_REASONS | ISSUE_REASONS | UPDATE_REASONS
    for code in every:
        assert code in REASONS
        assert describe(code) != code


# ---------------------------------------------------------------- method x duplicates x state

METHODS = ("issue", "update", "issue_or_update")
DUPLICATES = (False, True)
STATES = ("none", "pending", "accepted", "rejected", "revoked", "replaced")

# (method, template allows duplicates, state of the student's one badge, issued for another
# completion) -> (outcome, reason)
MATRIX: dict[tuple[str, bool, str], tuple[str, str]] = {
    ("issue", False, "none"): ("issue", "new_badge"),
    ("issue", False, "pending"): ("skip", "already_has_badge"),
    ("issue", False, "accepted"): ("skip", "already_has_badge"),
    ("issue", False, "rejected"): ("issue", "new_badge"),
    ("issue", False, "revoked"): ("issue", "new_badge"),
    ("issue", False, "replaced"): ("issue", "new_badge"),
    ("issue", True, "none"): ("issue", "new_badge"),
    ("issue", True, "pending"): ("issue", "retake"),
    ("issue", True, "accepted"): ("issue", "retake"),
    ("issue", True, "rejected"): ("issue", "new_badge"),
    ("issue", True, "revoked"): ("issue", "new_badge"),
    ("issue", True, "replaced"): ("issue", "new_badge"),
    ("update", False, "none"): ("skip", "no_existing_badge"),
    ("update", False, "pending"): ("update", "renewal"),
    ("update", False, "accepted"): ("update", "renewal"),
    ("update", False, "rejected"): ("skip", "no_existing_badge"),
    ("update", False, "revoked"): ("skip", "no_existing_badge"),
    ("update", False, "replaced"): ("skip", "no_existing_badge"),
    ("update", True, "none"): ("skip", "no_existing_badge"),
    ("update", True, "pending"): ("update", "renewal"),
    ("update", True, "accepted"): ("update", "renewal"),
    ("update", True, "rejected"): ("skip", "no_existing_badge"),
    ("update", True, "revoked"): ("skip", "no_existing_badge"),
    ("update", True, "replaced"): ("skip", "no_existing_badge"),
    ("issue_or_update", False, "none"): ("issue", "new_badge"),
    ("issue_or_update", False, "pending"): ("update", "renewal"),
    ("issue_or_update", False, "accepted"): ("update", "renewal"),
    ("issue_or_update", False, "rejected"): ("issue", "new_badge"),
    ("issue_or_update", False, "revoked"): ("issue", "new_badge"),
    ("issue_or_update", False, "replaced"): ("issue", "new_badge"),
    ("issue_or_update", True, "none"): ("issue", "new_badge"),
    ("issue_or_update", True, "pending"): ("update", "renewal"),
    ("issue_or_update", True, "accepted"): ("update", "renewal"),
    ("issue_or_update", True, "rejected"): ("issue", "new_badge"),
    ("issue_or_update", True, "revoked"): ("issue", "new_badge"),
    ("issue_or_update", True, "replaced"): ("issue", "new_badge"),
}


def test_matrix_is_complete() -> None:
    assert set(MATRIX) == set(itertools.product(METHODS, DUPLICATES, STATES))


NO_OPT_INS = DecideOptions()


def _matrix_decision(
    method: str,
    duplicates: bool,
    state: str,
    options: DecideOptions = NO_OPT_INS,
    *,
    issued_at: datetime = datetime(2023, 1, 10, 9, 0, tzinfo=UTC),
) -> Decision:
    existing = [] if state == "none" else [make_badge("OLD", state, issued_at=issued_at)]
    return run(
        rule=make_rule(method=method),
        template=make_template(allow_duplicate_badges=duplicates),
        existing=existing,
        options=options,
    )


ALL_IN = DecideOptions(include_rejected=True, include_revoked=True, include_expired=True)


@pytest.mark.parametrize(("method", "duplicates", "state"), list(MATRIX))
def test_method_duplicates_state(method: str, duplicates: bool, state: str) -> None:
    decision = _matrix_decision(method, duplicates, state)
    assert (decision.outcome, decision.reason) == MATRIX[(method, duplicates, state)]
    if decision.outcome == "update":
        assert decision.target_badge_id == "OLD"
        assert decision.issued_at == datetime(2023, 1, 10, 9, 0, tzinfo=UTC)
        assert decision.expires_at == EXPIRES_NEW
    elif decision.outcome == "issue":
        assert decision.target_badge_id is None
        assert decision.issued_at == COMPLETED
        assert decision.expires_at == EXPIRES_NEW
    elif decision.reason in ("already_has_badge", "previously_rejected"):
        assert decision.matched_badge_id == "OLD"


@pytest.mark.parametrize(("method", "duplicates", "state"), list(MATRIX))
def test_opt_ins_change_nothing_for_a_new_completion(
    method: str, duplicates: bool, state: str
) -> None:
    """Rule 10: a dead badge of another completion never blocks and never flags."""
    decision = _matrix_decision(method, duplicates, state, ALL_IN)
    assert (decision.outcome, decision.reason) == MATRIX[(method, duplicates, state)]
    assert decision.flags == frozenset()


# (method, the state of this very completion's own badge) -> (outcome, reason); the template
# setting makes no difference, the opt-ins do (see the next test)
SAME_COMPLETION: dict[tuple[str, str], tuple[str, str]] = {
    ("issue", "rejected"): ("skip", "previously_rejected"),
    ("issue", "revoked"): ("skip", "previously_revoked"),
    ("issue", "replaced"): ("issue", "new_badge"),
    ("update", "rejected"): ("skip", "previously_rejected"),
    ("update", "revoked"): ("skip", "previously_revoked"),
    ("update", "replaced"): ("skip", "no_existing_badge"),
    ("issue_or_update", "rejected"): ("skip", "previously_rejected"),
    ("issue_or_update", "revoked"): ("skip", "previously_revoked"),
    ("issue_or_update", "replaced"): ("issue", "new_badge"),
}
OPT_IN_FOR = {
    "rejected": (DecideOptions(include_rejected=True), FLAG_PREVIOUSLY_REJECTED),
    "revoked": (DecideOptions(include_revoked=True), FLAG_PREVIOUSLY_REVOKED),
}


@pytest.mark.parametrize("duplicates", DUPLICATES)
@pytest.mark.parametrize(("method", "state"), list(SAME_COMPLETION))
def test_a_dead_badge_of_the_same_completion(method: str, state: str, duplicates: bool) -> None:
    decision = _matrix_decision(method, duplicates, state, issued_at=COMPLETED)
    assert (decision.outcome, decision.reason) == SAME_COMPLETION[(method, state)]
    if decision.outcome == "skip" and decision.reason.startswith("previously_"):
        assert decision.matched_badge_id == "OLD"


@pytest.mark.parametrize("duplicates", DUPLICATES)
@pytest.mark.parametrize(("method", "state"), list(SAME_COMPLETION))
def test_opting_in_issues_the_same_completion_anew_flagged(
    method: str, state: str, duplicates: bool
) -> None:
    """Each opt-in turns exactly its own skip into a flagged issue; the other does not."""
    expected = SAME_COMPLETION[(method, state)]
    if state not in OPT_IN_FOR:
        return
    options, flag = OPT_IN_FOR[state]
    decision = _matrix_decision(method, duplicates, state, options, issued_at=COMPLETED)
    if method == "update":
        assert (decision.outcome, decision.reason) == ("skip", "no_existing_badge")
    else:
        assert (decision.outcome, decision.reason) == ("issue", "new_badge")
        assert decision.flags == {flag}
    other = next(o for s, (o, _) in OPT_IN_FOR.items() if s != state)
    wrong = _matrix_decision(method, duplicates, state, other, issued_at=COMPLETED)
    assert (wrong.outcome, wrong.reason) == expected


@pytest.mark.parametrize("state", ["rejected", "revoked"])
def test_a_dead_badge_of_the_same_day_blocks_a_date_only_completion(state: str) -> None:
    dead = make_badge("OLD", state, issued_at=datetime(2024, 3, 15, 16, 5, tzinfo=UTC))
    day_only = make_completion(completed_at=datetime(2024, 3, 15, tzinfo=UTC), date_only=True)
    assert run(day_only, existing=[dead]).reason == f"previously_{state}"
    timed = make_completion(completed_at=datetime(2024, 3, 15, 9, tzinfo=UTC))
    assert run(timed, existing=[dead]).reason == "new_badge"


def test_a_live_badge_for_the_completion_wins_over_its_revoked_twin() -> None:
    revoked = make_badge("GONE", "revoked", issued_at=COMPLETED)
    again = make_badge("AGAIN", "pending", issued_at=COMPLETED)
    decision = run(existing=[revoked, again])
    assert (decision.reason, decision.matched_badge_id) == ("already_issued", "AGAIN")


# ---------------------------------------------------------------- order of the checks


@pytest.mark.parametrize(
    ("inputs", "reason"),
    [
        ({"completion": make_completion(email="nope"), "rule": None}, "bad_email"),
        ({"rule": None, "template": None}, "no_rule"),
        ({"completion": make_completion(status="failed"), "template": None}, "not_passed"),
        (
            {
                "completion": make_completion(completed_at=datetime(2023, 5, 1, tzinfo=UTC)),
                "template": None,
                "mode": "automatic",
            },
            "before_active_from",
        ),
        (
            {"template": make_template(state="draft"), "existing": [SAME_MOMENT_BADGE]},
            "template_inactive",
        ),
        ({"rule": make_rule(method="update"), "existing": [SAME_MOMENT_BADGE]}, "already_issued"),
        (
            {"completion": make_completion(first_name=""), "existing": [make_badge()]},
            "already_has_badge",
        ),
    ],
)
def test_checks_run_in_domain_order(inputs: dict[str, Any], reason: str) -> None:
    assert run(**inputs).reason == reason


@pytest.mark.parametrize("state", ["draft", "archived", "something-new"])
def test_only_active_templates_issue(state: str) -> None:
    assert run(template=make_template(state=state)).reason == "template_inactive"


def test_unknown_template_is_inactive() -> None:
    assert run(template=None).reason == "template_inactive"


# ---------------------------------------------------------------- pass / fail


@pytest.mark.parametrize(
    ("status", "require_pass", "outcome"),
    [
        ("passed", True, "issue"),
        (None, True, "issue"),  # no score: Skilljar marks the course complete
        ("failed", True, "skip"),
        ("failed", False, "issue"),
    ],
)
def test_pass_requirement(status: str | None, require_pass: bool, outcome: str) -> None:
    decision = run(make_completion(status=status), rule=make_rule(require_pass=require_pass))
    assert decision.outcome == outcome


# ---------------------------------------------------------------- dates


def test_issued_at_is_the_completion_moment_never_now() -> None:
    long_ago = datetime(2019, 2, 3, 4, 5, 6, tzinfo=UTC)
    decision = run(
        make_completion(completed_at=long_ago),
        rule=make_rule(active_from=None),
        now=datetime(2019, 6, 1, tzinfo=UTC),
    )
    assert decision.issued_at == long_ago
    assert decision.expires_at == datetime(2020, 2, 3, 4, 5, 6, tzinfo=UTC)


def test_issued_at_is_utc_for_an_offset_completion() -> None:
    local = datetime(2024, 3, 15, 5, 30, tzinfo=timezone(timedelta(hours=-5)))
    decision = run(make_completion(completed_at=local))
    assert decision.issued_at == COMPLETED
    assert decision.issued_at is not None and decision.issued_at.utcoffset() == timedelta(0)


def test_no_duration_means_no_expiry() -> None:
    decision = run(rule=make_rule(expiration_months=0, expiration_days=0))
    assert decision.outcome == "issue"
    assert decision.expires_at is None


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (datetime(2024, 1, 31, 8, tzinfo=UTC), 1, datetime(2024, 2, 29, 8, tzinfo=UTC)),
        (datetime(2023, 1, 31, 8, tzinfo=UTC), 1, datetime(2023, 2, 28, 8, tzinfo=UTC)),
        (datetime(2024, 2, 29, tzinfo=UTC), 12, datetime(2025, 2, 28, tzinfo=UTC)),
        (datetime(2024, 2, 29, tzinfo=UTC), 48, datetime(2028, 2, 29, tzinfo=UTC)),
        (datetime(2024, 3, 31, tzinfo=UTC), -1, datetime(2024, 2, 29, tzinfo=UTC)),
        (datetime(2024, 12, 15, tzinfo=UTC), 1, datetime(2025, 1, 15, tzinfo=UTC)),
        (datetime(2024, 5, 31, tzinfo=UTC), 13, datetime(2025, 6, 30, tzinfo=UTC)),
        (datetime(2024, 1, 15, tzinfo=UTC), -13, datetime(2022, 12, 15, tzinfo=UTC)),
        (
            datetime(2024, 8, 31, 23, 59, 59, 5, tzinfo=UTC),
            0,
            datetime(2024, 8, 31, 23, 59, 59, 5, tzinfo=UTC),
        ),
    ],
)
def test_add_months_clamps_to_month_end(start: datetime, months: int, expected: datetime) -> None:
    assert add_months(start, months) == expected


def test_add_months_keeps_time_zone() -> None:
    zone = timezone(timedelta(hours=2))
    assert add_months(datetime(2024, 1, 31, 9, tzinfo=zone), 1).tzinfo is zone


@pytest.mark.parametrize("months", [12 * 8000, -12 * 3000])
def test_add_months_out_of_range_raises(months: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        add_months(datetime(2024, 1, 1, tzinfo=UTC), months)


@pytest.mark.parametrize(
    ("start", "months", "days", "expected"),
    [
        (datetime(2024, 1, 31, tzinfo=UTC), 1, 1, datetime(2024, 3, 1, tzinfo=UTC)),
        (datetime(2023, 1, 31, tzinfo=UTC), 1, 1, datetime(2023, 3, 1, tzinfo=UTC)),
        (datetime(2024, 1, 31, tzinfo=UTC), 0, 30, datetime(2024, 3, 1, tzinfo=UTC)),
        (datetime(2023, 10, 31, tzinfo=UTC), 4, 0, datetime(2024, 2, 29, tzinfo=UTC)),
    ],
)
def test_expires_at_is_months_then_days(
    start: datetime, months: int, days: int, expected: datetime
) -> None:
    rule = make_rule(expiration_months=months, expiration_days=days)
    assert compute_expires_at(start, rule) == expected
    decision = run(make_completion(completed_at=start), rule=rule, now=start)
    assert decision.expires_at == expected


# ---------------------------------------------------------------- matching


@pytest.mark.parametrize("email", ["  Ada@Example.COM ", "ADA@EXAMPLE.COM", "ada@example.com\t"])
def test_email_matches_case_and_whitespace_insensitively(email: str) -> None:
    decision = run(make_completion(email=email), existing=[SAME_MOMENT_BADGE])
    assert (decision.reason, decision.matched_badge_id) == ("already_issued", "B9")


def test_badges_of_other_students_and_templates_do_not_count() -> None:
    existing = [
        make_badge("X1", "accepted", email="grace@example.com"),
        make_badge("X2", "accepted", template_id="T2"),
    ]
    assert run(existing=existing).reason == "new_badge"


@pytest.mark.parametrize(
    ("offset", "reason"),
    [
        (timedelta(microseconds=999), "already_issued"),
        (timedelta(0), "already_issued"),
        (timedelta(seconds=1), "already_has_badge"),
        (timedelta(seconds=-1), "already_has_badge"),
    ],
)
def test_idempotency_compares_to_the_second(offset: timedelta, reason: str) -> None:
    badge = make_badge("B9", "accepted", issued_at=COMPLETED + offset)
    assert run(existing=[badge]).reason == reason


def test_idempotency_holds_on_templates_allowing_duplicates() -> None:
    decision = run(
        template=make_template(allow_duplicate_badges=True), existing=[SAME_MOMENT_BADGE]
    )
    assert (decision.outcome, decision.reason) == ("skip", "already_issued")


@pytest.mark.parametrize("state", ["rejected", "revoked", "replaced"])
def test_a_dead_badge_for_the_same_moment_does_not_count_as_issued(state: str) -> None:
    badge = make_badge("B9", state, issued_at=COMPLETED)
    decision = run(existing=[badge], options=ALL_IN)
    assert decision.outcome == "issue"


# ---------------------------------------------------------------- updates


def test_update_targets_the_latest_live_badge() -> None:
    existing = [
        make_badge("OLDEST", "accepted", issued_at=datetime(2021, 1, 1, tzinfo=UTC)),
        make_badge("LATEST", "pending", issued_at=datetime(2023, 6, 1, tzinfo=UTC)),
        make_badge("DEAD", "revoked", issued_at=datetime(2024, 1, 1, tzinfo=UTC)),
    ]
    decision = run(rule=make_rule(method="update"), existing=existing)
    assert decision.target_badge_id == "LATEST"
    assert decision.issued_at == datetime(2023, 6, 1, tzinfo=UTC)


def test_up_to_date_compares_expiry_to_the_second() -> None:
    near = make_badge(expires_at=EXPIRES_NEW + timedelta(microseconds=400))
    assert run(rule=make_rule(method="update"), existing=[near]).reason == "already_up_to_date"
    off = make_badge(expires_at=EXPIRES_NEW - timedelta(seconds=1))
    assert run(rule=make_rule(method="update"), existing=[off]).reason == "renewal"


def test_update_without_duration() -> None:
    rule = make_rule(method="update", expiration_months=0)
    unexpiring = run(rule=rule, existing=[make_badge(expires_at=None)])
    assert (unexpiring.outcome, unexpiring.reason) == ("skip", "already_up_to_date")
    expiring = run(rule=rule, existing=[make_badge(expires_at=EXPIRES_NEW)])
    assert (expiring.outcome, expiring.reason, expiring.expires_at) == ("update", "renewal", None)


@pytest.mark.parametrize(
    ("current", "outcome"),
    [
        (EXPIRES_NEW - timedelta(days=30), "update"),
        (EXPIRES_NEW - timedelta(seconds=1), "update"),
        (EXPIRES_NEW, "skip"),
        (EXPIRES_NEW + timedelta(days=30), "skip"),  # a later completion was applied already
    ],
)
def test_an_update_never_shortens_a_badge(current: datetime | None, outcome: str) -> None:
    decision = run(rule=make_rule(method="update"), existing=[make_badge(expires_at=current)])
    assert decision.outcome == outcome
    if outcome == "skip":
        assert (decision.reason, decision.matched_badge_id) == ("already_up_to_date", "B1")
    else:
        assert FLAG_ADDS_EXPIRY not in decision.flags


@pytest.mark.parametrize("method", ["update", "issue_or_update"])
def test_a_badge_that_never_expires_gets_the_rules_expiry(method: str) -> None:
    """Rule 6: the rule's policy changed since the badge was issued; the plan says so."""
    forever = make_badge("B1", "accepted", expires_at=None)
    decision = run(rule=make_rule(method=method), existing=[forever])
    assert (decision.outcome, decision.reason) == ("update", "renewal")
    assert (decision.target_badge_id, decision.expires_at) == ("B1", EXPIRES_NEW)
    assert decision.flags == {FLAG_ADDS_EXPIRY}
    renewed = make_badge("B2", "accepted", expires_at=EXPIRES_NEW)
    assert run(rule=make_rule(method=method), existing=[renewed]).reason == "already_up_to_date"


def test_an_issue_method_leaves_a_badge_that_never_expires_alone() -> None:
    forever = make_badge("B1", "accepted", expires_at=None)
    assert run(rule=make_rule(method="issue"), existing=[forever]).reason == "already_has_badge"


# ---------------------------------------------------------------- already expired (rule 11)

SHORT = make_rule(expiration_months=2)  # COMPLETED + 2 months = 2024-05-15, before NOW


@pytest.mark.parametrize(
    ("rule", "existing", "outcome", "reason"),
    [
        (SHORT, [], "issue", "new_badge"),
        (make_rule(method="update", expiration_months=2), [make_badge()], "update", "renewal"),
        (make_rule(method="issue_or_update", expiration_months=2), [], "issue", "new_badge"),
    ],
)
def test_a_badge_already_expired_is_skipped_unless_opted_in(
    rule: BadgeRule, existing: list[IssuedBadge], outcome: str, reason: str
) -> None:
    skipped = run(rule=rule, existing=existing)
    assert (skipped.outcome, skipped.reason) == ("skip", "already_expired")
    sent = run(rule=rule, existing=existing, options=DecideOptions(include_expired=True))
    assert (sent.outcome, sent.reason) == (outcome, reason)
    assert FLAG_ALREADY_EXPIRED in sent.flags
    assert sent.expires_at == datetime(2024, 5, 15, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "reason"),
    [
        (datetime(2024, 5, 15, 10, 30, tzinfo=UTC), "new_badge"),  # expires this very moment
        (datetime(2024, 5, 15, 10, 30, 1, tzinfo=UTC), "already_expired"),
    ],
)
def test_already_expired_means_before_now(now: datetime, reason: str) -> None:
    assert run(rule=SHORT, now=now).reason == reason


def test_no_duration_never_expires_already() -> None:
    old = make_completion(completed_at=datetime(2001, 1, 1, tzinfo=UTC))
    decision = run(old, rule=make_rule(expiration_months=0, active_from=None))
    assert (decision.outcome, decision.expires_at, decision.flags) == ("issue", None, frozenset())


def test_an_up_to_date_badge_is_not_called_expired() -> None:
    badge = make_badge(expires_at=datetime(2024, 5, 15, 10, 30, tzinfo=UTC))
    decision = run(rule=make_rule(method="update", expiration_months=2), existing=[badge])
    assert decision.reason == "already_up_to_date"


@pytest.mark.parametrize(
    ("current", "new", "lasts"),
    [
        (None, None, True),
        (None, COMPLETED, True),
        (COMPLETED, None, False),
        (COMPLETED, COMPLETED.replace(microsecond=500), True),
        (COMPLETED + timedelta(seconds=1), COMPLETED, True),
        (COMPLETED, COMPLETED + timedelta(seconds=1), False),
    ],
)
def test_lasts_at_least(current: datetime | None, new: datetime | None, lasts: bool) -> None:
    assert lasts_at_least(current, new) is lasts


# ---------------------------------------------------------------- active_from (rule 9)

BEFORE = datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    ("mode", "completed_at", "outcome", "flags"),
    [
        ("bulk", BEFORE, "issue", {FLAG_BACKFILL}),
        ("bulk", ACTIVE_FROM, "issue", set()),
        ("automatic", BEFORE, "skip", set()),
        ("automatic", ACTIVE_FROM, "issue", set()),
        ("automatic", COMPLETED, "issue", set()),
    ],
)
def test_going_forward_only(
    mode: str, completed_at: datetime, outcome: str, flags: set[str]
) -> None:
    decision = run(make_completion(completed_at=completed_at), mode=mode)
    assert decision.outcome == outcome
    assert decision.flags == flags
    if outcome == "issue":
        assert decision.issued_at == completed_at


def test_backfill_flag_travels_with_an_update() -> None:
    decision = run(
        make_completion(completed_at=BEFORE),
        rule=make_rule(method="update"),
        existing=[make_badge()],
    )
    assert decision.outcome == "update"
    assert FLAG_BACKFILL in decision.flags


def test_no_active_from_never_flags() -> None:
    decision = run(
        make_completion(completed_at=BEFORE), rule=make_rule(active_from=None), mode="automatic"
    )
    assert (decision.outcome, decision.flags) == ("issue", frozenset())


# ---------------------------------------------------------------- small pieces


def test_future_means_after_now() -> None:
    assert run(make_completion(completed_at=NOW)).outcome == "issue"
    assert run(make_completion(completed_at=NOW), now=NOW - timedelta(days=1)).reason == (
        "future_date"
    )


@pytest.mark.parametrize(
    "email",
    [
        "",
        "   ",
        "ada",
        "ada@",
        "@example.com",
        "a b@example.com",
        "ada@example",
        "ada@@example.com",
        "n2@exa\x00mple.com",
        "\x00ada@example.com",
        "ada@example.co\x07m",
        "ada\x1b@example.com",
        "ada@example.com\x7f",
        "ada@exam\x85ple.com",
    ],
)
def test_bad_emails(email: str) -> None:
    assert run(make_completion(email=email)).reason == "bad_email"


@pytest.mark.parametrize("names", [("Ada\nMary", "Lovelace"), ("Ada", "Love\x00lace")])
def test_a_name_with_a_control_character_is_never_sent(names: tuple[str, str]) -> None:
    first, last = names
    decision = run(make_completion(first_name=first, last_name=last))
    assert (decision.outcome, decision.reason) == ("invalid", "bad_name")


def test_names_in_other_scripts_and_odd_spaces_are_sent() -> None:
    decision = run(make_completion(first_name="Zoë\u00a0Anne", last_name="李"))
    assert decision.outcome == "issue"


def test_title_alone_is_enough_course() -> None:
    assert run(make_completion(course_id="", course_title="Intro")).outcome == "issue"


def test_rejected_with_a_live_badge_goes_by_the_live_one() -> None:
    existing = [make_badge("R", "rejected"), make_badge("L", "pending")]
    decision = run(rule=make_rule(method="issue_or_update"), existing=existing)
    assert (decision.outcome, decision.target_badge_id) == ("update", "L")


def test_decision_is_frozen() -> None:
    decision = run()
    with pytest.raises(AttributeError):
        decision.outcome = "skip"  # type: ignore[misc]
    assert decision.sends


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (None, None, True),
        (None, COMPLETED, False),
        (COMPLETED, None, False),
        (COMPLETED, COMPLETED.replace(microsecond=999_999), True),
        (COMPLETED, COMPLETED.astimezone(timezone(timedelta(hours=3))), True),
        (COMPLETED, COMPLETED + timedelta(seconds=1), False),
    ],
)
def test_same_second(a: datetime | None, b: datetime | None, same: bool) -> None:
    assert same_second(a, b) is same


# ---------------------------------------------------------------- the badge pool


def test_pool_indexes_live_badges_by_second_and_keeps_the_dead_ones() -> None:
    first = make_badge("A", "accepted", issued_at=COMPLETED)
    twin = make_badge("B", "pending", issued_at=COMPLETED + timedelta(microseconds=5))
    later = make_badge("C", "pending", issued_at=COMPLETED + timedelta(days=3))
    old_no = make_badge("R1", "rejected", issued_at=COMPLETED - timedelta(days=9))
    new_no = make_badge("R2", "rejected", issued_at=COMPLETED - timedelta(days=1))
    gone = make_badge("X", "revoked", issued_at=COMPLETED + timedelta(days=30))
    swapped = make_badge("S", "replaced", issued_at=COMPLETED - timedelta(days=2))
    pool = BadgePool([first, twin, later, new_no, old_no, gone, swapped])
    assert pool.has_live
    live_at = pool.live_at(COMPLETED.replace(microsecond=700))
    assert live_at is not None and live_at.id == "B"  # the later of two in one second
    assert pool.live_at(COMPLETED + timedelta(seconds=1)) is None
    latest = pool.latest_live()
    assert latest is not None and latest.id == "C"
    for badge in (old_no, new_no, gone):
        ended = pool.ended_for(badge.issued_at)
        assert ended is not None and ended.id == badge.id
    assert pool.ended_for(swapped.issued_at) is None  # replaced: its replacement carries on
    assert pool.ended_for(COMPLETED) is None


def test_pool_replace_swaps_a_live_badge_in_place() -> None:
    pool = BadgePool([make_badge("A", "accepted", issued_at=COMPLETED)])
    replacement = make_badge("A2", "accepted", issued_at=COMPLETED, expires_at=EXPIRES_NEW)
    assert pool.replace("A", replacement)
    found = pool.live_at(COMPLETED)
    assert found is not None and (found.id, found.expires_at) == ("A2", EXPIRES_NEW)
    assert not pool.replace("missing", replacement)


def test_empty_pool() -> None:
    pool = BadgePool()
    assert not pool.has_live
    assert pool.live_at(COMPLETED) is None
    assert pool.live_at(COMPLETED, date_only=True) is None
    assert pool.latest_live() is None
    assert pool.ended_for(COMPLETED) is None


def test_pool_replace_keeps_the_day_index_in_step() -> None:
    pool = BadgePool([make_badge("A", "accepted", issued_at=COMPLETED)])
    assert pool.live_at(COMPLETED, date_only=True) is not None  # builds the day index
    replacement = make_badge("A2", "accepted", issued_at=COMPLETED, expires_at=EXPIRES_NEW)
    assert pool.replace("A", replacement)
    found = pool.live_at(COMPLETED.replace(hour=0, minute=0), date_only=True)
    assert found is not None and found.id == "A2"
    pool.add(make_badge("N", "pending", issued_at=COMPLETED + timedelta(hours=2)))
    found = pool.live_at(COMPLETED.replace(hour=0, minute=0), date_only=True)
    assert found is not None and found.id == "N"


# ---------------------------------------------------------------- which badge carries a completion

DAY = datetime(2024, 3, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("issued_at", "completed_at", "date_only", "carries"),
    [
        (COMPLETED, COMPLETED, False, True),
        (COMPLETED + timedelta(microseconds=999), COMPLETED, False, True),
        (COMPLETED.astimezone(timezone(timedelta(hours=-5))), COMPLETED, False, True),
        (COMPLETED + timedelta(seconds=1), COMPLETED, False, False),
        (COMPLETED + timedelta(hours=3), COMPLETED, False, False),
        # a date-only completion: any moment of its UTC day
        (COMPLETED, DAY, True, True),
        (DAY + timedelta(hours=23, minutes=59, seconds=59), DAY, True, True),
        (DAY + timedelta(days=1), DAY, True, False),
        (DAY - timedelta(seconds=1), DAY, True, False),
        # a day in another zone is not the UTC day
        (datetime(2024, 3, 15, 20, tzinfo=timezone(timedelta(hours=-5))), DAY, True, False),
        # a badge at exactly 00:00:00 UTC may come from a date-only completion: it carries
        # every completion of its UTC day
        (DAY, COMPLETED, False, True),
        (DAY + timedelta(microseconds=300), COMPLETED, False, True),
        (DAY, DAY + timedelta(hours=23, minutes=59, seconds=59), False, True),
        (DAY + timedelta(days=1), COMPLETED, False, False),
        (DAY - timedelta(days=1), COMPLETED, False, False),
        # a timestamped completion at midnight is just a moment
        (COMPLETED, DAY, False, False),
    ],
)
def test_carries_completion(
    issued_at: datetime, completed_at: datetime, date_only: bool, carries: bool
) -> None:
    assert carries_completion(issued_at, completed_at, date_only=date_only) is carries


@pytest.mark.parametrize("state", ["pending", "accepted"])
@pytest.mark.parametrize(
    ("issued_at", "completed_at", "date_only", "carries"),
    [
        (COMPLETED, DAY, True, True),
        (DAY, COMPLETED, False, True),
        (DAY + timedelta(days=1), DAY + timedelta(days=1, hours=5), True, True),
        (COMPLETED + timedelta(days=1), DAY, True, False),
        (COMPLETED, DAY, False, False),
        (COMPLETED + timedelta(hours=1), COMPLETED, False, False),
    ],
)
def test_the_pool_agrees_with_carries_completion(
    state: str, issued_at: datetime, completed_at: datetime, date_only: bool, carries: bool
) -> None:
    others = [
        make_badge("O1", state, issued_at=DAY - timedelta(days=3, hours=2)),
        make_badge("O2", state, issued_at=DAY + timedelta(days=5, hours=7)),
    ]
    badge = make_badge("B", state, issued_at=issued_at)
    assert carries_completion(issued_at, completed_at, date_only=date_only) is carries
    found = BadgePool([*others, badge]).live_at(completed_at, date_only=date_only)
    assert (found is not None and found.id == "B") is carries
    dead = make_badge("D", "revoked", issued_at=issued_at)
    ended = BadgePool([dead]).ended_for(completed_at, date_only=date_only)
    assert (ended is not None) is carries


def test_a_date_only_completion_is_the_badge_issued_that_day() -> None:
    badge = make_badge("B9", "accepted", issued_at=COMPLETED)
    day_only = make_completion(completed_at=DAY, date_only=True)
    decision = run(day_only, existing=[badge])
    assert (decision.reason, decision.matched_badge_id) == ("already_issued", "B9")
    next_day = make_completion(completed_at=DAY + timedelta(days=1), date_only=True)
    assert run(next_day, existing=[badge]).reason == "already_has_badge"


def test_a_timestamped_completion_is_the_badge_of_its_date_only_twin() -> None:
    """The badge a date-only completion earned (issued at midnight) is the badge of the same
    completion given later with its time of day, even where duplicates are allowed."""
    midnight = make_badge("B0", "pending", issued_at=DAY)
    decision = run(template=make_template(allow_duplicate_badges=True), existing=[midnight])
    assert (decision.reason, decision.matched_badge_id) == ("already_issued", "B0")


def test_a_date_only_completion_issues_at_midnight_utc() -> None:
    decision = run(make_completion(completed_at=DAY, date_only=True))
    assert (decision.outcome, decision.issued_at) == ("issue", DAY)


# ---------------------------------------------------------------- the reason table


def test_describe_falls_back_to_the_code() -> None:
    assert describe("no_rule") == "No badge rule maps this course to a template."
    assert describe("not_passed") == "The student failed the course and the rule requires a pass."
    assert describe("something_new") == "something_new"
    assert describe_flag("backfill") != "backfill"
    assert describe_flag("unknown_flag") == "unknown_flag"


RUNNER_CODES = [
    "invalid_token",
    "forbidden",
    "template_archived",
    "template_inactive",
    "duplicate",
    "rate_limited",
    "server_error",
    "network",
    "timeout",
    "outcome_unknown",
    "not_found",
    "validation_failed",
]


def test_every_flag_has_a_sentence() -> None:
    assert set(FLAG_SENTENCES) == set(FLAGS)
    for flag in FLAGS:
        assert describe_flag(flag) != flag


@pytest.mark.parametrize("code", RUNNER_CODES)
def test_runner_codes_have_sentences(code: str) -> None:
    assert describe(code) != code


def _error_classes(cls: type[errors.CredlyError]) -> list[type[errors.CredlyError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_error_classes(sub))
    return found


def test_every_credly_error_kind_has_a_sentence() -> None:
    kinds = {cls.kind for cls in _error_classes(errors.CredlyError)}
    assert "duplicate" in kinds and "timeout" in kinds
    assert kinds <= set(REASONS)


def test_sentences_are_single_sentences_for_people() -> None:
    for code, sentence in {**REASONS, **FLAG_SENTENCES}.items():
        assert sentence[0].isupper() and sentence.endswith("."), code
        assert "_" not in sentence, code
        assert sentence.count(". ") == 0, code

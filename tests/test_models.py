"""The domain values' own checks: what a hand-built completion accepts and refuses."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from credly_ops.models import COMPLETION_FIELDS, Completion, SuccessStatus, checked_completion

WHEN = datetime(2024, 5, 1, 9, 41, tzinfo=UTC)


def completion(**changes: Any) -> Completion:
    fields: dict[str, Any] = {"email": "ada@example.com", "course_id": "C1", "completed_at": WHEN}
    fields.update(changes)
    return Completion(**fields)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (WHEN, WHEN),
        (datetime(2024, 5, 1, 11, 41, tzinfo=timezone(timedelta(hours=2))), WHEN),
        (datetime(2024, 5, 1, 9, 41), WHEN),  # naive is UTC
        ("2024-05-01T09:41:00Z", WHEN),
        ("2024-05-01T11:41:00+02:00", WHEN),
    ],
)
def test_completed_at_is_kept_in_utc(value: Any, expected: datetime) -> None:
    moment = completion(completed_at=value).completed_at
    assert moment == expected and moment.tzinfo is UTC


def test_status_words_become_statuses() -> None:
    assert completion(status="failed").status is SuccessStatus.FAILED
    assert completion(status=SuccessStatus.PASSED).status is SuccessStatus.PASSED
    assert completion(status=None).status is None


@pytest.mark.parametrize(
    ("changes", "error", "words"),
    [
        ({"email": None}, TypeError, "Completion.email must be text, not NoneType"),
        ({"first_name": 7}, TypeError, "Completion.first_name must be text, not int"),
        ({"course_title": b"x"}, TypeError, "Completion.course_title must be text"),
        ({"completed_at": "yesterday"}, ValueError, "not a date and time: 'yesterday'"),
        ({"completed_at": 1714556460}, TypeError, "must be a datetime, not int"),
        ({"completed_at": None}, TypeError, "must be a datetime, not NoneType"),
        ({"status": "maybe"}, ValueError, "must be one of passed, failed, not 'maybe'"),
        ({"score": "85"}, TypeError, "Completion.score must be a number, not str"),
        ({"score": True}, TypeError, "Completion.score must be a number, not bool"),
        ({"row": 2.0}, TypeError, "Completion.row must be an integer, not float"),
        ({"date_only": "yes"}, TypeError, "Completion.date_only must be true or false, not str"),
        ({"course": "C1"}, TypeError, "unexpected keyword argument 'course'"),
    ],
)
def test_a_bad_value_is_refused_naming_the_field(
    changes: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        completion(**changes)


def test_completed_at_is_required() -> None:
    with pytest.raises(TypeError, match="completed_at"):
        Completion(email="ada@example.com")  # type: ignore[call-arg]


def test_a_completion_is_an_immutable_hashable_value() -> None:
    a, b = completion(score=85), completion(score=85.0)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.email = "grace@example.com"  # type: ignore[misc]
    assert not hasattr(a, "__dict__")  # slotted: an upload holds 100,000 of them


def test_as_record_names_every_field_with_plain_values() -> None:
    built = completion(
        first_name="Ada",
        last_name="Lovelace",
        course_title="Engines",
        status="passed",
        score=90,
        row=7,
    )
    record = built.as_record()
    assert record == {
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "course_id": "C1",
        "course_title": "Engines",
        "completed_at": WHEN,
        "status": "passed",
        "score": 90,
        "row": 7,
        "date_only": False,
    }
    assert type(record["status"]) is str  # the word, not the enum
    assert Completion(**record) == built  # a record builds the same completion back


def test_checked_completion_is_the_same_value_built_without_the_checks() -> None:
    values = ("ada@example.com", "Ada", "Lovelace", "C1", "Engines", WHEN, None, 85.0, 7, True)
    built = checked_completion(*values)
    assert built == Completion(**dict(zip(COMPLETION_FIELDS, values, strict=True)))
    assert type(built) is Completion and hash(built) == hash(Completion(**built.as_record()))

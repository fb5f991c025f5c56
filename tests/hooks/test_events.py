"""Reading a delivery's body (pure): what it names, and when two deliveries are one event."""

from __future__ import annotations

import json

from credly_ops.hooks.events import read_event, repeat_key


def _read(event: object) -> object:
    body = json.dumps(event)
    return read_event(body, too_large=False, undecodable=False, size=len(body))


BASE = {
    "event_type": "COURSE_COMPLETION",
    "timestamp": "2026-05-01T10:00:00Z",
    "user": {"email": "  Ada@Example.ORG "},
    "course": {"id": 42},
}


def test_an_event_names_the_student_and_the_course() -> None:
    read = _read(BASE)
    assert (read.status, read.email, read.course_id) == ("accepted", "ada@example.org", "42")
    assert read.repeat_key == repeat_key("ADA@example.org", "42", "2026-05-01T10:00:00Z")


def test_an_event_without_a_course_is_still_a_hint_for_the_student() -> None:
    read = _read({**BASE, "course": None})
    assert (read.status, read.email, read.course_id) == ("accepted", "ada@example.org", None)


def test_the_completion_moment_wins_over_the_delivery_timestamp() -> None:
    first = _read({**BASE, "enrollment": {"completed_at": "2026-04-30T09:00:00Z"}})
    later = _read(
        {
            **BASE,
            "timestamp": "2026-05-02T00:00:00Z",
            "enrollment": {"completed_at": "2026-04-30T09:00:00Z"},
        }
    )
    retake = _read({**BASE, "enrollment": {"completed_at": "2026-06-01T09:00:00Z"}})
    assert first.repeat_key == later.repeat_key != retake.repeat_key
    spelled_otherwise = _read({**BASE, "enrollment": {"completed_at": "2026-04-30T11:00:00+02:00"}})
    assert spelled_otherwise.repeat_key == first.repeat_key


def test_other_students_courses_and_moments_are_other_events() -> None:
    keys = {
        _read(BASE).repeat_key,
        _read({**BASE, "user": {"email": "bob@example.org"}}).repeat_key,
        _read({**BASE, "course": {"id": "43"}}).repeat_key,
        _read({**BASE, "timestamp": "2026-05-01T10:00:01Z"}).repeat_key,
    }
    assert len(keys) == 4


def test_without_any_moment_only_the_same_body_repeats() -> None:
    bare = {k: v for k, v in BASE.items() if k != "timestamp"}
    assert _read(bare).repeat_key == _read(dict(bare)).repeat_key
    assert _read(bare).repeat_key != _read({**bare, "extra": 1}).repeat_key


def test_an_excerpt_is_bounded() -> None:
    read = _read({**BASE, "padding": "x" * 5000})
    assert read.status == "accepted" and read.excerpt is not None and len(read.excerpt) == 600


def test_a_boolean_is_not_an_email_or_a_course() -> None:
    assert _read({**BASE, "user": {"email": True}}).detail == "user.email is missing"
    assert _read({**BASE, "course": {"id": False}}).course_id is None

"""What a delivery says, read without trusting it (pure).

A Skilljar ``COURSE_COMPLETION`` event is only a hint (reference §5): it names a student and a
course, and the issuer then reads that enrollment over the API before deciding anything.  So
an event is *accepted* when it names a student's email (and, usually, a course); everything
else is *rejected* with why, and a repeat of an event already accepted is a *duplicate*.

The repeat key (:func:`repeat_key`) is the student, the course and the completion's moment:
the event's ``enrollment.completed_at`` when it carries one, else its ``timestamp`` — so a
redelivery of the same event, or the same completion delivered twice, gives one hint, and a
retake (a new ``completed_at``) gives another.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from credly_ops.completion_cells import is_email
from credly_ops.models import CONTROL_CHARACTERS, normalize_email
from credly_ops.timeutil import parse_credly_time

COMPLETION_EVENT = "COURSE_COMPLETION"
#: the body kept in the cache for people to read, at most this many characters
EXCERPT_CHARS = 600
#: a course id longer than this is not one
MAX_ID_CHARS = 200
_CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")

Status = Literal["accepted", "rejected", "duplicate"]


@dataclass(frozen=True)
class Hint:
    """An accepted event: which student's enrollment the issuer should read now."""

    event_id: str
    email: str
    course_id: str | None
    received_at: datetime


@dataclass(frozen=True)
class ReadEvent:
    """What :func:`read_event` made of a body: ``accepted`` with a repeat key, or ``rejected``
    with ``detail`` saying why."""

    status: Status
    detail: str | None
    event_type: str | None
    email: str | None
    course_id: str | None
    repeat_key: str | None
    excerpt: str | None


def read_event(body: str | None, *, too_large: bool, undecodable: bool, size: int) -> ReadEvent:
    """Read one delivery's body; never raises."""
    if too_large:
        return _rejected(f"too large ({size} bytes)", None)
    if undecodable or body is None:
        return _rejected("the body is not UTF-8 text", None)
    excerpt = body[:EXCERPT_CHARS]
    try:
        data = json.loads(body)
    except ValueError:
        return _rejected("the body is not JSON", excerpt)
    if not isinstance(data, dict):
        return _rejected("the body is not a JSON object", excerpt)
    event_type = _text(data.get("event_type"))
    if event_type is None:
        return _rejected("event_type is missing", excerpt)
    if event_type != COMPLETION_EVENT:
        return _rejected(f"event_type is not {COMPLETION_EVENT}", excerpt, event_type[:80])
    user = data.get("user")
    raw_email = _text(user.get("email")) if isinstance(user, dict) else None
    if raw_email is None:
        return _rejected("user.email is missing", excerpt, event_type)
    email = normalize_email(raw_email)
    if not is_email(email):
        return _rejected("user.email is not an email address", excerpt, event_type)
    course = data.get("course")
    course_id = _text(course.get("id")) if isinstance(course, dict) else None
    if course_id is not None and (len(course_id) > MAX_ID_CHARS or _CONTROL.search(course_id)):
        return _rejected("course.id is not a course id", excerpt, event_type)
    enrollment = data.get("enrollment")
    moment = _text(enrollment.get("completed_at")) if isinstance(enrollment, dict) else None
    if moment is None:
        moment = _text(data.get("timestamp"))
    if moment is None:
        # nothing tells one completion from another: the exact body is the event
        moment = "body:" + hashlib.sha256(body.encode("utf-8")).hexdigest()
    return ReadEvent(
        status="accepted",
        detail=None,
        event_type=event_type,
        email=email,
        course_id=course_id,
        repeat_key=repeat_key(email, course_id, moment),
        excerpt=excerpt,
    )


def repeat_key(email: str, course_id: str | None, moment: str) -> str:
    """The same student, course and moment: the same event (a deterministic hash).  A moment
    that reads as a time is compared as that instant, whatever its spelling."""
    try:
        moment = parse_credly_time(moment).isoformat()
    except ValueError:
        moment = moment.strip()
    raw = json.dumps([normalize_email(email), course_id, moment])
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:32]


def _text(value: Any) -> str | None:
    if isinstance(value, str | int) and not isinstance(value, bool):
        text = str(value).strip()
        return text or None
    return None


def _rejected(detail: str, excerpt: str | None, event_type: str | None = None) -> ReadEvent:
    return ReadEvent("rejected", detail, event_type, None, None, None, excerpt)

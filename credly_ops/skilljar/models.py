"""What Skilljar's v2 API answers, read tolerantly, and the completions made from it.

Answers keep fields they do not know (``extra="allow"``) and accept a missing optional field;
what the reference marks unconfirmed — the ``included`` type names (``students`` or
``student``) and the student's attribute names — is matched loosely here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from credly_ops.models import Completion, SuccessStatus
from credly_ops.timeutil import answer_time


class SkilljarObject(BaseModel):
    """Base for what Skilljar answers: unknown fields are kept, never rejected."""

    model_config = ConfigDict(extra="allow", frozen=True)


class ResourceRef(SkilljarObject):
    """``relationships.<name>.data``: a ``{"type", "id"}`` pointer into ``included``."""

    type: str = ""
    id: str

    @field_validator("id", mode="before")
    @classmethod
    def _text_id(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class Resource(SkilljarObject):
    """One JSON:API resource object."""

    type: str = ""
    id: str
    attributes: dict[str, Any] = Field(default_factory=dict)
    relationships: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id", mode="before")
    @classmethod
    def _text_id(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("attributes", "relationships", mode="before")
    @classmethod
    def _object_or_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    def related(self, name: str) -> ResourceRef | None:
        """The pointer of relationship ``name`` (``student``/``students`` alike), if any."""
        for key in (name, name + "s"):
            entry = self.relationships.get(key)
            data = entry.get("data") if isinstance(entry, dict) else None
            if isinstance(data, list):
                data = data[0] if data else None
            if isinstance(data, dict) and data.get("id") not in (None, ""):
                return ResourceRef.model_validate(data)
        return None


def kind_of(type_name: str) -> str:
    """``students`` and ``student`` (and ``Students``) name the same kind: ``student``."""
    name = type_name.strip().lower()
    return name[:-1] if name.endswith("s") else name


class Included:
    """The ``included`` records of one page, found by relationship (kind and id)."""

    def __init__(self, records: Iterable[Resource]) -> None:
        self._by_key: dict[tuple[str, str], Resource] = {}
        self._by_id: dict[str, list[Resource]] = {}
        for record in records:
            self._by_key.setdefault((kind_of(record.type), record.id), record)
            self._by_id.setdefault(record.id, []).append(record)

    def find(self, relationship: str, ref: ResourceRef | None) -> Resource | None:
        """By the pointer's type and id, else the relationship's name and id, else the one
        record with that id (when only one has it)."""
        if ref is None:
            return None
        kind = kind_of(ref.type) if ref.type else kind_of(relationship)
        found = self._by_key.get((kind, ref.id)) or self._by_key.get(
            (kind_of(relationship), ref.id)
        )
        if found is None:
            alone = self._by_id.get(ref.id, [])
            found = alone[0] if len(alone) == 1 else None
        return found


def _first_text(attributes: Mapping[str, Any], *names: str) -> str:
    for name in names:
        value = attributes.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


class Student(SkilljarObject):
    id: str
    email: str = ""
    first_name: str = ""
    last_name: str = ""

    @classmethod
    def from_resource(cls, record: Resource) -> Student:
        a = record.attributes
        return cls(
            id=record.id,
            email=_first_text(a, "email", "email_address", "user_email"),
            first_name=_first_text(a, "first_name", "firstName", "given_name"),
            last_name=_first_text(a, "last_name", "lastName", "family_name"),
        )


class Course(SkilljarObject):
    id: str
    title: str = ""

    @classmethod
    def from_resource(cls, record: Resource) -> Course:
        return cls(id=record.id, title=_first_text(record.attributes, "title", "name"))


class Enrollment(SkilljarObject):
    """An enrollment with its student and course resolved from ``included`` (when present)."""

    id: str
    progress_status: str | None = None
    success_status: str | None = None
    score: float | None = None
    max_score: float | None = None
    enrolled_at: datetime | None = None
    completed_at: datetime | None = None
    expires_at: datetime | None = None
    has_certificate: bool | None = None
    domain_name: str | None = None
    student_id: str | None = None
    course_id: str | None = None
    student: Student | None = None
    course: Course | None = None

    @field_validator("enrolled_at", "completed_at", "expires_at", mode="before")
    @classmethod
    def _moments(cls, value: Any) -> Any:
        return answer_time(value)

    @field_validator("score", "max_score", mode="before")
    @classmethod
    def _number_or_none(cls, value: Any) -> Any:
        if value is None or value == "" or isinstance(value, bool):
            return None
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return None
        return value

    @classmethod
    def from_resource(cls, record: Resource, included: Included) -> Enrollment:
        student_ref, course_ref = record.related("student"), record.related("course")
        student = included.find("student", student_ref)
        course = included.find("course", course_ref)
        known = set(cls.model_fields) - {"id", "student", "course", "student_id", "course_id"}
        values = {k: v for k, v in record.attributes.items() if k in known}
        return cls(
            id=record.id,
            **values,
            student_id=student_ref.id if student_ref else None,
            course_id=course_ref.id if course_ref else None,
            student=Student.from_resource(student) if student else None,
            course=Course.from_resource(course) if course else None,
        )

    @property
    def is_completed(self) -> bool:
        status = (self.progress_status or "").strip().lower()
        return self.completed_at is not None and status in ("", "completed", "complete")

    def outcome(self) -> SuccessStatus | None:
        """``PASSED``/``FAILED`` as the product's status; ``null`` (no score) counts as passed.
        ``None`` for a word the reference does not know."""
        if self.success_status is None or not self.success_status.strip():
            return SuccessStatus.PASSED
        word = self.success_status.strip().lower()
        if word in ("passed", "pass"):
            return SuccessStatus.PASSED
        if word in ("failed", "fail"):
            return SuccessStatus.FAILED
        return None


@dataclass(frozen=True, slots=True)
class SkilljarCompletion:
    """A product completion and the Skilljar enrollment it came from.

    Keyed by (enrollment id, completed_at): a retake completes the same enrollment again later.
    """

    enrollment_id: str
    completion: Completion

    @property
    def key(self) -> tuple[str, datetime]:
        return (self.enrollment_id, self.completion.completed_at)


@dataclass(frozen=True, slots=True)
class SkippedEnrollment:
    """An enrollment read but not turned into a completion, and why (a stable reason code)."""

    enrollment_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class CompletionPull:
    """What one read of completions gave: the completions, what was skipped, and the largest
    ``completed_at`` over every row read (the next high-water mark; rows come in no order)."""

    completions: tuple[SkilljarCompletion, ...]
    skipped: tuple[SkippedEnrollment, ...]
    high_water: datetime | None
    pages: int


def completion_from(enrollment: Enrollment) -> SkilljarCompletion | SkippedEnrollment:
    """The product's completion for one enrollment, or the reason there is none."""
    if not enrollment.is_completed or enrollment.completed_at is None:
        return SkippedEnrollment(enrollment.id, "not_completed")
    student = enrollment.student
    if student is None or not student.email:
        return SkippedEnrollment(enrollment.id, "no_student_email")
    status = enrollment.outcome()
    if status is None:
        return SkippedEnrollment(enrollment.id, "unknown_success_status")
    course_id = enrollment.course.id if enrollment.course else enrollment.course_id or ""
    return SkilljarCompletion(
        enrollment.id,
        Completion(
            email=student.email,
            first_name=student.first_name,
            last_name=student.last_name,
            course_id=course_id,
            course_title=enrollment.course.title if enrollment.course else "",
            completed_at=enrollment.completed_at,
            status=status,
            score=enrollment.score,
        ),
    )

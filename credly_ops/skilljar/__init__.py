"""Everything that speaks Skilljar's API: the v2 client, its errors and its answers."""

from credly_ops.skilljar.client import MAX_PAGE_SIZE, SkilljarClient
from credly_ops.skilljar.models import (
    CompletionPull,
    Course,
    Enrollment,
    SkilljarCompletion,
    SkippedEnrollment,
    Student,
)

__all__ = [
    "MAX_PAGE_SIZE",
    "CompletionPull",
    "Course",
    "Enrollment",
    "SkilljarClient",
    "SkilljarCompletion",
    "SkippedEnrollment",
    "Student",
]

"""What a student preview is made of: the "Badges Earned" rows, the registrations, the ledger's
entries and the explanations, and the one-word verdicts an explanation ends in.

Plain frozen values with no behaviour beyond their JSON form; the rest of the package builds
them (:mod:`.badges`, :mod:`.explain`, :mod:`.build`), reads them from the cache (:mod:`.reads`)
or draws them (:mod:`.html`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from credly_ops.models import BadgeState, IssuedBadge, SuccessStatus

#: what became of a completion, in one word (the explanation's ``verdict``)
VERDICT_ISSUED = "issued"
VERDICT_RENEWED = "renewed"
VERDICT_REVOKED = "revoked"
VERDICT_REJECTED = "rejected"
VERDICT_REPLACED = "replaced"
VERDICT_ISSUE_FAILED = "issue_failed"
VERDICT_MISSING = "missing"
VERDICT_NO_BADGE = "no_badge"
VERDICT_INVALID = "invalid"


@dataclass(frozen=True)
class BadgeEarnedRow:
    """One row of the student's "Badges Earned" table, as the student sees it."""

    badge_id: str
    template_id: str
    name: str
    image_url: str | None
    issued_at: datetime
    expires_at: datetime | None
    state: str
    link_label: str
    link_url: str

    @property
    def is_pending(self) -> bool:
        return self.state == BadgeState.PENDING


@dataclass(frozen=True)
class Registration:
    """One course of the student's "Registrations" table (a completion from the LMS)."""

    course_id: str
    course_title: str
    completed_at: datetime
    status: str | None
    score: float | None

    @property
    def result(self) -> str:
        if self.status == SuccessStatus.PASSED:
            return "Passed"
        if self.status == SuccessStatus.FAILED:
            return "Failed"
        return "Complete"


@dataclass(frozen=True)
class LedgerEntry:
    """What a bulk issue (or a single re-issue) recorded for one of the student's completions."""

    job_id: str
    course_id: str
    course_title: str
    completed_at: datetime | None
    status: str
    outcome: str
    error_class: str | None
    error_message: str | None
    badge_id: str | None
    updated_at: datetime


@dataclass(frozen=True)
class Explanation:
    """One completion, what the engine decided for it, and the sentence that says why.

    ``outcome``/``reason`` are the engine's (automatic mode, against the badges that exist);
    ``verdict`` is what became of the completion; ``can_reissue`` marks a completion that should
    have a badge and has none (an issue failed, or nothing was ever sent).
    """

    course_id: str
    course_title: str
    completed_at: datetime
    status: str | None
    outcome: str
    reason: str
    verdict: str
    sentence: str
    badge_id: str | None = None
    badge_state: str | None = None
    link_url: str | None = None
    reminders: int | None = None
    error_class: str | None = None
    error_message: str | None = None
    can_reissue: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "course_id": self.course_id,
            "course_title": self.course_title,
            "completed_at": self.completed_at.isoformat(),
            "status": self.status,
            "outcome": self.outcome,
            "reason": self.reason,
            "verdict": self.verdict,
            "sentence": self.sentence,
            "badge_id": self.badge_id,
            "badge_state": self.badge_state,
            "link_url": self.link_url,
            "reminders": self.reminders,
            "error_class": self.error_class,
            "error_message": self.error_message,
            "can_reissue": self.can_reissue,
        }


@dataclass(frozen=True)
class StudentProfile:
    """Everything the student preview shows for one email."""

    email: str
    first_name: str
    last_name: str
    table_enabled: bool
    badges_earned: list[BadgeEarnedRow]
    registrations: list[Registration]
    explanations: list[Explanation]
    badges: list[IssuedBadge] = field(default_factory=list)

    @property
    def name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p) or self.email

    @property
    def shows_table(self) -> bool:
        """Whether the student's profile shows the "Badges Earned" table at all."""
        return self.table_enabled and bool(self.badges_earned)

    @property
    def known(self) -> bool:
        """Whether the cache holds anything for this email."""
        return bool(self.badges or self.registrations)

    def as_json(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "name": self.name,
            "table_enabled": self.table_enabled,
            "shows_table": self.shows_table,
            "badges_earned": [
                {
                    "badge_id": r.badge_id,
                    "name": r.name,
                    "image_url": r.image_url,
                    "issued_at": r.issued_at.isoformat(),
                    "expires_at": r.expires_at.isoformat() if r.expires_at else None,
                    "state": r.state,
                    "link_label": r.link_label,
                    "link_url": r.link_url,
                }
                for r in (self.badges_earned if self.shows_table else [])
            ],
            "registrations": [
                {
                    "course_id": r.course_id,
                    "course_title": r.course_title,
                    "completed_at": r.completed_at.isoformat(),
                    "status": r.status,
                    "score": r.score,
                }
                for r in self.registrations
            ],
            "explanations": [e.as_json() for e in self.explanations],
        }

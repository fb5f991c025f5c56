"""The domain objects every part of credly_ops shares.

Objects that come *from* Credly tolerate fields they do not know (Credly adds attributes as a
backwards-compatible change); objects we build ourselves are strict.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from credly_ops.timeutil import as_utc, parse_credly_time


class Environment(StrEnum):
    DEMO = "demo"
    SANDBOX = "sandbox"
    PRODUCTION = "production"


class TemplateState(StrEnum):
    ACTIVE = "active"
    DRAFT = "draft"
    ARCHIVED = "archived"


class BadgeState(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    REVOKED = "revoked"
    REPLACED = "replaced"


LIVE_STATES = frozenset({BadgeState.PENDING, BadgeState.ACCEPTED})


def _credly_time(value: Any) -> Any:
    if value is None or value == "" or value is False:
        return None
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, str):
        return parse_credly_time(value)
    return value


class CredlyObject(BaseModel):
    """Base for objects read from Credly: unknown fields are kept, never rejected."""

    model_config = ConfigDict(extra="allow", frozen=True)


class TemplateRef(CredlyObject):
    id: str
    name: str = ""
    state: str | None = None
    image_url: str | None = None
    url: str | None = None


class BadgeTemplate(CredlyObject):
    id: str
    name: str
    description: str | None = None
    state: str = TemplateState.ACTIVE
    allow_duplicate_badges: bool = False
    image_url: str | None = None
    url: str | None = None
    public: bool | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    _times = field_validator("created_at", "updated_at", mode="before")(_credly_time)

    @property
    def can_issue(self) -> bool:
        return self.state == TemplateState.ACTIVE


class IssuedBadge(CredlyObject):
    id: str
    state: str
    recipient_email: str
    issued_to_first_name: str | None = None
    issued_to_last_name: str | None = None
    issuer_earner_id: str | None = None
    issued_at: datetime
    expires_at: datetime | None = None
    state_updated_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    badge_template: TemplateRef
    badge_url: str | None = None
    accept_badge_url: str | None = None
    image_url: str | None = None
    replaces_badge_id: str | None = None
    replacement_badge_id: str | None = None
    revocation_reason: str | None = None
    suppress_badge_notification_email: bool = False

    _times = field_validator(
        "issued_at", "expires_at", "state_updated_at", "created_at", "updated_at", mode="before"
    )(_credly_time)

    @property
    def template_id(self) -> str:
        return self.badge_template.id

    @property
    def is_live(self) -> bool:
        return self.state in LIVE_STATES


class Page(BaseModel):
    """One page of a page-based Credly list."""

    model_config = ConfigDict(frozen=True)

    items: list[Any]
    current_page: int = 1
    total_pages: int = 1
    total_count: int = 0
    per: int = 50


class IssueRequest(BaseModel):
    """What we send to ``POST /badges``: strict, every field known."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recipient_email: str
    issued_to_first_name: str = Field(min_length=1)
    issued_to_last_name: str = Field(min_length=1)
    badge_template_id: str
    issued_at: datetime
    expires_at: datetime | None = None
    issuer_earner_id: str | None = None
    locale: str = "en"
    suppress_badge_notification_email: bool = False

    _times = field_validator("issued_at", "expires_at", mode="before")(_credly_time)


class ReplaceRequest(BaseModel):
    """What we send to ``POST /badges/{id}/replace`` to change a badge's expiry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    badge_template_id: str
    issued_at: datetime
    expires_at: datetime | None = None
    issued_to_first_name: str | None = None
    issued_to_last_name: str | None = None
    notification_message: str | None = None

    _times = field_validator("issued_at", "expires_at", mode="before")(_credly_time)


class IssueMethod(StrEnum):
    ISSUE = "issue"
    UPDATE = "update"
    ISSUE_OR_UPDATE = "issue_or_update"


class SuccessStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"


class Completion(BaseModel):
    """One course completion from the LMS (an upload row or a synced record)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: str
    first_name: str = ""
    last_name: str = ""
    course_id: str = ""
    course_title: str = ""
    completed_at: datetime
    status: SuccessStatus | None = None
    score: float | None = None
    #: 1-based data row number in the uploaded file (header is row 1 → first data row is 2)
    row: int | None = None

    _times = field_validator("completed_at", mode="before")(_credly_time)

    @property
    def email_key(self) -> str:
        return normalize_email(self.email)


class BadgeRule(BaseModel):
    """One course → one badge template (the article's "badge definition")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    course_id: str = Field(min_length=1)
    course_title: str = ""
    template_id: str = Field(min_length=1)
    template_name: str = ""
    method: IssueMethod = IssueMethod.ISSUE
    expiration_months: int = Field(default=0, ge=0)
    expiration_days: int = Field(default=0, ge=0)
    require_pass: bool = True
    active_from: datetime | None = None

    _times = field_validator("active_from", mode="before")(_credly_time)

    @property
    def has_expiration(self) -> bool:
        return bool(self.expiration_months or self.expiration_days)


def normalize_email(email: str) -> str:
    """Emails match case-insensitively, after trimming."""
    return email.strip().lower()

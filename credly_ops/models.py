"""The domain objects every part of credly_ops shares.

Objects that come *from* Credly tolerate fields they do not know (Credly adds attributes as a
backwards-compatible change); objects we build ourselves are strict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from credly_ops.timeutil import answer_time, as_utc, format_credly_request, parse_credly_time


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

    _times = field_validator("created_at", "updated_at", mode="before")(answer_time)

    @property
    def can_issue(self) -> bool:
        return self.state == TemplateState.ACTIVE


class IssuedBadge(CredlyObject):
    id: str
    state: str
    recipient_email: str
    issued_to_first_name: str | None = None
    issued_to_middle_name: str | None = None
    issued_to_last_name: str | None = None
    issuer_earner_id: str | None = None
    locale: str | None = None
    country: str | None = None
    state_or_province: str | None = None
    evidence: list[dict[str, Any]] | None = None
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
    )(answer_time)

    @property
    def template_id(self) -> str:
        return self.badge_template.id

    @property
    def is_live(self) -> bool:
        return self.state in LIVE_STATES


class AuthorizationToken(CredlyObject):
    """One of the organization's API tokens as ``GET …/authorization_tokens`` lists it
    (reference §13): never the token's value, only its name, rights and expiry.  Tolerant:
    every field but the id may be missing, and unknown fields are kept."""

    id: str
    name: str | None = None
    description: str | None = None
    read_enabled: bool | None = None
    write_enabled: bool | None = None
    delete_enabled: bool | None = None
    expires_at: datetime | None = None
    created_at: datetime | None = None

    _times = field_validator("expires_at", "created_at", mode="before")(answer_time)


class Page(BaseModel):
    """One page of a page-based Credly list."""

    model_config = ConfigDict(frozen=True)

    items: list[Any]
    current_page: int = 1
    total_pages: int = 1
    total_count: int = 0
    per: int = 50


#: the expiry a request carries: a moment, ``False`` = never expires, ``None`` = the template's
#: default expiry (Credly's own reading of ``false`` and ``null``)
RequestExpiry = datetime | Literal[False] | None


def request_expiry(expires_at: datetime | None) -> datetime | Literal[False]:
    """The engine's expiry as a request sends it.

    The engine's ``None`` means "this badge has no expiry" (its rule has no duration). A
    request's ``None`` would tell Credly "use the template's default expiry" instead, which may
    give the badge an expiry the engine never computed. So a rule with no duration sends
    ``False``, "never expires", on purpose: Credly then holds exactly what the engine decided.
    """
    return False if expires_at is None else expires_at


def _request_expiry_value(value: Any) -> Any:
    if value is False or value is None:
        return value
    return answer_time(value)


def _expiry_json(value: datetime | Literal[False] | None) -> str | Literal[False] | None:
    return value if value is None or value is False else format_credly_request(value)


class IssueRequest(BaseModel):
    """What we send to ``POST /badges``: strict, every field known.

    ``expires_at``: a moment, ``False`` (never expires) or ``None`` (the template's default);
    see :func:`request_expiry`. :meth:`payload` is the JSON body.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    recipient_email: str
    issued_to_first_name: str = Field(min_length=1)
    issued_to_last_name: str = Field(min_length=1)
    badge_template_id: str
    issued_at: datetime
    expires_at: RequestExpiry = False
    issuer_earner_id: str | None = None
    locale: str = "en"
    suppress_badge_notification_email: bool = False

    _issued = field_validator("issued_at", mode="before")(answer_time)
    _expires = field_validator("expires_at", mode="before")(_request_expiry_value)

    def payload(self) -> dict[str, Any]:
        """The JSON body: times as ``%Y-%m-%d %H:%M:%S %z`` in UTC, ``expires_at`` always sent
        (``false``, ``null`` or a time), ``issuer_earner_id`` only when there is one."""
        body: dict[str, Any] = {
            "recipient_email": self.recipient_email.strip(),
            "issued_to_first_name": self.issued_to_first_name,
            "issued_to_last_name": self.issued_to_last_name,
            "badge_template_id": self.badge_template_id,
            "issued_at": format_credly_request(self.issued_at),
            "expires_at": _expiry_json(self.expires_at),
            "locale": self.locale,
            "suppress_badge_notification_email": self.suppress_badge_notification_email,
        }
        if self.issuer_earner_id is not None:
            body["issuer_earner_id"] = self.issuer_earner_id
        return body


class ReplaceRequest(BaseModel):
    """What we send to ``POST /badges/{id}/replace`` to change a badge's expiry.

    Credly's replace clears the optional fields it is not sent, so a renewal is built with
    :func:`renewal_request`, which copies every field the badge keeps. ``expires_at`` reads as
    on :class:`IssueRequest`. :meth:`payload` is the JSON body.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    badge_template_id: str
    issued_at: datetime
    expires_at: RequestExpiry = False
    issued_to_first_name: str | None = None
    issued_to_middle_name: str | None = None
    issued_to_last_name: str | None = None
    issuer_earner_id: str | None = None
    locale: str | None = None
    country_name: str | None = None
    state_or_province: str | None = None
    evidence: list[dict[str, Any]] | None = None
    suppress_badge_notification_email: bool | None = None
    notification_message: str | None = None

    _issued = field_validator("issued_at", mode="before")(answer_time)
    _expires = field_validator("expires_at", mode="before")(_request_expiry_value)

    def payload(self) -> dict[str, Any]:
        """The JSON body: the template, ``issued_at`` and ``expires_at`` always (``false``,
        ``null`` or a time), every other field that has a value."""
        body: dict[str, Any] = {
            "badge_template_id": self.badge_template_id,
            "issued_at": format_credly_request(self.issued_at),
            "expires_at": _expiry_json(self.expires_at),
        }
        optional: dict[str, Any] = {
            "issued_to_first_name": self.issued_to_first_name,
            "issued_to_middle_name": self.issued_to_middle_name,
            "issued_to_last_name": self.issued_to_last_name,
            "issuer_earner_id": self.issuer_earner_id,
            "locale": self.locale,
            "country_name": self.country_name,
            "state_or_province": self.state_or_province,
            "evidence": None if self.evidence is None else [dict(e) for e in self.evidence],
            "suppress_badge_notification_email": self.suppress_badge_notification_email,
            "notification_message": self.notification_message,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        return body


def renewal_request(
    target: IssuedBadge,
    *,
    template_id: str,
    issued_at: datetime,
    expires_at: datetime | None,
    notification_message: str | None = None,
) -> ReplaceRequest:
    """The replace request that renews ``target`` (a badge as Credly returns it).

    Credly's replace clears every optional field it is not sent, so the request carries all
    the badge keeps: the recipient's first, middle and last names, ``issuer_earner_id``,
    ``evidence``, ``locale``, country and state or province, and the
    ``suppress_badge_notification_email`` flag. ``expires_at`` is the engine's: ``None`` (the
    rule has no duration) is sent as ``False``, "never expires" (see :func:`request_expiry`).
    """
    return ReplaceRequest(
        badge_template_id=template_id,
        issued_at=issued_at,
        expires_at=request_expiry(expires_at),
        issued_to_first_name=target.issued_to_first_name or None,
        issued_to_middle_name=target.issued_to_middle_name or None,
        issued_to_last_name=target.issued_to_last_name or None,
        issuer_earner_id=target.issuer_earner_id or None,
        locale=target.locale or None,
        country_name=target.country or None,
        state_or_province=target.state_or_province or None,
        evidence=[dict(item) for item in target.evidence] if target.evidence else None,
        suppress_badge_notification_email=target.suppress_badge_notification_email,
        notification_message=notification_message,
    )


class IssueMethod(StrEnum):
    ISSUE = "issue"
    UPDATE = "update"
    ISSUE_OR_UPDATE = "issue_or_update"


class SuccessStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Completion:
    """One course completion from the LMS (an upload row or a synced record).

    A plain slotted value rather than a pydantic model: an upload makes 100,000 of them, and a
    model instance costs eight times the memory (its ``__dict__`` and fields-set) and twice the
    time. It is checked all the same: text fields must be text, ``completed_at`` a moment (an
    ISO string is parsed; every moment is kept in UTC), ``status`` a :class:`SuccessStatus` (its
    word is accepted), ``score`` a number and ``row`` an integer. A bad value raises
    ``TypeError`` or ``ValueError`` naming the field.

    ``date_only`` says the completion was given as a day with no time of day (the reader sets
    it): ``completed_at`` is then midnight UTC of that day, and the completion is the same one
    as a completion at any time of that UTC day (see ``carries_completion`` in
    :mod:`credly_ops.issuance.decide`).
    """

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
    #: the completed-at value had no time of day
    date_only: bool = False

    def __post_init__(self) -> None:
        # one quick test for the usual case (a reader's or the cache's row), details after
        if (
            type(self.completed_at) is datetime
            and self.completed_at.tzinfo is UTC
            and (self.status is None or type(self.status) is SuccessStatus)
            and type(self.email) is str
            and type(self.first_name) is str
            and type(self.last_name) is str
            and type(self.course_id) is str
            and type(self.course_title) is str
            and (self.score is None or type(self.score) is float)
            and (self.row is None or type(self.row) is int)
            and type(self.date_only) is bool
        ):
            return
        self._check()

    def _check(self) -> None:
        for name in ("email", "first_name", "last_name", "course_id", "course_title"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"Completion.{name} must be text, not {_kind(getattr(self, name))}")
        completed_at = self.completed_at
        if not isinstance(completed_at, datetime) or completed_at.tzinfo is not UTC:
            object.__setattr__(self, "completed_at", _completion_moment(completed_at))
        status = self.status
        if status is not None and not isinstance(status, SuccessStatus):
            try:
                object.__setattr__(self, "status", SuccessStatus(status))
            except ValueError:
                raise ValueError(
                    f"Completion.status must be one of {', '.join(SuccessStatus)}, not {status!r}"
                ) from None
        score = self.score
        if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
            raise TypeError(f"Completion.score must be a number, not {_kind(score)}")
        row = self.row
        if row is not None and (isinstance(row, bool) or not isinstance(row, int)):
            raise TypeError(f"Completion.row must be an integer, not {_kind(row)}")
        date_only = self.date_only
        if not isinstance(date_only, bool):
            raise TypeError(f"Completion.date_only must be true or false, not {_kind(date_only)}")

    @property
    def email_key(self) -> str:
        return normalize_email(self.email)

    def as_record(self) -> dict[str, object]:
        """Every field by name, as plain values (``status`` as its word)."""
        record = {name: getattr(self, name) for name in COMPLETION_FIELDS}
        if self.status is not None:
            record["status"] = self.status.value
        return record


#: the fields of a :class:`Completion`, in order
COMPLETION_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Completion))

_new_object = object.__new__
(
    _set_email,
    _set_first_name,
    _set_last_name,
    _set_course_id,
    _set_course_title,
    _set_completed_at,
    _set_status,
    _set_score,
    _set_row,
    _set_date_only,
) = (vars(Completion)[name].__set__ for name in COMPLETION_FIELDS)


def checked_completion(
    email: str,
    first_name: str,
    last_name: str,
    course_id: str,
    course_title: str,
    completed_at: datetime,
    status: SuccessStatus | None,
    score: float | None,
    row: int | None,
    date_only: bool = False,
) -> Completion:
    """A :class:`Completion` from values the caller has already checked, built without checking
    them again: for the upload reader, which checks every cell and makes 100,000 of these (its
    tests hold it to producing only completions the class's own checks accept). Values must be
    what the checks would leave: text, a datetime in UTC, a status or ``None``, a float or
    ``None``, an int or ``None``, a bool."""
    completion = _new_object(Completion)
    _set_email(completion, email)
    _set_first_name(completion, first_name)
    _set_last_name(completion, last_name)
    _set_course_id(completion, course_id)
    _set_course_title(completion, course_title)
    _set_completed_at(completion, completed_at)
    _set_status(completion, status)
    _set_score(completion, score)
    _set_row(completion, row)
    _set_date_only(completion, date_only)
    return completion


def _kind(value: object) -> str:
    return type(value).__name__


def _completion_moment(value: object) -> datetime:
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, str):
        try:
            return parse_credly_time(value)
        except ValueError:
            raise ValueError(
                f"Completion.completed_at is not a date and time: {value[:40]!r}"
            ) from None
    raise TypeError(f"Completion.completed_at must be a datetime, not {_kind(value)}")


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
    #: issued by automatic issuing (``False``: manual only, left to bulk issue)
    automatic: bool = True

    _times = field_validator("active_from", mode="before")(answer_time)

    @property
    def has_expiration(self) -> bool:
        return bool(self.expiration_months or self.expiration_days)


def normalize_email(email: str) -> str:
    """Emails match case-insensitively, after trimming."""
    return email.strip().lower()


#: control characters (C0, DEL, C1), as a regular-expression class body: a NUL byte, a line
#: break or an escape in an email or a name is never data and never reaches Credly
CONTROL_CHARACTERS = r"\x00-\x1f\x7f-\x9f"
_CONTROL_CHARACTER = re.compile(f"[{CONTROL_CHARACTERS}]")


def has_control_character(value: str) -> bool:
    """Whether ``value`` holds a control character (printable text, the usual case, is
    answered without the regular expression)."""
    return not value.isprintable() and _CONTROL_CHARACTER.search(value) is not None

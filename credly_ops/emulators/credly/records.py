"""The local Credly's records: organizations, templates, badges, events, changes and a clock.

Plain data and the few helpers every other part of the emulator shares (time formatting,
stable ids, the :class:`ApiError` answer).  A :class:`Change` is one mutation complete enough
to replay: its JSON form is the journal line.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from credly_ops.timeutil import as_utc, format_credly_response, parse_credly_time

WEB_URL = "https://www.credly.com"
API_URL = "https://api.credly.com/v1"
IMAGE_HOST = "https://images.credly.com"

BADGE_STATES = ("pending", "accepted", "rejected", "revoked", "replaced")
LIVE_STATES = frozenset({"pending", "accepted"})
TEMPLATE_STATES = ("active", "draft", "archived")
LOCALES = frozenset(
    {"en", "fr", "de", "ko", "ja", "zh-CN", "pt", "es-ES", "es-US", "fr-CA", "pt-BR"}
)
REMINDER_EVENT = "pending_badge_notification.sent"
EVENT_TYPES = ("badge.created", "badge.state.changed", "badge.deleted", REMINDER_EVENT)
BADGE_TIME_FIELDS = ("issued_at", "updated_at", "created_at", "state_updated_at", "expires_at")


class ApiError(Exception):
    """An answer other than success: Credly's ``{"data":{"message"},"metadata"}`` envelope."""

    def __init__(self, status: int, message: str, metadata: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.metadata = dict(metadata or {})


def invalid(message: str, **metadata: Any) -> ApiError:
    """Credly's 422 answer: ``Validation failed: <message>``."""
    return ApiError(422, f"Validation failed: {message}", metadata)


def truncate_ms(value: datetime) -> datetime:
    """Credly shows milliseconds; storing more would make shown and stored times differ."""
    value = as_utc(value)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def fmt_time(value: datetime | None) -> str | None:
    """``format_credly_response`` for the aware UTC values the world stores, 2-3x faster.

    Listing 100,000 badges formats half a million timestamps; the test suite checks both
    functions agree.
    """
    if value is None:
        return None
    if value.utcoffset() or value.year < 1000:
        return format_credly_response(value)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031 - fastest form
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond // 1000,
    )


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "org"


def stable_uuid(text: str) -> str:
    """A UUID-shaped id derived from ``text`` (name-based, like uuid5, but cheaper to make)."""
    h = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def user_id(email_key: str) -> str:
    """The earner's Credly user id: stable per email, like an account would be."""
    return stable_uuid(f"user:{email_key}")


def reminder_id(badge_id: str, seq: int) -> str:
    """A reminder event's id: stable for (badge, which reminder), never stored."""
    return stable_uuid(f"{badge_id}:reminder:{-seq - 1}")


# --------------------------------------------------------------------------- clock


class Clock:
    """Real UTC time plus an adjustable offset, or a frozen instant; milliseconds only."""

    def __init__(self, *, frozen_at: datetime | None = None, offset_s: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._frozen: datetime | None = as_utc(frozen_at) if frozen_at else None
        self._offset = timedelta(seconds=offset_s)

    def now(self) -> datetime:
        with self._lock:
            base = self._frozen if self._frozen is not None else datetime.now(UTC) + self._offset
        return truncate_ms(base)

    def set(self, now: datetime, *, frozen: bool = False) -> None:
        target = as_utc(now)
        with self._lock:
            if frozen:
                self._frozen, self._offset = target, timedelta(0)
            else:
                self._frozen, self._offset = None, target - datetime.now(UTC)

    def advance(self, seconds: float) -> None:
        step = timedelta(seconds=seconds)
        with self._lock:
            if self._frozen is not None:
                self._frozen += step
            else:
                self._offset += step

    def reset(self) -> None:
        with self._lock:
            self._frozen, self._offset = None, timedelta(0)

    def describe(self) -> dict[str, Any]:
        with self._lock:
            frozen, offset = self._frozen is not None, self._offset.total_seconds()
        return {"now": fmt_time(self.now()), "frozen": frozen, "offset_seconds": offset}


# --------------------------------------------------------------------------- records


@dataclass(slots=True)
class Org:
    id: str
    name: str
    vanity_slug: str
    created_at: datetime
    updated_at: datetime
    webhook_url: str | None = None
    allowed_webhooks: list[str] = field(default_factory=list)
    description: str = ""
    website_url: str | None = None


@dataclass(slots=True)
class Template:
    id: str
    org_id: str
    name: str
    state: str
    allow_duplicate_badges: bool
    description: str
    image_url: str
    default_expiration_days: int | None
    created_at: datetime
    updated_at: datetime
    vanity_slug: str
    image_id: str
    public: bool = True


@dataclass(slots=True)
class Badge:
    """One issued badge.  Never mutated in place: a change stores a new copy."""

    id: str
    template_id: str
    recipient_email: str
    email_key: str
    first_name: str
    last_name: str
    state: str
    issued_at: datetime
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    state_updated_at: datetime | None = None
    issuer_earner_id: str | None = None
    middle_name: str | None = None
    suppress_badge_notification_email: bool = False
    replaces_badge_id: str | None = None
    replacement_badge_id: str | None = None
    revocation_reason: str | None = None
    locale: str = "en"
    public: bool = True
    country: str | None = None
    state_or_province: str | None = None
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _BADGE_FIELDS}


_BADGE_FIELDS = tuple(name for name in Badge.__dataclass_fields__ if name != "email_key")
_BADGE_DATETIMES = frozenset(
    {"issued_at", "created_at", "updated_at", "expires_at", "state_updated_at"}
)


def badge_to_json(badge: Badge) -> dict[str, Any]:
    """Full-precision journal form of a badge record."""
    out = badge.as_dict()
    for name in _BADGE_DATETIMES:
        value = out[name]
        out[name] = value.isoformat() if value is not None else None
    return out


def _when(value: Any) -> datetime | None:
    if value is None or value is False or value == "":
        return None
    if isinstance(value, datetime):
        if value.tzinfo is not UTC:
            value = as_utc(value)
    else:
        value = parse_credly_time(str(value))
    # stored times are what Credly shows: milliseconds, so filters on a shown time hold
    return value if value.microsecond % 1000 == 0 else truncate_ms(value)


def badge_from_record(record: Mapping[str, Any]) -> Badge:
    """A badge from a seed or journal record; accepts a few spellings of the same field."""
    get = record.get
    issued_at = _when(get("issued_at"))
    if issued_at is None:
        raise ValueError(f"badge record {get('id')!r} has no issued_at")
    created_at = _when(get("created_at")) or issued_at
    state_updated_at = _when(get("state_updated_at"))
    updated_at = _when(get("updated_at")) or max(created_at, state_updated_at or created_at)
    email = str(get("recipient_email") or "")
    earner = get("issuer_earner_id")
    template_id = get("template_id") or get("badge_template_id")
    first = get("first_name")
    last = get("last_name")
    country = get("country")
    return Badge(
        id=str(get("id")),
        template_id=str(template_id),
        recipient_email=email,
        email_key=email.strip().lower(),
        first_name=str(first if first is not None else get("issued_to_first_name") or ""),
        last_name=str(last if last is not None else get("issued_to_last_name") or ""),
        middle_name=get("middle_name") or get("issued_to_middle_name"),
        state=str(get("state") or "pending"),
        issued_at=issued_at,
        created_at=created_at,
        updated_at=updated_at,
        expires_at=_when(get("expires_at")),
        state_updated_at=state_updated_at,
        issuer_earner_id=None if earner is None else str(earner),
        suppress_badge_notification_email=bool(get("suppress_badge_notification_email")),
        replaces_badge_id=get("replaces_badge_id"),
        replacement_badge_id=get("replacement_badge_id"),
        revocation_reason=get("revocation_reason"),
        locale=str(get("locale") or "en"),
        public=get("public") is not False,
        country=country if country is not None else get("country_name"),
        state_or_province=get("state_or_province"),
        evidence=list(get("evidence") or ()),
    )


@dataclass(slots=True)
class Event:
    id: str
    event_type: str
    occurred_at: datetime
    badge_id: str
    seq: int
    badge: dict[str, Any] | None


#: (occurred_at, event_type, id, badge_id, seq); reminders have seq < 0 and no stored id
EventRow = tuple[datetime, str, str, str, int]


def event_row(e: Event) -> EventRow:
    return (e.occurred_at, e.event_type, e.id, e.badge_id, e.seq)


@dataclass(slots=True)
class Change:
    """One mutation, complete enough to replay: every id and timestamp is in it."""

    op: str
    org_id: str
    badges: list[Badge] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    #: (event id, event type, occurred at, badge id)
    events: list[tuple[str, str, datetime, str]] = field(default_factory=list)
    auto_accept: tuple[str, bool] | None = None
    org_update: dict[str, Any] | None = None
    org_updated_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "org": self.org_id,
            "badges": [badge_to_json(b) for b in self.badges],
            "deleted": self.deleted,
            "events": [[i, t, at.isoformat(), b] for i, t, at, b in self.events],
            "auto_accept": list(self.auto_accept) if self.auto_accept else None,
            "org_update": self.org_update,
            "org_updated_at": self.org_updated_at.isoformat() if self.org_updated_at else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Change:
        auto = data.get("auto_accept")
        org_at = data.get("org_updated_at")
        return cls(
            op=str(data["op"]),
            org_id=str(data["org"]),
            badges=[badge_from_record(b) for b in data.get("badges", [])],
            deleted=[str(d) for d in data.get("deleted", [])],
            events=[
                (str(i), str(t), parse_credly_time(at), str(b))
                for i, t, at, b in data.get("events", [])
            ],
            auto_accept=(str(auto[0]), bool(auto[1])) if auto else None,
            org_update=data.get("org_update"),
            org_updated_at=parse_credly_time(org_at) if org_at else None,
        )


@dataclass
class OrgState:
    org: Org
    templates: dict[str, Template] = field(default_factory=dict)
    badges: dict[str, Badge] = field(default_factory=dict)
    by_email: dict[str, set[str]] = field(default_factory=dict)
    by_earner: dict[str, set[str]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    events_by_id: dict[str, Event] = field(default_factory=dict)
    auto_accept: set[str] = field(default_factory=set)
    version: int = 0
    counters: Counter[str] = field(default_factory=Counter)

"""The state of the local Credly: organizations, templates, issued badges, events, a clock.

Pure Python, no HTTP: the Starlette app in ``emulator.py`` translates requests into calls on a
:class:`World` and :class:`ApiError` into Credly's error envelope.  Everything here follows
``credly_api.md``; where Credly's behaviour is unknown the choice is written next to the code.

Every mutation is one :class:`Change` (the badges it writes, the ids it deletes, the events it
emits, an auto-accept or organization update), built first and then applied by one function.
The same function replays the journal, so a replayed world equals the one that wrote it.

Listing 100,000 badges page by page must not sort on every request: sorted and filtered orders
are cached by (organization, filter, sort, version), and an organization's version moves on
every change to it.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from bisect import bisect_left, bisect_right
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from operator import attrgetter
from pathlib import Path
from typing import IO, Any

from credly_ops.credly.filters import parse_filter, parse_sort
from credly_ops.reminders import reminder_moments, reminders_sent
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

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_MIN_TIME = datetime(1, 1, 2, tzinfo=UTC)
_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
_CACHE_SIZE = 48

#: required issue fields and the Rails-style label used in messages
_REQUIRED_ISSUE = (
    ("recipient_email", "Recipient email"),
    ("issued_to_first_name", "Issued to first name"),
    ("issued_to_last_name", "Issued to last name"),
    ("badge_template_id", "Badge template"),
    ("issued_at", "Issued at"),
)
_REQUIRED_REPLACE = (("badge_template_id", "Badge template"), ("issued_at", "Issued at"))
_ORG_FIELDS = ("name", "webhook_url", "allowed_webhooks", "description", "website_url")
_BADGE_TIME_FIELDS = ("issued_at", "updated_at", "created_at", "state_updated_at", "expires_at")


class ApiError(Exception):
    """An answer other than success: Credly's ``{"data":{"message"},"metadata"}`` envelope."""

    def __init__(self, status: int, message: str, metadata: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.metadata = dict(metadata or {})


def _invalid(message: str, **metadata: Any) -> ApiError:
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


def _index_add(index: dict[str, set[str]], key: str | None, badge_id: str) -> None:
    if key:
        index.setdefault(key, set()).add(badge_id)


def _index_remove(index: dict[str, set[str]], key: str | None, badge_id: str) -> None:
    if key and key in index:
        index[key].discard(badge_id)
        if not index[key]:
            del index[key]


# --------------------------------------------------------------------------- filters


def _time_bound(text: str, *, is_max: bool) -> tuple[datetime, bool]:
    """``YYYY-MM-DD`` covers the whole day; a timestamp is an inclusive bound.

    Returns (bound, strict): a strict max is ``value < bound``.
    """
    raw = text.strip()
    if len(raw) == 10:
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            pass
        else:
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return (start + timedelta(days=1), True) if is_max else (start, False)
    try:
        return parse_credly_time(raw), False
    except ValueError:
        raise ApiError(400, f"Invalid date in filter: {raw[:40]!r}") from None


Predicate = Callable[[Badge], bool]
#: (occurred_at, event_type, id, badge_id, seq); reminders have seq < 0 and no stored id
EventRow = tuple[datetime, str, str, str, int]


def _time_predicate(name: str, text: str, *, is_max: bool) -> Predicate:
    bound, strict = _time_bound(text, is_max=is_max)
    get = attrgetter(name)
    if not is_max:
        return lambda b: (v := get(b)) is not None and v >= bound
    if strict:
        return lambda b: (v := get(b)) is not None and v < bound
    return lambda b: (v := get(b)) is not None and v <= bound


def _member(attr: str, values: Iterable[object]) -> Predicate:
    allowed, get = frozenset(values), attrgetter(attr)
    return lambda b: get(b) in allowed


def _bool_value(key: str, values: list[str]) -> bool:
    text = values[0].strip().lower() if values else ""
    if text not in ("true", "false"):
        raise ApiError(400, f"Invalid value for filter {key}: expected true or false")
    return text == "true"


BADGE_FILTER_KEYS = (
    "state",
    "recipient_email",
    "recipient_email_all",
    "issuer_earner_id",
    "badge_template_id",
    "query",
    "public",
    *(f"{f}_{side}" for f in _BADGE_TIME_FIELDS for side in ("min", "max")),
    "expires_at_date_min",
    "expires_at_date_max",
)
BADGE_SORT_KEYS: dict[str, Callable[[Badge], Any]] = {
    "created_at": attrgetter("created_at"),
    "issued_at": attrgetter("issued_at"),
    "updated_at": attrgetter("updated_at"),
    "state_updated_at": lambda b: b.state_updated_at or _MIN_TIME,
    "expires_at": lambda b: b.expires_at or _MIN_TIME,
}


def parse_badge_sort(text: str | None) -> tuple[tuple[str, bool], ...]:
    spec = tuple(parse_sort(text))
    for key, _desc in spec:
        if key not in BADGE_SORT_KEYS:
            allowed = ", ".join(BADGE_SORT_KEYS)
            raise ApiError(400, f"Invalid sort key {key[:40]!r}; allowed: {allowed}")
    return spec


def parse_badge_filter(text: str | None) -> dict[str, list[str]]:
    try:
        terms = parse_filter(text)
    except ValueError as exc:
        raise ApiError(400, f"Invalid filter: {exc}") from None
    for key, values in terms.items():
        if key not in BADGE_FILTER_KEYS:
            raise ApiError(400, f"Invalid filter key {key[:40]!r}")
        if key == "state":
            unknown = [v for v in values if v not in BADGE_STATES]
            if unknown:
                raise ApiError(400, f"Invalid state in filter: {unknown[0][:20]!r}")
    return terms


def sort_badges(
    badges: Iterable[Badge],
    spec: tuple[tuple[str, bool], ...],
    *,
    by_id: bool = False,
) -> list[Badge]:
    """Stable multi-key sort; ties fall back to ascending id, so paging is stable.

    ``by_id`` says the input is already in id order (the world caches that order), which
    saves one of the passes.
    """
    out = list(badges) if by_id else sorted(badges, key=attrgetter("id"))
    for key, desc in reversed(spec):
        out.sort(key=BADGE_SORT_KEYS[key], reverse=desc)
    return out


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_RANGE_SORT_KEYS = frozenset({"created_at", "issued_at", "updated_at"})


def _sorted_window(
    ordered: list[Badge], spec: tuple[tuple[str, bool], ...], terms: Mapping[str, list[str]]
) -> list[Badge]:
    """The slice of ``ordered`` a ``<key>_min``/``_max`` filter on its first sort key allows.

    Found by bisection, so an incremental reader ("updated since T, newest first") costs a
    few comparisons instead of a scan.  The caller still applies every predicate.
    """
    if not spec or spec[0][0] not in _RANGE_SORT_KEYS:
        return ordered
    name, desc = spec[0]
    low_text, high_text = terms.get(f"{name}_min"), terms.get(f"{name}_max")
    if low_text is None and high_text is None:
        return ordered
    get = attrgetter(name)
    sign = -1 if desc else 1

    def key(b: Badge) -> int:
        return int(sign * ((get(b) - _EPOCH) // _MICROSECOND))

    def position(moment: datetime, *, after_equal: bool) -> int:
        target = sign * ((moment - _EPOCH) // _MICROSECOND)
        finder = bisect_right if after_equal else bisect_left
        return finder(ordered, target, key=key)

    start, end = 0, len(ordered)
    if low_text is not None:
        low, _ = _time_bound(",".join(low_text), is_max=False)  # value >= low
        if desc:
            end = position(low, after_equal=True)
        else:
            start = position(low, after_equal=False)
    if high_text is not None:
        high, strict = _time_bound(",".join(high_text), is_max=True)  # value <= / < high
        if desc:
            start = max(start, position(high, after_equal=strict))
        else:
            end = min(end, position(high, after_equal=not strict))
    return ordered[start:end]


def _filter_key(terms: Mapping[str, list[str]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple(sorted((k, tuple(v)) for k, v in terms.items()))


# --------------------------------------------------------------------------- the world


class World:
    """Every organization the local Credly knows, behind one lock."""

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        journal_path: Path | None = None,
        id_factory: Callable[[], str] | None = None,
    ) -> None:
        self.clock = clock or Clock()
        self.journal_path = journal_path
        self._new_id = id_factory or (lambda: str(uuid.uuid4()))
        self._lock = threading.RLock()
        self._orgs: dict[str, OrgState] = {}
        self._tokens: dict[str, str] = {}
        self._cache: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._event_seq = 0
        self._journal: IO[str] | None = None
        self._listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self._quiet = 0
        self.cache_stats: Counter[str] = Counter()

    # ---- construction (seeding) -------------------------------------------------------

    def add_org(self, org_id: str, name: str, token: str, vanity_slug: str | None = None) -> None:
        now = self.clock.now()
        with self._lock:
            if org_id in self._orgs:
                raise ValueError(f"organization {org_id} already exists")
            org = Org(org_id, name, vanity_slug or slugify(name), now, now)
            self._orgs[org_id] = OrgState(org)
            self.add_token(org_id, token)

    def add_token(self, org_id: str, token: str) -> None:
        with self._lock:
            self._state(org_id)
            owner = self._tokens.get(token)
            if owner not in (None, org_id):
                raise ValueError("token already belongs to another organization")
            self._tokens[token] = org_id

    def add_template(
        self,
        org_id: str,
        *,
        id: str,
        name: str,
        state: str = "active",
        allow_duplicate_badges: bool = False,
        description: str = "",
        image_url: str | None = None,
        default_expiration_days: int | None = None,
        created_at: datetime | None = None,
    ) -> dict[str, Any]:
        if state not in TEMPLATE_STATES:
            raise ValueError(f"template state must be one of {TEMPLATE_STATES}")
        when = truncate_ms(created_at) if created_at else self.clock.now()
        with self._lock:
            st = self._state(org_id)
            template = Template(
                id=id,
                org_id=org_id,
                name=name,
                state=state,
                allow_duplicate_badges=allow_duplicate_badges,
                description=description,
                image_url=image_url or f"{IMAGE_HOST}/images/{id}/image.png",
                default_expiration_days=default_expiration_days,
                created_at=when,
                updated_at=when,
                vanity_slug=slugify(name),
                image_id=stable_uuid(f"image:{id}"),
            )
            st.templates[id] = template
            st.version += 1
            return self._template_json(st, template, {})

    def load_badges(self, org_id: str, records: Iterable[Mapping[str, Any]]) -> int:
        """Bulk load without events or journal; returns how many badges were stored."""
        count = 0
        with self._lock:
            st = self._state(org_id)
            for record in records:
                badge = badge_from_record(record)
                if badge.state not in BADGE_STATES:
                    raise ValueError(f"badge {badge.id}: unknown state {badge.state!r}")
                if badge.template_id not in st.templates:
                    raise ValueError(f"badge {badge.id}: unknown template {badge.template_id}")
                self._put(st, badge)
                count += 1
            st.version += 1
        return count

    def set_auto_accept(
        self, org_id: str, email: str, enabled: bool = True, *, record: bool = False
    ) -> None:
        """The earner turned Auto-Accept on (or off) for this organization.

        Seeding calls this directly and nothing is recorded; the control endpoint passes
        ``record=True`` so the setting is journalled like any change made through the API.
        """
        change = Change("auto_accept", org_id, auto_accept=(email.strip().lower(), enabled))
        with self._lock:
            self._state(org_id)
            if record:
                self._commit(change)
            else:
                self._apply(change)

    @contextmanager
    def unrecorded(self) -> Iterator[None]:
        """Seed inside this block: changes made here are neither journalled nor announced."""
        with self._lock:
            self._quiet += 1
            try:
                yield
            finally:
                self._quiet -= 1

    def add_listener(self, listener: Callable[[str, dict[str, Any]], None]) -> None:
        """``listener(org_id, thin_event)`` is called for every event a change emits."""
        self._listeners.append(listener)

    # ---- reading back ------------------------------------------------------------------

    def org_ids(self) -> list[str]:
        with self._lock:
            return list(self._orgs)

    def org_for_token(self, token: str) -> str | None:
        with self._lock:
            return self._tokens.get(token)

    def has_org(self, org_id: str) -> bool:
        with self._lock:
            return org_id in self._orgs

    def badges_for(self, org_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [b.as_dict() for b in self._state(org_id).badges.values()]

    def badge_record(self, org_id: str, badge_id: str) -> dict[str, Any] | None:
        with self._lock:
            badge = self._state(org_id).badges.get(badge_id)
            return badge.as_dict() if badge else None

    def webhook_target(self, org_id: str) -> tuple[str | None, list[str]]:
        """Where this organization's webhooks go, and which event types it allows (all if [])."""
        with self._lock:
            org = self._state(org_id).org
            return org.webhook_url, list(org.allowed_webhooks)

    def version(self, org_id: str) -> int:
        with self._lock:
            return self._state(org_id).version

    def counters(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {oid: dict(st.counters) for oid, st in self._orgs.items()}

    def badge_counts(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {
                oid: dict(Counter(b.state for b in st.badges.values()))
                for oid, st in self._orgs.items()
            }

    # ---- organizations -----------------------------------------------------------------

    def org_json(self, org_id: str) -> dict[str, Any]:
        with self._lock:
            org = self._state(org_id).org
            return {
                **self._entity(org),
                "description": org.description,
                "website_url": org.website_url,
                "webhook_url": org.webhook_url,
                "allowed_webhooks": list(org.allowed_webhooks),
                "photo_url": None,
                "created_at": fmt_time(org.created_at),
                "updated_at": fmt_time(org.updated_at),
            }

    def update_org(self, org_id: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "Request body must be a JSON object")
        update: dict[str, Any] = {}
        for key in _ORG_FIELDS:
            if key not in body:
                continue
            value = body[key]
            if key == "allowed_webhooks":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise _invalid("Allowed webhooks must be a list of event types")
            elif key == "webhook_url":
                if value in (None, ""):
                    value = None
                elif not isinstance(value, str) or not re.match(r"^https?://\S+$", value):
                    raise _invalid("Webhook url is invalid")
            elif key == "name":
                if not isinstance(value, str) or not value.strip():
                    raise _invalid("Name can't be blank")
            elif value is not None and not isinstance(value, str):
                raise _invalid(f"{key.replace('_', ' ').capitalize()} is invalid")
            update[key] = value
        with self._lock:
            self._state(org_id)
            now = self.clock.now()
            self._commit(Change("org_update", org_id, org_update=update, org_updated_at=now))
            return self.org_json(org_id)

    # ---- templates ---------------------------------------------------------------------

    def template_json(self, org_id: str, template_id: str) -> dict[str, Any]:
        with self._lock:
            st = self._state(org_id)
            template = st.templates.get(template_id)
            if template is None:
                raise ApiError(404, "Badge template not found")
            return self._template_json(st, template, self._template_counts(st))

    def template_page(
        self, org_id: str, filter_text: str | None, sort_text: str | None, offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        try:
            terms = parse_filter(filter_text)
        except ValueError as exc:
            raise ApiError(400, f"Invalid filter: {exc}") from None
        spec = parse_sort(sort_text)
        with self._lock:
            st = self._state(org_id)
            counts = self._template_counts(st)
            items = [t for t in st.templates.values() if _template_matches(t, terms)]
            sort_keys: dict[str, Callable[[Template], Any]] = {
                "name": lambda t: t.name.lower(),
                "created_at": attrgetter("created_at"),
                "updated_at": attrgetter("updated_at"),
                "badges_count": lambda t: counts.get(t.id, 0),
            }
            items.sort(key=attrgetter("id"))
            for key, desc in reversed(spec or [("name", False)]):
                if key not in sort_keys:
                    raise ApiError(400, f"Invalid sort key {key[:40]!r}")
                items.sort(key=sort_keys[key], reverse=desc)
            page = items[offset : offset + limit]
            return len(items), [self._template_json(st, t, counts) for t in page]

    # ---- badges: reading ---------------------------------------------------------------

    def badge_json(self, org_id: str, badge_id: str) -> dict[str, Any]:
        with self._lock:
            st = self._state(org_id)
            badge = st.badges.get(badge_id)
            if badge is None:
                raise ApiError(404, "Badge not found")
            return self._badge_json(st, badge)

    def badge_page(
        self, org_id: str, filter_text: str | None, sort_text: str | None, offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        terms = parse_badge_filter(filter_text)
        spec = parse_badge_sort(sort_text)
        with self._lock:
            st = self._state(org_id)
            ordered = self._query(st, terms, spec)
            page = ordered[offset : offset + limit]
            return len(ordered), [self._badge_json(st, b) for b in page]

    def high_volume_page(
        self,
        org_id: str,
        filter_text: str | None,
        *,
        after: tuple[datetime, str] | None,
        limit: int,
        badge_format: str = "default",
    ) -> tuple[list[dict[str, Any]], tuple[datetime, str] | None]:
        """Badges in (created_at, id) order after the cursor key; the next key or None."""
        terms = parse_badge_filter(filter_text)
        with self._lock:
            st = self._state(org_id)
            ordered = self._query(st, terms, (("created_at", False),))
            start = 0
            if after is not None:
                start = bisect_right(ordered, after, key=lambda b: (b.created_at, b.id))
            page = ordered[start : start + limit]
            render = self._badge_minimal if badge_format == "minimal" else self._badge_json
            items = [render(st, b) for b in page]
            more = start + limit < len(ordered)
            last = page[-1] if page else None
            return items, ((last.created_at, last.id) if more and last else None)

    # ---- badges: writing ---------------------------------------------------------------

    def issue(self, org_id: str, body: Any) -> dict[str, Any]:
        with self._lock:
            st = self._state(org_id)
            now = self.clock.now()
            badge = self._prepare_issue(st, body, now, set())
            change = Change("issue", org_id, badges=[badge])
            self._issue_events(change, badge, now)
            self._commit(change)
            return self._badge_json(st, st.badges[badge.id])

    def issue_batch(self, org_id: str, body: Any) -> list[dict[str, Any]]:
        """All or nothing: one invalid entry refuses the batch, naming every bad index."""
        if not isinstance(body, dict) or not isinstance(body.get("badges"), list):
            raise ApiError(400, "Request body must be an object with a 'badges' list")
        entries: list[Any] = body["badges"]
        if not entries:
            raise _invalid("Badges can't be blank")
        with self._lock:
            st = self._state(org_id)
            now = self.clock.now()
            taken: set[tuple[str, str]] = set()
            prepared: list[Badge] = []
            errors: list[dict[str, Any]] = []
            for index, entry in enumerate(entries):
                try:
                    prepared.append(self._prepare_issue(st, entry, now, taken))
                except ApiError as exc:
                    errors.append({"index": index, "message": exc.message})
            if errors:
                first = errors[0]
                raise ApiError(
                    422, f"{first['message']} (badge {first['index']})", {"errors": errors}
                )
            change = Change("issue_batch", org_id, badges=prepared)
            for badge in prepared:
                self._issue_events(change, badge, now)
            self._commit(change)
            return [self._badge_json(st, st.badges[b.id]) for b in prepared]

    def replace(self, org_id: str, badge_id: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "Request body must be a JSON object")
        with self._lock:
            st = self._state(org_id)
            old = self._existing(st, badge_id)
            if old.state == "replaced":
                raise _invalid(
                    "This badge cannot be replaced because it has already been replaced.",
                    current_badge_id=self._chain_end(st, old),
                )
            if old.state not in LIVE_STATES:
                raise _invalid(f"This badge cannot be replaced because it has been {old.state}.")
            missing = [label for key, label in _REQUIRED_REPLACE if _blank(body.get(key))]
            if missing:
                raise _invalid(", ".join(f"{label} can't be blank" for label in missing))
            now = self.clock.now()
            email = old.recipient_email
            new_email = body.get("recipient_email")
            if new_email is not None and _norm(new_email) != old.email_key:
                if old.state != "pending":
                    raise _invalid("Recipient email can only be changed while a badge is pending")
                email = _check_email(new_email)
            template = self._issuable_template(st, body.get("badge_template_id"))
            issued_at = _body_time(body.get("issued_at"), "Issued at")
            expires_at = _expiry(body, template, issued_at)
            earner = _optional_text(body, "issuer_earner_id", old.issuer_earner_id)
            if not template.allow_duplicate_badges:
                clash = self._live_duplicate(st, template.id, _norm(email), earner, {old.id})
                if clash:
                    raise _invalid("Badge template has already been issued to this recipient")
            new = replace(
                old,
                id=self._new_id(),
                template_id=template.id,
                recipient_email=email,
                email_key=_norm(email),
                first_name=_name(body, "issued_to_first_name", old.first_name),
                last_name=_name(body, "issued_to_last_name", old.last_name),
                middle_name=_optional_text(body, "issued_to_middle_name", old.middle_name),
                issuer_earner_id=earner,
                issued_at=issued_at,
                expires_at=expires_at,
                created_at=now,
                updated_at=now,
                replaces_badge_id=old.id,
                replacement_badge_id=None,
                country=_optional_text(body, "country_name", old.country),
                state_or_province=_optional_text(body, "state_or_province", old.state_or_province),
                evidence=self._evidence(body) if "evidence" in body else list(old.evidence),
                suppress_badge_notification_email=_flag(
                    body, "suppress_badge_notification_email", old.suppress_badge_notification_email
                ),
            )
            retired = replace(
                old,
                state="replaced",
                replacement_badge_id=new.id,
                state_updated_at=now,
                updated_at=now,
            )
            change = Change("replace", org_id, badges=[retired, new])
            change.events.append((self._new_id(), "badge.state.changed", now, old.id))
            change.events.append((self._new_id(), "badge.created", now, new.id))
            self._commit(change)
            return self._badge_json(st, st.badges[new.id])

    def revoke(
        self, org_id: str, badge_id: str, reason: Any, suppress_email: bool = False
    ) -> dict[str, Any]:
        with self._lock:
            st = self._state(org_id)
            badge = self._existing(st, badge_id)
            if _blank(reason) or not isinstance(reason, str):
                raise _invalid("Reason can't be blank")
            if badge.state == "revoked":
                raise _invalid("This badge has already been revoked.")
            if badge.state == "replaced":
                raise _invalid(
                    "This badge cannot be revoked because it has been replaced.",
                    current_badge_id=self._chain_end(st, badge),
                )
            now = self.clock.now()
            revoked = replace(
                badge,
                state="revoked",
                revocation_reason=reason.strip(),
                state_updated_at=now,
                updated_at=now,
            )
            change = Change("revoke", org_id, badges=[revoked])
            change.events.append((self._new_id(), "badge.state.changed", now, badge.id))
            self._commit(change)
            return self._badge_json(st, st.badges[badge.id])

    def delete(self, org_id: str, badge_id: str) -> None:
        with self._lock:
            st = self._state(org_id)
            self._existing(st, badge_id)
            change = Change("delete", org_id, deleted=[badge_id])
            change.events.append((self._new_id(), "badge.deleted", self.clock.now(), badge_id))
            self._commit(change)

    def earner_action(self, org_id: str, badge_id: str, action: str) -> dict[str, Any]:
        """What the earner does on Credly's site: ``accept`` or ``reject`` a pending badge."""
        target = {"accept": "accepted", "reject": "rejected"}.get(action)
        if target is None:
            raise ApiError(404, f"Unknown earner action {action[:20]!r}")
        with self._lock:
            st = self._state(org_id)
            badge = self._existing(st, badge_id)
            if badge.state != "pending":
                raise _invalid(f"Only a pending badge can be {target}; this one is {badge.state}")
            now = self.clock.now()
            moved = replace(badge, state=target, state_updated_at=now, updated_at=now)
            change = Change(action, org_id, badges=[moved])
            change.events.append((self._new_id(), "badge.state.changed", now, badge.id))
            self._commit(change)
            return self._badge_json(st, st.badges[badge.id])

    # ---- events ------------------------------------------------------------------------

    def event_page(
        self, org_id: str, filter_text: str | None, sort_text: str | None, offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        try:
            terms = parse_filter(filter_text)
        except ValueError as exc:
            raise ApiError(400, f"Invalid filter: {exc}") from None
        unknown = [k for k in terms if k not in ("event_type", "badge_id")]
        if unknown:
            raise ApiError(400, f"Invalid filter key {unknown[0][:40]!r}")
        spec = parse_sort(sort_text)
        if any(key != "occurred_at" for key, _ in spec) or len(spec) > 1:
            raise ApiError(400, "Events sort by occurred_at only")
        descending = bool(spec and spec[0][1])
        with self._lock:
            st = self._state(org_id)
            timeline = self._timeline(st)
            types = set(terms.get("event_type", [])) or None
            badge_ids = set(terms.get("badge_id", [])) or None
            if types or badge_ids:
                timeline = [
                    e
                    for e in timeline
                    if (types is None or e[1] in types) and (badge_ids is None or e[3] in badge_ids)
                ]
            if descending:
                timeline = timeline[::-1]
            page = timeline[offset : offset + limit]
            return len(timeline), [self._event_json(st, e) for e in page]

    def event_json(self, org_id: str, event_id: str) -> dict[str, Any]:
        with self._lock:
            st = self._state(org_id)
            stored = st.events_by_id.get(event_id)
            if stored is not None:
                return self._event_json(st, _event_tuple(stored))
            row = self._reminder_by_id(st).get(event_id)
            if row is None or row[0] > self.clock.now():
                raise ApiError(404, "Event not found")
            return self._event_json(st, row)

    # ---- journal -----------------------------------------------------------------------

    def replay_journal(self) -> int:
        """Re-apply the journal on top of this (freshly seeded) world; returns the entries."""
        if self.journal_path is None or not self.journal_path.exists():
            return 0
        applied = 0
        with self._lock, self.journal_path.open(encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except json.JSONDecodeError:
                    break  # a line cut short by a crash mid-write: everything before it holds
                self._apply(Change.from_json(data))
                applied += 1
        return applied

    def close(self) -> None:
        with self._lock:
            if self._journal is not None:
                self._journal.close()
                self._journal = None

    # ---- internals ---------------------------------------------------------------------

    def _state(self, org_id: str) -> OrgState:
        st = self._orgs.get(org_id)
        if st is None:
            raise ApiError(404, "Organization not found")
        return st

    def _existing(self, st: OrgState, badge_id: str) -> Badge:
        badge = st.badges.get(badge_id)
        if badge is None:
            raise ApiError(404, "Badge not found")
        return badge

    def _chain_end(self, st: OrgState, badge: Badge) -> str:
        """The live end of a replacement chain (the last badge still present)."""
        current, seen = badge, {badge.id}
        while current.replacement_badge_id and current.replacement_badge_id not in seen:
            following = st.badges.get(current.replacement_badge_id)
            if following is None:
                return current.replacement_badge_id
            seen.add(following.id)
            current = following
        return current.id

    def _put(self, st: OrgState, badge: Badge) -> None:
        old = st.badges.get(badge.id)
        if old is not None:
            _index_remove(st.by_email, old.email_key, old.id)
            _index_remove(st.by_earner, old.issuer_earner_id, old.id)
        st.badges[badge.id] = badge
        _index_add(st.by_email, badge.email_key, badge.id)
        _index_add(st.by_earner, badge.issuer_earner_id, badge.id)

    def _remove(self, st: OrgState, badge_id: str) -> None:
        old = st.badges.pop(badge_id, None)
        if old is not None:
            _index_remove(st.by_email, old.email_key, old.id)
            _index_remove(st.by_earner, old.issuer_earner_id, old.id)

    def _commit(self, change: Change) -> None:
        st = self._apply(change)
        if self._quiet:
            return
        st.counters[change.op] += 1
        if change.op in ("issue", "issue_batch"):
            st.counters["badges_issued"] += len(change.badges)
        if self.journal_path is not None:
            if self._journal is None:
                self.journal_path.parent.mkdir(parents=True, exist_ok=True)
                self._journal = self.journal_path.open("a", encoding="utf-8")
            self._journal.write(json.dumps(change.to_json(), separators=(",", ":")) + "\n")
            self._journal.flush()
        for event_id, event_type, at, _badge_id in change.events:
            thin = {
                "id": event_id,
                "organization_id": change.org_id,
                "event_type": event_type,
                "occurred_at": fmt_time(at),
            }
            for listener in self._listeners:
                listener(change.org_id, thin)

    def _apply(self, change: Change) -> OrgState:
        st = self._state(change.org_id)
        if change.org_update:
            for key, value in change.org_update.items():
                setattr(st.org, key, value)
            st.org.updated_at = change.org_updated_at or st.org.updated_at
        if change.auto_accept:
            email, enabled = change.auto_accept
            if enabled:
                st.auto_accept.add(email)
            else:
                st.auto_accept.discard(email)
        before = {
            bid: self._badge_json(st, st.badges[bid]) for bid in change.deleted if bid in st.badges
        }
        for badge in change.badges:
            if badge.template_id not in st.templates:
                raise ValueError(f"badge {badge.id}: unknown template {badge.template_id}")
            self._put(st, badge)
        for bid in change.deleted:
            self._remove(st, bid)
        for event_id, event_type, at, badge_id in change.events:
            snapshot = before.get(badge_id)
            if snapshot is None and badge_id in st.badges:
                snapshot = self._badge_json(st, st.badges[badge_id])
            self._event_seq += 1
            event = Event(event_id, event_type, at, badge_id, self._event_seq, snapshot)
            st.events.append(event)
            st.events_by_id[event_id] = event
        st.version += 1
        return st

    def _issue_events(self, change: Change, badge: Badge, now: datetime) -> None:
        change.events.append((self._new_id(), "badge.created", now, badge.id))
        if badge.state == "accepted":
            change.events.append((self._new_id(), "badge.state.changed", now, badge.id))

    def _issuable_template(self, st: OrgState, template_id: Any) -> Template:
        template = st.templates.get(str(template_id))
        if template is None:
            raise _invalid("Badge template not found")
        if template.state == "archived":
            raise _invalid("Badge template is archived and cannot be used to issue badges")
        if template.state != "active":
            raise _invalid(f"Badge template is {template.state}, not active")
        return template

    def _live_duplicate(
        self,
        st: OrgState,
        template_id: str,
        email_key: str,
        earner: str | None,
        exclude: set[str],
    ) -> Badge | None:
        candidates = set(st.by_email.get(email_key, ()))
        if earner:
            candidates |= st.by_earner.get(earner, set())
        for bid in candidates - exclude:
            badge = st.badges[bid]
            if badge.template_id == template_id and badge.state in LIVE_STATES:
                return badge
        return None

    def _prepare_issue(
        self, st: OrgState, body: Any, now: datetime, taken: set[tuple[str, str]]
    ) -> Badge:
        """Validate one issue request; ``taken`` holds keys issued earlier in the same batch."""
        if not isinstance(body, dict):
            raise ApiError(400, "Request body must be a JSON object")
        missing = [label for key, label in _REQUIRED_ISSUE if _blank(body.get(key))]
        if missing:
            raise _invalid(", ".join(f"{label} can't be blank" for label in missing))
        email = _check_email(body["recipient_email"])
        first = _name(body, "issued_to_first_name", "")
        last = _name(body, "issued_to_last_name", "")
        issued_at = _body_time(body["issued_at"], "Issued at")
        template = self._issuable_template(st, body["badge_template_id"])
        expires_at = _expiry(body, template, issued_at)
        earner = _optional_text(body, "issuer_earner_id", None)
        locale = body.get("locale") or "en"
        if locale not in LOCALES:
            raise _invalid("Locale is not included in the list")
        key = _norm(email)
        if not template.allow_duplicate_badges:
            clash = self._live_duplicate(st, template.id, key, earner, set())
            in_batch = (template.id, f"email:{key}") in taken or (
                earner is not None and (template.id, f"earner:{earner}") in taken
            )
            if clash or in_batch:
                raise _invalid("Badge template has already been issued to this recipient")
        taken.add((template.id, f"email:{key}"))
        if earner is not None:
            taken.add((template.id, f"earner:{earner}"))
        auto = key in st.auto_accept
        return Badge(
            id=self._new_id(),
            template_id=template.id,
            recipient_email=email,
            email_key=key,
            first_name=first,
            last_name=last,
            middle_name=_optional_text(body, "issued_to_middle_name", None),
            state="accepted" if auto else "pending",
            issued_at=issued_at,
            created_at=now,
            updated_at=now,
            expires_at=expires_at,
            state_updated_at=now if auto else None,
            issuer_earner_id=earner,
            suppress_badge_notification_email=_flag(
                body, "suppress_badge_notification_email", False
            ),
            locale=locale,
            country=_optional_text(body, "country_name", None),
            state_or_province=_optional_text(body, "state_or_province", None),
            evidence=self._evidence(body),
        )

    def _evidence(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        raw = body.get("evidence")
        if raw is None:
            return []
        if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
            raise _invalid("Evidence is invalid")
        return [{"id": self._new_id(), **e} for e in raw]

    # ---- queries and caches ------------------------------------------------------------

    def _cached(self, key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
        if key in self._cache:
            self._cache.move_to_end(key)
            self.cache_stats["hits"] += 1
            return self._cache[key]
        self.cache_stats["misses"] += 1
        value = build()
        self._cache[key] = value
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return value

    def _sorted_all(self, st: OrgState, spec: tuple[tuple[str, bool], ...]) -> list[Badge]:
        def build() -> list[Badge]:
            if not spec:
                return sort_badges(st.badges.values(), ())
            return sort_badges(self._sorted_all(st, ()), spec, by_id=True)

        return self._cached(("sorted", st.org.id, spec, st.version), build)  # type: ignore[no-any-return]

    def _query(
        self, st: OrgState, terms: dict[str, list[str]], spec: tuple[tuple[str, bool], ...]
    ) -> list[Badge]:
        predicates = self._predicates(st, terms)
        narrowed = self._narrow(st, terms)
        if narrowed is not None:
            return sort_badges((b for b in narrowed if all(p(b) for p in predicates)), spec)
        if not predicates:
            return self._sorted_all(st, spec)

        def build() -> list[Badge]:
            # Reuse a cached full order when there is one; otherwise filter first and sort
            # only what is left (an incremental reader's updated_at_min leaves little).
            full = self._cache.get(("sorted", st.org.id, spec, st.version))
            if full is not None:
                self.cache_stats["reused_order"] += 1
                window = _sorted_window(full, spec, terms)
                return [b for b in window if all(p(b) for p in predicates)]
            kept = [b for b in st.badges.values() if all(p(b) for p in predicates)]
            return sort_badges(kept, spec)

        key = ("filtered", st.org.id, _filter_key(terms), spec, st.version)
        return self._cached(key, build)  # type: ignore[no-any-return]

    def _narrow(self, st: OrgState, terms: Mapping[str, list[str]]) -> list[Badge] | None:
        """Candidates from an index when the filter names emails or earner ids."""
        sets: list[set[str]] = []
        for key in ("recipient_email", "recipient_email_all"):
            if key in terms:
                found: set[str] = set()
                for value in terms[key]:
                    found |= st.by_email.get(_norm(value), set())
                sets.append(found)
        if "issuer_earner_id" in terms:
            found = set()
            for value in terms["issuer_earner_id"]:
                found |= st.by_earner.get(value, set())
            sets.append(found)
        if not sets:
            return None
        ids = set.intersection(*sets)
        return [st.badges[i] for i in ids]

    def _predicates(self, st: OrgState, terms: Mapping[str, list[str]]) -> list[Predicate]:
        preds: list[Predicate] = []
        for key, values in terms.items():
            if key == "state":
                preds.append(_member("state", values))
            elif key in ("recipient_email", "recipient_email_all"):
                preds.append(_member("email_key", [_norm(v) for v in values]))
            elif key == "issuer_earner_id":
                preds.append(_member("issuer_earner_id", values))
            elif key == "badge_template_id":
                preds.append(_member("template_id", values))
            elif key == "public":
                preds.append(_member("public", [_bool_value(key, values)]))
            elif key == "query":
                preds.append(self._query_predicate(st, ",".join(values)))
            elif key.startswith("expires_at_date_"):
                day = values[0].strip()[:10]
                preds.append(_time_predicate("expires_at", day, is_max=key.endswith("max")))
            else:
                name, _, side = key.rpartition("_")
                preds.append(_time_predicate(name, ",".join(values), is_max=side == "max"))
        return preds

    def _query_predicate(self, st: OrgState, text: str) -> Predicate:
        needle = text.strip().lower()
        names = {tid: t.name.lower() for tid, t in st.templates.items()}

        def match(b: Badge) -> bool:
            return (
                needle in b.email_key
                or needle in f"{b.first_name} {b.last_name}".lower()
                or needle in names.get(b.template_id, "")
            )

        return match

    def _template_counts(self, st: OrgState) -> dict[str, int]:
        key = ("template_counts", st.org.id, st.version)
        return self._cached(key, lambda: Counter(b.template_id for b in st.badges.values()))  # type: ignore[no-any-return]

    def _reminders(self, st: OrgState) -> list[EventRow]:
        """Every reminder the badges' current states allow, ignoring the clock, by time.

        A reminder moment counts when it falls while the badge was pending, exactly as
        ``reminders_sent`` counts them; the clock cut happens at read time.  Rows carry
        ``seq = -(index + 1)`` and no id: ids are derived only for rows that are shown.
        """

        def build() -> list[EventRow]:
            out: list[EventRow] = []
            for b in st.badges.values():
                if b.suppress_badge_notification_email:
                    continue
                until = None if b.state == "pending" else (b.state_updated_at or b.updated_at)
                count = reminders_sent(sent_at=b.created_at, pending_until=until, now=_FAR_FUTURE)
                for index, moment in enumerate(reminder_moments(b.created_at)[:count]):
                    out.append((moment, REMINDER_EVENT, "", b.id, -(index + 1)))
            out.sort(key=lambda e: (e[0], e[3], -e[4]))
            return out

        return self._cached(("reminders", st.org.id, st.version), build)  # type: ignore[no-any-return]

    def _reminder_by_id(self, st: OrgState) -> dict[str, EventRow]:
        def build() -> dict[str, EventRow]:
            return {_reminder_id(e[3], e[4]): e for e in self._reminders(st)}

        return self._cached(("reminder_ids", st.org.id, st.version), build)  # type: ignore[no-any-return]

    def _timeline(self, st: OrgState) -> list[EventRow]:
        """Stored events merged with the reminders already due by the clock."""
        reminders = self._reminders(st)
        cut = bisect_right(reminders, self.clock.now(), key=lambda e: e[0])

        def build() -> list[EventRow]:
            stored = sorted((_event_tuple(e) for e in st.events), key=lambda e: (e[0], e[4]))
            if not stored:
                return reminders[:cut]
            # two sorted runs: timsort merges them in linear time, stored events first on ties
            return sorted(stored + reminders[:cut], key=lambda e: e[0])

        return self._cached(("timeline", st.org.id, st.version, cut), build)  # type: ignore[no-any-return]

    # ---- serialization -----------------------------------------------------------------

    def _entity(self, org: Org) -> dict[str, Any]:
        return {
            "type": "Organization",
            "id": org.id,
            "name": org.name,
            "url": f"{API_URL}/organizations/{org.id}",
            "vanity_url": f"{WEB_URL}/org/{org.vanity_slug}",
            "vanity_slug": org.vanity_slug,
            "verified": True,
        }

    def _template_json(
        self, st: OrgState, t: Template, counts: Mapping[str, int]
    ) -> dict[str, Any]:
        issued = counts.get(t.id, 0)
        return {
            "id": t.id,
            "name": t.name,
            "description": t.description,
            "state": t.state,
            "state_updated_at": None,
            "allow_duplicate_badges": t.allow_duplicate_badges,
            "public": t.public,
            "visibility": "public" if t.public else "private",
            "badges_count": issued,
            "get_issue_count": issued,
            "image": {"id": t.image_id, "url": t.image_url},
            "image_url": t.image_url,
            "url": f"{WEB_URL}/org/{st.org.vanity_slug}/badge/{t.vanity_slug}",
            "vanity_slug": t.vanity_slug,
            "owner": {**self._entity(st.org), "viewable": True, "enable_blockchain": False},
            "skills": [],
            "reporting_tags": [],
            "alignments": [],
            "recommendations": [],
            "required_badge_templates": [],
            "badge_template_activities": [],
            "cost": None,
            "level": None,
            "time_to_earn": None,
            "type_category": None,
            "certification": True,
            "recipient_type": "User",
            "criteria_url": None,
            "default_expiration_days": t.default_expiration_days,
            "created_at": fmt_time(t.created_at),
            "updated_at": fmt_time(t.updated_at),
        }

    def _template_ref(self, st: OrgState, template_id: str) -> dict[str, Any]:
        t = st.templates[template_id]
        return {
            "id": t.id,
            "name": t.name,
            "state": t.state,
            "allow_duplicate_badges": t.allow_duplicate_badges,
            "image_url": t.image_url,
            "url": f"{WEB_URL}/org/{st.org.vanity_slug}/badge/{t.vanity_slug}",
        }

    def _badge_minimal(self, st: OrgState, b: Badge) -> dict[str, Any]:
        t = st.templates[b.template_id]
        return {
            "id": b.id,
            "issued_to": f"{b.first_name} {b.last_name}".strip(),
            "issued_to_first_name": b.first_name,
            "issued_to_last_name": b.last_name,
            "issuer_earner_id": b.issuer_earner_id,
            "public": b.public,
            "recipient_email": b.recipient_email,
            "state": b.state,
            "badge_url": f"{WEB_URL}/badges/{b.id}",
            "created_at": fmt_time(b.created_at),
            "updated_at": fmt_time(b.updated_at),
            "issued_at": fmt_time(b.issued_at),
            "expires_at": fmt_time(b.expires_at),
            "state_updated_at": fmt_time(b.state_updated_at),
            "badge_template": {"id": t.id, "name": t.name},
            "user": {"id": _user_id(b.email_key)},
        }

    def _badge_json(self, st: OrgState, b: Badge) -> dict[str, Any]:
        t = st.templates[b.template_id]
        template = self._template_ref(st, b.template_id)
        entity = self._entity(st.org)
        badge_url = f"{WEB_URL}/badges/{b.id}"
        user_id = _user_id(b.email_key)
        issued, expires, created, updated, changed = (
            fmt_time(b.issued_at),
            fmt_time(b.expires_at),
            fmt_time(b.created_at),
            fmt_time(b.updated_at),
            fmt_time(b.state_updated_at),
        )
        return {
            "id": b.id,
            "state": b.state,
            "state_updated_at": changed,
            "state_updated_at_date": changed and changed[:10],
            "recipient_email": b.recipient_email,
            "issued_to": " ".join(p for p in (b.first_name, b.middle_name, b.last_name) if p),
            "issued_to_first_name": b.first_name,
            "issued_to_middle_name": b.middle_name,
            "issued_to_last_name": b.last_name,
            "issuer_earner_id": b.issuer_earner_id,
            "locale": b.locale,
            "public": b.public,
            "suppress_badge_notification_email": b.suppress_badge_notification_email,
            "issued_at": issued,
            "issued_at_date": issued and issued[:10],
            "expires_at": expires,
            "expires_at_date": expires and expires[:10],
            "created_at": created,
            "created_at_date": created and created[:10],
            "updated_at": updated,
            "updated_at_date": updated and updated[:10],
            "revocation_reason": b.revocation_reason,
            "replaces_badge_id": b.replaces_badge_id,
            "replacement_badge_id": b.replacement_badge_id,
            "country": b.country,
            "state_or_province": b.state_or_province,
            "image": {"id": t.image_id, "url": t.image_url},
            "image_url": t.image_url,
            "badge_url": badge_url,
            "accept_badge_url": f"{badge_url}/accept",
            "evidence": [dict(e) for e in b.evidence],
            "alignments": [],
            "badge_template": template,
            "user": {
                "id": user_id,
                "email": b.recipient_email,
                "first_name": b.first_name,
                "last_name": b.last_name,
                "confirmed": True,
                "photo": None,
                "photo_url": None,
                "url": f"{WEB_URL}/users/{user_id}",
                "current_position_name": "*****",
                "current_organization_name": "*****",
            },
            "created_by": entity,
            "issuer": {
                "summary": f"issued by {st.org.name}",
                "entities": [{"label": "Issued by", "primary": True, "entity": entity}],
            },
            "printing_enabled": False,
            "print_method": None,
        }

    def _event_json(self, st: OrgState, event: EventRow) -> dict[str, Any]:
        occurred_at, event_type, event_id, badge_id, seq = event
        snapshot: dict[str, Any] | None = None
        if seq < 0:
            event_id = _reminder_id(badge_id, seq)
        if seq >= 0:
            stored = st.events_by_id.get(event_id)
            snapshot = stored.badge if stored else None
        elif badge_id in st.badges:
            snapshot = self._badge_json(st, st.badges[badge_id])
        return {
            "id": event_id,
            "event_type": event_type,
            "organization_id": st.org.id,
            "occurred_at": fmt_time(occurred_at),
            "badge": snapshot,
        }


# --------------------------------------------------------------------------- helpers


def _event_tuple(e: Event) -> EventRow:
    return (e.occurred_at, e.event_type, e.id, e.badge_id, e.seq)


def _reminder_id(badge_id: str, seq: int) -> str:
    """A reminder event's id: stable for (badge, which reminder), never stored."""
    return stable_uuid(f"{badge_id}:reminder:{-seq - 1}")


def stable_uuid(text: str) -> str:
    """A UUID-shaped id derived from ``text`` (name-based, like uuid5, but cheaper to make)."""
    h = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def _user_id(email_key: str) -> str:
    """The earner's Credly user id: stable per email, like an account would be."""
    return stable_uuid(f"user:{email_key}")


def _template_matches(t: Template, terms: Mapping[str, list[str]]) -> bool:
    for key, values in terms.items():
        if key == "state":
            if t.state not in values:
                return False
        elif key == "query":
            needle = ",".join(values).strip().lower()
            if needle not in t.name.lower() and needle not in t.description.lower():
                return False
        elif key == "name":
            wanted = ",".join(values).strip()
            if len(wanted) >= 2 and wanted[0] == wanted[-1] == '"':
                if t.name != wanted[1:-1]:
                    return False
            elif wanted.lower() not in t.name.lower():
                return False
        elif key == "public":
            if t.public is not _bool_value(key, values):
                return False
        elif key in ("created_at_min", "created_at_max", "updated_at_min", "updated_at_max"):
            name, _, side = key.rpartition("_")
            if not _time_predicate(name, values[0], is_max=side == "max")(t):  # type: ignore[arg-type]
                return False
        else:
            raise ApiError(400, f"Invalid filter key {key[:40]!r}")
    return True


def _norm(email: Any) -> str:
    return str(email).strip().lower()


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _check_email(value: Any) -> str:
    if not isinstance(value, str) or not _EMAIL_RE.match(value.strip()):
        raise _invalid("Recipient email is invalid")
    return value.strip()


def _name(body: Mapping[str, Any], key: str, default: str) -> str:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, str) or not value.strip():
        label = key.replace("_", " ").capitalize()
        raise _invalid(f"{label} is invalid")
    return value.strip()


def _optional_text(body: Mapping[str, Any], key: str, default: str | None) -> str | None:
    if key not in body:
        return default
    value = body[key]
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _invalid(f"{key.replace('_', ' ').capitalize()} is invalid")
    return str(value)


def _flag(body: Mapping[str, Any], key: str, default: bool) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _invalid(f"{key.replace('_', ' ').capitalize()} must be true or false")
    return value


def _body_time(value: Any, label: str) -> datetime:
    if not isinstance(value, str):
        raise _invalid(f"{label} is invalid")
    try:
        return truncate_ms(parse_credly_time(value))
    except ValueError:
        raise _invalid(f"{label} is invalid") from None


def _expiry(body: Mapping[str, Any], template: Template, issued_at: datetime) -> datetime | None:
    """``null``/omitted: the template's default; ``false``: never; else the given time."""
    value = body.get("expires_at")
    if value is False:
        return None
    if value is None:
        days = template.default_expiration_days
        return issued_at + timedelta(days=days) if days else None
    expires_at = _body_time(value, "Expires at")
    if expires_at <= issued_at:
        raise _invalid("Expires at must be after issued at")
    return expires_at

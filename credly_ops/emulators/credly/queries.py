"""The emulator's query engine: filter and sort parsing, predicates, paging windows, caches.

Listing 100,000 badges page by page must not sort on every request: sorted and filtered orders
are cached by (organization, filter, sort, version), and an organization's version moves on
every change to it.  Reminder events are derived from the badges' states, never stored.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from operator import attrgetter
from typing import Any

from credly_ops.credly.filters import parse_filter, parse_sort
from credly_ops.emulators.credly.records import (
    BADGE_STATES,
    BADGE_TIME_FIELDS,
    REMINDER_EVENT,
    ApiError,
    Badge,
    EventRow,
    OrgState,
    Template,
    event_row,
    reminder_id,
)
from credly_ops.reminders import reminder_moments, reminders_sent
from credly_ops.timeutil import parse_credly_time

_MIN_TIME = datetime(1, 1, 2, tzinfo=UTC)
_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
CACHE_SIZE = 48


def time_bound(text: str, *, is_max: bool) -> tuple[datetime, bool]:
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


def time_predicate(name: str, text: str, *, is_max: bool) -> Predicate:
    bound, strict = time_bound(text, is_max=is_max)
    get = attrgetter(name)
    if not is_max:
        return lambda b: (v := get(b)) is not None and v >= bound
    if strict:
        return lambda b: (v := get(b)) is not None and v < bound
    return lambda b: (v := get(b)) is not None and v <= bound


def member(attr: str, values: Iterable[object]) -> Predicate:
    allowed, get = frozenset(values), attrgetter(attr)
    return lambda b: get(b) in allowed


def bool_value(key: str, values: list[str]) -> bool:
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
    *(f"{f}_{side}" for f in BADGE_TIME_FIELDS for side in ("min", "max")),
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


def sorted_window(
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
        low, _ = time_bound(",".join(low_text), is_max=False)  # value >= low
        if desc:
            end = position(low, after_equal=True)
        else:
            start = position(low, after_equal=False)
    if high_text is not None:
        high, strict = time_bound(",".join(high_text), is_max=True)  # value <= / < high
        if desc:
            start = max(start, position(high, after_equal=strict))
        else:
            end = min(end, position(high, after_equal=not strict))
    return ordered[start:end]


def filter_key(terms: Mapping[str, list[str]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple(sorted((k, tuple(v)) for k, v in terms.items()))


def parse_terms(filter_text: str | None) -> dict[str, list[str]]:
    """A filter for templates or events: parsed, with a 400 for a malformed one."""
    try:
        return parse_filter(filter_text)
    except ValueError as exc:
        raise ApiError(400, f"Invalid filter: {exc}") from None


def template_matches(t: Template, terms: Mapping[str, list[str]]) -> bool:
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
            if t.public is not bool_value(key, values):
                return False
        elif key in ("created_at_min", "created_at_max", "updated_at_min", "updated_at_max"):
            name, _, side = key.rpartition("_")
            if not time_predicate(name, values[0], is_max=side == "max")(t):  # type: ignore[arg-type]
                return False
        else:
            raise ApiError(400, f"Invalid filter key {key[:40]!r}")
    return True


def sort_templates(
    items: list[Template], spec: list[tuple[str, bool]], counts: Mapping[str, int]
) -> None:
    """Sort in place by ``spec`` (default: name), ties by id."""
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


def norm(email: Any) -> str:
    return str(email).strip().lower()


class QueryCache:
    """Orders, counts and timelines of one world, cached by the organization's version."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self.stats: Counter[str] = Counter()

    def _cached(self, key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
        if key in self._entries:
            self._entries.move_to_end(key)
            self.stats["hits"] += 1
            return self._entries[key]
        self.stats["misses"] += 1
        value = build()
        self._entries[key] = value
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return value

    def _sorted_all(self, st: OrgState, spec: tuple[tuple[str, bool], ...]) -> list[Badge]:
        def build() -> list[Badge]:
            if not spec:
                return sort_badges(st.badges.values(), ())
            return sort_badges(self._sorted_all(st, ()), spec, by_id=True)

        return self._cached(("sorted", st.org.id, spec, st.version), build)  # type: ignore[no-any-return]

    def query(
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
            full = self._entries.get(("sorted", st.org.id, spec, st.version))
            if full is not None:
                self.stats["reused_order"] += 1
                window = sorted_window(full, spec, terms)
                return [b for b in window if all(p(b) for p in predicates)]
            kept = [b for b in st.badges.values() if all(p(b) for p in predicates)]
            return sort_badges(kept, spec)

        key = ("filtered", st.org.id, filter_key(terms), spec, st.version)
        return self._cached(key, build)  # type: ignore[no-any-return]

    def _narrow(self, st: OrgState, terms: Mapping[str, list[str]]) -> list[Badge] | None:
        """Candidates from an index when the filter names emails or earner ids."""
        sets: list[set[str]] = []
        for key in ("recipient_email", "recipient_email_all"):
            if key in terms:
                found: set[str] = set()
                for value in terms[key]:
                    found |= st.by_email.get(norm(value), set())
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
                preds.append(member("state", values))
            elif key in ("recipient_email", "recipient_email_all"):
                preds.append(member("email_key", [norm(v) for v in values]))
            elif key == "issuer_earner_id":
                preds.append(member("issuer_earner_id", values))
            elif key == "badge_template_id":
                preds.append(member("template_id", values))
            elif key == "public":
                preds.append(member("public", [bool_value(key, values)]))
            elif key == "query":
                preds.append(self._query_predicate(st, ",".join(values)))
            elif key.startswith("expires_at_date_"):
                day = values[0].strip()[:10]
                preds.append(time_predicate("expires_at", day, is_max=key.endswith("max")))
            else:
                name, _, side = key.rpartition("_")
                preds.append(time_predicate(name, ",".join(values), is_max=side == "max"))
        return preds

    @staticmethod
    def _query_predicate(st: OrgState, text: str) -> Predicate:
        needle = text.strip().lower()
        names = {tid: t.name.lower() for tid, t in st.templates.items()}

        def match(b: Badge) -> bool:
            return (
                needle in b.email_key
                or needle in f"{b.first_name} {b.last_name}".lower()
                or needle in names.get(b.template_id, "")
            )

        return match

    def template_counts(self, st: OrgState) -> dict[str, int]:
        key = ("template_counts", st.org.id, st.version)
        return self._cached(key, lambda: Counter(b.template_id for b in st.badges.values()))  # type: ignore[no-any-return]

    def reminders(self, st: OrgState) -> list[EventRow]:
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

    def reminder_by_id(self, st: OrgState) -> dict[str, EventRow]:
        def build() -> dict[str, EventRow]:
            return {reminder_id(e[3], e[4]): e for e in self.reminders(st)}

        return self._cached(("reminder_ids", st.org.id, st.version), build)  # type: ignore[no-any-return]

    def timeline(self, st: OrgState, now: datetime) -> list[EventRow]:
        """Stored events merged with the reminders already due by the clock."""
        reminders = self.reminders(st)
        cut = bisect_right(reminders, now, key=lambda e: e[0])

        def build() -> list[EventRow]:
            stored = sorted((event_row(e) for e in st.events), key=lambda e: (e[0], e[4]))
            if not stored:
                return reminders[:cut]
            # two sorted runs: timsort merges them in linear time, stored events first on ties
            return sorted(stored + reminders[:cut], key=lambda e: e[0])

        return self._cached(("timeline", st.org.id, st.version, cut), build)  # type: ignore[no-any-return]

    # ---- serialization -----------------------------------------------------------------

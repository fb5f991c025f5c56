"""Credly's ``filter`` and ``sort`` query syntax, built and parsed in one place.

``filter=key::v1,v2|key2::v`` — terms joined by ``|`` are ANDed, comma lists are ORed.
``sort=key1|-key2`` — a leading ``-`` sorts descending.

The badge searches' terms are written once here: :class:`BadgeFilter` (both searches),
:class:`BadgeListFilter` (the paged list, with issue and update windows) and
:class:`HighVolumeFilter` (the high-volume search, with an expiry bound).  The client's badge
methods take them as keywords and turn them into the ``filter`` parameter with
:func:`badge_filter`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, TypedDict

from credly_ops.timeutil import format_credly_request

TimeFilter = datetime | date | str
StrOrList = str | Sequence[str]


class BadgeFilter(TypedDict, total=False):
    """The terms both badge searches take (``None`` leaves a term out)."""

    state: StrOrList | None
    recipient_email: str | None
    #: any email of the earner's Credly account
    recipient_email_all: str | None
    badge_template_id: str | None
    issuer_earner_id: str | None
    query: str | None


class BadgeListFilter(BadgeFilter, total=False):
    """The paged badge list's terms: also when badges were issued or last updated."""

    issued_at_min: TimeFilter | None
    issued_at_max: TimeFilter | None
    updated_at_min: TimeFilter | None
    updated_at_max: TimeFilter | None


class HighVolumeFilter(BadgeFilter, total=False):
    """The high-volume search's terms: also an upper bound on the expiry date."""

    expires_at_date_max: TimeFilter | None


#: every badge term, in the order it goes out
_BADGE_TERMS = tuple(
    dict.fromkeys([*BadgeListFilter.__annotations__, *HighVolumeFilter.__annotations__])
)
_TIME_TERMS = frozenset(_BADGE_TERMS) - frozenset(BadgeFilter.__annotations__)


def filter_time(value: TimeFilter | None) -> str | None:
    """A time term as Credly reads it: datetimes as ``%Y-%m-%d %H:%M:%S %z``, dates as
    ``YYYY-MM-DD``, text as given."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return format_credly_request(value)
    return value.isoformat()


def badge_filter(
    terms: BadgeListFilter | HighVolumeFilter, *, allowed: type[BadgeFilter]
) -> str | None:
    """The ``filter`` parameter for a badge search from its terms; a term the search does not
    take (not a key of ``allowed``) raises ``TypeError``, as an unknown keyword would."""
    unknown = sorted(set(terms) - set(allowed.__annotations__))
    if unknown:
        raise TypeError(f"unexpected badge filter term(s): {', '.join(unknown)}")
    given: Mapping[str, Any] = terms
    return build_filter(
        {
            key: filter_time(given[key]) if key in _TIME_TERMS else given[key]
            for key in _BADGE_TERMS
            if key in given
        }
    )


def build_filter(terms: Mapping[str, str | Iterable[str] | None]) -> str | None:
    """``{"state": ["pending", "accepted"], "recipient_email": "a@b"}`` → the filter string.

    ``None`` values are left out; an empty result is ``None`` (no ``filter`` parameter).
    """
    parts: list[str] = []
    for key, value in terms.items():
        if value is None:
            continue
        text = value if isinstance(value, str) else ",".join(str(v) for v in value)
        if "|" in text or "::" in text:
            raise ValueError(f"filter value for {key!r} may not contain '|' or '::'")
        parts.append(f"{key}::{text}")
    return "|".join(parts) or None


def parse_filter(text: str | None) -> dict[str, list[str]]:
    """The filter string → ``{key: [values]}``; malformed terms raise ``ValueError``."""
    result: dict[str, list[str]] = {}
    if not text:
        return result
    for term in text.split("|"):
        if not term:
            continue
        key, sep, value = term.partition("::")
        if not sep or not key:
            raise ValueError(f"malformed filter term {term[:60]!r}")
        result[key] = [v for v in value.split(",")] if value else [""]
    return result


def build_sort(keys: Iterable[str]) -> str | None:
    joined = "|".join(keys)
    return joined or None


def parse_sort(text: str | None) -> list[tuple[str, bool]]:
    """``"-issued_at|created_at"`` → ``[("issued_at", True), ("created_at", False)]``."""
    if not text:
        return []
    out: list[tuple[str, bool]] = []
    for key in text.split("|"):
        key = key.strip()
        if not key:
            continue
        out.append((key[1:], True) if key.startswith("-") else (key, False))
    return out

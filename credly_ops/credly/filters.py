"""Credly's ``filter`` and ``sort`` query syntax, built and parsed in one place.

``filter=key::v1,v2|key2::v`` — terms joined by ``|`` are ANDed, comma lists are ORed.
``sort=key1|-key2`` — a leading ``-`` sorts descending.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


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

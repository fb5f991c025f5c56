"""What one cell of a completion file may hold, read alone: an email address, a status, a
score, a single name column split in two, and how any cell is quoted back in a message.

Pure functions of a string; the row reader (:mod:`credly_ops.completions`) calls them and turns
their ``ValueError`` into a row error naming the row and the column.
"""

from __future__ import annotations

import re

from credly_ops.models import CONTROL_CHARACTERS, SuccessStatus

#: how much of a bad cell a row error quotes
VALUE_PREVIEW_CHARS = 80

#: words that mean passed / failed (compared lower-cased and trimmed)
PASSED_WORDS: tuple[str, ...] = (
    *("passed", "pass", "true", "yes", "y", "1"),
    *("complete", "completed", "success", "successful"),
)
FAILED_WORDS: tuple[str, ...] = ("failed", "fail", "false", "no", "n", "0", "unsuccessful")
#: status cell (lower-cased, trimmed) → status; an empty cell is ``None``
STATUS_WORDS: dict[str, SuccessStatus] = {
    **dict.fromkeys(PASSED_WORDS, SuccessStatus.PASSED),
    **dict.fromkeys(FAILED_WORDS, SuccessStatus.FAILED),
}

_CONTROL = CONTROL_CHARACTERS
#: an email address: one ``@``, a local part, a dotted domain, no whitespace, no control character
EMAIL = re.compile(rf"[^@\s{_CONTROL}]+@[^@\s.{_CONTROL}]+(?:\.[^@\s.{_CONTROL}]+)+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def preview(value: str) -> str:
    """A cell as it is safe to show in a message: one line, printable, at most 80 characters."""
    text = value.strip()
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else "\N{REPLACEMENT CHARACTER}" for ch in text)
    if len(text) > VALUE_PREVIEW_CHARS:
        text = text[: VALUE_PREVIEW_CHARS - 1] + "…"
    return text


def is_email(value: str) -> bool:
    """A pragmatic check: one ``@``, a local part, a dotted domain, no whitespace and no
    control character (a NUL byte in an address must never reach Credly)."""
    return EMAIL.fullmatch(value) is not None


def parse_status(value: str) -> SuccessStatus | None:
    """``None`` for an empty cell; raises ``ValueError`` for a word not in :data:`STATUS_WORDS`."""
    word = value.strip().lower()
    if not word:
        return None
    try:
        return STATUS_WORDS[word]
    except KeyError:
        raise ValueError(
            f"'{preview(value)}' is not a status this reader understands; "
            "use passed or failed, or leave the cell empty."
        ) from None


def parse_score(value: str, *, decimal_comma: bool = False) -> float | None:
    """A number, optionally followed by ``%``; ``None`` for an empty cell.

    With ``decimal_comma`` (semicolon files, written by European spreadsheets) ``87,5`` is 87.5.
    """
    text = value.strip()
    if not text:
        return None
    if text.endswith("%"):
        text = text[:-1].rstrip()
    if decimal_comma and "," in text and "." not in text:
        text = text.replace(",", ".", 1)
    if _NUMBER.fullmatch(text) is None:
        raise ValueError(f"'{preview(value)}' is not a number; a score looks like 85 or 85%.")
    return float(text)


def split_name(name: str) -> tuple[str, str]:
    """``"Mary Ann Smith"`` → ``("Mary Ann", "Smith")``; a single word is the first name."""
    parts = name.strip().rsplit(maxsplit=1)
    if len(parts) == 2:
        return parts[0].strip(), parts[1]
    return (parts[0], "") if parts else ("", "")

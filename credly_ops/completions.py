"""Completion files: CSV bytes in, completions and a report of bad rows out.

One piece on purpose: the reader is the hot path of a 100,000-row upload, and its header
resolution, time parsing (with its per-file cache of days and clocks) and row checks share
compiled patterns and a single pass over the rows; split apart, each would re-walk the rows.

A completion file is what a customer success manager uploads for a bulk issue: a Skilljar
export or a sheet made by hand.  :func:`read_completions` turns its bytes into
:class:`Completion` objects plus one :class:`RowError` per bad cell, and raises
:class:`CompletionFileError` (a ``ValueError``) when the file as a whole cannot be used.
Nothing else ever comes out of it, whatever the bytes.

What the reader accepts, and the decisions behind it:

* **Encoding.**  UTF-8, with or without a byte-order mark.  Any other bytes are refused with a
  message that offers Windows-1252 (what Excel on Windows writes for "CSV (Comma delimited)");
  the reader never guesses.  The caller passes ``encoding="cp1252"`` (or any codec name) to
  read such a file on purpose.  UTF-16 text (with a byte-order mark, or without one: every
  other byte empty) and Excel workbooks get a message of their own.
* **Delimiter.**  ``,``, ``;`` or tab, chosen by counting each outside double quotes in the
  header line (ties go to the comma).  An Excel ``sep=;`` first line is honoured and skipped
  (Excel hides it, so it is not a row).  In a semicolon file a score may use a decimal comma.
* **Row numbers** are spreadsheet row numbers: every CSV record counts as one row, blank ones
  included, so the header is row 1 and the first data record row 2.  A quoted field that spans
  several lines is still one row, as a spreadsheet shows it.
* **Columns** are found by name, ignoring case, spaces, underscores and hyphens, through the
  aliases in :data:`COLUMN_ALIASES`.  Unknown columns are ignored and listed; two columns that
  mean the same field are a file error.  A single name column is split on its last space
  (``"Mary Ann Smith"`` → ``"Mary Ann"`` + ``"Smith"``; one word becomes the first name) and is
  used for rows whose first- and last-name cells are both empty.
* **Times.**  ISO 8601 (``2024-05-01``, ``2024-05-01T09:41:00Z``, ``2024-05-01 09:41:00 +0000``,
  ``… UTC``) and US slash dates, month first (Skilljar is a US product):
  ``05/01/2024``, ``5/1/24``, ``05/01/2024 09:41[:00]`` with an optional ``AM``/``PM``.  Two-digit
  years are 20yy.  A time without an offset is UTC.  A time after ``now`` is a row error.
  A cell with a day and no time of day (``2024-05-01``, ``05/01/2024``) is midnight UTC and
  the completion is marked ``date_only``: it is the same completion as one at any time of that
  UTC day.
* **Control characters.**  An email holding one (a NUL byte, a line break) is not an email
  address; a name holding one is an error of the row naming the field.
* **Status.**  See :data:`STATUS_WORDS`; an empty cell is "no status", which counts as passed
  downstream.
* **Shape.**  Excel's trailing empty rows and columns are ignored; fully empty rows are skipped
  and not counted; a row with more non-empty fields than the header is a row error; a row with
  fewer is padded with empty cells.
* A row with any error yields no completion; it may yield several errors, one per bad field,
  and a :class:`RejectedRow` keeps what it said (trimmed) for the plan and the report.
* **Limits.**  20 MB and 100,000 data rows by default; either is a file error, as is a field
  longer than the ``csv`` module's field limit (an unclosed quote, usually).
"""

from __future__ import annotations

import codecs
import csv
import gc
import io
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from operator import itemgetter
from typing import Any, cast

from credly_ops.models import (
    CONTROL_CHARACTERS,
    Completion,
    SuccessStatus,
    checked_completion,
    has_control_character,
)
from credly_ops.timeutil import as_utc, utcnow

MB = 1024 * 1024
DEFAULT_MAX_BYTES = 20 * MB
DEFAULT_MAX_ROWS = 100_000
#: how much of a bad cell a row error quotes
VALUE_PREVIEW_CHARS = 80
#: how much of the header line the delimiter count looks at
_SNIFF_CHARS = 64 * 1024

#: canonical field → the header names accepted for it, in the words people use
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "email": ("email", "student email", "user email", "email address"),
    "first_name": ("first name", "first_name", "firstname", "given name"),
    "last_name": ("last name", "last_name", "lastname", "surname", "family name"),
    "name": ("name", "full name", "student name"),
    "course_id": ("course id", "published course id", "course_id"),
    "course_title": ("course title", "course", "course name"),
    "completed_at": (
        "completed at",
        "completion date",
        "date completed",
        "completed_at",
        "completed",
    ),
    "status": ("success status", "pass/fail", "status", "passed", "result"),
    "score": ("score", "course score"),
}

#: the columns of the downloadable template, in order
TEMPLATE_COLUMNS: tuple[str, ...] = (
    "email",
    "first_name",
    "last_name",
    "course_id",
    "course_title",
    "completed_at",
    "status",
    "score",
)

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

_DATE_HINT = "use 2024-05-01, 2024-05-01 09:41:00, 2024-05-01T09:41:00Z or 05/01/2024 (month first)"

_CONTROL = CONTROL_CHARACTERS
_EMAIL = re.compile(rf"[^@\s{_CONTROL}]+@[^@\s.{_CONTROL}]+(?:\.[^@\s.{_CONTROL}]+)+")
#: a time cell that gives a day and no time of day (``2024-05-01``, ``05/01/2024``, ``… UTC``)
_BARE_DATE = re.compile(
    r"(?:[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}|[0-9]{8}|[0-9]{1,2}/[0-9]{1,2}/(?:[0-9]{4}|[0-9]{2}))"
    r"\s*(?:Z|UTC|GMT)?",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_ZONE = r"\s*(?:(?P<utc>Z|UTC|GMT)|(?P<sign>[+-])(?P<oh>[0-9]{2}):?(?P<om>[0-9]{2}))?"
_CLOCK = (
    r"(?:(?:T|\s+)(?P<H>[0-9]{1,2}):(?P<M>[0-9]{2})"
    r"(?::(?P<S>[0-9]{2})(?:[.,](?P<f>[0-9]+))?)?\s*(?P<ampm>[AaPp][Mm])?)?"
)
_ISO_TIME = re.compile(
    r"(?P<y>[0-9]{4})-(?P<m>[0-9]{1,2})-(?P<d>[0-9]{1,2})" + _CLOCK + _ZONE, re.IGNORECASE
)
_US_TIME = re.compile(
    r"(?P<m>[0-9]{1,2})/(?P<d>[0-9]{1,2})/(?P<y>[0-9]{4}|[0-9]{2})" + _CLOCK + _ZONE,
    re.IGNORECASE,
)
_SEP_LINE = re.compile(r"sep=(.)\s*", re.IGNORECASE)


class CompletionFileError(ValueError):
    """The file as a whole cannot be read; ``message`` says why, in a sentence."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class RowError:
    """One bad cell (or a bad row shape) in an uploaded file."""

    #: spreadsheet row number (header = 1)
    row: int
    #: the column as its header reads in the file; empty for a problem with the whole row
    column: str
    #: the offending value, trimmed, shortened and stripped of control characters
    value: str
    #: what is wrong, as a sentence
    reason: str
    #: the canonical field (``email``, ``completed_at`` …); empty for a whole-row problem
    field: str = ""


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """What a row with errors said, trimmed, so a report can show it beside the reason.

    ``completed_at`` is the parsed time when the time cell was fine (the row failed for another
    reason), else ``None``; the names are split from a single name column as for a good row.
    """

    row: int
    email: str
    first_name: str
    last_name: str
    course_id: str
    course_title: str
    completed_at: datetime | None


@dataclass(frozen=True)
class CompletionFile:
    """What a completion file held: good rows as completions, bad cells as errors."""

    completions: list[Completion]
    errors: list[RowError]
    #: canonical field → the header as found in the file
    columns: dict[str, str]
    #: non-empty data rows read (each becomes a completion or has at least one error)
    rows_read: int
    #: headers that name no known field, as found
    ignored_columns: list[str] = field(default_factory=list)
    delimiter: str = ","
    encoding: str = "utf-8"
    #: one per row with errors, in row order: the row's values as read
    rejected: list[RejectedRow] = field(default_factory=list)

    @property
    def rows_with_errors(self) -> int:
        return len({error.row for error in self.errors})


# --- small pure pieces -----------------------------------------------------------------------


def header_key(header: str) -> str:
    """How headers are compared: case-folded, without whitespace, ``_`` or ``-``."""
    return "".join(ch for ch in header.casefold() if not ch.isspace() and ch not in "_-")


_ALIAS_INDEX: dict[str, str] = {
    header_key(alias): canonical
    for canonical, aliases in COLUMN_ALIASES.items()
    for alias in aliases
}


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
    return _EMAIL.fullmatch(value) is not None


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


def parse_completed_at(value: str) -> datetime:
    """Parse a completion time (formats in the module docstring) to aware UTC.

    Raises ``ValueError`` with a sentence that quotes the value.
    """
    text = value.strip()
    if not text:
        raise ValueError("The completion time is missing.")
    moment = _us_time(text) if "/" in text else iso_time(text)
    return moment if moment is not None else parse_time_by_pattern(value)


def iso_time(text: str) -> datetime | None:
    """An ISO 8601 time (``Z``, ``UTC`` and ``GMT`` read as +00:00) in UTC, or ``None``."""
    iso = text[:-3].rstrip() if text[-3:].upper() in ("UTC", "GMT") else text
    if iso[-1:] in ("Z", "z"):
        iso = iso[:-1] + "+00:00"
    try:
        return as_utc(datetime.fromisoformat(iso))
    except (ValueError, OverflowError):
        return None


def _us_time(text: str) -> datetime | None:
    day, spaced, clock = text.partition(" ")
    midnight = us_day(day)
    if midnight is None:
        return None
    offset = us_clock(clock) if spaced else _MIDNIGHT
    return None if offset is None else midnight + offset


_MIDNIGHT = timedelta(0)


def us_day(text: str) -> datetime | None:
    """``5/1/2024``, ``05/01/2024`` or ``5/1/24`` as midnight UTC; ``None`` for anything else.

    With :func:`us_clock`, the quick path for the shapes most US exports write; what either
    refuses goes to :func:`parse_time_by_pattern`, which reads it or words the error, and what
    they accept they read exactly as it does.
    """
    parts = text.split("/")
    if len(parts) != 3:
        return None
    month, dom, year = parts
    if len(year) == 2:
        year = "20" + year
    if not (0 < len(month) < 3 and 0 < len(dom) < 3 and len(year) == 4):
        return None
    digits = month + dom + year
    if not (digits.isascii() and digits.isdigit()):
        return None
    try:
        # fromisoformat is several times quicker than building the datetime from its parts
        return datetime.fromisoformat(f"{year}-{month:0>2}-{dom:0>2}T00:00+00:00")
    except ValueError:
        return None


def us_clock(text: str) -> timedelta | None:
    """``9:41``, ``09:41`` or ``09:41:07`` as the time since midnight; ``None`` otherwise."""
    parts = text.split(":")
    if not (len(parts) in (2, 3) and 0 < len(parts[0]) < 3):
        return None
    if not all(len(part) == 2 for part in parts[1:]):
        return None
    digits = "".join(parts)
    if not (digits.isascii() and digits.isdigit()):
        return None
    hours, minutes, seconds = int(parts[0]), int(parts[1]), int(parts[2]) if len(parts) == 3 else 0
    if hours > 23 or minutes > 59 or seconds > 59:
        return None
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def parse_time_by_pattern(value: str) -> datetime:
    """Read a time by the patterns of the module docstring (``fromisoformat`` aside).

    Raises ``ValueError`` with a sentence that quotes the value.
    """
    text = value.strip()
    match = _ISO_TIME.fullmatch(text) or _US_TIME.fullmatch(text)
    if match is None:
        raise ValueError(
            f"'{preview(value)}' is not a date and time this reader understands; {_DATE_HINT}."
        )
    parts = match.groupdict()
    year = int(parts["y"])
    if len(parts["y"]) == 2:
        year += 2000
    hour = int(parts["H"] or 0)
    ampm = parts["ampm"]
    try:
        if ampm:
            if not 1 <= hour <= 12:
                raise ValueError(f"hour {hour} does not go with {ampm.upper()}")
            hour = hour % 12 + (12 if ampm.lower() == "pm" else 0)
        fraction = parts["f"] or ""
        tz = UTC
        if parts["sign"]:
            offset = timedelta(hours=int(parts["oh"]), minutes=int(parts["om"]))
            tz = timezone(-offset if parts["sign"] == "-" else offset)
        moment = datetime(
            year,
            int(parts["m"]),
            int(parts["d"]),
            hour,
            int(parts["M"] or 0),
            int(parts["S"] or 0),
            int(fraction[:6].ljust(6, "0")) if fraction else 0,
            tzinfo=tz,
        )
        return moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"'{preview(value)}' is not a real date and time ({exc}).") from None


def split_name(name: str) -> tuple[str, str]:
    """``"Mary Ann Smith"`` → ``("Mary Ann", "Smith")``; a single word is the first name."""
    parts = name.strip().rsplit(maxsplit=1)
    if len(parts) == 2:
        return parts[0].strip(), parts[1]
    return (parts[0], "") if parts else ("", "")


def sniff_delimiter(header_line: str) -> str:
    """The most frequent of ``,`` ``;`` and tab outside double quotes; a comma on a tie."""
    counts = {",": 0, ";": 0, "\t": 0}
    quoted = False
    for ch in header_line[:_SNIFF_CHARS]:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    return max(counts, key=counts.__getitem__)


def _format_mb(size: int) -> str:
    value = math.ceil(size * 10 / MB) / 10
    return f"{value:g}" if value == int(value) else f"{value:.1f}"


# --- decoding --------------------------------------------------------------------------------

_BOM = codecs.BOM_UTF8


#: how much of a file the UTF-16 test looks at
_UTF16_SAMPLE = 4096


def looks_like_utf16(data: bytes) -> bool:
    """Whether bytes with no byte-order mark read as UTF-16: a CSV header is ASCII, so in
    UTF-16 every other byte is zero (the odd ones little-endian, the even ones big-endian),
    which UTF-8 text with a stray NUL never shows."""
    sample = data[:_UTF16_SAMPLE]
    if len(sample) < 4 or 0 not in sample:
        return False
    even, odd = sample[0::2], sample[1::2]
    even_zeros, odd_zeros = even.count(0) / len(even), odd.count(0) / len(odd)
    return max(even_zeros, odd_zeros) >= 0.5 and min(even_zeros, odd_zeros) <= 0.1


def decode_completion_bytes(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """Bytes → text and the codec used; refuses anything but UTF-8 unless told the encoding."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and encoding is None:
        raise CompletionFileError(
            "The file is UTF-16 (Excel's 'Unicode Text'); save it as 'CSV UTF-8 (Comma "
            "delimited)' and upload again."
        )
    if encoding is None and looks_like_utf16(data):
        raise CompletionFileError(
            "The file looks like UTF-16 without a byte-order mark (every other byte is empty); "
            "save it as 'CSV UTF-8 (Comma delimited)' and upload again."
        )
    if data.startswith(b"PK\x03\x04"):
        raise CompletionFileError(
            "The file is an Excel workbook or another zip archive, not a CSV file; in Excel "
            "choose Save As → 'CSV UTF-8 (Comma delimited)' and upload again."
        )
    codec = "utf-8"
    if encoding is not None:
        try:
            codec = codecs.lookup(encoding).name
        except LookupError:
            raise CompletionFileError(
                f"'{preview(encoding)}' is not an encoding this reader knows; "
                "choose UTF-8 or Windows-1252."
            ) from None
    skip = len(_BOM) if data.startswith(_BOM) else 0
    try:
        text = data[skip:].decode(codec)
    except UnicodeDecodeError as exc:
        offset = skip + exc.start
        if codec in ("utf-8", "utf-8-sig"):
            raise CompletionFileError(
                f"The file is not UTF-8 (first bad byte at offset {offset}); if it was saved "
                "by Excel on Windows, choose Windows-1252 and upload again."
            ) from None
        name = "Windows-1252" if codec == "cp1252" else codec
        raise CompletionFileError(
            f"The file is not valid {name} (byte 0x{data[offset]:02X} at offset {offset} "
            "has no character); choose the encoding it was saved in and upload again."
        ) from None
    except (UnicodeError, LookupError) as exc:
        raise CompletionFileError(
            f"The file cannot be read as {codec} ({preview(str(exc))}); "
            "choose UTF-8 or Windows-1252."
        ) from None
    return text.removeprefix("\ufeff"), codec


# --- the reader ------------------------------------------------------------------------------


#: the fields a row is read into, in the order :class:`_Layout` picks them
_FIELDS: tuple[str, ...] = tuple(COLUMN_ALIASES)


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where each field sits in a row; a missing column reads the empty cell at ``width``."""

    width: int
    headers: dict[str, str]
    pick: Callable[[list[str]], tuple[str, ...]]

    @classmethod
    def of(cls, width: int, headers: dict[str, str], index: dict[str, int]) -> _Layout:
        positions = [index.get(name, width) for name in _FIELDS]
        return cls(width=width, headers=headers, pick=itemgetter(*positions))


def _first_line(text: str) -> str:
    """The first line with something on it (the header, for the delimiter count)."""
    for line in io.StringIO(text, newline=""):
        if line.strip():
            return line
    return ""


def _resolve_header(cells: list[str]) -> tuple[_Layout, list[str]]:
    while cells and not cells[-1].strip():
        cells.pop()
    headers: dict[str, str] = {}
    index: dict[str, int] = {}
    ignored: list[str] = []
    for position, cell in enumerate(cells):
        label = cell.strip()
        canonical = _ALIAS_INDEX.get(header_key(label))
        if canonical is None:
            if label:
                ignored.append(label)
            continue
        if canonical in headers:
            raise CompletionFileError(
                f"The columns '{preview(headers[canonical])}' and '{preview(label)}' both look "
                f"like the {canonical.replace('_', ' ')} column; keep one and upload again."
            )
        headers[canonical] = label
        index[canonical] = position
    if not headers:
        found = ", ".join(f"'{preview(c)}'" for c in cells[:8] if c.strip())
        if any("@" in cell for cell in cells):
            raise CompletionFileError(
                "The file has no header row: the first row looks like data. Add a header "
                f"row such as '{','.join(TEMPLATE_COLUMNS)}' and upload again."
            )
        raise CompletionFileError(
            f"The file has no header row this reader recognises (first row: {found}); "
            f"expected columns such as {', '.join(TEMPLATE_COLUMNS)}."
        )
    missing = []
    if "email" not in headers:
        missing.append("no email column (" + ", ".join(COLUMN_ALIASES["email"]) + ")")
    if "course_id" not in headers and "course_title" not in headers:
        missing.append("no course column (course id or course title)")
    if "completed_at" not in headers:
        missing.append(
            "no completion-time column (" + ", ".join(COLUMN_ALIASES["completed_at"]) + ")"
        )
    if missing:
        found = ", ".join(f"'{preview(c)}'" for c in cells if c.strip())
        raise CompletionFileError(f"The file has {'; '.join(missing)}. Columns found: {found}.")
    return _Layout.of(len(cells), headers, index), ignored


def read_completions(
    data: bytes,
    *,
    now: datetime | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_rows: int = DEFAULT_MAX_ROWS,
    encoding: str | None = None,
) -> CompletionFile:
    """Read an uploaded completion file; see the module docstring for the rules.

    Raises :class:`CompletionFileError` for a problem with the whole file; every problem with a
    single row is a :class:`RowError` in the result.
    """
    data = bytes(data)
    if len(data) > max_bytes:
        raise CompletionFileError(
            f"The file is {_format_mb(len(data))} MB; the limit is {_format_mb(max_bytes)} MB."
        )
    if not data.strip():
        raise CompletionFileError("The file is empty.")
    text, codec = decode_completion_bytes(data, encoding)
    if not text.strip():
        raise CompletionFileError("The file is empty.")

    delimiter = ""
    end = text.find("\n")
    sep = _SEP_LINE.fullmatch(text if end < 0 else text[:end])
    if sep is not None and sep.group(1) in ",;\t|":
        delimiter, text = sep.group(1), ("" if end < 0 else text[end + 1 :])
    if not delimiter:
        delimiter = sniff_delimiter(_first_line(text))

    with _collector_paused():
        return _read_rows(
            text,
            delimiter=delimiter,
            codec=codec,
            now=as_utc(now) if now is not None else utcnow(),
            max_rows=max_rows,
        )


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cycle collector while a file is read.

    The reader makes no reference cycles, but each of its 100,000 new objects counts towards
    the collector's thresholds, and the passes they trigger over everything alive would nearly
    double the time of a large file.  Reference counting still frees memory as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _read_rows(
    text: str, *, delimiter: str, codec: str, now: datetime, max_rows: int
) -> CompletionFile:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    completions: list[Completion] = []
    errors: list[RowError] = []
    rejected: list[RejectedRow] = []
    layout: _Layout | None = None
    ignored: list[str] = []
    row_number = 0
    rows_read = 0
    times = _TimeReader(now)
    decimal_comma = delimiter == ";"
    try:
        for cells in reader:
            row_number += 1
            if not "".join(cells).strip():
                continue
            if layout is None:
                layout, ignored = _resolve_header(cells)
                continue
            rows_read += 1
            if rows_read > max_rows:
                raise CompletionFileError(
                    f"The file has more than {max_rows:,} rows; the limit is {max_rows:,}. "
                    "Split it into smaller files and upload each."
                )
            result = _read_row(cells, row_number, layout, times, decimal_comma)
            if type(result) is Completion:
                completions.append(result)
            else:
                row_errors, values = cast(tuple[list[RowError], RejectedRow], result)
                errors.extend(row_errors)
                rejected.append(values)
    except csv.Error as exc:
        raise CompletionFileError(
            f"Row {row_number + 1} cannot be read as CSV ({exc}); check its quotes."
        ) from None
    if layout is None:
        raise CompletionFileError("The file is empty.")
    return CompletionFile(
        completions=completions,
        errors=errors,
        columns=dict(layout.headers),
        rows_read=rows_read,
        ignored_columns=ignored,
        delimiter=delimiter,
        encoding=codec,
        rejected=rejected,
    )


class _TimeReader:
    """The completion times of one file, each distinct day and clock of a US time parsed once.

    Most exports write a handful of distinct days and at most 86,400 distinct clocks, so a
    100,000-row file costs two dictionary look-ups and an addition per row. Cells no quick path
    reads (and every error) are remembered whole.
    """

    __slots__ = ("_bare", "_clocks", "_days", "_now", "_others")

    def __init__(self, now: datetime) -> None:
        self._now = now
        self._days: dict[str, datetime | None] = {}
        self._clocks: dict[str, timedelta | None] = {}
        self._others: dict[str, datetime | str] = {}
        self._bare: dict[str, bool] = {}

    def date_only(self, text: str) -> bool:
        """Whether a cell this reader read as a time gave a day and no time of day (it is then
        midnight UTC of that day). A time with an offset but no clock is a definite moment."""
        if ":" in text:
            return False
        known = self._bare.get(text)
        if known is None:
            known = self._bare[text] = _BARE_DATE.fullmatch(text) is not None
        return known

    def __call__(self, text: str) -> datetime | str:
        """The parsed time of a trimmed cell, or the sentence saying why not."""
        moment: datetime | None = None
        if "/" in text:
            day, spaced, clock = text.partition(" ")
            midnight = self._days.get(day, _UNSEEN)
            if midnight is _UNSEEN:
                midnight = self._days[day] = us_day(day)
            if midnight is not None:
                offset: timedelta | None = _MIDNIGHT
                if spaced:
                    offset = self._clocks.get(clock, _UNSEEN)
                    if offset is _UNSEEN:
                        offset = self._clocks[clock] = us_clock(clock)
                if offset is not None:
                    moment = midnight + offset
        elif text:
            moment = iso_time(text)
        if moment is None:
            known = self._others.get(text)
            if known is None:
                known = self._others[text] = self._parse(text)
            return known
        return moment if moment <= self._now else self._future(text)

    def _parse(self, text: str) -> datetime | str:
        try:
            moment = parse_completed_at(text)
        except ValueError as exc:
            return str(exc)
        return moment if moment <= self._now else self._future(text)

    def _future(self, text: str) -> str:
        return (
            f"'{preview(text)}' is in the future (it is now {self._now:%Y-%m-%d %H:%M} UTC); "
            "a completion cannot happen later than now."
        )


_UNSEEN: Any = object()


def _read_row(
    cells: list[str],
    row: int,
    layout: _Layout,
    times: _TimeReader,
    decimal_comma: bool,
) -> Completion | tuple[list[RowError], RejectedRow]:
    width = layout.width
    shape: RowError | None = None
    if len(cells) != width:
        if len(cells) > width:
            shape = _trim_extra_cells(cells, row, width)
        else:
            cells.extend([""] * (width - len(cells)))
    cells.append("")  # what a missing column reads
    email, first_name, last_name, name, course_id, course_title, raw_time, raw_status, raw_score = (
        map(str.strip, layout.pick(cells))
    )
    from_name = not first_name and not last_name and bool(name)
    if from_name:
        first_name, last_name = split_name(name)
    completed_at = times(raw_time)
    status = STATUS_WORDS.get(raw_status.lower()) if raw_status else None
    score: float | None = None
    bad_score = False
    if raw_score:
        try:
            score = parse_score(raw_score, decimal_comma=decimal_comma)
        except ValueError:
            bad_score = True
    if (
        shape is not None
        or type(completed_at) is str
        or (raw_status and status is None)
        or bad_score
        or not (course_id or course_title)
        or not email
        or _EMAIL.fullmatch(email) is None
        or not _names_are_clean(first_name, last_name)
    ):
        errors = _row_errors(
            row,
            layout.headers,
            shape,
            email,
            course_id,
            course_title,
            raw_time,
            completed_at,
            raw_status,
            raw_score,
            decimal_comma,
            names=(("name", name, (first_name, last_name)),)
            if from_name
            else (
                ("first_name", first_name, (first_name,)),
                ("last_name", last_name, (last_name,)),
            ),
        )
        moment = completed_at if isinstance(completed_at, datetime) else None
        values = RejectedRow(row, email, first_name, last_name, course_id, course_title, moment)
        return errors, values
    return checked_completion(
        email,
        first_name,
        last_name,
        course_id,
        course_title,
        completed_at,  # type: ignore[arg-type]  # a str went to _row_errors
        status,
        score,
        row,
        times.date_only(raw_time),
    )


def _names_are_clean(first_name: str, last_name: str) -> bool:
    """No control character in the names a badge would carry (the quick test first: printable
    text). A line break that only separates the words of a single name column is fine."""
    if first_name.isprintable() and last_name.isprintable():
        return True
    return not (has_control_character(first_name) or has_control_character(last_name))


def _trim_extra_cells(cells: list[str], row: int, width: int) -> RowError | None:
    """Drop Excel's trailing empty cells; an error when non-empty cells remain past the header."""
    while len(cells) > width and not cells[-1].strip():
        cells.pop()
    if len(cells) == width:
        return None
    extra = ", ".join(cell for cell in cells[width:] if cell.strip())
    found = len(cells)
    del cells[width:]
    return RowError(
        row,
        "",
        preview(extra),
        f"This row has {found} fields; the header has {width}. "
        "Remove the extra cells or add a header for them.",
    )


def _row_errors(
    row: int,
    headers: dict[str, str],
    shape: RowError | None,
    email: str,
    course_id: str,
    course_title: str,
    raw_time: str,
    completed_at: datetime | str,
    raw_status: str,
    raw_score: str,
    decimal_comma: bool,
    *,
    names: tuple[tuple[str, str, tuple[str, ...]], ...] = (),
) -> list[RowError]:
    """Every problem of a row that failed a check, one error per bad cell (in column order).

    ``names`` are the name fields: canonical field (``name`` when the names were split from a
    single name column), the cell as read, and the names a badge would carry from it.
    """
    found = [shape] if shape is not None else []

    def fail(field_name: str, value: str, reason: str) -> None:
        found.append(RowError(row, headers.get(field_name, ""), preview(value), reason, field_name))

    if not email:
        fail("email", email, "The email address is missing.")
    elif has_control_character(email):
        fail(
            "email",
            email,
            f"'{preview(email)}' holds a control character (such as a NUL byte); "
            "it is not an email address.",
        )
    elif not is_email(email):
        fail("email", email, f"'{preview(email)}' is not an email address.")
    for name_field, value, parts in names:
        if any(map(has_control_character, parts)):
            label = name_field.replace("_", " ")
            fail(
                name_field,
                value,
                f"The {label} '{preview(value)}' holds a control character (such as a NUL "
                "byte); remove it and upload again.",
            )
    if not course_id and not course_title:
        course_field = "course_id" if "course_id" in headers else "course_title"
        fail(course_field, "", "The row has neither a course id nor a course title.")
    if isinstance(completed_at, str):
        fail("completed_at", raw_time, completed_at)
    if raw_status:
        try:
            parse_status(raw_status)
        except ValueError as exc:
            fail("status", raw_status, str(exc))
    if raw_score:
        try:
            parse_score(raw_score, decimal_comma=decimal_comma)
        except ValueError as exc:
            fail("score", raw_score, str(exc))
    return found

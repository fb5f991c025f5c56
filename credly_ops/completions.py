"""Completion files: CSV bytes in, completions and a report of bad rows out.

This module reads the header and the rows, in one pass over the file; what it leans on lives
beside it: :mod:`credly_ops.completion_bytes` (bytes to text, the delimiter, the file error),
:mod:`credly_ops.completion_times` (the time formats, and the per-file cache of days and
clocks) and :mod:`credly_ops.completion_cells` (email, status, score, names, a cell quoted in
a message).

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
* **Status.**  See :data:`credly_ops.completion_cells.STATUS_WORDS`; an empty cell is "no
  status", which counts as passed downstream.
* **Shape.**  Excel's trailing empty rows and columns are ignored; fully empty rows are skipped
  and not counted; a row with more non-empty fields than the header is a row error; a row with
  fewer is padded with empty cells.
* A row with any error yields no completion; it may yield several errors, one per bad field,
  and a :class:`RejectedRow` keeps what it said (trimmed) for the plan and the report.
* **Limits.**  20 MB and 100,000 data rows by default; either is a file error, as is a field
  longer than the ``csv`` module's field limit (an unclosed quote, usually).
"""

from __future__ import annotations

import csv
import gc
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import cast

from credly_ops.completion_bytes import (
    MB,
    CompletionFileError,
    decode_completion_bytes,
    format_mb,
    text_and_delimiter,
)
from credly_ops.completion_cells import (
    EMAIL,
    STATUS_WORDS,
    is_email,
    parse_score,
    parse_status,
    preview,
    split_name,
)
from credly_ops.completion_times import TimeReader
from credly_ops.models import (
    Completion,
    checked_completion,
    has_control_character,
)
from credly_ops.timeutil import as_utc, utcnow

__all__ = [
    "COLUMN_ALIASES",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_ROWS",
    "MB",
    "TEMPLATE_COLUMNS",
    "CompletionFile",
    "CompletionFileError",
    "RejectedRow",
    "RowError",
    "read_completions",
]

DEFAULT_MAX_BYTES = 20 * MB
DEFAULT_MAX_ROWS = 100_000

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


# --- decoding --------------------------------------------------------------------------------


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
            f"The file is {format_mb(len(data))} MB; the limit is {format_mb(max_bytes)} MB."
        )
    if not data.strip():
        raise CompletionFileError("The file is empty.")
    text, codec = decode_completion_bytes(data, encoding)
    if not text.strip():
        raise CompletionFileError("The file is empty.")

    text, delimiter = text_and_delimiter(text)

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
    times = TimeReader(now)
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


def _read_row(
    cells: list[str],
    row: int,
    layout: _Layout,
    times: TimeReader,
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
        or EMAIL.fullmatch(email) is None
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

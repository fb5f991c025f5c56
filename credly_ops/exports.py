"""CSV out: every file the product hands to people, safe to open in a spreadsheet.

A cell that begins with ``=``, ``+``, ``-`` or ``@`` is a formula to Excel, LibreOffice and
Google Sheets, and a tab, carriage return or line feed in front can smuggle one in; an export
of student names or course titles must never run one.  Following the OWASP guidance on CSV
injection, :func:`safe_cell` prefixes such a cell with a single quote, which spreadsheets show
as text.  The one exception is a cell that is entirely a plain number (``-5``, ``+3.2``,
``-1e-05``): a spreadsheet reads it as that number and nothing else, and a report of score
changes or day counts should stay numeric.  A cell whose first character is whitespace is
neutralised too when the first non-blank character would start a formula, because some
spreadsheets trim before they parse.

Files are UTF-8 with a byte-order mark (so Excel picks the right encoding) and CRLF line ends.
Datetimes are written as ISO 8601 in UTC (``2024-05-01T09:41:00Z``), ``None`` and
not-a-number as an empty cell.  :func:`read_csv_report` reads such a file back; the round trip
gives every cell as :func:`safe_cell` wrote it (the quote prefix is kept, not removed).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time
from enum import Enum
from typing import TYPE_CHECKING, Any, cast

from credly_ops.timeutil import as_utc

if TYPE_CHECKING:
    import pandas as pd

#: first characters that make a spreadsheet cell a formula (or smuggle one in)
FORMULA_TRIGGERS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r", "\n")
_FORMULA_STARTS = frozenset("=+-@")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SURROGATE = re.compile("[\ud800-\udfff]")
_MISSING_TYPES = frozenset({"NaTType", "NAType"})


def is_plain_number(text: str) -> bool:
    """Digits with an optional sign, decimal point and exponent, and nothing else (ASCII)."""
    return _PLAIN_NUMBER.fullmatch(text) is not None


def cell_text(value: Any) -> str:
    """A value as the text of one cell, before neutralising."""
    if value is None or type(value).__name__ in _MISSING_TYPES:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return as_utc(value).isoformat().replace("+00:00", "Z")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Enum):
        return cell_text(value.value)
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(float(value))
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        if type(value).__name__ in ("datetime64", "timedelta64"):
            text = str(value)
            return "" if text == "NaT" else text
        return cell_text(value.item())
    return str(value)


def neutralise(text: str) -> str:
    """Prefix ``'`` to text a spreadsheet would read as a formula; plain numbers stay."""
    if not text:
        return text
    first = text[0]
    if first in _FORMULA_STARTS:
        return text if is_plain_number(text) else "'" + text
    if first in "\t\r\n":
        return "'" + text
    if first.isspace():
        stripped = text.lstrip()
        if stripped[:1] in _FORMULA_STARTS and not is_plain_number(stripped):
            return "'" + text
    return text


def safe_cell(value: Any) -> str:
    """One value as a cell that is safe to open in a spreadsheet (see the module docstring)."""
    text = cell_text(value)
    if not text.isascii():
        # a lone surrogate cannot be written as UTF-8: it becomes the replacement character
        text = _SURROGATE.sub("\N{REPLACEMENT CHARACTER}", text)
    return neutralise(text)


def _is_dataframe(rows: object) -> bool:
    module = type(rows).__module__
    return module.startswith("pandas") and type(rows).__name__ == "DataFrame"


def _table(
    rows: Iterable[Mapping[Any, Any]] | pd.DataFrame, columns: Sequence[Any] | None
) -> tuple[list[Any], Iterable[list[Any]]]:
    """The columns and an iterable of value lists, from mappings or a DataFrame."""
    if _is_dataframe(rows):
        frame = cast("pd.DataFrame", rows)
        labels = list(frame.columns)
        by_name = {str(label): position for position, label in enumerate(labels)}
        wanted = list(columns) if columns is not None else labels
        positions = [by_name.get(str(column)) for column in wanted]
        records = (
            [None if position is None else record[position] for position in positions]
            for record in frame.itertuples(index=False, name=None)
        )
        return wanted, records
    mappings = cast(Iterable[Mapping[Any, Any]], rows)
    if columns is None:
        mappings = list(mappings)
        seen: dict[Any, None] = {}
        for mapping in mappings:
            seen.update(dict.fromkeys(mapping))
        columns = list(seen)
    wanted = list(columns)
    return wanted, ([mapping.get(column) for column in wanted] for mapping in mappings)


def to_csv_bytes(
    rows: Iterable[Mapping[Any, Any]] | pd.DataFrame, columns: Sequence[str] | None = None
) -> bytes:
    """Rows (mappings or a DataFrame) as a spreadsheet-safe CSV file.

    ``columns`` picks and orders the columns; without it they are a DataFrame's columns, or the
    keys of the mappings in the order first seen.  A column a row lacks is an empty cell.
    The header row goes through :func:`safe_cell` like every other cell.
    """
    wanted, records = _table(rows, columns)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([safe_cell(column) for column in wanted])
    for record in records:
        writer.writerow([safe_cell(value) for value in record])
    return b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8")


def read_csv_report(data: bytes) -> list[dict[str, str]]:
    """Read a file written by :func:`to_csv_bytes` back into one dict per row."""
    text = bytes(data).decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return []
    width = len(header)
    rows: list[dict[str, str]] = []
    for record in reader:
        if not record:
            continue
        if len(record) < width:
            record = record + [""] * (width - len(record))
        rows.append(dict(zip(header, record, strict=False)))
    return rows

"""Spreadsheet-safe CSV exports: neutralised cells, file shape, round trips."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credly_ops.completions import read_completions
from credly_ops.exports import (
    FORMULA_TRIGGERS,
    cell_text,
    is_plain_number,
    read_csv_report,
    safe_cell,
    to_csv_bytes,
)
from credly_ops.models import Completion, SuccessStatus

BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\t=1", "'\t=1"),
        ("\tplain", "'\tplain"),
        ("\t5", "'\t5"),
        ("\r=1", "'\r=1"),
        ("\n=1", "'\n=1"),
        (" =1+1", "' =1+1"),
        ("\u00a0@x", "'\u00a0@x"),
        ("-", "'-"),
        ("+", "'+"),
        ("=", "'="),
        ("-inf", "'-inf"),
        ("-1,234.5", "'-1,234.5"),
        ("-\u0665", "'-\u0665"),
        ("-5", "-5"),
        ("-3.2", "-3.2"),
        ("+7", "+7"),
        ("-.5", "-.5"),
        ("-1e-05", "-1e-05"),
        ("+2E10", "+2E10"),
        ("  -5", "  -5"),
        ("hello", "hello"),
        ("a=b", "a=b"),
        ("ada@example.com", "ada@example.com"),
        ("'already quoted", "'already quoted"),
        ("", ""),
        (-5, "-5"),
        (-3.25, "-3.25"),
        (None, ""),
    ],
)
def test_safe_cell(value: Any, expected: str) -> None:
    assert safe_cell(value) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        *[("5", True), ("-5", True), ("+5.", True), (".5e-3", True), ("1e", False)],
        *[("5%", False), ("1_000", False), ("nan", False), ("\u0665", False), (" 5", False)],
    ],
)
def test_is_plain_number(text: str, expected: bool) -> None:
    assert is_plain_number(text) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        (float("nan"), ""),
        (pd.NaT, ""),
        (pd.NA, ""),
        (np.datetime64("NaT"), ""),
        (True, "true"),
        (np.bool_(False), "false"),
        (np.int64(-7), "-7"),
        (np.float64(2.5), "2.5"),
        (3, "3"),
        (0.1, "0.1"),
        (Decimal("1.50"), "1.50"),
        (SuccessStatus.PASSED, "passed"),
        (date(2024, 5, 1), "2024-05-01"),
        (datetime(2024, 5, 1, 9, 41, tzinfo=UTC), "2024-05-01T09:41:00Z"),
        (datetime(2024, 5, 1, 11, 41, tzinfo=timezone(timedelta(hours=2))), "2024-05-01T09:41:00Z"),
        (datetime(2024, 5, 1, 9, 41), "2024-05-01T09:41:00Z"),
        (pd.Timestamp("2024-05-01 09:41:00.5", tz="UTC"), "2024-05-01T09:41:00.500000Z"),
    ],
)
def test_cell_text(value: Any, expected: str) -> None:
    assert cell_text(value) == expected


def test_lone_surrogates_become_the_replacement_character() -> None:
    assert safe_cell("a\ud800b\udfff") == "a\ufffdb\ufffd"
    assert read_csv_report(to_csv_bytes([{"x": "=\ud800"}])) == [{"x": "'=\ufffd"}]


def test_file_shape_bom_crlf_and_quoting() -> None:
    data = to_csv_bytes(
        [
            {"email": "ada@example.com", "note": 'says "hi", twice', "n": 1},
            {"email": "=cmd", "note": "two\nlines", "n": None},
        ],
        columns=["email", "note", "n"],
    )
    assert data.startswith(BOM)
    assert not data.startswith(BOM + BOM)
    assert data.decode("utf-8-sig") == (
        'email,note,n\r\nada@example.com,"says ""hi"", twice",1\r\n\'=cmd,"two\nlines",\r\n'
    )


def test_columns_pick_and_order_and_missing_keys_are_empty() -> None:
    rows = [{"a": 1, "b": 2, "secret": "x"}, {"b": 3}]
    assert read_csv_report(to_csv_bytes(rows, columns=["b", "a"])) == [
        {"b": "2", "a": "1"},
        {"b": "3", "a": ""},
    ]


def test_columns_default_to_keys_in_first_seen_order() -> None:
    rows = iter([{"b": 1}, {"a": 2, "b": 3}, {"c": "=x"}])
    data = to_csv_bytes(rows)
    assert data.decode("utf-8-sig").splitlines()[0] == "b,a,c"
    assert read_csv_report(data)[2] == {"b": "", "a": "", "c": "'=x"}


def test_header_cells_are_neutralised_too() -> None:
    data = to_csv_bytes([{"=danger": "v"}])
    assert read_csv_report(data) == [{"'=danger": "v"}]


def test_dataframes_export_with_their_columns_and_missing_values_empty() -> None:
    frame = pd.DataFrame(
        {
            "email": ["ada@example.com", "@evil"],
            "issued_at": [pd.Timestamp("2024-05-01 09:41", tz="UTC"), pd.NaT],
            "score": [92.5, np.nan],
            "delta": [-5, 3],
            7: ["x", None],
        }
    )
    assert read_csv_report(to_csv_bytes(frame)) == [
        {"email": "ada@example.com", "issued_at": "2024-05-01T09:41:00Z", "score": "92.5"}
        | {"delta": "-5", "7": "x"},
        {"email": "'@evil", "issued_at": "", "score": "", "delta": "3", "7": ""},
    ]
    picked = read_csv_report(to_csv_bytes(frame, columns=["delta", "email", "absent"]))
    assert picked[1] == {"delta": "3", "email": "'@evil", "absent": ""}


def test_an_empty_export_is_a_header_only() -> None:
    data = to_csv_bytes([], columns=["email", "reason"])
    assert data == BOM + b"email,reason\r\n"
    assert read_csv_report(data) == []
    assert read_csv_report(b"") == []


def test_completions_exported_read_back_as_the_same_completions() -> None:
    completions = [
        Completion(
            email="ada@example.com",
            first_name="Ada",
            last_name="Lovelace, Countess",
            course_id="1a2b3c4d5e6f7",
            course_title='Intro "101"',
            completed_at=datetime(2024, 5, 1, 9, 41, 7, tzinfo=UTC),
            status=SuccessStatus.FAILED,
            score=61.5,
            row=2,
        ),
        Completion(
            email="grace@example.com",
            first_name="Grace",
            last_name="Hopper",
            course_id="3k9xq2m7v1c8p",
            completed_at=datetime(2024, 5, 2, tzinfo=UTC),
            row=3,
        ),
    ]
    records = [{k: v for k, v in c.as_record().items() if k != "row"} for c in completions]
    data = to_csv_bytes(records)
    result = read_completions(data, now=datetime(2025, 1, 1, tzinfo=UTC))
    assert result.errors == []
    assert result.completions == completions


# --- properties ------------------------------------------------------------------------------

CELL_VALUES = st.one_of(
    st.text(),
    st.text(alphabet="=+-@\t\r\n 0123456789.eE,\"'", max_size=12),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.booleans(),
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5))])),
)
COLUMNS = st.lists(st.text(min_size=1), min_size=1, max_size=5, unique_by=safe_cell)


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[dict[str, Any]]]:
    columns = draw(COLUMNS)
    rows = draw(
        st.lists(st.fixed_dictionaries({column: CELL_VALUES for column in columns}), max_size=8)
    )
    return columns, rows


@settings(max_examples=300, deadline=None)
@given(tables())
def test_rows_round_trip_as_safe_cells(table: tuple[list[str], list[dict[str, Any]]]) -> None:
    columns, rows = table
    read_back = read_csv_report(to_csv_bytes(rows, columns=columns))
    expected = [{safe_cell(c): safe_cell(row[c]) for c in columns} for row in rows]
    assert read_back == expected


def _starts_a_formula(cell: str) -> bool:
    if not cell:
        return False
    if cell[0] in FORMULA_TRIGGERS:
        return not is_plain_number(cell)
    stripped = cell.lstrip()
    return (
        cell[0].isspace() and stripped[:1] in ("=", "+", "-", "@") and not is_plain_number(stripped)
    )


@settings(max_examples=300, deadline=None)
@given(tables())
def test_no_exported_cell_starts_a_formula(table: tuple[list[str], list[dict[str, Any]]]) -> None:
    columns, rows = table
    text = to_csv_bytes(rows, columns=columns).decode("utf-8-sig")
    for record in csv.reader(io.StringIO(text, newline="")):
        for cell in record:
            assert not _starts_a_formula(cell), cell


@given(st.text())
def test_safe_cell_only_ever_adds_one_quote(text: str) -> None:
    cell = safe_cell(text)
    assert cell in (text, "'" + text)
    assert not _starts_a_formula(cell)


@given(st.floats(allow_nan=False, allow_infinity=False) | st.integers())
def test_numbers_stay_numbers(number: float) -> None:
    cell = safe_cell(number)
    assert not cell.startswith("'")
    assert float(cell) == float(number)

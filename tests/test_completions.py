"""The completion-file reader: columns, values, row errors, file errors, and arbitrary bytes."""

from __future__ import annotations

import dataclasses
import gc
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credly_ops.completion_bytes import sniff_delimiter
from credly_ops.completion_cells import split_name
from credly_ops.completion_times import parse_completed_at, parse_time_by_pattern
from credly_ops.completions import (
    MB,
    CompletionFile,
    CompletionFileError,
    read_completions,
)
from credly_ops.models import Completion, SuccessStatus

NOW = datetime(2025, 1, 1, tzinfo=UTC)
SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"

BASE_HEADERS = {
    "email": "email",
    "first_name": "first name",
    "last_name": "last name",
    "course_id": "course id",
    "course_title": "course title",
    "completed_at": "completed at",
    "status": "status",
    "score": "score",
}
BASE_VALUES = {
    "email": "ada@example.com",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "course_id": "1a2b3c4d5e6f7",
    "course_title": "Platform Fundamentals",
    "completed_at": "2024-05-01T09:41:00Z",
    "status": "passed",
    "score": "92",
}
MAY_1 = datetime(2024, 5, 1, 9, 41, tzinfo=UTC)


def csv_bytes(*lines: str, newline: str = "\n", bom: bool = False) -> bytes:
    text = newline.join(lines) + newline
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")


def read(*lines: str, **options: object) -> CompletionFile:
    return read_completions(csv_bytes(*lines), now=NOW, **options)  # type: ignore[arg-type]


def one_row(**overrides: str) -> CompletionFile:
    """A file with the base header and one data row, some cells replaced."""
    values = {**BASE_VALUES, **overrides}
    header = ",".join(BASE_HEADERS.values())
    row = ",".join(_quote(values[name]) for name in BASE_HEADERS)
    return read(header, row)


def _quote(value: str) -> str:
    if any(ch in value for ch in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def only_completion(result: CompletionFile) -> Completion:
    assert result.errors == []
    assert len(result.completions) == 1
    passes_its_own_checks(result.completions[0])
    return result.completions[0]


def passes_its_own_checks(completion: Completion) -> None:
    """The reader builds completions without Completion's checks (checked_completion): what it
    builds must be exactly what those checks leave."""
    assert type(completion.completed_at) is datetime and completion.completed_at.tzinfo is UTC
    for name in ("email", "first_name", "last_name", "course_id", "course_title"):
        assert type(getattr(completion, name)) is str
    assert completion.status is None or type(completion.status) is SuccessStatus
    assert completion.score is None or type(completion.score) is float
    assert type(completion.row) is int
    assert type(completion.date_only) is bool
    assert dataclasses.replace(completion) == completion  # the checks accept it as it is


def only_error(result: CompletionFile) -> tuple[str, str, str]:
    assert result.completions == []
    assert len(result.errors) == 1
    error = result.errors[0]
    return error.field, error.value, error.reason


# --- columns ---------------------------------------------------------------------------------

ALIASES = [
    ("email", "email"),
    ("email", "student email"),
    ("email", "user email"),
    ("email", "email address"),
    ("first_name", "first name"),
    ("first_name", "first_name"),
    ("first_name", "firstname"),
    ("first_name", "given name"),
    ("last_name", "last name"),
    ("last_name", "last_name"),
    ("last_name", "lastname"),
    ("last_name", "surname"),
    ("last_name", "family name"),
    ("course_id", "course id"),
    ("course_id", "published course id"),
    ("course_id", "course_id"),
    ("course_title", "course title"),
    ("course_title", "course"),
    ("course_title", "course name"),
    ("completed_at", "completed at"),
    ("completed_at", "completion date"),
    ("completed_at", "date completed"),
    ("completed_at", "completed_at"),
    ("completed_at", "completed"),
    ("status", "success status"),
    ("status", "pass/fail"),
    ("status", "status"),
    ("status", "passed"),
    ("status", "result"),
    ("score", "score"),
    ("score", "course score"),
]


def _spellings(alias: str) -> list[str]:
    return [
        alias,
        alias.upper(),
        alias.title(),
        alias.replace(" ", "_"),
        alias.replace(" ", "-"),
        alias.replace(" ", ""),
        f"  {alias.title()}  ",
    ]


@pytest.mark.parametrize(("field", "alias"), ALIASES)
def test_every_alias_in_every_spelling_finds_its_column(field: str, alias: str) -> None:
    expected = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "course_id": "1a2b3c4d5e6f7",
        "course_title": "Platform Fundamentals",
        "completed_at": MAY_1,
        "status": SuccessStatus.PASSED,
        "score": 92.0,
        "email": "ada@example.com",
    }[field]
    for spelling in _spellings(alias):
        headers = {**BASE_HEADERS, field: spelling}
        result = read(
            ",".join(_quote(h) for h in headers.values()),
            ",".join(BASE_VALUES[name] for name in headers),
        )
        completion = only_completion(result)
        assert result.columns[field] == spelling.strip()
        assert getattr(completion, field) == expected, spelling


@pytest.mark.parametrize("alias", ["name", "full name", "student name", "Full_Name", "NAME"])
def test_a_single_name_column_is_split_on_its_last_space(alias: str) -> None:
    result = read(
        f"email,{alias},course id,completed at",
        "ada@example.com,Mary Ann  Smith,c1,2024-05-01",
    )
    completion = only_completion(result)
    assert (completion.first_name, completion.last_name) == ("Mary Ann", "Smith")
    assert result.columns["name"] == alias


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Ada Lovelace", ("Ada", "Lovelace")),
        ("Mary Ann Smith", ("Mary Ann", "Smith")),
        ("  Cher  ", ("Cher", "")),
        ("", ("", "")),
        ("Jean-Luc\tPicard", ("Jean-Luc", "Picard")),
    ],
)
def test_split_name(name: str, expected: tuple[str, str]) -> None:
    assert split_name(name) == expected


def test_name_column_fills_only_rows_without_first_and_last_name() -> None:
    result = read(
        "email,first name,last name,name,course id,completed at",
        "a@example.com,Ada,Lovelace,Somebody Else,c1,2024-05-01",
        "b@example.com,,,Grace Hopper,c1,2024-05-01",
    )
    names = [(c.first_name, c.last_name) for c in result.completions]
    assert names == [("Ada", "Lovelace"), ("Grace", "Hopper")]


def test_unknown_columns_are_ignored_and_listed() -> None:
    result = read(
        "Enrolled At,email,Internal Note,course id,completed at,,",
        "2024-01-01,ada@example.com,vip,c1,2024-05-01,,",
    )
    assert result.ignored_columns == ["Enrolled At", "Internal Note"]
    assert result.columns == {
        "email": "email",
        "course_id": "course id",
        "completed_at": "completed at",
    }
    assert only_completion(result).course_id == "c1"


@pytest.mark.parametrize(
    ("header", "first", "second"),
    [
        ("Email,User Email,course,completed", "Email", "User Email"),
        ("email,course,EMAIL,completed", "email", "EMAIL"),
        ("email,Course Title,Course,completed", "Course Title", "Course"),
        ("email,course,Completed At,Completion Date", "Completed At", "Completion Date"),
        ("email,course,completed,Status,Result", "Status", "Result"),
        ("email,course,completed,Name,Full Name", "Name", "Full Name"),
    ],
)
def test_two_columns_for_one_field_are_a_file_error_naming_both(
    header: str, first: str, second: str
) -> None:
    with pytest.raises(CompletionFileError) as caught:
        read(header, "a@example.com,c1,2024-05-01,x,y")
    assert f"'{first}' and '{second}' both look like" in caught.value.message


def test_template_names_every_canonical_column() -> None:
    result = read_completions((SAMPLES / "completions_template.csv").read_bytes(), now=NOW)
    assert result.rows_read == 0
    assert result.completions == [] and result.errors == []
    assert result.ignored_columns == []
    canonical = [
        "email",
        "first_name",
        "last_name",
        "course_id",
        "course_title",
        "completed_at",
        "status",
        "score",
    ]
    assert result.columns == {name: name for name in canonical}


# --- values ----------------------------------------------------------------------------------

PASSED = ["passed", "pass", "true", "yes", "y", "1", "complete", "completed", "success"]
PASSED += ["successful"]
FAILED = ["failed", "fail", "false", "no", "n", "0", "unsuccessful"]


@pytest.mark.parametrize(
    ("cell", "expected"),
    [(word, SuccessStatus.PASSED) for word in PASSED]
    + [(word, SuccessStatus.FAILED) for word in FAILED]
    + [(word.upper(), SuccessStatus.PASSED) for word in PASSED]
    + [(f" {word.title()} ", SuccessStatus.FAILED) for word in FAILED]
    + [("", None), ("   ", None)],
)
def test_status_words(cell: str, expected: SuccessStatus | None) -> None:
    assert only_completion(one_row(status=cell)).status == expected


@pytest.mark.parametrize("cell", ["maybe", "2", "passed!", "in progress", "p"])
def test_an_unknown_status_is_a_row_error(cell: str) -> None:
    field, value, reason = only_error(one_row(status=cell))
    assert (field, value) == ("status", cell)
    assert f"'{cell}'" in reason and "passed or failed" in reason


DATES = [
    ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
    ("2024-05-01T09:41:00Z", MAY_1),
    ("2024-05-01T09:41:00z", MAY_1),
    ("2024-05-01T09:41:00.250Z", MAY_1.replace(microsecond=250_000)),
    ("2024-05-01T09:41:00.000+00:00", MAY_1),
    ("2024-05-01T11:41:00+02:00", MAY_1),
    ("2024-05-01T09:41:00", MAY_1),
    ("2024-05-01T09:41", MAY_1),
    ("2024-05-01 09:41", MAY_1),
    ("2024-05-01 09:41:00", MAY_1),
    ("2024-05-01 09:41:00+0000", MAY_1),
    ("2024-05-01 09:41:00 +0000", MAY_1),
    ("2024-05-01 04:41:00 -0500", MAY_1),
    ("2024-05-01 09:41:00+00:00", MAY_1),
    ("2024-05-01 09:41:00Z", MAY_1),
    ("2024-05-01 09:41:00 UTC", MAY_1),
    ("2024-05-01 09:41:00 utc", MAY_1),
    ("2024-05-01 09:41 UTC", MAY_1),
    ("2024-5-1 9:41", MAY_1),
    ("2024-05-01 09:41:00.1234567", MAY_1.replace(microsecond=123_456)),
    ("05/01/2024", datetime(2024, 5, 1, tzinfo=UTC)),
    ("5/1/2024", datetime(2024, 5, 1, tzinfo=UTC)),
    ("05/01/24", datetime(2024, 5, 1, tzinfo=UTC)),
    ("5/1/24", datetime(2024, 5, 1, tzinfo=UTC)),
    ("05/01/2024 09:41", MAY_1),
    ("05/01/2024 09:41:00", MAY_1),
    ("5/1/2024 9:41:00 AM", MAY_1),
    ("5/1/2024 9:41 PM", MAY_1.replace(hour=21)),
    ("5/1/2024 12:05 AM", datetime(2024, 5, 1, 0, 5, tzinfo=UTC)),
    ("5/1/2024 12:05 PM", datetime(2024, 5, 1, 12, 5, tzinfo=UTC)),
    ("05/01/2024 09:41:00 UTC", MAY_1),
    ("05/01/2024 11:41:00 +0200", MAY_1),
    ("  2024-05-01T09:41:00Z  ", MAY_1),
]


@pytest.mark.parametrize(("cell", "expected"), DATES)
def test_completion_time_formats(cell: str, expected: datetime) -> None:
    completed_at = only_completion(one_row(completed_at=cell)).completed_at
    assert completed_at == expected
    assert completed_at.utcoffset() == timedelta(0)


def test_slash_dates_are_month_first() -> None:
    completion = only_completion(one_row(completed_at="01/02/2024"))
    assert (completion.completed_at.month, completion.completed_at.day) == (1, 2)


@pytest.mark.parametrize(
    ("cell", "words"),
    [
        ("last Tuesday", "not a date and time this reader understands"),
        ("1/2", "not a date and time this reader understands"),
        ("2024/05/01", "not a date and time this reader understands"),
        ("01.05.2024", "not a date and time this reader understands"),
        ("13/01/2024", "not a real date"),
        ("02/30/2024", "not a real date"),
        ("2024-13-01", "not a real date"),
        ("2024-05-01 25:00", "not a real date"),
        ("5/1/2024 13:00 PM", "not a real date"),
        ("2024-05-01 09:41:00 +2500", "not a real date"),
        ("0001-01-01 00:00:00 +0100", "not a real date"),
        ("", "missing"),
    ],
)
def test_a_bad_completion_time_is_a_row_error_quoting_it(cell: str, words: str) -> None:
    field, value, reason = only_error(one_row(completed_at=cell))
    assert (field, value) == ("completed_at", cell)
    assert words in reason
    if cell:
        assert f"'{cell}'" in reason


def _number(*edges: int) -> st.SearchStrategy[str]:
    """A field's edge values, or any number between them, with 0 to 2 leading zeros."""
    value = st.one_of(st.sampled_from(edges), st.integers(min(edges), max(edges)))
    return st.builds(lambda n, width: str(n).zfill(width), value, st.sampled_from([0, 2, 2, 3]))


_CLOCK = st.one_of(
    st.just(""),
    st.builds(lambda h, m: f" {h}:{m}", _number(0, 9, 12, 23, 24, 99), _number(0, 59, 60, 99)),
    st.builds(
        lambda h, m, s: f" {h}:{m}:{s}",
        _number(0, 9, 12, 23, 24),
        _number(0, 59, 60),
        _number(0, 59, 60, 61),
    ),
)
_US_PART = st.text(alphabet="0123456789", max_size=5)
US_SHAPED = st.one_of(
    st.builds(
        lambda m, d, y, clock: f"{m}/{d}/{y}{clock}",
        _number(0, 1, 2, 12, 13),
        _number(0, 1, 28, 29, 30, 31, 32),
        st.one_of(_number(0, 24, 99), _number(1999, 2024, 2100)),
        _CLOCK,
    ),
    st.builds(
        lambda m, d, y, clock, sep: f"{m}/{d}/{y}{sep}{clock}",
        _US_PART,
        _US_PART,
        _US_PART,
        st.text(alphabet="0123456789: APMapm+-Z٣", max_size=12),
        st.sampled_from([" ", "  ", "T", ""]),
    ),
)


def _pattern_answer(text: str) -> datetime | str:
    try:
        return parse_time_by_pattern(text)
    except ValueError as exc:
        return f"error: {exc}"


def test_the_quick_path_agrees_with_the_patterns_on_every_edge() -> None:
    """Every combination of edge values of a US time: month, day, leap year, clock."""
    months = ["0", "00", "1", "01", "2", "12", "13", "012"]
    days = ["0", "1", "01", "28", "29", "30", "31", "32", "001"]
    years = ["23", "24", "00", "2023", "2024", "1900", "0024", "20245"]
    clocks = ["", " 0:00", " 9:5", " 09:41", " 23:59", " 24:00", " 23:60", " 123:00", " 9:41:07"]
    clocks += [" 23:59:59", " 23:59:60", " 9:41:7", " 9:41 PM", " 9:41:00 +0200", "  9:41"]
    checked = 0
    for m, d, y, clock in itertools.product(months, days, years, clocks):
        text = f"{m}/{d}/{y}{clock}"
        try:
            quick: datetime | str = parse_completed_at(text)
        except ValueError as exc:
            quick = f"error: {exc}"
        assert quick == _pattern_answer(text), text
        checked += 1
    assert checked == 8 * 9 * 8 * 15


@settings(max_examples=400, deadline=None)
@given(US_SHAPED)
def test_the_quick_path_reads_us_times_as_the_patterns_do(text: str) -> None:
    """Whatever parse_completed_at's quick path accepts, the full patterns read the same."""
    try:
        quick: datetime | str = parse_completed_at(text)
    except ValueError as exc:
        quick = f"error: {exc}"
    assert quick == _pattern_answer(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(US_SHAPED, min_size=1, max_size=40))
def test_the_reader_remembers_days_and_clocks_without_mixing_them_up(cells: list[str]) -> None:
    """A file repeats days and clocks; each row still gets its own answer."""
    rows = [f"a@example.com,c,{cell}" for cell in cells]
    result = read_completions(csv_bytes("email,course,completed at", *rows), now=NOW)
    times: dict[int, datetime | str] = {c.row or 0: c.completed_at for c in result.completions}
    times.update({e.row: "error" for e in result.errors if e.field == "completed_at"})
    for row, cell in enumerate(cells, start=2):
        if not cell.strip():
            continue
        expected = _pattern_answer(cell.strip())
        if isinstance(expected, datetime) and expected > NOW:
            expected = "error"
        got = times.get(row)
        assert (got == "error") if isinstance(expected, str) else got == expected, (row, cell)


def test_a_repeated_day_and_clock_are_read_again_for_each_row() -> None:
    result = read_completions(
        csv_bytes(
            "email,course,completed at",
            "a@example.com,c,05/01/2024 09:41",
            "b@example.com,c,05/01/2024 09:42",
            "c@example.com,c,05/02/2024 09:41",
            "d@example.com,c,05/01/2024 9:41",
            "e@example.com,c,05/01/2024 31:41",
            "f@example.com,c,12/31/2024 09:41",
        ),
        now=datetime(2024, 12, 31, tzinfo=UTC),
    )
    assert [c.completed_at for c in result.completions] == [
        MAY_1,
        MAY_1 + timedelta(minutes=1),
        MAY_1 + timedelta(days=1),
        MAY_1,
    ]
    assert [(e.row, e.field) for e in result.errors] == [(6, "completed_at"), (7, "completed_at")]
    assert "not a real date" in result.errors[0].reason
    assert "in the future" in result.errors[1].reason


@pytest.mark.parametrize("cell", ["2025-01-01T00:00:01Z", "2099-01-15 10:00:00 UTC", "1/1/99"])
def test_a_completion_after_now_is_a_row_error(cell: str) -> None:
    field, value, reason = only_error(one_row(completed_at=cell))
    assert (field, value) == ("completed_at", cell)
    assert "in the future" in reason


def test_a_completion_exactly_at_now_is_fine_and_now_defaults_to_the_clock() -> None:
    assert only_completion(one_row(completed_at="2025-01-01T00:00:00Z")).completed_at == NOW
    data = csv_bytes("email,course,completed at", "a@example.com,c,2999-01-01")
    assert read_completions(data).errors[0].field == "completed_at"
    naive_now = read_completions(data, now=datetime(3000, 1, 1))
    assert len(naive_now.completions) == 1


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("ada@example.com", "ada@example.com"),
        ("  ada@example.com ", "ada@example.com"),
        ("Ada.Lovelace+badges@mail.example.co.uk", "Ada.Lovelace+badges@mail.example.co.uk"),
    ],
)
def test_emails_are_trimmed_and_kept(cell: str, expected: str) -> None:
    assert only_completion(one_row(email=cell)).email == expected


@pytest.mark.parametrize(
    "cell",
    [
        "plain",
        "ada(at)example.com",
        "ada@example",
        "ada@@example.com",
        "ada@ex@ample.com",
        "ada lovelace@example.com",
        "@example.com",
        "ada@.com",
        "ada@example.",
        "ada@example..com",
    ],
)
def test_a_bad_email_is_a_row_error(cell: str) -> None:
    field, value, reason = only_error(one_row(email=cell))
    assert (field, value) == ("email", cell)
    assert reason == f"'{cell}' is not an email address."


def test_a_missing_email_is_a_row_error() -> None:
    assert only_error(one_row(email="  ")) == ("email", "", "The email address is missing.")


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("85", 85.0),
        ("85.5", 85.5),
        ("85%", 85.0),
        (" 85 % ", 85.0),
        ("-3", -3.0),
        ("1e2", 100.0),
        (".5", 0.5),
        ("", None),
    ],
)
def test_scores(cell: str, expected: float | None) -> None:
    assert only_completion(one_row(score=cell)).score == expected


@pytest.mark.parametrize("cell", ["eighty", "N/A", "85%%", "nan", "inf", "1,5", "1_000", "%"])
def test_a_bad_score_is_a_row_error(cell: str) -> None:
    field, value, reason = only_error(one_row(score=cell))
    assert (field, value) == ("score", cell)
    assert "not a number" in reason


def test_semicolon_files_take_a_decimal_comma_in_scores() -> None:
    result = read("email;course;completed at;score", "a@example.com;c;2024-05-01;87,5")
    assert only_completion(result).score == 87.5


@pytest.mark.parametrize(
    ("course_id", "course_title", "expected"),
    [("c1", "", ("c1", "")), ("", "Platform", ("", "Platform")), ("c1", "P", ("c1", "P"))],
)
def test_either_course_id_or_title_is_enough(
    course_id: str, course_title: str, expected: tuple[str, str]
) -> None:
    completion = only_completion(one_row(course_id=course_id, course_title=course_title))
    assert (completion.course_id, completion.course_title) == expected


def test_a_row_without_any_course_is_a_row_error() -> None:
    result = one_row(course_id=" ", course_title="")
    field, _, reason = only_error(result)
    assert field == "course_id"
    assert result.errors[0].column == "course id"
    assert reason == "The row has neither a course id nor a course title."
    title_only = read("email,course,completed at", "a@example.com,,2024-05-01")
    assert only_error(title_only)[0] == "course_title"


# --- row shape and errors --------------------------------------------------------------------


def test_a_row_with_more_fields_than_the_header_is_a_row_error() -> None:
    result = read(
        "email,course id,completed at",
        "a@example.com,c1,2024-05-01,surprise,,",
        "b@example.com,c1,2024-05-01,,,",
    )
    assert [c.email for c in result.completions] == ["b@example.com"]
    [error] = result.errors
    assert (error.row, error.column, error.field, error.value) == (2, "", "", "surprise")
    assert "row has 4 fields; the header has 3" in error.reason


def test_a_short_row_reads_missing_cells_as_empty() -> None:
    result = read("email,course id,completed at,status", "a@example.com,c1,2024-05-01")
    assert only_completion(result).status is None
    short = read("email,course id,completed at", "a@example.com,c1")
    assert only_error(short)[0] == "completed_at"


def test_one_row_reports_every_bad_field_and_yields_no_completion() -> None:
    result = one_row(email="nobody", completed_at="soon", status="maybe", score="lots")
    assert result.completions == []
    assert [(e.row, e.field) for e in result.errors] == [
        (2, "email"),
        (2, "completed_at"),
        (2, "status"),
        (2, "score"),
    ]
    assert [e.column for e in result.errors] == ["email", "completed at", "status", "score"]
    assert result.rows_read == 1 and result.rows_with_errors == 1


def test_row_error_values_are_shortened_and_printable() -> None:
    long_email = "x" * 200
    field, value, reason = only_error(one_row(email=long_email))
    assert field == "email"
    assert len(value) == 80 and value.endswith("…")
    assert value in reason
    _, value, reason = only_error(one_row(status="bad\x00\x1bvalue"))
    assert value == "bad\N{REPLACEMENT CHARACTER}\N{REPLACEMENT CHARACTER}value"
    assert "\x00" not in reason and "\x1b" not in reason


def test_row_numbers_are_spreadsheet_rows_and_blank_rows_are_skipped() -> None:
    result = read(
        "email,name,course id,completed at",
        "",
        "a@example.com,Ada Lovelace,c1,2024-05-01",
        ",,,",
        '"b@example.com","Grace',
        'Hopper",c1,2024-05-01',
        "bad,X,c1,2024-05-01",
        "   ,  ,,",
        "",
    )
    assert [(c.row, c.email) for c in result.completions] == [
        (3, "a@example.com"),
        (5, "b@example.com"),
    ]
    assert result.completions[1].last_name == "Hopper"
    assert [e.row for e in result.errors] == [6]
    assert result.rows_read == 3


def test_leading_blank_rows_before_the_header_keep_row_numbers() -> None:
    result = read("", ",,", "email,course id,completed at", "a@example.com,c1,2024-05-01")
    assert only_completion(result).row == 4


# --- encodings, delimiters, Excel --------------------------------------------------------------

EXCEL_ROWS = (
    "Student Email,First Name,Last Name,Course Title,Completed At,,",
    "ada@example.com,Ada,Lovelace,Platform Fundamentals,5/1/2024 9:41,,",
    "grace@example.com,Grace,Hopper,Platform Fundamentals,5/2/2024 10:00,,",
    ",,,,,,",
    ",,,,,,",
)


@pytest.mark.parametrize("bom", [False, True])
@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_excel_exports_with_bom_crlf_and_trailing_empties(bom: bool, newline: str) -> None:
    result = read_completions(csv_bytes(*EXCEL_ROWS, newline=newline, bom=bom), now=NOW)
    assert result.errors == []
    assert [c.email for c in result.completions] == ["ada@example.com", "grace@example.com"]
    assert result.completions[0].completed_at == MAY_1
    assert result.columns["email"] == "Student Email"
    assert result.ignored_columns == []
    assert result.rows_read == 2


@pytest.mark.parametrize(("delimiter", "name"), [(";", "semicolon"), ("\t", "tab"), (",", "comma")])
def test_delimiters_are_sniffed_from_the_header(delimiter: str, name: str) -> None:
    header = delimiter.join(["email", '"notes, misc; etc"', "course title", "completed at"])
    row = delimiter.join(["ada@example.com", "x", '"Intro, part 1; ok"', "2024-05-01"])
    result = read(header, row)
    assert result.delimiter == delimiter, name
    assert only_completion(result).course_title == "Intro, part 1; ok"
    assert result.ignored_columns == ["notes, misc; etc"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("a,b,c", ","),
        ("a;b;c", ";"),
        ("a\tb\tc", "\t"),
        ('"a;b;c",d,e', ","),
        ('"x,y,z";"p,q";r', ";"),
        ("a;b,c", ","),
        ("single", ","),
    ],
)
def test_sniff_delimiter(line: str, expected: str) -> None:
    assert sniff_delimiter(line) == expected


def test_an_excel_sep_line_sets_the_delimiter_and_is_not_a_row() -> None:
    result = read("sep=|", "email|course id|completed at", "a@example.com|c1|2024-05-01")
    assert result.delimiter == "|"
    assert only_completion(result).row == 2


def test_cp1252_bytes_are_refused_with_an_offer_then_read_when_chosen() -> None:
    text = "email,first name,course,completed at\r\njose@example.com,José,Café 101,2024-05-01\r\n"
    data = text.encode("cp1252")
    with pytest.raises(CompletionFileError) as caught:
        read_completions(data, now=NOW)
    offset = data.index(b"\xe9")
    assert f"first bad byte at offset {offset}" in caught.value.message
    assert "Windows-1252" in caught.value.message
    for name in ("cp1252", "windows-1252", "CP1252"):
        result = read_completions(data, now=NOW, encoding=name)
        completion = only_completion(result)
        assert (completion.first_name, completion.course_title) == ("José", "Café 101")
        assert result.encoding == "cp1252"


def test_a_utf8_bom_is_dropped_before_decoding_in_the_chosen_encoding() -> None:
    data = b"\xef\xbb\xbf" + "email,course,completed\na@example.com,Caf\xe9,2024-05-01\n".encode(
        "cp1252"
    )
    result = read_completions(data, now=NOW, encoding="cp1252")
    assert result.columns["email"] == "email"
    assert only_completion(result).course_title == "Café"


def test_the_bad_byte_offset_counts_the_bom() -> None:
    data = b"\xef\xbb\xbfemail,course,completed\n\xff"
    with pytest.raises(CompletionFileError, match=f"offset {len(data) - 1}\\)"):
        read_completions(data, now=NOW)


def test_utf8_read_as_utf8_explicitly_and_accents_survive() -> None:
    data = csv_bytes("email,first name,course,completed at", "z@example.com,Zoë,c,2024-05-01")
    assert only_completion(read_completions(data, now=NOW, encoding="utf-8")).first_name == "Zoë"
    assert only_completion(read_completions(data, now=NOW)).first_name == "Zoë"


# --- file errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "options", "words"),
    [
        (b"", {}, "The file is empty."),
        (b"\r\n\n  \n", {}, "The file is empty."),
        (b"\xef\xbb\xbf", {}, "The file is empty."),
        (b",,,\r\n,,\r\n", {}, "The file is empty."),
        (b"sep=;\n", {}, "The file is empty."),
        (b"a@example.com,c1,2024-05-01\n", {}, "the first row looks like data"),
        (b"foo,bar\n1,2\n", {}, "no header row this reader recognises"),
        (b"name,course,completed at\nx,c,2024-05-01\n", {}, "no email column"),
        (b"email,completed at\na@b.co,2024-05-01\n", {}, "no course column"),
        (b"email,course id\na@b.co,c\n", {}, "no completion-time column"),
        (b"\xff\xfee\x00m\x00", {}, "UTF-16"),
        (b"PK\x03\x04\x14\x00", {}, "not a CSV file"),
        (b"email,course,completed\n", {"encoding": "klingon"}, "not an encoding"),
        (b"email,course,completed\n", {"encoding": "rot13"}, "cannot be read as rot"),
        (b"email,course,completed\n", {"encoding": "base64"}, "cannot be read as base64"),
        (b"email,course\xff", {"encoding": "utf-8-sig"}, "not UTF-8 (first bad byte at offset 12)"),
        (b"email,course,completed\n\x81\n", {"encoding": "cp1252"}, "byte 0x81 at offset 23"),
        (b'email,course,"completed\n' + b"x" * 200_000 + b'"\n', {}, "cannot be read as CSV"),
    ],
)
def test_file_errors(data: bytes, options: dict[str, str], words: str) -> None:
    with pytest.raises(CompletionFileError) as caught:
        read_completions(data, now=NOW, **options)  # type: ignore[arg-type]
    assert words in caught.value.message
    assert isinstance(caught.value, ValueError)


def test_missing_columns_are_named_together_with_the_columns_found() -> None:
    with pytest.raises(CompletionFileError) as caught:
        read("student name,score", "Ada,1")
    message = caught.value.message
    assert "no email column" in message
    assert "no course column" in message
    assert "no completion-time column" in message
    assert "'student name', 'score'" in message


def test_a_file_over_the_size_limit_says_its_size_and_the_limit() -> None:
    with pytest.raises(CompletionFileError) as caught:
        read_completions(b"x" * int(23.4 * MB), now=NOW)
    assert caught.value.message == "The file is 23.4 MB; the limit is 20 MB."
    small = csv_bytes("email,course,completed", "a@example.com,c,2024-05-01")
    with pytest.raises(CompletionFileError, match=r"the limit is 0\.1 MB"):
        read_completions(small + b" " * MB, now=NOW, max_bytes=MB // 10)
    assert read_completions(small, now=NOW, max_bytes=len(small)).rows_read == 1


def test_the_row_limit_counts_non_empty_data_rows() -> None:
    lines = ["email,course,completed"] + [f"s{i}@example.com,c,2024-05-01" for i in range(3)]
    assert read(*lines, "", ",,", max_rows=3).rows_read == 3
    with pytest.raises(CompletionFileError) as caught:
        read(*lines, "s9@example.com,c,2024-05-01", max_rows=3)
    assert caught.value.message.startswith("The file has more than 3 rows; the limit is 3.")


# --- the sample file -------------------------------------------------------------------------


def test_the_sample_file_reads_as_documented() -> None:
    result = read_completions((SAMPLES / "completions_sample.csv").read_bytes(), now=NOW)
    assert result.rows_read == 25
    assert len(result.completions) == 18
    assert result.ignored_columns == ["Enrolled At"]
    assert {e.row: e.field for e in result.errors} == {
        10: "email",
        14: "completed_at",
        15: "completed_at",
        16: "course_id",
        17: "email",
        18: "status",
        19: "score",
    }
    by_row = {c.row: c for c in result.completions}
    assert by_row[5].last_name == "O'Brien, Jr."
    assert by_row[6].status is None and by_row[6].score is None
    assert by_row[4].status == SuccessStatus.FAILED
    assert by_row[2].first_name == "María"
    assert by_row[2].completed_at == datetime(2024, 2, 19, 16, 2, 11, tzinfo=UTC)


# --- never crash, and scale ------------------------------------------------------------------


def _check_invariants(result: CompletionFile) -> None:
    assert result.rows_read == len(result.completions) + result.rows_with_errors
    for completion in result.completions:
        passes_its_own_checks(completion)
        assert completion.row is not None and completion.row >= 2
        assert completion.completed_at <= NOW
        assert completion.completed_at.utcoffset() is not None
        assert "@" in completion.email
        assert completion.course_id or completion.course_title
    for error in result.errors:
        assert error.reason.endswith(".")
        assert error.value.isprintable() and len(error.value) <= 80


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2_000))
def test_arbitrary_bytes_give_a_result_or_a_file_error(data: bytes) -> None:
    for encoding in (None, "cp1252"):
        try:
            result = read_completions(data, now=NOW, encoding=encoding)
        except CompletionFileError as error:
            assert error.message
        else:
            _check_invariants(result)


CSVISH = st.text(alphabet=',;\t"\r\n @.:-/+Z 0123456789abcéPMU%\x00\ufeff', max_size=400)


@settings(max_examples=300, deadline=None)
@given(CSVISH, st.sampled_from([",", ";", "\t"]), st.booleans())
def test_arbitrary_rows_under_a_good_header_never_crash(
    body: str, delimiter: str, bom: bool
) -> None:
    header = delimiter.join(["email", "name", "course", "completed at", "status", "score"])
    data = (b"\xef\xbb\xbf" if bom else b"") + (header + "\n" + body).encode("utf-8")
    try:
        result = read_completions(data, now=NOW)
    except CompletionFileError as error:
        assert "cannot be read as CSV" in error.message or "more than" in error.message
    else:
        _check_invariants(result)


@given(st.binary(max_size=300))
def test_arbitrary_header_bytes_never_crash(data: bytes) -> None:
    try:
        result = read_completions(data + b"\na@example.com,c,2024-05-01\n", now=NOW)
    except CompletionFileError as error:
        assert error.message
    else:
        _check_invariants(result)


@pytest.mark.slow
def test_one_hundred_thousand_rows_parse_with_exact_counts() -> None:
    lines = [
        "Student Email,First Name,Last Name,Published Course ID,Course Title,"
        "Completed At,Success Status,Course Score"
    ]
    bad = 0
    for i in range(100_000):
        email = f"student{i}@example.com" if i % 1000 else f"student{i}"
        bad += i % 1000 == 0
        status = "failed" if i % 7 == 0 else "passed"
        stamp = f"2024-{i % 12 + 1:02d}-{i % 28 + 1:02d} {i % 24:02d}:{i % 60:02d}:00 UTC"
        lines.append(
            f"{email},First{i},Last{i},{i % 40:013x},Course {i % 40},{stamp},{status},{i % 101}"
        )
    result = read_completions(csv_bytes(*lines, newline="\r\n"), now=NOW)
    assert result.rows_read == 100_000
    assert len(result.completions) == 100_000 - bad
    assert len(result.errors) == bad == 100
    assert result.completions[-1].row == 100_001
    assert result.completions[-1].email == "student99999@example.com"
    assert sum(c.status == SuccessStatus.FAILED for c in result.completions) == sum(
        1 for i in range(100_000) if i % 7 == 0 and i % 1000
    )


def test_the_cycle_collector_is_left_as_it_was_found() -> None:
    good = csv_bytes("email,course,completed", "a@example.com,c,2024-05-01")
    assert gc.isenabled()
    read_completions(good, now=NOW)
    with pytest.raises(CompletionFileError):
        read_completions(good, now=NOW, max_rows=0)
    assert gc.isenabled()
    gc.disable()
    try:
        read_completions(good, now=NOW)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_rows_with_errors_keep_what_they_said() -> None:
    result = read_completions(
        csv_bytes(
            "email,name,course id,completed at",
            "ada@example.com,Ada Lovelace,C1,2024-05-01",
            "ada(at)example.com,Ada Lovelace,C1,2024-05-01T09:41:00Z",
            " grace@example.com ,Grace Hopper,,someday",
        ),
        now=NOW,
    )
    assert [c.row for c in result.completions] == [2]
    assert [
        (r.row, r.email, r.first_name, r.last_name, r.course_id, r.completed_at)
        for r in result.rejected
    ] == [
        (3, "ada(at)example.com", "Ada", "Lovelace", "C1", MAY_1),
        (4, "grace@example.com", "Grace", "Hopper", "", None),
    ]
    assert result.rows_with_errors == len(result.rejected) == 2


# ---------------------------------------------------------------- date-only completions


@pytest.mark.parametrize(
    ("cell", "moment", "date_only"),
    [
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC), True),
        ("05/01/2024", datetime(2024, 5, 1, tzinfo=UTC), True),
        ("5/1/24", datetime(2024, 5, 1, tzinfo=UTC), True),
        ("2024-5-1", datetime(2024, 5, 1, tzinfo=UTC), True),
        ("2024-05-01 UTC", datetime(2024, 5, 1, tzinfo=UTC), True),
        ("20240501", datetime(2024, 5, 1, tzinfo=UTC), True),
        ("2024-05-01T00:00:00Z", datetime(2024, 5, 1, tzinfo=UTC), False),  # a time: midnight
        ("2024-05-01 09:41", datetime(2024, 5, 1, 9, 41, tzinfo=UTC), False),
        ("05/01/2024 09:41", datetime(2024, 5, 1, 9, 41, tzinfo=UTC), False),
        ("05/01/2024 9:41 PM", datetime(2024, 5, 1, 21, 41, tzinfo=UTC), False),
        ("2024-05-01T09", datetime(2024, 5, 1, 9, tzinfo=UTC), False),
        # a day at an offset is a definite moment, not a UTC day
        ("2024-05-01 -0500", datetime(2024, 5, 1, 5, tzinfo=UTC), False),
    ],
)
def test_a_day_without_a_time_is_a_date_only_completion(
    cell: str, moment: datetime, date_only: bool
) -> None:
    completion = only_completion(one_row(completed_at=cell))
    assert (completion.completed_at, completion.date_only) == (moment, date_only)


def test_date_only_is_told_row_by_row() -> None:
    result = read(
        "email,first name,last name,course id,completed at",
        "a@example.com,Ada,Lovelace,c1,2024-05-01",
        "b@example.com,Grace,Hopper,c1,2024-05-01 10:00",
        "c@example.com,Alan,Turing,c1,2024-05-01",
    )
    assert [c.date_only for c in result.completions] == [True, False, True]


# ---------------------------------------------------------------- control characters


@pytest.mark.parametrize(
    "email",
    ["n2@exa\x00mple.com", "ada@example.com\x00x", "ada\x07@example.com", "ad\x1ba@example.com"],
)
def test_an_email_with_a_control_character_is_not_an_email(email: str) -> None:
    result = one_row(email=email)
    assert result.completions == []
    (error,) = result.errors
    assert (error.field, error.row) == ("email", 2)
    assert "control character" in error.reason
    assert "\x00" not in error.reason and "\x00" not in error.value


@pytest.mark.parametrize("field", ["first_name", "last_name"])
def test_a_name_with_a_control_character_is_an_error_naming_the_field(field: str) -> None:
    result = one_row(**{field: "Lo\x00velace"})
    assert result.completions == []
    (error,) = result.errors
    assert (error.field, error.column, error.row) == (field, BASE_HEADERS[field], 2)
    assert "control character" in error.reason and "\x00" not in error.reason


def test_a_single_name_column_with_a_control_character_names_that_column() -> None:
    result = read(
        "email,full name,course id,completed at",
        "a@example.com,Ada Love\x00lace,c1,2024-05-01",
        'b@example.com,"Grace\nHopper",c1,2024-05-01',
    )
    (error,) = result.errors
    assert (error.field, error.column, error.row) == ("name", "full name", 2)
    assert [(c.first_name, c.last_name) for c in result.completions] == [("Grace", "Hopper")]


def test_a_bad_name_is_reported_beside_the_rows_other_errors() -> None:
    result = one_row(email="nope", first_name="A\x00da")
    assert [e.field for e in result.errors] == ["email", "first_name"]


def test_names_in_other_scripts_and_with_odd_spaces_are_fine() -> None:
    completion = only_completion(one_row(first_name="Zoë\u00a0Anne", last_name="Ωmega-李"))
    assert (completion.first_name, completion.last_name) == ("Zoë\u00a0Anne", "Ωmega-李")


# ---------------------------------------------------------------- UTF-16 without a byte-order mark


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_byte_order_mark_is_named_as_such(codec: str) -> None:
    text = "email,course id,completed at\nada@example.com,c1,2024-05-01\n"
    with pytest.raises(CompletionFileError, match="looks like UTF-16 without a byte-order mark"):
        read_completions(text.encode(codec), now=NOW)


def test_utf16_without_a_byte_order_mark_is_read_when_its_encoding_is_chosen() -> None:
    text = "email,course id,completed at\nada@example.com,c1,2024-05-01\n"
    result = read_completions(text.encode("utf-16-le"), now=NOW, encoding="utf-16-le")
    assert [c.email for c in result.completions] == ["ada@example.com"]


def test_a_stray_nul_in_utf8_is_not_taken_for_utf16() -> None:
    result = read(
        "email,first name,last name,course id,completed at",
        "a@example.com,Ada,Lovelace,c1,2024-05-01",
        "b@exa\x00mple.com,Grace,Hopper,c1,2024-05-01",
    )
    assert [c.email for c in result.completions] == ["a@example.com"]
    assert [(e.row, e.field) for e in result.errors] == [(3, "email")]


def test_a_bad_name_row_is_planned_invalid_with_its_own_reason() -> None:
    from credly_ops.issuance.upload import reader_invalid_rows
    from credly_ops.reasons import describe

    result = one_row(last_name="Love\x00lace")
    (invalid,) = reader_invalid_rows(result.errors, result.rejected)
    assert (invalid.row, invalid.reason) == (2, "bad_name")
    assert describe("bad_name") != "bad_name"
    assert "last name" in invalid.detail and "\x00" not in invalid.detail

"""What the commands print.

Standard output carries the result (the JSON with ``--json``); standard error carries what a
person reads along the way.  Colour, tables and the progress bar are drawn with Rich, and only
on a terminal: a pipe or a file gets plain text, the same bytes as before Rich was used.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, TextIO

from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table
from rich.text import Text


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or already closed
        return False


def _console(stream: TextIO, *, soft_wrap: bool = True) -> Console:
    return Console(file=stream, force_terminal=True, highlight=False, soft_wrap=soft_wrap)


def print_json(data: Any, *, sort_keys: bool = True) -> None:
    """One JSON document on standard output, indented by two spaces."""
    print(json.dumps(data, indent=2, default=str, sort_keys=sort_keys))


def print_json_line(data: Any) -> None:
    """One JSON object on one line of standard output (for JSON-lines output)."""
    print(json.dumps(data, default=str, sort_keys=True))


def say(text: str, stream: TextIO | None = None) -> None:
    """A line for the person running the command (standard error unless told)."""
    print(text, file=stream or sys.stderr, flush=True)


def error(text: str) -> None:
    """An error on standard error: red on a terminal."""
    _styled(text, "bold red")


def warning(text: str) -> None:
    """A warning on standard error: yellow on a terminal."""
    _styled(text, "yellow")


def _styled(text: str, style: str) -> None:
    stream = sys.stderr
    if is_terminal(stream):
        _console(stream).print(Text(text, style=style))
        stream.flush()
    else:
        say(text, stream)


def print_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A table on standard output; only for a terminal (a pipe gets the command's own lines).
    Every column but the last keeps its cells on one line; the last folds to fit."""
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", show_edge=False)
    for column in columns[:-1]:
        table.add_column(column, no_wrap=True)
    table.add_column(columns[-1], overflow="fold")
    for row in rows:
        table.add_row(*row)
    _console(sys.stdout, soft_wrap=False).print(table)


class ProgressCallback(Protocol):
    """What sync and the bulk-issue runner call as they go: done so far, a short message,
    and the total when it is known."""

    def __call__(self, done: int, message: str, total: int | None = None) -> None: ...


class _Bar:
    def __init__(self, progress: Progress, task: TaskID) -> None:
        self.progress, self.task = progress, task

    def __call__(self, done: int, message: str, total: int | None = None) -> None:
        count = f"{done:,}/{total:,}" if total else ""
        self.progress.update(
            self.task, completed=done, total=total or None, count=count, message=message[:40]
        )


@contextmanager
def progress_bar(label: str) -> Iterator[ProgressCallback | None]:
    """A progress bar on standard error while the block runs, when that is a terminal;
    ``None`` (nothing drawn) otherwise."""
    stream = sys.stderr
    if not is_terminal(stream):
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[count]}"),
        TextColumn("{task.fields[message]}", markup=False),
    )
    with Progress(
        *columns,
        console=_console(stream, soft_wrap=False),
        redirect_stdout=False,
        redirect_stderr=False,
        refresh_per_second=8,
    ) as progress:
        yield _Bar(progress, progress.add_task(label, total=None, count="", message=""))

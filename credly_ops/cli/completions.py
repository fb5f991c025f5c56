"""``credly-ops completions sync [--full] [--overlap-days N] [--json]``: read Skilljar's
completions into the cache.

Incremental by default: from the high-water mark less the overlap window (``--overlap-days``,
else the cache setting ``completions.overlap_days``, else 3 days).  ``--json`` prints
``{"completions", "new", "pages", "seconds"}`` (sorted keys); a progress bar shows on a terminal.
Exit 2 when Skilljar is not configured, refuses the credentials, cannot be reached, or is
another account than the one the cache reads.
"""

from __future__ import annotations

from datetime import timedelta

import click

from credly_ops.cli.context import CommandLine, pass_command_line
from credly_ops.cli.exits import ExitCode
from credly_ops.cli.output import error, print_json, progress_bar


@click.group(
    "completions",
    short_help="read course completions from Skilljar into the cache",
    help="Course completions from Skilljar, the source of automatic issuing.",
)
def command() -> None:
    """The group: ``sync`` does the work."""


@command.command(
    "sync",
    short_help="read Skilljar's completions into the cache",
    help="Read completed enrollments from Skilljar into the cache. Incremental by default: "
    "only completions since the last read, less an overlap window for back-dated ones.",
)
@click.option("--full", is_flag=True, help="reread every completion, not only recent ones")
@click.option(
    "--overlap-days",
    type=click.IntRange(min=0),
    default=None,
    help="days before the last read's latest completion to read again (default: the setting "
    "completions.overlap_days, else 3)",
)
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@pass_command_line
def sync_command(cl: CommandLine, full: bool, overlap_days: int | None, as_json: bool) -> ExitCode:
    from credly_ops.completions_sync import sync_completions
    from credly_ops.skilljar.errors import SkilljarError

    ws = cl.workspace()
    overlap = None if overlap_days is None else timedelta(days=overlap_days)
    try:
        with progress_bar("completions") as progress, ws.skilljar_client() as client:
            result = sync_completions(
                ws.store, client, full=full, overlap=overlap, progress=progress, actor=cl.actor
            )
    except SkilljarError as exc:
        error(f"credly-ops completions sync: Skilljar could not be read: {exc}")
        return ExitCode.UNUSABLE
    if as_json:
        print_json(result.as_json())
    else:
        print(
            f"completions read: {result.new:,} new, {result.completions:,} Skilljar completions "
            f"cached; {result.pages} pages in {result.seconds:.1f} s"
            + (f"; {result.skipped:,} enrollments skipped" if result.skipped else "")
        )
    return ExitCode.OK

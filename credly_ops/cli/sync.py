"""``credly-ops sync [--full] [--json]``: pull templates and issued badges into the cache.

``--json`` prints ``{"badges", "changed", "pages", "seconds", "templates"}`` (sorted keys).
A progress bar shows on a terminal.
"""

from __future__ import annotations

import click

from credly_ops.cli.context import CommandLine, pass_command_line
from credly_ops.cli.exits import ExitCode
from credly_ops.cli.output import print_json, progress_bar


@click.command(
    "sync",
    short_help="pull templates and issued badges from Credly into the cache",
    help="Pull templates and issued badges from Credly into the cache. "
    "Incremental by default: only what changed since the last sync.",
)
@click.option("--full", is_flag=True, help="read everything, not only changes")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@pass_command_line
def command(cl: CommandLine, full: bool, as_json: bool) -> ExitCode:
    from credly_ops.sync import sync

    ws = cl.workspace()
    with progress_bar("sync") as progress, ws.client() as client:
        result = sync(client, ws.store, full=full, actor=cl.actor, progress=progress)
    if as_json:
        out = result.as_json()
        out.pop("kind")
        print_json(out)
    else:
        print(
            f"{result.kind} sync: {result.templates} templates, {result.badges:,} badges cached; "
            f"{result.changed:,} changed; {result.pages} pages in {result.seconds:.1f} s"
        )
    return ExitCode.OK

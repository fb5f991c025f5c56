"""``credly-ops sync [--full | --reconcile | --relink] [--json]``: pull templates and issued
badges into the cache, reconcile it with what Credly still holds, or rebuild the completion →
badge link the funnel reads (``--relink``: from the cache alone, nothing read from Credly;
``--json`` prints ``{"links", "seconds"}``).

``--reconcile`` is an id-only pass over Credly's export that removes cached badges Credly no
longer has (deleted there, e.g. a GDPR erasure, which an incremental sync cannot see); its
``--json`` prints ``{"badges", "pages", "removed", "seconds", "seen"}``.

``--json`` prints ``{"badges", "changed", "pages", "seconds", "templates"}`` (sorted keys).
A progress bar shows on a terminal.
"""

from __future__ import annotations

import click

from credly_ops.cli.context import CommandLine, pass_command_line
from credly_ops.cli.exits import ExitCode
from credly_ops.cli.output import print_json, progress_bar
from credly_ops.workspace import Workspace


@click.command(
    "sync",
    short_help="pull templates and issued badges from Credly into the cache",
    help="Pull templates and issued badges from Credly into the cache. "
    "Incremental by default: only what changed since the last sync.",
)
@click.option("--full", is_flag=True, help="read everything, not only changes")
@click.option(
    "--reconcile",
    is_flag=True,
    help="remove cached badges Credly no longer has (an id-only pass; run it daily)",
)
@click.option(
    "--relink",
    is_flag=True,
    help="rebuild the completion → badge link from the cache (nothing is read from Credly)",
)
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@pass_command_line
def command(cl: CommandLine, full: bool, reconcile: bool, relink: bool, as_json: bool) -> ExitCode:
    from credly_ops.sync import sync

    if sum((full, reconcile, relink)) > 1:
        raise click.UsageError("--full, --reconcile and --relink cannot be given together")
    ws = cl.workspace()
    if relink:
        return _relink(cl, ws, as_json=as_json)
    if reconcile:
        return _reconcile(cl, ws, as_json=as_json)
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


def _reconcile(cl: CommandLine, ws: Workspace, *, as_json: bool) -> ExitCode:
    from credly_ops.reconcile import reconcile

    with progress_bar("reconcile") as progress, ws.client() as client:
        result = reconcile(client, ws.store, actor=cl.actor, progress=progress)
    if as_json:
        print_json(result.as_json())
    else:
        print(
            f"reconcile: {result.seen:,} badges on Credly, {result.removed:,} removed from the "
            f"cache ({result.badges:,} cached); {result.pages} pages in {result.seconds:.1f} s"
        )
    return ExitCode.OK


def _relink(cl: CommandLine, ws: Workspace, *, as_json: bool) -> ExitCode:
    import time

    from credly_ops.access import Permission, require
    from credly_ops.links import rebuild

    require(cl.actor, Permission.SYNC)
    started = time.perf_counter()
    with ws.store.transaction() as cur:
        links = rebuild(cur)
    seconds = round(time.perf_counter() - started, 3)
    if as_json:
        print_json({"links": links, "seconds": seconds})
    else:
        print(f"relink: {links:,} completion → badge links rebuilt in {seconds:.1f} s")
    return ExitCode.OK

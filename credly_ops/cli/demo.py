"""``credly-ops demo [--if-absent] [--fresh]``: build (or rebuild) the demo world.

Completions (the ones the demo Skilljar serves, stored as a read of it would) and rules go into
the cache, badges into the embedded Credly emulator, then a full sync.  Exit 2 outside the demo
environment (unless ``--if-absent``, which then does nothing).
"""

from __future__ import annotations

import click

from credly_ops.cli.context import CommandLine, pass_command_line
from credly_ops.cli.exits import ExitCode
from credly_ops.cli.output import error


@click.command(
    "demo",
    short_help="build the demo world (emulator + cache)",
    help="Build the deterministic demo world: completions and rules in the cache, badges in "
    "the embedded Credly emulator, then a full sync.",
)
@click.option("--if-absent", is_flag=True, help="do nothing when already built")
@click.option("--fresh", is_flag=True, help="forget the current demo and rebuild it")
@pass_command_line
def command(cl: CommandLine, if_absent: bool, fresh: bool) -> ExitCode:
    from credly_ops.demo import demo_is_built, load_cache, reset_demo_files
    from credly_ops.emulators.demo_world import demo_world
    from credly_ops.sync import sync

    settings = cl.settings()
    if not settings.is_demo and if_absent:
        print(f"{settings.env.value} environment: no demo world to build")
        return ExitCode.OK
    if not settings.is_demo:
        error("credly-ops demo: the demo needs the demo environment (no Credly org configured)")
        return ExitCode.UNUSABLE
    ws = cl.workspace(settings)
    if fresh:
        reset_demo_files(ws.data_dir, settings.db_path)
    elif if_absent and demo_is_built(ws.store, ws.data_dir):
        print(f"demo world already built in {settings.db_path}")
        return ExitCode.OK
    demo = demo_world(ws.data_dir)
    load_cache(ws.store, demo, actor=cl.actor)
    with ws.client() as client:
        result = sync(client, ws.store, full=True, actor=cl.actor)
    print(
        f"demo world built: {len(demo.completions):,} completions, {len(demo.rules)} badge rules, "
        f"{result.templates} templates and {result.badges:,} badges synced in "
        f"{result.seconds:.1f} s"
    )
    return ExitCode.OK

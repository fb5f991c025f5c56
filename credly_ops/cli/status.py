"""``credly-ops status``: the configuration (token masked) and the last sync, as JSON."""

from __future__ import annotations

from typing import Any

import click

from credly_ops.cli.context import CommandLine, pass_command_line
from credly_ops.cli.exits import ExitCode
from credly_ops.cli.output import print_json


@click.command(
    "status",
    short_help="show the configuration (token masked) and the last sync",
    help="Show the configuration, with the token masked, and the last sync (JSON).",
)
@pass_command_line
def command(cl: CommandLine) -> ExitCode:
    from credly_ops.sync import last_sync

    settings = cl.settings()
    info: dict[str, Any] = dict(settings.describe())
    info["last_sync"] = last_sync(cl.workspace(settings).store)
    print_json(info)
    return ExitCode.OK

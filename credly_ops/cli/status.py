"""``credly-ops status``: the configuration (token masked), the organization the cache records
and the sync history's health, as JSON: ``last_sync``, ``last_sync_finished`` (false after a
sync that did not finish), ``unfinished_sync``, ``sync_warning`` (a sentence, or null) and
``last_reconcile``; and ``last_completions_read`` (the latest read of Skilljar completions:
kind, status, pages, read, new, high_water, or null)."""

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
    info: dict[str, Any] = cl.workspace().status()
    print_json(info)
    return ExitCode.OK

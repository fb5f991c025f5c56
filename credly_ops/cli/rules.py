"""``credly-ops rules import FILE.csv`` / ``rules export [FILE.csv]``: the badge rules as CSV.

Columns: course_id, course_title, template_id, method, expiration_months, expiration_days,
require_pass, active_from, automatic (``true``/``false``, ``true`` when the column is absent:
``false`` leaves the course to bulk issue).  An import with any error saves nothing and exits 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from credly_ops.cli.context import CommandLine, pass_command_line
from credly_ops.cli.exits import ExitCode
from credly_ops.cli.output import error, warning


@click.group(
    "rules",
    short_help="import or export badge rules as CSV",
    help="Import or export the badge rules (course → template).",
)
def command() -> None:
    """The group: ``import`` and ``export`` do the work."""


@command.command(
    "import",
    short_help="replace the badge rules with a CSV file",
    help="Validate a rules CSV (FILE) and, when it has no errors, make it the rule set. "
    "Columns: course_id, course_title, template_id, method, expiration_months, "
    "expiration_days, require_pass, active_from, automatic (true/false; true when absent).",
)
@click.argument("file")
@pass_command_line
def import_rules(cl: CommandLine, file: str) -> ExitCode:
    from credly_ops.rules import check_rules, load_templates, read_rules_csv, replace_rules

    ws = cl.workspace()
    try:
        rows = read_rules_csv(Path(file).read_bytes())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        error(f"credly-ops rules import: {exc}")
        return ExitCode.UNUSABLE
    check = check_rules(rows, load_templates(ws.store), first_row=2)
    for text in check.warnings:
        warning(f"warning: {text}")
    if not check.ok:
        for text in check.errors:
            error(f"error: {text}")
        error("nothing was saved")
        return ExitCode.UNUSABLE
    replace_rules(ws.store, check.rules, actor=cl.actor, fill_active_from=True)
    print(f"imported {len(check.rules)} badge rules")
    return ExitCode.OK


@command.command(
    "export",
    short_help="write the badge rules as CSV",
    help="Write the badge rules as CSV to FILE (to standard output without FILE).",
)
@click.argument("file", required=False)
@pass_command_line
def export_rules(cl: CommandLine, file: str | None) -> ExitCode:
    from credly_ops.rules import load_rules, rules_csv

    data = rules_csv(load_rules(cl.workspace().store))
    if file:
        Path(file).write_bytes(data)
        print(f"wrote {file}")
    else:
        sys.stdout.write(data.decode("utf-8-sig"))
    return ExitCode.OK

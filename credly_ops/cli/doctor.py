"""``credly-ops doctor [--json] [--sync-every MINUTES]``: is the integration healthy?

Every check of :mod:`credly_ops.health`, each ``ok``, ``warn`` or ``fail`` with a sentence and
what to do.  JSON: ``{"status": "ok|warn|fail", "checked_at", "checks": [{"name", "status",
"detail", "action"}]}``.  Exit 0 / 1 / 2 for ok / warn / fail, so monitoring (cron,
Nagios-style) can use it as is; a configuration that cannot be used is a failing check too.
"""

from __future__ import annotations

from datetime import timedelta

import click

from credly_ops.cli.context import CommandLine, pass_command_line
from credly_ops.cli.exits import ExitCode
from credly_ops.cli.output import print_json
from credly_ops.config import ConfigError, load_skilljar_settings
from credly_ops.health import Check, HealthReport, Status, exit_code, run_checks
from credly_ops.timeutil import utcnow


@click.command(
    "doctor",
    short_help="check the integration's health (exit 0 ok, 1 warn, 2 fail)",
    help="Check the integration: the Credly token (reachable, permitted, expiry), Skilljar's "
    "credentials, rules whose template cannot issue or whose course is unknown, busy courses "
    "without a rule, sync freshness, failed rows not retried, and the cache's organization. "
    "Exit 0 when every check is ok, 1 with a warning, 2 with a failure.",
)
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.option(
    "--sync-every",
    type=click.IntRange(1, 60 * 24 * 7),
    metavar="MINUTES",
    help="the sync schedule the freshness check compares with (default: the cache setting "
    "sync_schedule_minutes, else 60)",
)
@pass_command_line
def command(cl: CommandLine, as_json: bool, sync_every: int | None) -> ExitCode:
    try:
        workspace = cl.workspace()
        skilljar = load_skilljar_settings()
    except ConfigError as exc:
        report = HealthReport(
            utcnow(),
            (Check("configuration", Status.FAIL, str(exc), "Fix the configuration."),),
        )
    else:
        schedule = None if sync_every is None else timedelta(minutes=sync_every)
        report = run_checks(workspace, skilljar, schedule=schedule)
    if as_json:
        print_json(report.as_json(), sort_keys=False)
    else:
        print(render_text(report))
    return ExitCode(exit_code(report.status))


def render_text(report: HealthReport) -> str:
    lines = [f"{report.status.value.upper()}: {report.summary()}"]
    for check in report.checks:
        lines.append(f"  {check.status.value:<4}  {check.name}: {check.detail}")
        if check.action:
            lines.append(f"        → {check.action}")
    return "\n".join(lines)

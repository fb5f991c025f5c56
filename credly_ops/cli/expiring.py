"""``credly-ops expiring [--days 60] [--json] [--csv FILE]``: the renewals radar.

Per template: badges expiring within 30 / 60 / 90 days, expired but still accepted, and how
many will renew by rule, came back to the course, or need outreach; then each badge expiring
within ``--days`` (and each expired-but-accepted one) with its renewal status.  ``--csv``
writes the outreach list (Excel-safe).  Reads the cache only: sync first for fresh numbers.
"""

from __future__ import annotations

from pathlib import Path

import click

from credly_ops.cli.context import CommandLine, pass_command_line
from credly_ops.cli.exits import ExitCode
from credly_ops.cli.output import print_json, say
from credly_ops.exports import to_csv_bytes
from credly_ops.renewals import OUTREACH_COLUMNS, WINDOWS, Radar, radar


@click.command(
    "expiring",
    short_help="show whose badges expire next, and whether they will renew",
    help="Show the badges expiring within --days (default 60) and those expired but still "
    "accepted, per template and per student, with the renewal status: renews_by_rule (a newer "
    "completion and an update rule will renew it), enrolled_again (came back to the course, "
    "but that will not renew it) or nothing. Reads the cache: sync first.",
)
@click.option(
    "--days",
    type=click.IntRange(0, 366),
    default=60,
    show_default=True,
    help="list badges expiring within this many days",
)
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="write the outreach list (email, name, template, expires, renewal status) to this file",
)
@pass_command_line
def command(cl: CommandLine, days: int, as_json: bool, csv_path: Path | None) -> ExitCode:
    result = radar(cl.workspace().store)
    if csv_path is not None:
        rows = [b.outreach_row() for b in result.outreach(days)]
        csv_path.write_bytes(to_csv_bytes(rows, OUTREACH_COLUMNS))
        say(f"wrote {len(rows):,} rows to {csv_path}")
    if as_json:
        print_json(result.as_json(days))
    else:
        print(render_text(result, days))
    return ExitCode.OK


def render_text(result: Radar, days: int) -> str:
    lines = [f"Renewals radar as of {result.now:%Y-%m-%d %H:%M} UTC", ""]
    summaries = result.by_template()
    if not summaries:
        lines.append(f"No badge expires within {max(WINDOWS)} days, and none expired accepted.")
    for s in summaries:
        windows = ", ".join(f"{n:,} within {d} days" for d, n in s.within.items())
        renewal = ", ".join(f"{k} {v:,}" for k, v in sorted(s.renewal.items()))
        lines.append(
            f"{s.template_name} ({s.course or 'no rule'}): {windows}; "
            f"{s.expired_accepted:,} expired but accepted. Renewal: {renewal}"
        )
    listed = result.outreach(days)
    lines += ["", f"{len(listed):,} badges expired but accepted or expiring within {days} days:"]
    for b in listed:
        lines.append(
            f"  {b.expires_at:%Y-%m-%d}  {b.email}  {b.template_name}  {b.state}  {b.renewal}"
        )
    return "\n".join(lines)

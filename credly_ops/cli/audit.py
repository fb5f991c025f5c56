"""``credly-ops audit``: read the audit trail, newest first.

``--json`` prints JSON lines: one object per entry with the keys action, actor, detail, job_id,
occurred_at, outcome, role, target (sorted).  On a terminal the entries are a table; a pipe
gets one line per entry.
"""

from __future__ import annotations

import sys

import click

from credly_ops.audit import AuditFilter, read_audit
from credly_ops.cli.context import CommandLine, pass_command_line
from credly_ops.cli.exits import ExitCode
from credly_ops.cli.output import error, is_terminal, print_json_line, print_table
from credly_ops.timeutil import parse_credly_time

COLUMNS = ("when (UTC)", "actor", "action", "target", "outcome", "detail")


@click.command(
    "audit",
    short_help="show the audit trail (who did what, when)",
    help="Show the audit trail, newest first: who did what, when, with what outcome.",
)
@click.option("--since", help="only entries at or after this date/time (UTC)")
@click.option("--actor", help="only this actor (e.g. cli:alice or ada@example.com)")
@click.option("--action", help="only actions starting with this (e.g. issue, rules)")
@click.option("--limit", type=int, default=200, help="at most this many entries (200)")
@click.option("--json", "as_json", is_flag=True, help="print JSON lines")
@pass_command_line
def command(
    cl: CommandLine,
    since: str | None,
    actor: str | None,
    action: str | None,
    limit: int,
    as_json: bool,
) -> ExitCode:
    try:
        since_time = parse_credly_time(since) if since else None
    except ValueError:
        error(f"credly-ops audit: --since {since!r} is not a date")
        return ExitCode.UNUSABLE
    frame = read_audit(
        cl.workspace().store,
        cl.actor,
        AuditFilter(since=since_time, actor=actor, action=action, limit=limit),
    )
    if as_json:
        for record in frame.to_dict(orient="records"):
            print_json_line(record)
        return ExitCode.OK
    if frame.empty:
        print("no audit entries")
        return ExitCode.OK
    entries = list(frame.itertuples(index=False))
    if is_terminal(sys.stdout):
        print_table(
            COLUMNS,
            [
                (
                    f"{r.occurred_at:%Y-%m-%d %H:%M:%S}",
                    f"{r.actor} ({r.role or '-'})",
                    str(r.action),
                    " ".join(
                        part
                        for part in (
                            r.target or "",
                            f"job={r.job_id}" if r.job_id and r.job_id != r.target else "",
                        )
                        if part
                    ),
                    str(r.outcome),
                    str(r.detail or ""),
                )
                for r in entries
            ],
        )
        return ExitCode.OK
    for r in entries:
        target = f" {r.target}" if r.target else ""
        job = f" job={r.job_id}" if r.job_id else ""
        print(
            f"{r.occurred_at:%Y-%m-%d %H:%M:%S}  {r.actor} ({r.role or '-'})  "
            f"{r.action}{target}{job}  {r.outcome}  {r.detail or ''}"
        )
    return ExitCode.OK

"""``credly-ops funnel``: the funnel's headline numbers, for reports and cron.

``--json`` prints one object whose keys scripts can rely on: ``completions``, ``eligible``,
``issued``, ``accepted``, ``pending``, ``pending_by_reminders`` (``"0"``, ``"1"``, ``"2"``),
``rejected``, ``revoked``, ``failed``, ``reminders_sent``, ``acceptance_rate`` (accepted ÷
issued, a fraction; ``null`` when nothing was issued), ``accepted_before_first_reminder``,
``accepted_between_reminders``, ``accepted_after_second_reminder`` and
``median_hours_to_accept`` (``null`` when nothing was accepted); and more besides
(``skipped`` by reason, ``p90_hours_to_accept``, ``reminders_per_badge``, ``as_of``, the
``filter``).
"""

from __future__ import annotations

from datetime import date
from typing import Literal

import click

from credly_ops.cli.context import CommandLine, pass_command_line
from credly_ops.cli.exits import ExitCode
from credly_ops.cli.output import print_json
from credly_ops.funnel import PHASES, FunnelError, FunnelFilter, FunnelSummary, summary
from credly_ops.reasons import REASONS
from credly_ops.reminders import PHASE_LABELS


def _day(ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    """``--since``/``--until``: a day given as YYYY-MM-DD."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


@click.command(
    "funnel",
    short_help="print the funnel: completions → eligible → issued → accepted",
    help="Print the funnel from the cache: completions, eligible completions, badges issued "
    "(a renewal and the badge it replaced count once), accepted, pending by reminders sent, "
    "side exits, acceptance rate and time to accept. Run 'credly-ops sync' first for fresh "
    "badge states.",
)
@click.option("--since", callback=_day, metavar="DATE", help="first day, YYYY-MM-DD (UTC)")
@click.option("--until", callback=_day, metavar="DATE", help="last day, YYYY-MM-DD (UTC)")
@click.option(
    "--by",
    type=click.Choice(["completion", "issue"]),
    default="completion",
    help="date badges by the completion they carry (default) or by when Credly issued them",
)
@click.option("--course", metavar="ID", help="only this course id")
@click.option("--template", metavar="ID", help="only this badge template id")
@click.option("--domain", metavar="DOMAIN", help="only students with this email domain")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@pass_command_line
def command(
    cl: CommandLine,
    since: date | None,
    until: date | None,
    by: Literal["completion", "issue"],
    course: str | None,
    template: str | None,
    domain: str | None,
    as_json: bool,
) -> ExitCode:
    try:
        flt = FunnelFilter(
            since=since,
            until=until,
            by=by,
            course_id=course,
            template_id=template,
            domain=domain,
        )
    except FunnelError as exc:
        print(f"credly-ops funnel: {exc}")  # on standard output, as it always was
        return ExitCode.UNUSABLE
    result = summary(cl.workspace().store, flt)
    if as_json:
        print_json(result.as_json())
    else:
        print(render(result))
    return ExitCode.OK


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "–"


def _hours(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f} h"


def render(result: FunnelSummary) -> str:
    """The summary as a short text report."""
    flt = result.filter
    scope = [f"{flt.since or 'the start'} to {flt.until or 'today'}", f"dated by {flt.by}"]
    scope += [
        f"{label} {value}"
        for label, value in (
            ("course", flt.course_id),
            ("template", flt.template_id),
            ("domain", flt.domain),
        )
        if value
    ]
    pending = " · ".join(f"{n}: {count:,}" for n, count in result.pending_by_reminders.items())
    skipped = sum(result.skipped.values())
    per_badge = result.reminders_per_badge
    lines = [
        f"Funnel, {', '.join(scope)}; pending as of {result.as_of:%Y-%m-%d %H:%M} UTC",
        f"  completions      {result.completions:>10,}",
        f"  eligible         {result.eligible:>10,}  {_share(result.eligible, result.completions)}"
        " of completions",
        f"  issued           {result.issued:>10,}  (a renewal counts once)",
        f"  accepted         {result.accepted:>10,}  acceptance rate "
        f"{_share(result.accepted, result.issued)}",
        f"  pending          {result.pending:>10,}  by reminders sent: {pending}",
        f"  rejected         {result.rejected:>10,}",
        f"  revoked          {result.revoked:>10,}",
        f"  failed to issue  {result.failed:>10,}",
        f"  skipped          {skipped:>10,}",
    ]
    for reason, count in result.skipped.items():
        lines.append(f"    {count:>8,}  {reason}: {REASONS.get(reason, reason)}")
    lines.append(
        f"  reminders sent   {result.reminders_sent:>10,}"
        + ("" if per_badge is None else f"  {per_badge:.2f} per badge")
    )
    lines.append("  accepted …")
    for phase in PHASES:
        count = result.accepted_by_phase[phase]
        lines.append(f"    {count:>8,}  {PHASE_LABELS[phase]} ({_share(count, result.accepted)})")
    lines.append(
        f"  time to accept   median {_hours(result.median_hours_to_accept)}, "
        f"90th percentile {_hours(result.p90_hours_to_accept)}"
    )
    return "\n".join(lines)

"""``credly-ops student EMAIL [--json]``: one student's "Badges Earned" rows and, for each of
their completions, what the engine decided and why.

Exit 1 when the cache knows nothing of the email, 2 when it is not an email address.
"""

from __future__ import annotations

import click

from credly_ops.cli.context import CommandLine, pass_command_line
from credly_ops.cli.exits import ExitCode
from credly_ops.cli.output import error, print_json
from credly_ops.models import normalize_email
from credly_ops.profile import StudentProfile, day, load_profile


@click.command(
    "student",
    short_help="show a student's Badges Earned table and why each completion got a badge or not",
    help="Show the 'Badges Earned' table a student sees on their profile (for their current "
    "EMAIL, case-insensitive) and, for each of their completions, what the issuance engine "
    "decided and why. Exit code 1 when the cache knows nothing of the email.",
)
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@pass_command_line
def command(cl: CommandLine, email: str, as_json: bool) -> ExitCode:
    address = normalize_email(email)
    if "@" not in address:
        error(f"credly-ops student: {email!r} is not an email address")
        return ExitCode.UNUSABLE
    settings = cl.settings()
    profile = load_profile(cl.workspace(settings).store, address, web_url=settings.web_url)
    if as_json:
        print_json(profile.as_json())
    else:
        print(render_text(profile))
    return ExitCode.OK if profile.known else ExitCode.FAILED


def render_text(profile: StudentProfile) -> str:
    """The profile as plain text for a terminal."""
    lines = [f"{profile.name} <{profile.email}>", ""]
    if not profile.known:
        lines.append("The cache holds no badge and no completion for this email.")
        return "\n".join(lines)
    if not profile.table_enabled:
        lines.append("Badges Earned: not shown (the table is disabled in Settings)")
    elif not profile.badges_earned:
        lines.append("Badges Earned: not shown (the student has no badge yet)")
    else:
        lines.append(f"Badges Earned ({len(profile.badges_earned)}):")
        for row in profile.badges_earned:
            expires = day(row.expires_at) if row.expires_at else "never"
            lines.append(
                f"  {row.name} — issued {day(row.issued_at)}, expires {expires}, {row.state}; "
                f"{row.link_label}: {row.link_url}"
            )
    lines.append("")
    lines.append(f"Registrations ({len(profile.registrations)}):")
    for reg in profile.registrations:
        lines.append(f"  {reg.course_title} — completed {day(reg.completed_at)}, {reg.result}")
    lines.append("")
    lines.append("Why (staff only):")
    if not profile.explanations:
        lines.append("  No completions: only badges issued outside the LMS (or by hand).")
    for item in profile.explanations:
        lines.append(f"  - {item.sentence}")
    return "\n".join(lines)

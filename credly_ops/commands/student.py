"""``credly-ops student EMAIL [--json]``: one student's "Badges Earned" rows and, for each of
their completions, what the engine decided and why."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from credly_ops.access import command_line_actor
from credly_ops.config import load_settings
from credly_ops.models import normalize_email
from credly_ops.profile import StudentProfile, day, load_profile
from credly_ops.workspace import Workspace

EXIT_OK, EXIT_NOT_FOUND, EXIT_UNUSABLE = 0, 1, 2


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "student",
        help="show a student's Badges Earned table and why each completion got a badge or not",
        description="Show the 'Badges Earned' table a student sees on their profile (for their "
        "current email, case-insensitive) and, for each of their completions, what the "
        "issuance engine decided and why. Exit code 1 when the cache knows nothing of the email.",
    )
    p.add_argument("email", help="the student's email")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    email = normalize_email(args.email)
    if "@" not in email:
        print(f"credly-ops student: {args.email!r} is not an email address", file=sys.stderr)
        return EXIT_UNUSABLE
    actor = command_line_actor()
    settings = load_settings(db=getattr(args, "db", None), actor=actor.name)
    ws = Workspace(settings)
    profile = load_profile(ws.store, email, web_url=settings.web_url)
    if args.json:
        print(json.dumps(profile.as_json(), indent=2, sort_keys=True))
    else:
        print(render_text(profile))
    return EXIT_OK if profile.known else EXIT_NOT_FOUND


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

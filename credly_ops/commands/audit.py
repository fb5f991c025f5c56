"""``credly-ops audit``: read the audit trail."""

from __future__ import annotations

import argparse
import json
import sys

from credly_ops.access import command_line_actor
from credly_ops.audit import AuditFilter, read_audit
from credly_ops.config import cli_actor, load_settings
from credly_ops.timeutil import parse_credly_time
from credly_ops.workspace import Workspace


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "audit",
        help="show the audit trail (who did what, when)",
        description="Show the audit trail, newest first: who did what, when, with what outcome.",
    )
    p.add_argument("--since", help="only entries at or after this date/time (UTC)")
    p.add_argument("--actor", help="only this actor (e.g. cli:alice or ada@example.com)")
    p.add_argument("--action", help="only actions starting with this (e.g. issue, rules)")
    p.add_argument("--limit", type=int, default=200, help="at most this many entries (200)")
    p.add_argument("--json", action="store_true", help="print JSON lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        since = parse_credly_time(args.since) if args.since else None
    except ValueError:
        print(f"credly-ops audit: --since {args.since!r} is not a date", file=sys.stderr)
        return 2
    ws = Workspace(load_settings(db=args.db, actor=cli_actor()))
    frame = read_audit(
        ws.store,
        command_line_actor(),
        AuditFilter(since=since, actor=args.actor, action=args.action, limit=args.limit),
    )
    if args.json:
        for record in frame.to_dict(orient="records"):
            print(json.dumps(record, default=str, sort_keys=True))
        return 0
    if frame.empty:
        print("no audit entries")
        return 0
    for r in frame.itertuples(index=False):
        target = f" {r.target}" if r.target else ""
        job = f" job={r.job_id}" if r.job_id else ""
        print(
            f"{r.occurred_at:%Y-%m-%d %H:%M:%S}  {r.actor} ({r.role or '-'})  "
            f"{r.action}{target}{job}  {r.outcome}  {r.detail or ''}"
        )
    return 0

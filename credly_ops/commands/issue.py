"""``credly-ops issue``: bulk-issue badges from a completion file, exactly once, resumable.

::

    credly-ops issue FILE.csv [--dry-run] [--yes] [--json] [--report OUT.csv]
                              [--concurrency N] [--include-rejected] [--encoding cp1252]
    credly-ops issue --resume JOB_ID        [--json] [--report OUT.csv] [--concurrency N]
    credly-ops issue --retry-failed JOB_ID  [--json] [--report OUT.csv] [--concurrency N]

The file is read, the cache synced with Credly (not for a dry run, which writes nothing but an
audit row) and the plan shown; without ``--yes`` the command asks before sending, and refuses
when standard input is not a terminal. The job's id is printed on standard error as soon as it
exists (``job <id>``), so a run that dies can be resumed; running the same file again resumes
its unfinished job too. A progress bar shows on a terminal.

Exit codes: 0 every row ended issued, updated, skipped or invalid; 1 some rows failed (or the
run was interrupted: resume it); 2 the file, the options or the job id are unusable.
``--json`` prints ``{"job_id", "rows", "issued", "updated", "skipped", "invalid", "failed",
"reasons": {reason: n}}`` (``job_id`` is null for a dry run, whose counts are the plan's).
``--report`` writes one line per input row: row, email, course_id, completed_at, outcome,
reason, badge_id.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from credly_ops.access import PermissionDenied, command_line_actor
from credly_ops.completions import CompletionFileError
from credly_ops.config import load_settings
from credly_ops.issuance.jobs import (
    JobBusy,
    JobNotFound,
    JobProgress,
    Prepared,
    create_job_from,
    find_unfinished_job,
    job_progress,
    job_report,
    plan_report,
    prepare,
    record_dry_run,
    report_csv,
)
from credly_ops.issuance.run import DEFAULT_CONCURRENCY, MAX_CONCURRENCY, resume_job, retry_failed
from credly_ops.issuance.run import run_job as run_issue_job
from credly_ops.reasons import describe
from credly_ops.workspace import Workspace

EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2
PLAN_TO_REPORT = {"issue": "issued", "update": "updated", "skip": "skipped", "invalid": "invalid"}


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "issue",
        help="bulk-issue badges from a completion file, exactly once, resumable",
        description="Read a completion file (CSV), plan what to issue, update or skip for each "
        "row, and send the plan to Credly exactly once. A run that dies is resumed with "
        "--resume JOB_ID (or by running the same file again) without issuing anything twice. "
        "Exit code 0 when every row ended issued, updated, skipped or invalid; 1 when some "
        "failed; 2 when the file is unusable.",
    )
    p.add_argument("file", nargs="?", help="the completion file (CSV)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--resume", metavar="JOB_ID", help="resume an interrupted job")
    which.add_argument(
        "--retry-failed", metavar="JOB_ID", help="send a job's retryable failures again"
    )
    p.add_argument("--dry-run", action="store_true", help="show the plan; send nothing")
    p.add_argument("--yes", action="store_true", help="do not ask before sending")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--report", metavar="OUT.csv", help="write one line per input row")
    p.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help=f"requests in flight at once (1-{MAX_CONCURRENCY}, default {DEFAULT_CONCURRENCY})",
    )
    p.add_argument(
        "--include-rejected",
        action="store_true",
        help="also issue to students who rejected this badge before",
    )
    p.add_argument(
        "--encoding",
        help="the file's encoding when it is not UTF-8, e.g. cp1252 (Excel on Windows)",
    )
    p.set_defaults(func=run)


def _say(text: str, stream: TextIO | None = None) -> None:
    print(text, file=stream or sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from credly_ops.cli import Progress

    if not 1 <= args.concurrency <= MAX_CONCURRENCY:
        _say(f"credly-ops issue: --concurrency must lie between 1 and {MAX_CONCURRENCY}")
        return EXIT_UNUSABLE
    job_id = args.resume or args.retry_failed
    if job_id and args.file:
        _say("credly-ops issue: give either a FILE or --resume/--retry-failed JOB_ID, not both")
        return EXIT_UNUSABLE
    if not job_id and not args.file:
        _say("credly-ops issue: name a completion file, or --resume JOB_ID")
        return EXIT_UNUSABLE
    actor = command_line_actor()
    ws = Workspace(load_settings(db=getattr(args, "db", None), actor=actor.name))
    # human-readable lines go to stdout, unless stdout carries JSON
    out = sys.stderr if args.json else sys.stdout

    if not job_id:
        prepared = _prepare(ws, args)
        if prepared is None:
            return EXIT_UNUSABLE
        for line in prepared.summary_lines():
            _say(line, out)
        if args.dry_run:
            record_dry_run(ws, actor, prepared)
            return _finish_dry_run(prepared, args)
        reused = find_unfinished_job(ws.store, prepared.sha256)
        if reused is not None:
            _say(f"This file's job {reused} is unfinished: it will be resumed.", out)
        if not args.yes and (prepared.to_send or reused):
            answer = _confirm(prepared, reused)
            if answer is not None:
                return answer
        try:
            job_id = create_job_from(ws, actor, prepared)
        except PermissionDenied as exc:
            _say(f"credly-ops issue: {exc}")
            return EXIT_UNUSABLE
        _say(f"job {job_id}")

    progress = Progress(sys.stderr, "issue")
    try:
        if args.retry_failed:
            result = retry_failed(
                ws, actor, job_id, concurrency=args.concurrency, progress=progress
            )
        elif args.resume:
            result = resume_job(ws, actor, job_id, concurrency=args.concurrency, progress=progress)
        else:
            result = run_issue_job(
                ws, actor, job_id, concurrency=args.concurrency, progress=progress
            )
    except JobNotFound as exc:
        progress.close()
        _say(f"credly-ops issue: {exc}")
        return EXIT_UNUSABLE
    except JobBusy as exc:
        progress.close()
        _say(f"credly-ops issue: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        progress.close()
        _say(f"interrupted; resume with: credly-ops issue --resume {job_id}")
        return EXIT_FAILED
    progress.close()
    return _finish_job(ws, result, args, out)


def _prepare(ws: Workspace, args: argparse.Namespace) -> Prepared | None:
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        _say(f"credly-ops issue: cannot read {path}: {exc.strerror or exc}")
        return None
    try:
        return prepare(
            ws,
            command_line_actor(),
            data,
            source_name=path.name,
            include_rejected=args.include_rejected,
            encoding=args.encoding,
            refresh=not args.dry_run,
        )
    except CompletionFileError as exc:
        hint = ""
        if "Windows-1252" in exc.message and not args.encoding:
            hint = " (pass --encoding cp1252)"
        _say(f"credly-ops issue: {path.name}: {exc.message}{hint}")
        return None


def _confirm(prepared: Prepared, reused: str | None) -> int | None:
    """Ask on a terminal; ``None`` means go ahead, a number is the exit code."""
    if not sys.stdin.isatty():
        _say(
            "credly-ops issue: refusing to send without confirmation: standard input is not a "
            "terminal. Check the plan with --dry-run, then run again with --yes."
        )
        return EXIT_UNUSABLE
    question = (
        f"Resume job {reused}?" if reused else f"Send {prepared.to_send:,} requests to Credly?"
    )
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    if answer in ("y", "yes"):
        return None
    _say("Nothing was sent.")
    return EXIT_OK


def _write_report(path: str, lines: list[dict[str, Any]]) -> None:
    Path(path).write_bytes(report_csv(lines))


def _finish_dry_run(prepared: Prepared, args: argparse.Namespace) -> int:
    lines = plan_report(prepared.plan)
    if args.report:
        _write_report(args.report, lines)
    if args.json:
        counts = Counter(PLAN_TO_REPORT[r.outcome] for r in prepared.plan.rows)
        print(
            json.dumps(
                {
                    "job_id": None,
                    "rows": len(prepared.plan),
                    "issued": counts["issued"],
                    "updated": counts["updated"],
                    "skipped": counts["skipped"],
                    "invalid": counts["invalid"],
                    "failed": 0,
                    "reasons": prepared.plan.reasons(),
                },
                indent=2,
            )
        )
    return EXIT_OK


def _finish_job(ws: Workspace, result: JobProgress, args: argparse.Namespace, out: TextIO) -> int:
    result = job_progress(ws.store, result.job_id)
    if args.report:
        _write_report(args.report, job_report(ws.store, result.job_id))
    o = result.outcomes
    _say(
        f"job {result.job_id} {result.display_status}: {result.rows:,} rows — "
        f"{o['issued']:,} issued, {o['updated']:,} updated, {o['skipped']:,} skipped, "
        f"{o['invalid']:,} invalid, {o['failed']:,} failed"
        + (f", {o['pending']:,} not sent yet" if o["pending"] else ""),
        out,
    )
    for reason, n in result.reasons.items():
        _say(f"  {n:>7,}  {reason}: {describe(reason)}", out)
    if o["failed"] and result.retryable_failures:
        _say(
            f"{result.retryable_failures:,} failures may succeed if sent again: "
            f"credly-ops issue --retry-failed {result.job_id}",
            out,
        )
    if o["pending"]:
        _say(f"resume with: credly-ops issue --resume {result.job_id}", out)
    if args.json:
        print(json.dumps(result.as_json(), indent=2))
    return EXIT_FAILED if o["failed"] or o["pending"] else EXIT_OK

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
run was interrupted: resume it); 2 the file, the options or the job id are unusable.  A file
over the size limit (20 MB) is refused from its size, before it is read.
``--json`` prints ``{"job_id", "rows", "issued", "updated", "skipped", "invalid", "failed",
"reasons": {reason: n}}`` (``job_id`` is null for a dry run, whose counts are the plan's).
``--report`` writes one line per input row: row, email, course_id, completed_at, outcome,
reason, badge_id.

Adding an option: a ``@click.option`` on :func:`command`, a field of the same name in
:class:`IssueRequest`, and its use where the request is read (:func:`_prepare` for what decides
the plan, :func:`_run` for how the job is sent).
"""

from __future__ import annotations

import math
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import click

from credly_ops.access import Actor
from credly_ops.cli.context import CommandLine, pass_command_line
from credly_ops.cli.exits import ExitCode
from credly_ops.cli.output import ProgressCallback, error, print_json, progress_bar, say
from credly_ops.completions import DEFAULT_MAX_BYTES, MB, CompletionFileError
from credly_ops.issuance.jobs import (
    JobProgress,
    create_job_from,
    find_unfinished_job,
    job_progress,
    job_report,
    plan_report,
    report_csv,
)
from credly_ops.issuance.run import DEFAULT_CONCURRENCY, MAX_CONCURRENCY, resume_job, retry_failed
from credly_ops.issuance.run import run_job as run_issue_job
from credly_ops.issuance.upload import Prepared, prepare, record_dry_run
from credly_ops.reasons import describe
from credly_ops.workspace import Workspace

PLAN_TO_REPORT = {"issue": "issued", "update": "updated", "skip": "skipped", "invalid": "invalid"}


@dataclass(frozen=True)
class IssueRequest:
    """The command line of one ``credly-ops issue``, one field per argument or option."""

    file: str | None
    resume: str | None
    retry_failed: str | None
    dry_run: bool
    yes: bool
    as_json: bool
    report: str | None
    concurrency: int
    include_rejected: bool
    include_revoked: bool
    include_expired: bool
    encoding: str | None
    allow_stale: bool


@click.command(
    "issue",
    short_help="bulk-issue badges from a completion file, exactly once, resumable",
    help="Read a completion file (CSV), plan what to issue, update or skip for each row, and "
    "send the plan to Credly exactly once. A run that dies is resumed with --resume JOB_ID (or "
    "by running the same file again) without issuing anything twice. Exit code 0 when every "
    "row ended issued, updated, skipped or invalid; 1 when some failed; 2 when the file is "
    "unusable.",
)
@click.argument("file", required=False)
@click.option("--resume", metavar="JOB_ID", help="resume an interrupted job")
@click.option("--retry-failed", metavar="JOB_ID", help="send a job's retryable failures again")
@click.option("--dry-run", is_flag=True, help="show the plan; send nothing")
@click.option("--yes", is_flag=True, help="do not ask before sending")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@click.option("--report", metavar="OUT.csv", help="write one line per input row")
@click.option(
    "--concurrency",
    type=int,
    default=DEFAULT_CONCURRENCY,
    help=f"requests in flight at once (1-{MAX_CONCURRENCY}, default {DEFAULT_CONCURRENCY})",
)
@click.option(
    "--include-rejected",
    is_flag=True,
    help="issue anew a completion whose badge the student rejected (skipped by default)",
)
@click.option(
    "--include-revoked",
    is_flag=True,
    help="issue anew a completion whose badge an admin revoked (skipped by default)",
)
@click.option(
    "--include-expired",
    is_flag=True,
    help="issue a backfilled badge whose expiry has already passed (skipped by default)",
)
@click.option(
    "--encoding",
    help="the file's encoding when it is not UTF-8, e.g. cp1252 (Excel on Windows)",
)
@click.option(
    "--allow-stale",
    is_flag=True,
    help="send even when Credly could not be reached to sync before planning (the plan then "
    "uses the cache as last synced; each row is still decided again before it is sent)",
)
@pass_command_line
def command(cl: CommandLine, /, **options: Any) -> ExitCode:
    request = IssueRequest(**options)
    if request.resume and request.retry_failed:
        raise click.UsageError("--resume and --retry-failed cannot be given together")
    return run(cl, request)


def run(cl: CommandLine, request: IssueRequest) -> ExitCode:
    if not 1 <= request.concurrency <= MAX_CONCURRENCY:
        error(f"credly-ops issue: --concurrency must lie between 1 and {MAX_CONCURRENCY}")
        return ExitCode.UNUSABLE
    job_id = request.resume or request.retry_failed
    if job_id and request.file:
        error("credly-ops issue: give either a FILE or --resume/--retry-failed JOB_ID, not both")
        return ExitCode.UNUSABLE
    if not job_id and not request.file:
        error("credly-ops issue: name a completion file, or --resume JOB_ID")
        return ExitCode.UNUSABLE
    ws = cl.workspace()
    # human-readable lines go to stdout, unless stdout carries JSON
    out = sys.stderr if request.as_json else sys.stdout

    if not job_id:
        prepared = _prepare(ws, cl.actor, request)
        if prepared is None:
            return ExitCode.UNUSABLE
        for line in prepared.summary_lines():
            say(line, out)
        if request.dry_run:
            record_dry_run(ws, cl.actor, prepared)
            return _finish_dry_run(prepared, request)
        if prepared.freshness.error is not None and not request.allow_stale:
            error(
                "credly-ops issue: Credly could not be reached to sync before planning, so the "
                "plan was made on the cache as last synced; nothing was sent. Try again, or "
                "give --allow-stale to send it anyway."
            )
            return ExitCode.UNUSABLE
        reused = find_unfinished_job(ws.store, prepared.sha256)
        if reused is not None:
            say(f"This file's job {reused} is unfinished: it will be resumed.", out)
        if not request.yes and (prepared.to_send or reused):
            answer = _confirm(prepared, reused)
            if answer is not None:
                return answer
        job_id = create_job_from(ws, cl.actor, prepared)
        say(f"job {job_id}")

    try:
        with progress_bar("issue") as progress:
            result = _run(ws, cl.actor, job_id, request, progress)
    except KeyboardInterrupt:
        say(f"interrupted; resume with: credly-ops issue --resume {job_id}")
        return ExitCode.FAILED
    return _finish_job(ws, result, request, out)


def _run(
    ws: Workspace,
    actor: Actor,
    job_id: str,
    request: IssueRequest,
    progress: ProgressCallback | None,
) -> JobProgress:
    if request.retry_failed:
        send = retry_failed
    elif request.resume:
        send = resume_job
    else:
        send = run_issue_job
    return send(ws, actor, job_id, concurrency=request.concurrency, progress=progress)


def read_completion_file(path: Path, limit: int = DEFAULT_MAX_BYTES) -> bytes:
    """The file's bytes, refusing a file over ``limit`` before it is read: from its size, and
    by reading at most ``limit + 1`` bytes of one that has no size (a pipe) or grows."""
    with path.open("rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size > limit:
            raise CompletionFileError(
                f"The file is {_megabytes(size)} MB; the limit is {_megabytes(limit)} MB."
            )
        data = file.read(limit + 1)
    if len(data) > limit:
        raise CompletionFileError(
            f"The file is over {_megabytes(limit)} MB; the limit is {_megabytes(limit)} MB."
        )
    return data


def _megabytes(size: int) -> str:
    """A size in MB as the completion reader says it: rounded up to a tenth."""
    value = math.ceil(size * 10 / MB) / 10
    return f"{value:g}" if value == int(value) else f"{value:.1f}"


def _prepare(ws: Workspace, actor: Actor, request: IssueRequest) -> Prepared | None:
    """The file read and planned, or ``None`` (said why) when it is unusable."""
    assert request.file is not None
    path = Path(request.file)
    try:
        data = read_completion_file(path)
    except OSError as exc:
        error(f"credly-ops issue: cannot read {path}: {exc.strerror or exc}")
        return None
    except CompletionFileError as exc:
        _unusable(path, exc, request)
        return None
    try:
        return prepare(
            ws,
            actor,
            data,
            source_name=path.name,
            include_rejected=request.include_rejected,
            include_revoked=request.include_revoked,
            include_expired=request.include_expired,
            encoding=request.encoding,
            refresh=not request.dry_run,
        )
    except CompletionFileError as exc:
        _unusable(path, exc, request)
        return None


def _unusable(path: Path, exc: CompletionFileError, request: IssueRequest) -> None:
    hint = ""
    if "Windows-1252" in exc.message and not request.encoding:
        hint = " (pass --encoding cp1252)"
    error(f"credly-ops issue: {path.name}: {exc.message}{hint}")


def _confirm(prepared: Prepared, reused: str | None) -> ExitCode | None:
    """Ask on a terminal; ``None`` means go ahead, a code means stop with it."""
    if not sys.stdin.isatty():
        error(
            "credly-ops issue: refusing to send without confirmation: standard input is not a "
            "terminal. Check the plan with --dry-run, then run again with --yes."
        )
        return ExitCode.UNUSABLE
    question = (
        f"Resume job {reused}?" if reused else f"Send {prepared.to_send:,} requests to Credly?"
    )
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    if answer in ("y", "yes"):
        return None
    say("Nothing was sent.")
    return ExitCode.OK


def _write_report(path: str, lines: list[dict[str, Any]]) -> None:
    Path(path).write_bytes(report_csv(lines))


def _finish_dry_run(prepared: Prepared, request: IssueRequest) -> ExitCode:
    lines = plan_report(prepared.plan)
    if request.report:
        _write_report(request.report, lines)
    if request.as_json:
        counts = Counter(PLAN_TO_REPORT[r.outcome] for r in prepared.plan.rows)
        print_json(
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
            sort_keys=False,
        )
    return ExitCode.OK


def _finish_job(ws: Workspace, result: JobProgress, request: IssueRequest, out: TextIO) -> ExitCode:
    result = job_progress(ws.store, result.job_id)
    if request.report:
        _write_report(request.report, job_report(ws.store, result.job_id))
    o = result.outcomes
    say(
        f"job {result.job_id} {result.display_status}: {result.rows:,} rows — "
        f"{o['issued']:,} issued, {o['updated']:,} updated, {o['skipped']:,} skipped, "
        f"{o['invalid']:,} invalid, {o['failed']:,} failed"
        + (f", {o['pending']:,} not sent yet" if o["pending"] else ""),
        out,
    )
    for reason, n in result.reasons.items():
        say(f"  {n:>7,}  {reason}: {describe(reason)}", out)
    if o["failed"] and result.retryable_failures:
        say(
            f"{result.retryable_failures:,} failures may succeed if sent again: "
            f"credly-ops issue --retry-failed {result.job_id}",
            out,
        )
    if o["pending"]:
        say(f"resume with: credly-ops issue --resume {result.job_id}", out)
    if request.as_json:
        print_json(result.as_json(), sort_keys=False)
    return ExitCode.FAILED if o["failed"] or o["pending"] else ExitCode.OK

"""The issuance engine: ``decide`` one completion, ``plan`` a whole upload, ``run`` a job.

``decide`` and ``plan`` are pure: they take plain values and return values. The edge is in
:mod:`credly_ops.issuance.jobs` (prepare an upload, record a job and its ledger, read progress
and reports) and :mod:`credly_ops.issuance.run` (send a job's rows exactly once, resumable);
their names are re-exported here and load on first use.
"""

import importlib
from typing import TYPE_CHECKING, Any

from credly_ops.issuance.decide import (
    FLAG_BACKFILL,
    FLAG_PREVIOUSLY_REJECTED,
    FLAGS,
    INVALID_REASONS,
    ISSUE_REASONS,
    OUTCOMES,
    SKIP_REASONS,
    UPDATE_REASONS,
    BadgePool,
    BadgeView,
    Decision,
    Mode,
    Outcome,
    add_months,
    compute_expires_at,
    decide,
    decide_valid,
    invalid_reason,
    lasts_at_least,
    same_second,
    to_second,
)
from credly_ops.issuance.plan import (
    PLANNED_PREFIX,
    InvalidRow,
    Plan,
    PlannedRow,
    idempotency_key,
    is_planned_id,
    plan,
    planned_badge_id,
)

if TYPE_CHECKING:
    from credly_ops.issuance.jobs import (
        JOB_DONE,
        JOB_DONE_WITH_FAILURES,
        JOB_INTERRUPTED,
        JOB_KIND,
        JOB_PLANNED,
        JOB_RUNNING,
        REPORT_COLUMNS,
        RETRYABLE_CLASSES,
        CacheFreshness,
        JobBusy,
        JobNotFound,
        JobProgress,
        Prepared,
        create_job,
        create_job_from,
        find_unfinished_job,
        is_running_here,
        job_progress,
        job_report,
        list_jobs,
        plan_report,
        prepare,
        record_dry_run,
        report_csv,
        running_jobs,
        stop_job,
    )
    from credly_ops.issuance.run import (
        DEFAULT_CONCURRENCY,
        reset_retryable,
        resume_job,
        retry_failed,
        run_job,
        start_job_in_background,
    )

_LAZY: dict[str, str] = {
    "JOB_DONE": "credly_ops.issuance.jobs",
    "JOB_DONE_WITH_FAILURES": "credly_ops.issuance.jobs",
    "JOB_INTERRUPTED": "credly_ops.issuance.jobs",
    "JOB_KIND": "credly_ops.issuance.jobs",
    "JOB_PLANNED": "credly_ops.issuance.jobs",
    "JOB_RUNNING": "credly_ops.issuance.jobs",
    "REPORT_COLUMNS": "credly_ops.issuance.jobs",
    "RETRYABLE_CLASSES": "credly_ops.issuance.jobs",
    "CacheFreshness": "credly_ops.issuance.jobs",
    "JobBusy": "credly_ops.issuance.jobs",
    "JobNotFound": "credly_ops.issuance.jobs",
    "JobProgress": "credly_ops.issuance.jobs",
    "Prepared": "credly_ops.issuance.jobs",
    "create_job": "credly_ops.issuance.jobs",
    "create_job_from": "credly_ops.issuance.jobs",
    "find_unfinished_job": "credly_ops.issuance.jobs",
    "is_running_here": "credly_ops.issuance.jobs",
    "job_progress": "credly_ops.issuance.jobs",
    "job_report": "credly_ops.issuance.jobs",
    "list_jobs": "credly_ops.issuance.jobs",
    "plan_report": "credly_ops.issuance.jobs",
    "prepare": "credly_ops.issuance.jobs",
    "record_dry_run": "credly_ops.issuance.jobs",
    "report_csv": "credly_ops.issuance.jobs",
    "running_jobs": "credly_ops.issuance.jobs",
    "stop_job": "credly_ops.issuance.jobs",
    "DEFAULT_CONCURRENCY": "credly_ops.issuance.run",
    "reset_retryable": "credly_ops.issuance.run",
    "resume_job": "credly_ops.issuance.run",
    "retry_failed": "credly_ops.issuance.run",
    "run_job": "credly_ops.issuance.run",
    "start_job_in_background": "credly_ops.issuance.run",
}

__all__ = [
    "DEFAULT_CONCURRENCY",
    "FLAGS",
    "FLAG_BACKFILL",
    "FLAG_PREVIOUSLY_REJECTED",
    "INVALID_REASONS",
    "ISSUE_REASONS",
    "JOB_DONE",
    "JOB_DONE_WITH_FAILURES",
    "JOB_INTERRUPTED",
    "JOB_KIND",
    "JOB_PLANNED",
    "JOB_RUNNING",
    "OUTCOMES",
    "PLANNED_PREFIX",
    "REPORT_COLUMNS",
    "RETRYABLE_CLASSES",
    "SKIP_REASONS",
    "UPDATE_REASONS",
    "BadgePool",
    "BadgeView",
    "CacheFreshness",
    "Decision",
    "InvalidRow",
    "JobBusy",
    "JobNotFound",
    "JobProgress",
    "Mode",
    "Outcome",
    "Plan",
    "PlannedRow",
    "Prepared",
    "add_months",
    "compute_expires_at",
    "create_job",
    "create_job_from",
    "decide",
    "decide_valid",
    "find_unfinished_job",
    "idempotency_key",
    "invalid_reason",
    "is_planned_id",
    "is_running_here",
    "job_progress",
    "job_report",
    "lasts_at_least",
    "list_jobs",
    "plan",
    "plan_report",
    "planned_badge_id",
    "prepare",
    "record_dry_run",
    "report_csv",
    "reset_retryable",
    "resume_job",
    "retry_failed",
    "run_job",
    "running_jobs",
    "same_second",
    "start_job_in_background",
    "stop_job",
    "to_second",
]


def __getattr__(name: str) -> Any:
    """The job and runner names load on first use: planning alone needs neither pandas nor
    DuckDB nor an HTTP client."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

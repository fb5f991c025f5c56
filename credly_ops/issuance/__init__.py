"""The issuance engine: ``decide`` one completion, ``plan`` a whole upload, ``run`` a job.

What lives where:

- ``decide.py``: the domain's issuing rules for one completion, a pure function (its docstring
  has the rule table); ``plan.py``: a whole upload decided, pure;
- ``upload.py``: prepare an upload (read, sync, plan); ``jobs.py``: record a job, read its
  progress and report;
- ``redecide.py``: a job's rows decided again against the cache and every job's ledger;
- ``run.py``: a job from start to end (sync, recheck, run, resume, retry, in the background);
  ``writer.py``: the ledger writer's claims and results; ``workers.py``: the threads that send.

Every statement that writes jobs and ledger rows is in :mod:`credly_ops.ledger`. This module
names what callers (the pages, the command line, the support actions) use: the pure engine at
once, the job API (which brings DuckDB, pandas and an HTTP client) on first use, so planning
alone loads neither.
"""

import importlib
from typing import Any

from credly_ops.issuance.decide import (
    FLAG_ADDS_EXPIRY,
    FLAG_ALREADY_EXPIRED,
    FLAG_BACKFILL,
    FLAG_PREVIOUSLY_REJECTED,
    FLAG_PREVIOUSLY_REVOKED,
    FLAGS,
    INVALID_REASONS,
    ISSUE_REASONS,
    OUTCOMES,
    SKIP_REASONS,
    UPDATE_REASONS,
    BadgePool,
    BadgeView,
    DecideOptions,
    Decision,
    Mode,
    Outcome,
    add_months,
    carries_completion,
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

#: the job API's names, by the module that defines them (loaded on first use)
_EDGE: dict[str, str] = {
    "JOB_DONE": "credly_ops.issuance.jobs",
    "JOB_DONE_WITH_FAILURES": "credly_ops.issuance.jobs",
    "JOB_INTERRUPTED": "credly_ops.issuance.jobs",
    "JOB_KIND": "credly_ops.issuance.jobs",
    "JOB_PLANNED": "credly_ops.issuance.jobs",
    "JOB_RUNNING": "credly_ops.issuance.jobs",
    "REPORT_COLUMNS": "credly_ops.issuance.jobs",
    "RETRYABLE_CLASSES": "credly_ops.issuance.jobs",
    "JobBusy": "credly_ops.issuance.jobs",
    "JobNotFound": "credly_ops.issuance.jobs",
    "JobProgress": "credly_ops.issuance.jobs",
    "create_job": "credly_ops.issuance.jobs",
    "create_job_from": "credly_ops.issuance.jobs",
    "find_unfinished_job": "credly_ops.issuance.jobs",
    "is_running_here": "credly_ops.issuance.jobs",
    "job_progress": "credly_ops.issuance.jobs",
    "job_report": "credly_ops.issuance.jobs",
    "list_jobs": "credly_ops.issuance.jobs",
    "plan_report": "credly_ops.issuance.jobs",
    "report_csv": "credly_ops.issuance.jobs",
    "running_jobs": "credly_ops.issuance.jobs",
    "stop_job": "credly_ops.issuance.jobs",
    "CacheFreshness": "credly_ops.issuance.upload",
    "Prepared": "credly_ops.issuance.upload",
    "prepare": "credly_ops.issuance.upload",
    "record_dry_run": "credly_ops.issuance.upload",
    "DEFAULT_CONCURRENCY": "credly_ops.issuance.run",
    "changes_before_sending": "credly_ops.issuance.run",
    "reset_retryable": "credly_ops.issuance.run",
    "resume_job": "credly_ops.issuance.run",
    "retry_failed": "credly_ops.issuance.run",
    "run_job": "credly_ops.issuance.run",
    "start_job_in_background": "credly_ops.issuance.run",
}

__all__ = [
    "DEFAULT_CONCURRENCY",
    "FLAGS",
    "FLAG_ADDS_EXPIRY",
    "FLAG_ALREADY_EXPIRED",
    "FLAG_BACKFILL",
    "FLAG_PREVIOUSLY_REJECTED",
    "FLAG_PREVIOUSLY_REVOKED",
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
    "DecideOptions",
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
    "carries_completion",
    "changes_before_sending",
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
    module = _EDGE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

"""Bulk issue: upload completions, review the plan, issue each badge exactly once.

The page only reads inputs and draws; the work is ``credly_ops.issuance``. A job runs in a
thread of the server process with its state in the ledger, so a browser refresh or a click to
another page loses nothing: the job goes on and is listed under "Jobs" when you come back.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

import ui
from credly_ops.access import Permission, PermissionDenied
from credly_ops.completions import TEMPLATE_COLUMNS, CompletionFileError
from credly_ops.exports import to_csv_bytes
from credly_ops.issuance import (
    DEFAULT_CONCURRENCY,
    FLAG_BACKFILL,
    FLAG_PREVIOUSLY_REJECTED,
    JobBusy,
    JobNotFound,
    JobProgress,
    Prepared,
    create_job_from,
    find_unfinished_job,
    job_progress,
    job_report,
    list_jobs,
    plan_report,
    prepare,
    record_dry_run,
    report_csv,
    running_jobs,
    start_job_in_background,
)
from credly_ops.issuance.redecide import Redecision
from credly_ops.issuance.run import changes_before_sending
from credly_ops.reasons import describe, describe_flag
from credly_ops.store import CacheBusy

TEMPLATE_FILE = (
    Path(__file__).resolve().parents[1] / "data" / "samples" / "completions_template.csv"
)
ENCODINGS = {"UTF-8": None, "Windows-1252": "cp1252"}
#: the classes of plan rows one can browse
CLASSES = ("issue", "update", "skip", "invalid", "backfill", "previously rejected")
#: rows shown at once when browsing a class (the downloads hold them all)
BROWSE_LIMIT = 2_000
STATUS_ICONS = {
    "planned": ":material/schedule:",
    "running": ":material/sync:",
    "done": ":material/check_circle:",
    "done_with_failures": ":material/error:",
    "interrupted": ":material/pause_circle:",
}

actor = ui.require(Permission.ISSUE)
st.title("Bulk issue")
ws = ui.workspace()

notice = st.session_state.pop("bulk_notice", None)
if notice:
    st.success(notice, icon=":material/check_circle:")


def template_bytes() -> bytes:
    if TEMPLATE_FILE.is_file():
        return TEMPLATE_FILE.read_bytes()
    return to_csv_bytes([], columns=list(TEMPLATE_COLUMNS))


def prepared_for(data: bytes, name: str, include_rejected: bool, encoding: str | None) -> Prepared:
    """The plan of this upload with these options, made once (a sync, then the plan)."""
    key = (hashlib.sha256(data).hexdigest(), name, include_rejected, encoding)
    cached = st.session_state.get("bulk_prepared")
    if cached is not None and cached[0] == key and isinstance(cached[1], Prepared):
        return cached[1]
    with st.spinner("Reading the file, syncing with Credly and planning…"):
        result = prepare(
            ws,
            actor,
            data,
            source_name=name,
            include_rejected=include_rejected,
            encoding=encoding,
        )
    st.session_state["bulk_prepared"] = (key, result)
    return result


def show_validation(prepared: Prepared) -> None:
    file = prepared.file
    st.subheader("1 · The file")
    a, b, c = st.columns(3)
    a.metric("Rows read", f"{file.rows_read:,}")
    b.metric("Valid completions", f"{len(file.completions):,}")
    c.metric("Rows with errors", f"{file.rows_with_errors:,}")
    if file.ignored_columns:
        st.caption("Columns not used: " + ", ".join(file.ignored_columns))
    if file.errors:
        st.warning(
            f"{file.rows_with_errors:,} row{'s' if file.rows_with_errors != 1 else ''} cannot be "
            "used as they are: listed in the plan as invalid, and nothing is sent for them.",
            icon=":material/warning:",
        )
        bad = pd.DataFrame(
            [
                {"row": e.row, "column": e.column, "value": e.value, "reason": e.reason}
                for e in file.errors
            ]
        )
        st.dataframe(bad, hide_index=True, width="stretch", key="bulk_bad_rows")


def rows_of_class(prepared: Prepared, chosen: str) -> pd.DataFrame:
    rows = prepared.plan.rows
    if chosen == "backfill":
        picked = [r for r in rows if FLAG_BACKFILL in r.flags]
    elif chosen == "previously rejected":
        picked = [
            r
            for r in rows
            if FLAG_PREVIOUSLY_REJECTED in r.flags or r.reason == "previously_rejected"
        ]
    else:
        picked = [r for r in rows if r.outcome == chosen]
    return pd.DataFrame(
        [
            {
                "row": r.row,
                "email": r.email,
                "course": r.course_id or r.course_title,
                "completed_at": r.completed_at,
                "outcome": r.outcome,
                "reason": r.reason,
                "why": r.detail or describe(r.reason),
                "issued_at": r.issued_at,
                "expires_at": r.expires_at,
                "badge": r.target_badge_id or r.matched_badge_id or "",
            }
            for r in picked[:BROWSE_LIMIT]
        ],
        columns=[
            "row",
            "email",
            "course",
            "completed_at",
            "outcome",
            "reason",
            "why",
            "issued_at",
            "expires_at",
            "badge",
        ],
    )


def show_plan(prepared: Prepared) -> None:
    plan = prepared.plan
    counts = plan.counts()
    st.subheader("2 · The plan")
    st.caption(prepared.freshness.sentence())
    a, b, c, d = st.columns(4)
    a.metric("Issue", f"{counts['issue']:,}")
    b.metric("Update (renew)", f"{counts['update']:,}")
    c.metric("Skip", f"{counts['skip']:,}")
    d.metric("Invalid", f"{counts['invalid']:,}")
    reasons = pd.DataFrame(
        [
            {"reason": code, "what it means": describe(code), "rows": n}
            for code, n in plan.reasons().items()
        ]
    )
    st.dataframe(reasons, hide_index=True, width="stretch", key="bulk_reasons")
    for flag, n in plan.flag_counts().items():
        st.caption(f":material/flag: {n:,} rows flagged **{flag}**: {describe_flag(flag)}")
    chosen = st.segmented_control(
        "Browse the rows of one class", CLASSES, default="issue", key="bulk_class"
    )
    if chosen:
        table = rows_of_class(prepared, chosen)
        if table.empty:
            st.caption(f"No row is in the class “{chosen}”.")
        else:
            st.dataframe(table, hide_index=True, width="stretch", key="bulk_rows")
    st.download_button(
        "Download the plan (CSV)",
        data=report_csv(plan_report(plan)),
        file_name=f"plan-{prepared.source_name}",
        mime="text/csv",
        icon=":material/download:",
    )


def confirm(prepared: Prepared) -> None:
    st.subheader("3 · Send")
    dry_run = st.checkbox(
        "Dry run: record that the plan was reviewed, send nothing", key="bulk_dry_run"
    )
    busy = running_jobs()
    if dry_run:
        if st.button("Record the dry run", icon=":material/fact_check:"):
            record_dry_run(ws, actor, prepared)
            st.session_state["bulk_notice"] = "Dry run recorded in the audit trail; nothing sent."
            st.rerun()
        return
    n = prepared.to_send
    unfinished = find_unfinished_job(ws.store, prepared.sha256)
    if unfinished is not None:
        st.info(
            f"This file's job {unfinished} is unfinished: confirming resumes it, and rows that "
            "were in flight are looked up on Credly before anything is sent again.",
            icon=":material/history:",
        )
    if busy:
        st.caption(f"Job {busy[0]} is running; the next job can start when it ends.")
    stale_ok = True
    if prepared.freshness.error is not None:
        st.warning(
            "Credly could not be reached to sync before planning: this plan was made on the "
            "cache as last synced, and may miss badges issued since. Upload the file again to "
            "retry, or send anyway (each row is still decided again just before it is sent).",
            icon=":material/cloud_off:",
        )
        stale_ok = st.checkbox("Send anyway, on the cache as last synced", key="bulk_allow_stale")
    clicked = st.button(
        f"Confirm and issue {n:,} badges",
        type="primary",
        icon=":material/send:",
        disabled=(n == 0 and unfinished is None) or bool(busy) or not stale_ok,
        help="Issue and update rows are sent to Credly, each exactly once.",
    )
    if not clicked:
        return
    try:
        job_id = create_job_from(ws, actor, prepared)
        with st.spinner("Syncing with Credly and checking the plan against it…"):
            changes = changes_before_sending(ws, actor, job_id)
    except (JobBusy, PermissionDenied, CacheBusy) as exc:
        st.error(str(exc))
        return
    if changes:
        # never send a plan the user was not shown: show what changed, and ask again
        st.session_state["bulk_recheck"] = (job_id, [change_row(c) for c in changes])
        st.rerun()
    launch_new(job_id)


def change_row(change: Redecision) -> dict[str, Any]:
    row, now = change.row, change.decided
    return {
        "row": row.row_no,
        "email": row.email,
        "course": row.course_id or row.course_title,
        "planned": f"{row.outcome} / {row.reason}",
        "now": f"{now.outcome} / {now.reason}",
        "why": describe(now.reason),
    }


def launch_new(job_id: str) -> None:
    try:
        start_job_in_background(ws, actor, job_id, DEFAULT_CONCURRENCY)
    except (JobBusy, PermissionDenied) as exc:
        st.error(str(exc))
        return
    st.session_state.pop("bulk_recheck", None)
    st.session_state["bulk_job"] = job_id
    st.session_state.pop("bulk_prepared", None)
    # a fresh uploader: the plan is done with, and is not made again while the job runs
    st.session_state["bulk_upload_round"] = st.session_state.get("bulk_upload_round", 0) + 1
    st.rerun()


def confirm_again(job_id: str, changes: list[dict[str, Any]]) -> None:
    """The plan changed between planning and confirming: the new decisions, then a choice."""
    st.warning(
        f"Since you planned, {len(changes):,} row(s) of job {job_id} would be decided "
        "differently (another job or a change on Credly landed in between). Nothing was sent. "
        "Review the new decisions and confirm again.",
        icon=":material/published_with_changes:",
    )
    st.dataframe(pd.DataFrame(changes), hide_index=True, width="stretch", key="bulk_changes")
    go, cancel = st.columns(2)
    if go.button("Confirm again and issue", type="primary", icon=":material/send:"):
        launch_new(job_id)
    if cancel.button("Not now", icon=":material/close:"):
        st.session_state.pop("bulk_recheck", None)
        st.session_state["bulk_notice"] = (
            f"Job {job_id} was not started; it is listed below and can be resumed later."
        )
        st.rerun()


def progress_view(job_id: str, polling: bool = False) -> None:
    """The job's progress, read from the ledger (every second while ``polling``)."""
    try:
        progress = job_progress(ws.store, job_id)
    except (JobNotFound, CacheBusy) as exc:
        st.error(str(exc))
        return
    o = progress.outcomes
    status = progress.display_status
    st.markdown(f"{STATUS_ICONS.get(status, '')} Job `{job_id}` · **{status}**")
    st.progress(
        progress.fraction,
        text=f"{progress.sent:,} of {progress.to_send:,} requests answered",
    )
    a, b, c, d, e = st.columns(5)
    a.metric("Issued", f"{o['issued']:,}")
    b.metric("Updated", f"{o['updated']:,}")
    c.metric("Skipped", f"{o['skipped']:,}")
    d.metric("Invalid", f"{o['invalid']:,}")
    e.metric("Failed", f"{o['failed']:,}")
    if polling and not progress.alive:
        st.cache_data.clear()  # the funnel and previews read the badges this job wrote
        st.rerun()  # the job ended: draw the whole page with its results, and stop polling


def show_job(job_id: str) -> None:
    st.subheader("4 · Progress and results")
    try:
        progress = job_progress(ws.store, job_id)
    except (JobNotFound, CacheBusy) as exc:
        st.error(str(exc))
        return
    if progress.alive:
        st.fragment(progress_view, run_every=1)(job_id, polling=True)
        st.caption("You may leave this page: the job goes on in the server.")
        return
    progress_view(job_id)
    show_results(progress)


def show_results(progress: JobProgress) -> None:
    if progress.reasons:
        st.dataframe(
            pd.DataFrame(
                [
                    {"reason": code, "what it means": describe(code), "rows": n}
                    for code, n in progress.reasons.items()
                ]
            ),
            hide_index=True,
            width="stretch",
            key=f"bulk_results_{progress.job_id}",
        )
    st.download_button(
        "Download the report (CSV)",
        data=report_csv(job_report(ws.store, progress.job_id)),
        file_name=f"report-{progress.job_id}.csv",
        mime="text/csv",
        icon=":material/download:",
        key=f"bulk_report_{progress.job_id}",
    )
    job_actions(progress)


def job_actions(progress: JobProgress) -> None:
    if progress.alive:
        return
    busy = bool(running_jobs())
    resume, retry = st.columns(2)
    verb = "Start" if progress.status == "planned" else "Resume"
    if progress.resumable and resume.button(
        f"{verb} ({progress.pending:,} rows left)",
        icon=":material/play_arrow:",
        disabled=busy,
        key=f"bulk_resume_{progress.job_id}",
    ):
        launch(progress.job_id, retry=False)
    if progress.retryable_failures and retry.button(
        f"Retry {progress.retryable_failures:,} failed rows",
        icon=":material/replay:",
        disabled=busy,
        key=f"bulk_retry_{progress.job_id}",
    ):
        launch(progress.job_id, retry=True)


def launch(job_id: str, *, retry: bool) -> None:
    try:
        start_job_in_background(ws, actor, job_id, DEFAULT_CONCURRENCY, retry=retry)
    except (JobBusy, JobNotFound, PermissionDenied) as exc:
        st.error(str(exc))
        return
    st.session_state["bulk_job"] = job_id
    st.rerun()


def show_jobs() -> None:
    st.subheader("Jobs")
    try:
        jobs = list_jobs(ws.store)
    except CacheBusy as exc:
        st.error(str(exc))
        return
    if not jobs:
        st.caption("No bulk issue yet.")
        return
    table = pd.DataFrame([job_row(j) for j in jobs])
    st.dataframe(table, hide_index=True, width="stretch", key="bulk_jobs")
    ids = [j.job_id for j in jobs]
    current = st.session_state.get("bulk_job")
    names = {j.job_id: j.source_name for j in jobs}
    st.selectbox(
        "Open a job to see its report, resume it or retry its failures",
        ids,
        index=ids.index(current) if current in ids else None,
        placeholder="Choose a job",
        format_func=lambda job_id: f"{job_id} · {names[job_id]}",
        key="bulk_pick",
        on_change=lambda: st.session_state.update(bulk_job=st.session_state["bulk_pick"]),
    )


def job_row(job: JobProgress) -> dict[str, Any]:
    o = job.outcomes
    return {
        "job": job.job_id,
        "file": job.source_name,
        "created": job.created_at,
        "by": job.created_by,
        "status": job.display_status,
        "rows": job.rows,
        "issued": o["issued"],
        "updated": o["updated"],
        "skipped": o["skipped"],
        "invalid": o["invalid"],
        "failed": o["failed"],
        "not sent": o["pending"],
    }


# -- the page --------------------------------------------------------------------------------

st.caption(
    "Upload a completions file (a Skilljar export or a sheet made by hand). You see what will "
    "be issued, renewed or skipped, and why, before anything is sent; each badge is issued "
    "once, with the real completion date, even if the run is interrupted and resumed."
)
st.download_button(
    "Download a CSV template",
    data=template_bytes(),
    file_name="completions_template.csv",
    mime="text/csv",
    icon=":material/description:",
    help="Columns: " + ", ".join(TEMPLATE_COLUMNS),
)
uploaded = st.file_uploader(
    "Completions file (CSV)",
    type=["csv"],
    key=f"bulk_upload_{st.session_state.get('bulk_upload_round', 0)}",
)
include_rejected = st.checkbox(
    "Also issue to students who rejected this badge before",
    key="bulk_include_rejected",
    help="By default a student who rejected a badge is skipped (previously_rejected).",
)

recheck = st.session_state.get("bulk_recheck")
if recheck:
    confirm_again(*recheck)
elif uploaded is not None:
    data, name = uploaded.getvalue(), uploaded.name
    label = st.session_state.get("bulk_encoding", "UTF-8")
    prepared: Prepared | None = None
    try:
        prepared = prepared_for(data, name, include_rejected, ENCODINGS.get(label))
    except CompletionFileError as exc:
        st.error(exc.message, icon=":material/error:")
        if "Windows-1252" in exc.message or label != "UTF-8":
            st.radio("The file's encoding", list(ENCODINGS), horizontal=True, key="bulk_encoding")
    except CacheBusy as exc:
        st.error(str(exc))
    if prepared is not None:
        if label != "UTF-8":
            st.radio("The file's encoding", list(ENCODINGS), horizontal=True, key="bulk_encoding")
        show_validation(prepared)
        show_plan(prepared)
        confirm(prepared)

# the job this session follows: the one it started or opened, else one running in the server
job = st.session_state.get("bulk_job") or next(iter(running_jobs()), None)
if job:
    st.session_state["bulk_job"] = job
    show_job(job)
show_jobs()

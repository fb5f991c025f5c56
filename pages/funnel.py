"""Funnel: completions → eligible → issued → accepted, for program managers."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import ui
from credly_ops import charts, funnel, links
from credly_ops.access import Permission
from credly_ops.exports import to_csv_bytes
from credly_ops.funnel import FunnelFilter, FunnelReport, FunnelSummary
from credly_ops.reasons import REASONS
from credly_ops.store import CacheBusy
from credly_ops.timeutil import utcnow

TTL_SECONDS = 300
STUDENT_ROWS = 20_000
PHASE_METRICS = {
    "before_first_reminder": "Accepted before 1st reminder",
    "between_reminders": "Accepted between reminders",
    "after_second_reminder": "Accepted after 2nd reminder",
}
OUTCOMES = {
    "issued": "Badge issued.",
    "renewed": "Renewed the student's badge.",
    "failed": "The last attempt to issue it failed.",
    "blocked_retake": "A retake: the template allows one badge per student, who already has it.",
    "not_issued": "Eligible; no badge issued yet (issue it on Bulk issue).",
    "not_from_a_completion": "Issued outside credly-ops: by the native integration, by hand, or "
    "before the first sync — no known completion.",
}
#: where every number on this page is defined (the page shows it)
DEFINITIONS = Path(__file__).resolve().parent.parent / "docs" / "funnel.md"
PERIODS = ("Last 30 days", "Last 90 days", "Last 12 months", "All time", "Custom")
DIMENSIONS: dict[str, funnel.Dimension] = {
    "Per course": "course",
    "Per template": "template",
    "Per email domain": "domain",
}


# -- cached reads (cleared after a sync or a bulk issue); ``db`` keys the cache by file -------


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Reading the funnel…")
def load_report(db: str, flt: FunnelFilter) -> FunnelReport:
    return funnel.full_report(ui.workspace().store, flt)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def load_summary(db: str, flt: FunnelFilter) -> FunnelSummary:
    return funnel.summary(ui.workspace().store, flt)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def load_breakdown(db: str, flt: FunnelFilter, by: funnel.Dimension) -> pd.DataFrame:
    return funnel.breakdown(ui.workspace().store, flt, by)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def load_options(db: str) -> funnel.FilterOptions:
    return funnel.filter_options(ui.workspace().store)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def load_counts(db: str) -> tuple[int, int]:
    return funnel.cache_counts(ui.workspace().store)


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Reading the students…")
def load_students(db: str, flt: FunnelFilter) -> pd.DataFrame:
    return funnel.students(ui.workspace().store, flt, limit=STUDENT_ROWS)


# -- small helpers -----------------------------------------------------------------------------


def plot(fig: go.Figure, name: str) -> None:
    """A chart at full width whose toolbar camera saves a PNG."""
    st.plotly_chart(
        fig,
        width="stretch",
        config={
            "displaylogo": False,
            "toImageButtonOptions": {"format": "png", "filename": name, "scale": 2},
        },
    )


def csv_button(label: str, frame: pd.DataFrame, name: str, key: str) -> None:
    st.download_button(
        label,
        to_csv_bytes(frame),
        file_name=f"{name}.csv",
        mime="text/csv",
        key=key,
        icon=":material/download:",
    )


def count_delta(now: int, before: FunnelSummary | None, field: str) -> str | None:
    if before is None:
        return None
    change = now - int(getattr(before, field))
    return f"{change:+,}" if change else None


def rate_text(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def period_filter(choice: str, custom: Any, today: date) -> tuple[date | None, date | None]:
    if choice == "All time":
        return None, None
    if choice == "Custom":
        if isinstance(custom, tuple | list) and len(custom) == 2:
            return custom[0], custom[1]
        if isinstance(custom, tuple | list) and len(custom) == 1:
            return custom[0], custom[0]
        return None, None
    days = {"Last 30 days": 30, "Last 90 days": 90, "Last 12 months": 365}[choice]
    return today - timedelta(days=days - 1), today


# -- the page ----------------------------------------------------------------------------------

ui.require(Permission.VIEW)
st.title("Funnel")
st.caption(
    "Completions → eligible → issued or renewed → accepted, from the cache: each completion "
    "once, with the badge it earned or renewed; badges with no known completion are counted "
    "apart. Every number is defined under “How each number is counted”. Save any chart as PNG "
    "with the camera icon in its toolbar; each table has a CSV download."
)
ws = ui.workspace()
try:
    # the cached reads are keyed by the file and the link's stamp: a badge issued by another
    # process (the automatic issuer, a CLI job) shows on the next run, not after the TTL
    with ws.store.session() as cur:
        db = f"{ws.settings.db_path}@{links.link_stamp(cur)}"
    options = load_options(db)
    completions_cached, badges_cached = load_counts(db)
except CacheBusy as exc:
    st.error(str(exc))
    st.stop()

if completions_cached == 0 and badges_cached == 0:
    st.info(
        "No completions yet — upload some on **Bulk issue**. No badges either — press "
        "**Sync now** in the sidebar to read them from Credly.",
        icon=":material/info:",
    )
    st.stop()
if badges_cached == 0:
    st.warning(
        "No badges in the cache yet — press **Sync now** in the sidebar to read them from "
        "Credly. Completions are shown below.",
        icon=":material/sync_problem:",
    )
if completions_cached == 0:
    st.info(
        "No completions yet — upload some on **Bulk issue**. Badges from Credly are shown "
        "below; they are not linked to courses until completions are loaded.",
        icon=":material/info:",
    )

# filters: a bar at the top
today = utcnow().date()
top = st.columns([1.3, 1.2, 1.6, 1.6, 1.2])
period = top[0].selectbox("Period", PERIODS, index=1, key="funnel_period")
by_label = top[1].radio(
    "Date by",
    ["Completion date", "Issue date"],
    key="funnel_by",
    horizontal=True,
    help="Completion date: when the student finished the course (a badge carries it as its "
    "issue date). Issue date: when Credly created the badge (later for a backfill).",
)
course_names = dict(options.courses)
course = top[2].selectbox(
    "Course",
    [None, *course_names],
    format_func=lambda c: "All courses" if c is None else course_names[c],
    key="funnel_course",
)
template_names = dict(options.templates)
template = top[3].selectbox(
    "Badge template",
    [None, *template_names],
    format_func=lambda t: "All templates" if t is None else template_names[t],
    key="funnel_template",
)
domain = top[4].text_input("Email domain", placeholder="e.g. acme.com", key="funnel_domain")
custom = None
if period == "Custom":
    custom = st.date_input(
        "Days (UTC)", value=(today - timedelta(days=29), today), key="funnel_custom"
    )
since, until = period_filter(period, custom, today)
flt = FunnelFilter(
    since=since,
    until=until,
    by="issue" if by_label == "Issue date" else "completion",
    course_id=course,
    template_id=template,
    domain=domain or None,
)
previous = flt.previous(today)

try:
    report = load_report(db, flt)
    before = load_summary(db, previous) if previous else None
except CacheBusy as exc:
    st.error(str(exc))
    st.stop()
result = report.summary
if result.completions == 0 and result.issued == 0 and result.issued_outside == 0:
    st.info(
        "Nothing matches these filters — widen the period, or clear the course, template or "
        "email domain.",
        icon=":material/filter_alt_off:",
    )
    st.stop()

# headline numbers, each against the previous period of equal length
if before is not None and previous is not None:
    st.caption(f"Changes compare with {previous.since:%d %b %Y} – {previous.until:%d %b %Y}.")
row = st.columns(5)
row[0].metric(
    "Completions", f"{result.completions:,}", count_delta(result.completions, before, "completions")
)
row[1].metric("Eligible", f"{result.eligible:,}", count_delta(result.eligible, before, "eligible"))
row[2].metric(
    "Issued",
    f"{result.issued:,}",
    count_delta(result.issued, before, "issued"),
    help="Completions that got a badge: issued for them, or a renewal they caused "
    f"({result.renewed:,} renewals). Badges with no known completion are counted apart.",
)
row[3].metric("Accepted", f"{result.accepted:,}", count_delta(result.accepted, before, "accepted"))
rate_delta = None
if before is not None and result.acceptance_rate is not None and before.acceptance_rate:
    rate_delta = f"{(result.acceptance_rate - before.acceptance_rate) * 100:+.1f} pp"
row[4].metric(
    "Acceptance rate",
    rate_text(result.acceptance_rate),
    rate_delta,
    help="Accepted ÷ issued.",
)
row = st.columns(5)
row[0].metric(
    "Pending",
    f"{result.pending:,}",
    count_delta(result.pending, before, "pending"),
    delta_color="inverse",
)
median_delta = None
median_now = result.median_hours_to_accept
median_before = None if before is None else before.median_hours_to_accept
if median_now is not None and median_before is not None:
    median_delta = f"{median_now - median_before:+,.1f} h"
row[1].metric(
    "Median time to accept",
    charts.hours_text(result.median_hours_to_accept),
    median_delta,
    delta_color="inverse",
    help=f"From the moment Credly sent the badge. 90th percentile: "
    f"{charts.hours_text(result.p90_hours_to_accept)}.",
)
row[2].metric(
    "Reminders sent",
    f"{result.reminders_sent:,}",
    count_delta(result.reminders_sent, before, "reminders_sent"),
    delta_color="off",
    help="Credly's reminder emails: one and four days after issue while a badge is pending.",
)
row[3].metric(
    "Rejected",
    f"{result.rejected:,}",
    count_delta(result.rejected, before, "rejected"),
    delta_color="inverse",
)
row[4].metric(
    "Revoked",
    f"{result.revoked:,}",
    count_delta(result.revoked, before, "revoked"),
    delta_color="inverse",
)
row = st.columns(5)
row[0].metric(
    "Failed to issue",
    f"{result.failed:,}",
    count_delta(result.failed, before, "failed"),
    delta_color="inverse",
)
for column, phase in zip(row[1:4], funnel.PHASES, strict=True):
    count = result.accepted_by_phase[phase]
    column.metric(
        PHASE_METRICS[phase],
        f"{count:,}",
        None if before is None else f"{count - before.accepted_by_phase[phase]:+,}",
        delta_color="off",
        help=charts.PHASE_LABELS[phase],
    )
row[4].metric(
    "Skipped",
    f"{sum(result.skipped.values()):,}",
    help="Completions that get no badge; the reasons are charted below.",
)
row = st.columns(5)
row[0].metric(
    "Blocked retakes",
    f"{result.blocked_retakes:,}",
    count_delta(result.blocked_retakes, before, "blocked_retakes"),
    delta_color="off",
    help="Eligible retakes on templates that allow one badge per student, who already has "
    "one: a bulk issue would skip them.",
)
row[1].metric(
    "Issued outside credly-ops",
    f"{result.issued_outside:,}",
    count_delta(result.issued_outside, before, "issued_outside"),
    delta_color="off",
    help="Badges with no known completion — by the native integration, by hand, or before "
    "the first sync. Not in the funnel above.",
)
row[2].metric(
    "Their acceptance rate",
    rate_text(result.outside_acceptance_rate),
    help="Accepted ÷ issued, for the badges issued outside credly-ops.",
)
with st.expander("How each number is counted"):
    st.markdown(DEFINITIONS.read_text(encoding="utf-8"))
csv_button(
    "Download these numbers (CSV)",
    pd.DataFrame(funnel.summary_rows(result)),
    "funnel-summary",
    "csv_summary",
)

# the funnel and where pending badges stand
left, right = st.columns(2)
with left:
    plot(charts.funnel_figure(result), "funnel")
with right:
    pending = report.by_template[report.by_template["pending"] > 0]
    if pending.empty:
        st.info(
            "No pending badges: every badge in scope has been accepted, rejected or revoked.",
            icon=":material/task_alt:",
        )
    plot(charts.pending_figure(pending), "pending-by-reminders")

# do reminders work? time to accept, coloured by reminder phase
if result.accepted == 0:
    st.info("No accepted badges in scope yet, so no time to accept.", icon=":material/info:")
plot(charts.time_to_accept_figure(report.time_to_accept, result), "time-to-accept")

# acceptance by issue-month cohort
if report.cohorts.empty:
    st.info("No badges issued in this period.", icon=":material/info:")
plot(charts.cohort_figure(report.cohorts), "acceptance-by-cohort")

# acceptance over time, from the snapshot each sync takes
if len(report.over_time) < 2:
    st.caption(
        "Acceptance over time builds up with each sync — sync again later to see a trend. "
        "Snapshots know templates, not courses or email domains."
    )
plot(charts.over_time_figure(report.over_time), "acceptance-over-time")

# side exits
plot(charts.exits_figure(result), "side-exits")

# per course / template / domain, laggards first
st.subheader("Per course, template and email domain")
dimension_label = st.radio(
    "Break down",
    list(DIMENSIONS),
    horizontal=True,
    key="funnel_dimension",
    label_visibility="collapsed",
)
dimension = DIMENSIONS[dimension_label]
if dimension == "course":
    table = report.by_course
elif dimension == "template":
    table = report.by_template
else:
    table = load_breakdown(db, flt, "domain")


def row_label(record: dict[str, Any]) -> str:
    if dimension == "course":
        if pd.isna(record["course_id"]):
            return f"Not from a completion · {record['template_name']}"
        return str(record["course_title"] or record["course_id"])
    if dimension == "template":
        return "No badge rule" if pd.isna(record["template_id"]) else str(record["template_name"])
    return str(record["domain"])


def drill_filter(record: dict[str, Any]) -> FunnelFilter:
    if dimension == "course":
        if pd.isna(record["course_id"]):
            return replace(flt, template_id=record["template_id"])
        return replace(flt, course_id=record["course_id"])
    if dimension == "template":
        return replace(flt, template_id=record["template_id"])
    return replace(flt, domain=record["domain"])


shown = table.copy()
shown.insert(0, "name", [row_label(r) for r in table.to_dict("records")])
shown["flag"] = ["⚠ laggard" if lag else "" for lag in shown["laggard"]]
shown["acceptance_rate"] = shown["acceptance_rate"] * 100
columns = [
    "name",
    "flag",
    "completions",
    "eligible",
    "issued",
    "accepted",
    "acceptance_rate",
    "pending",
    "pending_0",
    "pending_1",
    "pending_2",
    "rejected",
    "revoked",
    "failed",
    "median_hours_to_accept",
    "p90_hours_to_accept",
]
laggards = shown["laggard"].to_numpy()


def highlight(frame: pd.DataFrame) -> pd.DataFrame:
    style = "background-color: rgba(213, 94, 0, 0.16)"
    return pd.DataFrame(
        [[style if lag else "" for _ in frame.columns] for lag in laggards],
        index=frame.index,
        columns=frame.columns,
    )


if table.empty:
    st.info("Nothing to break down for these filters.", icon=":material/info:")
else:
    st.caption(
        f"Sorted by acceptance rate, lowest first; click a column to sort. Rows marked ⚠ are "
        f"laggards: at least {funnel.LAGGARD_MIN_ISSUED} badges issued and an acceptance rate "
        f"{funnel.LAGGARD_MARGIN:.0%} points or more below the overall rate. Select a row to "
        "list its students."
    )
    st.dataframe(
        shown[columns].style.apply(highlight, axis=None),
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key=f"funnel_table_{dimension}",
        column_config={
            "name": st.column_config.TextColumn(dimension_label.removeprefix("Per ").title()),
            "flag": st.column_config.TextColumn("Laggard", width="small"),
            "completions": st.column_config.NumberColumn("Completions"),
            "eligible": st.column_config.NumberColumn("Eligible"),
            "issued": st.column_config.NumberColumn("Issued"),
            "accepted": st.column_config.NumberColumn("Accepted"),
            "pending": st.column_config.NumberColumn("Pending"),
            "rejected": st.column_config.NumberColumn("Rejected"),
            "revoked": st.column_config.NumberColumn("Revoked"),
            "acceptance_rate": st.column_config.NumberColumn("Acceptance rate (%)", format="%.1f"),
            "pending_0": st.column_config.NumberColumn("Pending, 0 reminders"),
            "pending_1": st.column_config.NumberColumn("Pending, 1 reminder"),
            "pending_2": st.column_config.NumberColumn("Pending, 2 reminders"),
            "failed": st.column_config.NumberColumn("Failed to issue"),
            "median_hours_to_accept": st.column_config.NumberColumn(
                "Median time to accept (h)", format="%.1f"
            ),
            "p90_hours_to_accept": st.column_config.NumberColumn(
                "90th percentile (h)", format="%.1f"
            ),
        },
    )
    csv_button("Download this table (CSV)", table, f"funnel-per-{dimension}", f"csv_{dimension}")

    # click-through: the selected row's students (or pick one)
    st.subheader("Students")
    records = table.to_dict("records")
    labels = [row_label(r) for r in records]
    selection = st.session_state.get(f"funnel_table_{dimension}")
    selected_rows = list(getattr(getattr(selection, "selection", None), "rows", []) or [])
    picked = st.selectbox(
        "Show the students of",
        [None, *range(len(records))],
        index=0 if not selected_rows else selected_rows[0] + 1,
        format_func=lambda i: "Choose a row…" if i is None else labels[i],
        key=f"funnel_students_{dimension}_{selected_rows[:1]}",
    )
    if picked is None:
        st.caption("Select a row in the table above, or choose one here.")
    else:
        drill = drill_filter(records[picked])
        try:
            people = load_students(db, drill)
        except CacheBusy as exc:
            st.error(str(exc))
            st.stop()
        if people.empty:
            st.info("No students for this row in the chosen period.", icon=":material/info:")
        else:
            people = people.assign(
                outcome=people["outcome"].map(lambda o: OUTCOMES.get(o) or REASONS.get(o, o))
            )
            if len(people) >= STUDENT_ROWS:
                st.caption(f"The {STUDENT_ROWS:,} most recent rows.")
            st.dataframe(
                people,
                hide_index=True,
                width="stretch",
                column_config={
                    "email": "Email",
                    "first_name": "First name",
                    "last_name": "Last name",
                    "course_id": "Course id",
                    "course_title": "Course",
                    "completed_at": st.column_config.DatetimeColumn("Completed (UTC)"),
                    "status": "Status",
                    "outcome": "Outcome",
                    "badge_id": "Badge id",
                    "badge_state": "Badge state",
                    "issued_at": st.column_config.DatetimeColumn("Issued (UTC)"),
                    "accepted_at": st.column_config.DatetimeColumn("Accepted (UTC)"),
                    "hours_to_accept": st.column_config.NumberColumn(
                        "Hours to accept", format="%.1f"
                    ),
                    "reminders_sent": st.column_config.NumberColumn("Reminders sent"),
                },
            )
            csv_button(
                "Download the students (CSV)", people, f"students-{labels[picked]}", "csv_people"
            )

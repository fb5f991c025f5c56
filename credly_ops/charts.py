"""The funnel's charts as Plotly figures, built from the funnel's results (no Streamlit).

Colours are Okabe-Ito, distinguishable with every common colour-vision deficiency; every
axis says what it counts and in which unit.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from credly_ops import funnel
from credly_ops.funnel import FunnelSummary
from credly_ops.reasons import REASONS
from credly_ops.reminders import PHASES, phase_title

BLUE, SKY, GREEN, ORANGE = "#0072B2", "#56B4E9", "#009E73", "#E69F00"
VERMILLION, PURPLE, GREY = "#D55E00", "#CC79A7", "#666666"
STATE_COLOURS = {"accepted": GREEN, "pending": ORANGE, "rejected": PURPLE, "revoked": GREY}
REMINDER_COLOURS = {"0": SKY, "1": ORANGE, "2": VERMILLION}
PHASE_COLOURS = {
    "before_first_reminder": GREEN,
    "between_reminders": SKY,
    "after_second_reminder": ORANGE,
}
PHASE_LABELS = {phase: phase_title(phase) for phase in PHASES}


def hours_text(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f} h"


def styled(fig: go.Figure) -> go.Figure:
    """The house layout: room for the title, a horizontal legend above the plot."""
    fig.update_layout(
        margin={"l": 10, "r": 10, "t": 90, "b": 10},
        font={"size": 13},
        title={"y": 0.97, "yanchor": "top", "x": 0, "xanchor": "left"},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0, "title": None},
    )
    return fig


def funnel_figure(result: FunnelSummary) -> go.Figure:
    stages = ["Completions", "Eligible", "Issued", "Accepted"]
    values = [result.completions, result.eligible, result.issued, result.accepted]
    fig = go.Figure(
        go.Funnel(
            y=stages,
            x=values,
            texttemplate="%{value:,}<br>%{percentPrevious:.0%}",
            marker={"color": [BLUE, SKY, ORANGE, GREEN]},
            connector={"line": {"color": GREY, "width": 1}},
            hovertemplate="%{y}: %{x:,} (%{percentPrevious:.1%} of the stage before)"
            "<extra></extra>",
        )
    )
    fig.update_layout(title="Funnel: count at each stage (% of the stage before)")
    return styled(fig)


def pending_figure(pending: pd.DataFrame) -> go.Figure:
    """Pending badges per template, stacked by reminders sent (rows with pending > 0)."""
    fig = go.Figure()
    labels = pending["template_name"].fillna(pending["template_id"]).fillna("No template")
    for n in ("0", "1", "2"):
        fig.add_bar(
            x=labels,
            y=pending[f"pending_{n}"],
            name=f"{n} reminder{'s' if n != '1' else ''} sent",
            marker_color=REMINDER_COLOURS[n],
            hovertemplate="%{x}: %{y:,} badges<extra>" + f"{n} sent</extra>",
        )
    fig.update_layout(
        barmode="stack",
        title="Pending badges by reminders sent",
        xaxis_title="Badge template",
        yaxis_title="Pending badges (count)",
    )
    return styled(fig)


def time_to_accept_figure(histogram: pd.DataFrame, result: FunnelSummary) -> go.Figure:
    """Time to accept, coloured by reminder phase: do reminders work?"""
    fig = go.Figure()
    for phase in funnel.PHASES:
        part = histogram[histogram["phase"] == phase]
        fig.add_bar(
            x=part["bin"],
            y=part["badges"],
            name=PHASE_LABELS[phase],
            marker_color=PHASE_COLOURS[phase],
            hovertemplate="%{x}: %{y:,} badges<extra></extra>",
        )
    fig.update_layout(
        title=f"Time to accept (median {hours_text(result.median_hours_to_accept)}, "
        f"90th percentile {hours_text(result.p90_hours_to_accept)})",
        xaxis_title="Time from issue to acceptance",
        yaxis_title="Accepted badges (count)",
        xaxis={"categoryorder": "array", "categoryarray": list(histogram["bin"])},
    )
    return styled(fig)


def cohort_figure(cohorts: pd.DataFrame) -> go.Figure:
    """Badges per issue month by state, with the month's acceptance rate."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for state, colour in STATE_COLOURS.items():
        fig.add_bar(
            x=cohorts["month"],
            y=cohorts[state],
            name=state.capitalize(),
            marker_color=colour,
            hovertemplate="%{x|%b %Y}: %{y:,}<extra>" + state + "</extra>",
            secondary_y=False,
        )
    fig.add_scatter(
        x=cohorts["month"],
        y=cohorts["acceptance_rate"] * 100,
        name="Acceptance rate",
        mode="lines+markers",
        line={"color": "#000000", "width": 2},
        hovertemplate="%{x|%b %Y}: %{y:.1f}% accepted<extra></extra>",
        secondary_y=True,
    )
    fig.update_layout(barmode="stack", title="Acceptance by issue-month cohort")
    fig.update_xaxes(title_text="Issue month", dtick="M1", tickformat="%b %Y")
    fig.update_yaxes(title_text="Badges issued (count)", secondary_y=False)
    fig.update_yaxes(
        title_text="Acceptance rate (%)",
        range=[0, 100],
        tickvals=[0, 20, 40, 60, 80, 100],
        showgrid=False,
        secondary_y=True,
    )
    return styled(fig)


def over_time_figure(over_time: pd.DataFrame) -> go.Figure:
    """The acceptance rate at each sync, from the snapshots."""
    fig = go.Figure(
        go.Scatter(
            x=over_time["taken_at"],
            y=over_time["acceptance_rate"] * 100,
            mode="lines+markers",
            line={"color": BLUE, "width": 2},
            customdata=over_time[["accepted", "issued"]],
            hovertemplate="%{x|%d %b %Y %H:%M} UTC: %{y:.1f}% "
            "(%{customdata[0]:,} of %{customdata[1]:,})<extra></extra>",
            name="Acceptance rate",
        )
    )
    fig.update_layout(
        title="Acceptance rate at each sync (all badges in the cache)",
        xaxis_title="Sync time (UTC)",
        yaxis_title="Acceptance rate (%)",
        yaxis={"range": [0, 100]},
        xaxis={"tickformat": "%d %b %Y<br>%H:%M"},
    )
    if len(over_time) == 1:  # one sync: a day either side, so the axis reads in days
        moment = pd.Timestamp(over_time["taken_at"].iloc[0])
        fig.update_xaxes(
            range=[moment - pd.Timedelta(days=1), moment + pd.Timedelta(days=1)],
            dtick=24 * 3600 * 1000,
            tickformat="%d %b %Y",
        )
    return styled(fig)


def exits_figure(result: FunnelSummary) -> go.Figure:
    """Completions and badges that leave the funnel, by why."""
    exits = [
        (REASONS.get(reason, reason), count, VERMILLION) for reason, count in result.skipped.items()
    ]
    exits += [
        ("Failed to issue (latest attempt)", result.failed, VERMILLION),
        ("Rejected by the student", result.rejected, PURPLE),
        ("Revoked", result.revoked, GREY),
    ]
    frame = pd.DataFrame(exits, columns=["exit", "count", "colour"]).sort_values("count")
    fig = go.Figure(
        go.Bar(
            x=frame["count"],
            y=frame["exit"],
            orientation="h",
            marker_color=frame["colour"],
            hovertemplate="%{y}: %{x:,}<extra></extra>",
        )
    )
    fig.update_layout(
        title="Side exits: completions and badges that leave the funnel",
        xaxis_title="Completions or badges (count)",
        yaxis_title=None,
        height=max(260, 40 * len(frame) + 120),
    )
    return styled(fig)


def expiries_figure(per_month: Sequence[tuple[str, int]]) -> go.Figure:
    """The renewals radar's chart: live badges expiring in each of the next months."""
    months = [month for month, _ in per_month]
    counts = [count for _, count in per_month]
    fig = go.Figure(
        go.Bar(
            x=months,
            y=counts,
            marker={"color": ORANGE},
            hovertemplate="%{x}: %{y:,} badges expire<extra></extra>",
        )
    )
    fig.update_layout(
        title="Badges expiring per month (next 12 months)",
        xaxis={"title": "month of expiry", "type": "category"},
        yaxis={"title": "badges (pending or accepted)"},
    )
    return styled(fig)

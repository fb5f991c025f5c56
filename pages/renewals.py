"""Renewals: whose badges expire next, and will they renew — for program managers."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import ui
from credly_ops import charts
from credly_ops.access import Permission
from credly_ops.exports import to_csv_bytes
from credly_ops.renewals import OUTREACH_COLUMNS, WINDOWS, Radar, radar
from credly_ops.renewals.radar import RENEWAL_SENTENCES, RenewalStatus

TTL_SECONDS = 300


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Reading the expiries…")
def load_radar(db: str) -> Radar:
    return radar(ui.workspace().store)


ui.require(Permission.VIEW)
ws = ui.workspace()
st.title("Renewals")
st.caption(
    "Badges expiring soon, those expired but still accepted, and for each student whether a "
    "newer completion will renew it (update rules), they came back to the course, or nothing "
    "is under way — the outreach list."
)
result = load_radar(str(ws.settings.db_path))

metrics = st.columns(len(WINDOWS) + 1)
for column, days in zip(metrics, WINDOWS, strict=False):
    column.metric(f"Expiring within {days} days", f"{len(result.expiring(days)):,}")
metrics[-1].metric("Expired, still accepted", f"{len(result.expired_accepted()):,}")

st.plotly_chart(charts.expiries_figure(result.per_month()), use_container_width=True)

st.subheader("Per template")
summaries = result.by_template()
if not summaries:
    st.info("No badge expires within 90 days, and none has expired while accepted.")
else:
    table = pd.DataFrame([s.as_json() for s in summaries]).drop(columns=["template_id"])
    st.dataframe(table, hide_index=True, use_container_width=True)

st.subheader("Students to reach")
left, right = st.columns([1, 2])
days = left.selectbox("Expiring within", WINDOWS, index=1, format_func=lambda d: f"{d} days")
wanted = right.multiselect(
    "Renewal status",
    [s.value for s in RenewalStatus],
    default=[RenewalStatus.NOTHING.value, RenewalStatus.ENROLLED_AGAIN.value],
    help="; ".join(f"{s.value}: {RENEWAL_SENTENCES[s]}" for s in RenewalStatus),
)
rows = [b.outreach_row() for b in result.outreach(days) if b.renewal.value in wanted]
if rows:
    st.dataframe(pd.DataFrame(rows, columns=list(OUTREACH_COLUMNS)), hide_index=True)
else:
    st.info("Nobody to reach with these choices.")
st.download_button(
    "Download the outreach CSV",
    to_csv_bytes(rows, OUTREACH_COLUMNS),
    file_name=f"credly-ops-renewals-{days}d.csv",
    mime="text/csv",
    icon=":material/download:",
    disabled=not rows,
)

"""Funnel: completions → eligible → issued → accepted, for program managers."""

import streamlit as st

import ui
from credly_ops.store import CacheBusy

st.title("Funnel")
ws = ui.workspace()
try:
    with ws.store.session() as cur:
        row = cur.execute(
            "SELECT (SELECT count(*) FROM completions), (SELECT count(*) FROM badges), "
            "(SELECT count(*) FROM badges WHERE state = 'accepted')"
        ).fetchone()
except CacheBusy as exc:
    st.error(str(exc))
    st.stop()
completions, badges, accepted = row if row else (0, 0, 0)
a, b, c = st.columns(3)
a.metric("Completions", f"{completions:,}")
b.metric("Badges in the cache", f"{badges:,}")
c.metric("Accepted", f"{accepted:,}")
st.info(
    "The full funnel — eligible completions, pending badges by reminders sent, acceptance by "
    "cohort and per course — arrives with the funnel dashboard.",
    icon=":material/construction:",
)

"""Health: is the integration healthy — each check ok, warning or failing, and what to do."""

from __future__ import annotations

import streamlit as st

import ui
from credly_ops.access import Permission
from credly_ops.health import Status

ICONS = {Status.OK: ":material/check_circle:", Status.WARN: ":material/warning:"}
ICONS[Status.FAIL] = ":material/error:"

ui.require(Permission.VIEW)
ws = ui.workspace()
st.title("Health")
st.caption(
    "The Credly token and its expiry, Skilljar's credentials, the rules, the sync, failed "
    "rows and the cache — the same checks as `credly-ops doctor`."
)
monitor = ui.health_monitor(ws)
fresh = st.button("Check again", icon=":material/refresh:")
report = None if fresh else monitor.latest()
if report is None:
    with st.spinner("Checking Credly, Skilljar and the cache…"):
        report = monitor.refresh(timeout=60)
if report is None:
    st.error("The checks did not finish; see the server log.", icon=":material/error:")
    st.stop()

summary = f"**{report.status.value.upper()}** — {report.summary()}"
st.markdown(f"{summary} · checked {ui.ago(report.checked_at)}")
for check in report.checks:
    box = {Status.OK: st.success, Status.WARN: st.warning, Status.FAIL: st.error}[check.status]
    text = f"**{check.name.replace('_', ' ').capitalize()}** — {check.detail}"
    if check.action:
        text += f"  \n_What to do:_ {check.action}"
    box(text, icon=ICONS[check.status])

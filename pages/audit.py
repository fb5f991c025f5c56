"""Audit: who did what, when — for admins."""

from datetime import UTC, datetime, time, timedelta

import streamlit as st

import ui
from credly_ops.access import Permission
from credly_ops.audit import AuditFilter, audit_actions, read_audit
from credly_ops.exports import to_csv_bytes

actor = ui.require(Permission.VIEW_AUDIT)
ws = ui.workspace()
st.title("Audit")
st.caption(
    "Every change — syncs, bulk issues, revocations, settings and rules — with who and when."
)

left, middle, right = st.columns(3)
since = left.date_input("Since", value=datetime.now(UTC).date() - timedelta(days=30))
action = middle.selectbox("Action", ["(all)", *audit_actions(ws.store)])
who = right.text_input("Actor", placeholder="e.g. cli:alice or ada@example.com")

frame = read_audit(
    ws.store,
    actor,
    AuditFilter(
        since=datetime.combine(since, time.min, tzinfo=UTC),
        action=None if action == "(all)" else action,
        actor=who.strip() or None,
    ),
)
if frame.empty:
    st.info("No audit entries for these filters.", icon=":material/info:")
else:
    st.dataframe(frame, hide_index=True, use_container_width=True)
    st.download_button(
        "Download CSV",
        to_csv_bytes(frame),
        file_name=f"credly-ops-audit-{since:%Y%m%d}.csv",
        mime="text/csv",
        icon=":material/download:",
    )

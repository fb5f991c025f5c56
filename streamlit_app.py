"""credly-ops: the router and the frame."""

from __future__ import annotations

import streamlit as st

import ui

st.set_page_config(page_title="credly-ops", page_icon=":material/verified:", layout="wide")

ws = ui.workspace()

pages = [
    st.Page("pages/funnel.py", title="Funnel", icon=":material/filter_alt:", default=True),
    st.Page("pages/bulk_issue.py", title="Bulk issue", icon=":material/upload_file:"),
    st.Page("pages/student_preview.py", title="Student preview", icon=":material/person_search:"),
    st.Page("pages/settings.py", title="Settings", icon=":material/settings:"),
]
navigation = st.navigation(pages)
ui.sidebar(ws)
navigation.run()

"""credly-ops: the router and the frame."""

from __future__ import annotations

import streamlit as st

import ui

st.set_page_config(page_title="credly-ops", page_icon=":material/verified:", layout="wide")

actor = ui.sign_in()
ws = ui.workspace()

pages = [
    st.Page(page.path, title=page.title, icon=page.icon, default=i == 0)
    for i, page in enumerate(ui.pages_for(actor))
]
navigation = st.navigation(pages)
ui.sidebar(ws)
navigation.run()

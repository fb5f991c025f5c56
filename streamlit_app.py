"""credly-ops: the router and the frame."""

from __future__ import annotations

import streamlit as st

import ui

st.set_page_config(page_title="credly-ops", page_icon=":material/verified:", layout="wide")

actor = ui.sign_in()
page = ui.navigation(actor)  # first: the navigation is on screen before anything slow starts
with ui.cache_problems_said():  # a broken cache file, or another organization's: said plainly
    ui.sidebar(ui.workspace())
    page.run()

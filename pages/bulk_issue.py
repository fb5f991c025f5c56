"""Bulk issue: upload completions, review the plan, issue exactly once."""

import streamlit as st

st.title("Bulk issue")
st.info(
    "Upload a completions file, review the plan row by row, dry-run it, then issue each badge "
    "exactly once. This page arrives with the issuance engine.",
    icon=":material/construction:",
)

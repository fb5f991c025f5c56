"""Settings: the Credly connection (token masked) and, later, the badge rules editor."""

import streamlit as st

import ui

st.title("Settings")
ws = ui.workspace()
st.subheader("Credly connection")
st.table({k.capitalize(): [v] for k, v in ws.settings.describe().items()})
st.caption(
    "Set the organization and token in `.streamlit/secrets.toml` under `[credly]` or with the "
    "`CREDLY_ORG_ID` and `CREDLY_API_TOKEN` environment variables; the token is never shown."
)

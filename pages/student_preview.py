"""Student preview: the "Badges Earned" table as the student sees it, and why."""

import streamlit as st

st.title("Student preview")
st.info(
    'Search a student by email to see their "Badges Earned" table as they see it, and why '
    "each completion did or did not become a badge. This page arrives with the preview.",
    icon=":material/construction:",
)

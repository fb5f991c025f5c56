"""Student preview: the "Badges Earned" table as the student sees it, and why."""

from __future__ import annotations

import re

import streamlit as st

import ui
from credly_ops.access import Permission, PermissionDenied
from credly_ops.credly.errors import CredlyError
from credly_ops.models import normalize_email
from credly_ops.profile import (
    VERDICT_ISSUE_FAILED,
    VERDICT_ISSUED,
    VERDICT_MISSING,
    VERDICT_REJECTED,
    VERDICT_RENEWED,
    VERDICT_REVOKED,
    load_profile,
    preview_html,
    suggest_emails,
)
from credly_ops.store import CacheBusy
from credly_ops.support import refresh_student, reissue, revoke_badge

ICONS = {
    VERDICT_ISSUED: ":material/verified:",
    VERDICT_RENEWED: ":material/autorenew:",
    VERDICT_REVOKED: ":material/block:",
    VERDICT_REJECTED: ":material/thumb_down:",
    VERDICT_ISSUE_FAILED: ":material/error:",
    VERDICT_MISSING: ":material/help:",
}

#: what Markdown would read as formatting, a link, LaTeX or HTML (URLs stay unescaped)
MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]#|<>~$])")


def md(text: str) -> str:
    """Text shown literally inside Markdown (names and titles come from uploads)."""
    return MARKDOWN_SPECIALS.sub(r"\\\1", text)


st.title("Student preview")
ws = ui.workspace()
actor = ui.current_actor()

notice = st.session_state.pop("student_notice", None)
if notice:
    st.success(notice, icon=":material/check_circle:")

query = st.text_input(
    "Student email",
    key="student_query",
    placeholder="Type an email or part of one",
    help="The current email the student uses in the LMS; case and spaces do not matter.",
)
fragment = normalize_email(query)
email = ""
try:
    matches = suggest_emails(ws.store, fragment) if fragment else []
except CacheBusy as exc:
    st.error(str(exc))
    st.stop()
if fragment in matches or (fragment and not matches and "@" in fragment):
    email = fragment
elif matches:
    email = st.selectbox(
        f"{len(matches)} matching student{'s' if len(matches) != 1 else ''}",
        matches,
        key="student_pick",
    )
elif fragment:
    st.info("No student in the cache matches this text.", icon=":material/search_off:")

if not email:
    st.caption(
        "Search a student by email to see their profile as they see it, and why each of their "
        "completions did or did not become a badge."
    )
    st.stop()

try:
    profile = load_profile(ws.store, email, web_url=ws.settings.web_url)
except CacheBusy as exc:
    st.error(str(exc))
    st.stop()

top = st.columns([3, 1])
top[0].caption(
    f"What **{md(email)}** sees on their profile page"
    + ("" if profile.table_enabled else ' — the "Badges Earned" table is disabled in Settings')
)
if top[1].button(
    "Refresh from Credly",
    icon=":material/sync:",
    disabled=not actor.can(Permission.SYNC),
    width="stretch",
):
    try:
        result = refresh_student(ws, actor, email)
    except (CredlyError, CacheBusy) as exc:
        st.error(f"Refresh failed: {type(exc).__name__}: {exc}")
    else:
        st.cache_data.clear()
        st.session_state["student_notice"] = (
            f"Read {result.badges} badge{'s' if result.badges != 1 else ''} from Credly; "
            f"{result.changed} changed in the cache."
        )
        st.rerun()

ui.wait_for_demo_credly(ws)  # in the demo, it serves the badge pictures the table shows
st.html(preview_html(profile))

st.divider()
st.subheader("Why — staff only")
if not profile.known:
    st.info("The cache holds no badge and no completion for this email.", icon=":material/info:")
elif not profile.explanations:
    st.caption("No completions for this email: its badges were issued outside the LMS.")
for number, item in enumerate(profile.explanations):
    icon = ICONS.get(item.verdict, ":material/remove_circle_outline:")
    st.markdown(f"{icon} {md(item.sentence)}", help=f"engine: {item.outcome} / {item.reason}")
    if item.can_reissue:
        if not actor.can(Permission.ISSUE):
            st.caption("A CSM or an admin can re-issue this badge.")
        elif st.button("Re-issue this badge", key=f"reissue-{number}", icon=":material/replay:"):
            try:
                done = reissue(ws, actor, email, item.course_id, item.completed_at)
            except (CredlyError, LookupError, PermissionDenied, CacheBusy) as exc:
                st.error(f"Re-issue failed: {type(exc).__name__}: {exc}")
            else:
                st.cache_data.clear()
                st.session_state["student_notice"] = done.sentence
                st.rerun()

live = [b for b in profile.badges if b.is_live]
if live and actor.can(Permission.REVOKE):
    with st.expander("Revoke a badge (admin)", icon=":material/block:"):
        with st.form("revoke_form", clear_on_submit=True):
            labels = {
                f"{b.badge_template.name or b.template_id} — issued {b.issued_at:%Y-%m-%d} "
                f"({b.state}, {b.id[:8]})": b.id
                for b in live
            }
            choice = st.selectbox("Badge", list(labels), key="revoke_badge")
            reason = st.text_input("Reason (Credly shows it to the student)", key="revoke_reason")
            submitted = st.form_submit_button("Revoke", type="primary")
        if submitted:
            if not reason.strip():
                st.error("A revocation needs a reason.")
            else:
                try:
                    revoked = revoke_badge(ws, actor, labels[choice], reason)
                except (CredlyError, PermissionDenied, CacheBusy, ValueError) as exc:
                    st.error(f"Revoke failed: {type(exc).__name__}: {exc}")
                else:
                    st.cache_data.clear()
                    st.session_state["student_notice"] = (
                        f"Revoked {revoked.badge_template.name or revoked.template_id}."
                    )
                    st.rerun()

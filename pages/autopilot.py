"""Autopilot: automatic issuing — its state, what it did, what waits, and the go-live check."""

from __future__ import annotations

import httpx
import pandas as pd
import streamlit as st

import ui
from credly_ops import links
from credly_ops.access import Permission, PermissionDenied
from credly_ops.autopilot import (
    autopilot_status,
    failures,
    pause,
    recent_decisions,
    resume,
    retry_failures,
    set_cap,
    set_shadow,
    shadow_comparison,
)
from credly_ops.autopilot.state import MAX_CAP_PER_HOUR
from credly_ops.autopilot.status import AutopilotStatus, lag_text
from credly_ops.demo import finish_a_course_now
from credly_ops.hooks import recent_events
from credly_ops.store import CacheBusy

actor = ui.require(Permission.VIEW)
ws = ui.workspace()
st.title("Autopilot")
st.caption(
    "Automatic issuing: Skilljar completions in, badges out — each decided by the same rules "
    "as bulk issue (only at or after the rule's active-from; manual-only rules are left to "
    "bulk issue) and sent exactly once."
)
notice = st.session_state.pop("autopilot_notice", None)
if notice:
    st.success(notice, icon=":material/check_circle:")


def done(message: str) -> None:
    st.session_state["autopilot_notice"] = message
    st.rerun()


LIVE_SECONDS = 3.0
TODAY_COLUMNS = (
    ("issued", "Issued"),
    ("updated", "Renewed"),
    ("skipped", "Skipped"),
    ("failed", "Failed"),
)


def read_status() -> AutopilotStatus:
    try:
        return autopilot_status(ws.store, skilljar=ui.skilljar_settings(ws))
    except CacheBusy as exc:
        st.error(str(exc))
        st.stop()


@st.fragment(run_every=LIVE_SECONDS)
def live() -> None:
    """State, cycles, today and the latest decisions, refreshed every few seconds: a
    completion is seen becoming a badge without reloading the page."""
    status = read_status()
    state = status.state
    finished_fate()

    if status.mode == "off":
        st.info(
            f"Automatic issuing is **off**: Skilljar is not configured (missing {status.missing}). "
            "Set `[skilljar]` in `.streamlit/secrets.toml` or the `SKILLJAR_*` variables, then run "
            "`credly-ops autopilot run`.",
            icon=":material/power_off:",
        )
    elif status.mode == "paused":
        by = f" by {state.paused_by}" if state.paused_by else ""
        st.warning(
            f"**Paused**{by} {ui.ago(state.paused_at)}: {state.pause_reason or 'no reason given'}. "
            "Completions keep arriving and wait; they are issued after the resume.",
            icon=":material/pause_circle:",
        )
    elif status.mode == "shadow":
        st.info(
            "**Shadow mode**: decisions are recorded, nothing is sent. Compare them below with "
            "what was issued before switching over.",
            icon=":material/visibility:",
        )
    else:
        st.success("**Running**: new completions are issued automatically.", icon=":material/bolt:")
    if status.mode != "off" and not status.worker:
        st.caption(
            ":material/warning: No worker is running: start `credly-ops autopilot run` "
            "beside the app."
        )

    cycle, following, lag, waiting = st.columns(4)
    cycle.metric("Last cycle", ui.ago(status.last_cycle_at), status.last_cycle_outcome or None)
    following.metric(
        "Next cycle",
        status.next_cycle_at.strftime("%H:%M:%S UTC") if status.next_cycle_at else "—",
    )
    lag.metric("Lag (oldest waiting)", lag_text(status.lag_seconds))
    waiting.metric("Decided, waiting to send", f"{status.waiting:,}")

    st.subheader("Today" + (" (shadow: what it would have done)" if state.shadow else ""))
    columns = st.columns(4)
    for column, (key, label) in zip(
        columns,
        (
            ("issued", "Issued"),
            ("updated", "Renewed"),
            ("skipped", "Skipped"),
            ("failed", "Failed"),
        ),
        strict=True,
    ):
        column.metric(label, f"{status.today.get(key, 0):,}")
    if status.reasons_today:
        st.dataframe(
            pd.DataFrame(
                [{"reason": k, "completions": v} for k, v in status.reasons_today.items()]
            ),
            hide_index=True,
        )

    st.subheader("Recent decisions")
    decisions = recent_decisions(ws.store, limit=50)
    if decisions:
        st.dataframe(pd.DataFrame(decisions), hide_index=True, width="stretch")
    else:
        st.caption("No automatic decision yet.")


def finished_fate() -> None:
    """The demo's finished student (if any): what automatic issuing made of the completion —
    read from the same completion → badge link the Funnel and Student preview read."""
    made = st.session_state.get("autopilot_finished")
    if not made:
        return
    with ws.store.session() as cur:
        found = links.student_links(cur, str(made["email"]).strip().lower())
    badge = next((link for link in found.values() if link.has_badge), None)
    if badge is not None:
        st.success(
            f"**{made['email']}** has the badge now ({badge.outcome}, badge `{badge.badge_id}`): "
            "see it on Funnel and Student preview.",
            icon=":material/verified:",
        )
    elif any(link.outcome != "none" for link in found.values()):
        link = next(link for link in found.values() if link.outcome != "none")
        st.warning(f"**{made['email']}**: {link.outcome} ({link.reason}).", icon=":material/info:")
    else:
        st.info(
            f"**{made['email']}** completed course **{made['course_id']}**; waiting for the "
            "automatic issuer to read it…",
            icon=":material/hourglass_top:",
        )


def demo_finish_a_course() -> None:
    """The demo only: a student finishes a badge course now, on the demo Skilljar."""
    st.subheader("Try it (demo)")
    st.caption(
        "A new student finishes (and passes) a badge course on the demo Skilljar, now. "
        "The automatic issuer is woken, reads Skilljar, decides and issues the badge: watch it "
        "arrive under Recent decisions, then find the student on Funnel and Student preview."
    )
    if st.button("A student finishes a course now", icon=":material/school:"):
        skilljar = ws.skilljar_settings()
        ws.skilljar_client().close()  # starts the demo Skilljar if this process has not yet
        try:
            made = finish_a_course_now(skilljar.api_url, deliver=False)
        except httpx.HTTPError as exc:
            st.error(f"The demo Skilljar did not answer ({type(exc).__name__}).")
            return
        ui.demo_autopilot(ws).set()
        st.session_state["autopilot_finished"] = made
        st.rerun()


live()
if ws.settings.is_demo and actor.can(Permission.ISSUE):
    demo_finish_a_course()
state = read_status().state

if actor.can(Permission.CHANGE_SETTINGS):
    with st.expander("Controls (admin)", icon=":material/tune:", expanded=state.paused):
        left, right = st.columns(2)
        with left:
            if state.paused:
                if st.button("Resume", type="primary", icon=":material/play_arrow:"):
                    resume(ws.store, actor)
                    done("Automatic issuing resumed; the completions that waited go next cycle.")
            else:
                reason = st.text_input("Reason to pause", placeholder="e.g. template review")
                if st.button("Pause", icon=":material/pause:"):
                    pause(ws.store, actor, reason or f"paused by {actor.name}")
                    done("Automatic issuing paused.")
        with right:
            shadow_on = st.toggle("Shadow mode (send nothing)", value=state.shadow)
            cap = st.number_input(
                "Cap on automatic issues per hour",
                min_value=1,
                max_value=MAX_CAP_PER_HOUR,
                value=state.cap_per_hour,
                step=50,
            )
            if st.button("Save settings", icon=":material/save:"):
                try:
                    if shadow_on != state.shadow:
                        set_shadow(ws.store, actor, shadow_on)
                    if int(cap) != state.cap_per_hour:
                        set_cap(ws.store, actor, int(cap))
                except (PermissionDenied, ValueError) as exc:
                    st.error(str(exc))
                else:
                    done("Autopilot settings saved.")

st.subheader("Failures")
failed = failures(ws.store)
if failed:
    st.dataframe(pd.DataFrame(failed), hide_index=True, width="stretch")
    retryable = sum(1 for f in failed if f["retried_next_cycle"])
    may_retry = actor.can(Permission.ISSUE) and retryable > 0 and not state.paused
    if may_retry and st.button(f"Retry {retryable:,} failures now", icon=":material/replay:"):
        with st.spinner("Sending again…"):
            result = retry_failures(ws, actor)
        done(f"Retried: {result.issued:,} issued, {result.failed:,} failed again.")
else:
    st.caption("No failures.")

st.subheader("Shadow comparison")
comparison = shadow_comparison(ws.store)
st.write(comparison.sentence())
if comparison.differences:
    st.dataframe(pd.DataFrame(comparison.differences), hide_index=True, width="stretch")

st.subheader("Webhook deliveries")
events = recent_events(ws.store, limit=50)
if events:
    st.dataframe(pd.DataFrame(events), hide_index=True, width="stretch")
else:
    st.caption(
        "No webhook delivery yet. Deliveries only make the next read sooner: completions are "
        "read from Skilljar on schedule either way."
    )

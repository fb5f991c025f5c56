"""What every page shares: the one workspace per server process, and the sidebar."""

from __future__ import annotations

import logging
from datetime import datetime

import streamlit as st

from credly_ops.access import LOCAL_ACTOR, Actor
from credly_ops.config import ConfigError, Settings, load_settings
from credly_ops.logs import install_redaction
from credly_ops.store import SETTING_INTEGRATION_NAME, CacheBusy
from credly_ops.sync import last_sync, sync
from credly_ops.timeutil import utcnow
from credly_ops.workspace import Workspace


@st.cache_resource(show_spinner="Starting credly-ops…")
def workspace() -> Workspace:
    """One workspace (settings and cache handle) for the whole server process; the demo
    emulator starts on first use of Credly (a sync, an issue)."""
    settings = load_settings()
    install_redaction([settings.api_token.get_secret_value()])
    return Workspace(settings)


def current_actor() -> Actor:
    """Who is using the app: the signed-in user with their role, or the local user."""
    return st.session_state.get("actor", LOCAL_ACTOR)


def settings_or_stop() -> Settings:
    try:
        return workspace().settings
    except ConfigError as exc:
        st.error(f"credly-ops is not configured correctly: {exc}")
        st.stop()
        raise


def ago(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    seconds = (utcnow() - moment).total_seconds()
    if seconds < 90:
        return "just now"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172_800:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86_400:.0f} days ago"


def run_sync(ws: Workspace, *, full: bool = False) -> None:
    """Sync with a progress bar; the outcome is kept for the next run of the script to show."""
    bar = st.sidebar.progress(0.0, text="Syncing with Credly…")

    def progress(done: int, message: str, total: int | None = None) -> None:
        fraction = min(done / total, 1.0) if total else min(0.05 + done / 200_000, 0.95)
        bar.progress(fraction, text=message)

    try:
        with ws.client() as client:
            result = sync(client, ws.store, full=full, actor=current_actor(), progress=progress)
    except CacheBusy as exc:
        st.session_state["sync_outcome"] = ("error", str(exc))
    except Exception as exc:
        logging.getLogger("credly_ops.app").exception("sync failed")
        st.session_state["sync_outcome"] = ("error", f"Sync failed: {type(exc).__name__}: {exc}")
    else:
        st.cache_data.clear()
        st.session_state["sync_outcome"] = (
            "success",
            f"Synced: {result.changed:,} changed, {result.badges:,} badges, "
            f"{result.pages} pages in {result.seconds:.1f} s",
        )
    finally:
        bar.empty()


def sidebar(ws: Workspace) -> None:
    settings = ws.settings
    with st.sidebar:
        if settings.is_demo:
            st.markdown(
                ":orange-badge[DEMO] &nbsp;Built-in Credly emulator — no real badges are issued."
            )
        else:
            st.markdown(f":blue-badge[{settings.env.value.upper()}]")
        status = st.container()  # filled after a sync the click below may run
        if st.button("Sync now", icon=":material/sync:", use_container_width=True):
            run_sync(ws)
        name = ws.store.get_setting(SETTING_INTEGRATION_NAME) or "Credly integration"
        info = last_sync(ws.store)
        when = info["finished_at"] if info else None
        status.caption(f"**{name}**  \nOrganization `{settings.org_id}`")
        status.caption(
            f"Last sync: **{ago(when)}**"
            + (f" · {info['badges']:,} badges, {info['templates']} templates" if info else "")
        )
        outcome = st.session_state.pop("sync_outcome", None)
        if outcome and outcome[0] == "success":
            st.success(outcome[1], icon=":material/check_circle:")
        elif outcome:
            st.error(outcome[1], icon=":material/error:")

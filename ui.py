"""What every page shares: the one workspace per server process, and the sidebar."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, NoReturn

import streamlit as st

from credly_ops import timeutil
from credly_ops.access import (
    LOCAL_ACTOR,
    AccessPolicy,
    Actor,
    AuthConfigError,
    Permission,
    SignInDecision,
    access_policy,
    decide_sign_in,
)
from credly_ops.config import (
    ConfigError,
    Settings,
    SkilljarNotConfigured,
    SkilljarSettings,
    demo_autopilot_enabled,
    load_settings,
    read_secrets_file,
)
from credly_ops.logs import install_redaction
from credly_ops.loopback import is_loopback

if TYPE_CHECKING:
    from credly_ops.autopilot import Wake

    # the cache, the sync and pandas load after the navigation is on screen (first paint)
    from credly_ops.health import HealthMonitor
    from credly_ops.workspace import Workspace


@st.cache_resource(show_spinner="Starting credly-ops…")
def workspace() -> Workspace:
    """One workspace (settings and cache handle) for the whole server process.  In the demo,
    the embedded Credly emulator starts with it in the background (or is found, if another
    process runs it): the first paint never waits for it; what needs it waits
    (``Workspace.client`` and :func:`wait_for_demo_credly`)."""
    from credly_ops.workspace import Workspace

    settings = load_settings()
    install_redaction([settings.api_token.get_secret_value()])
    ws = Workspace(settings)
    ws.start_demo_credly()
    if settings.is_demo and demo_autopilot_enabled():
        demo_autopilot(ws)
    return ws


#: how often the demo's automatic issuer reads the demo Skilljar (a hint wakes it sooner)
DEMO_AUTOPILOT_INTERVAL = 20.0


@st.cache_resource
def demo_autopilot(_ws: Workspace) -> Wake:
    """In the demo, automatic issuing runs inside the app's process, as ``credly-ops autopilot
    run`` would beside it: a background worker over the demo Skilljar and the demo Credly.
    Returns what wakes it (the Autopilot page's "a student finishes a course now")."""
    from credly_ops.access import SYSTEM_ACTOR
    from credly_ops.autopilot import Wake, start_in_background
    from credly_ops.autopilot.reading import completions_step, hinted

    wake = Wake()
    step: list[Callable[[], int]] = []

    def read_completions() -> int:
        if not step:  # the demo Skilljar starts with the first cycle, never with the page
            step.append(completions_step(_ws, _ws.skilljar_client()))
        return step[0]()

    start_in_background(
        _ws,
        SYSTEM_ACTOR,
        interval=DEMO_AUTOPILOT_INTERVAL,
        read_completions=read_completions,
        wake=wake,
        hinted=hinted(_ws),
    )
    return wake


@st.cache_resource
def health_monitor(_ws: Workspace) -> HealthMonitor:
    """The health checks' latest report, refreshed in the background every 5 minutes: the
    sidebar's line never waits for Credly (the Health page waits, with a spinner)."""
    from credly_ops.health import HealthMonitor
    from credly_ops.health.gather import run_configured_checks

    return HealthMonitor(lambda: run_configured_checks(_ws), max_age=300)


@st.cache_resource
def skilljar_settings(_ws: Workspace) -> SkilljarSettings | SkilljarNotConfigured:
    """Skilljar's settings for this server process (in the demo, the demo Skilljar's); an
    unusable ``[skilljar]`` counts as not configured, and says which key (never a secret) in
    what is missing."""
    try:
        found = _ws.skilljar_settings()
    except ConfigError as exc:
        return SkilljarNotConfigured(missing=(f"a usable [skilljar] section: {exc}",))
    install_redaction(found.secrets())
    return found


def autopilot_line(ws: Workspace) -> None:
    """The sidebar's one line on automatic issuing, on every page."""
    from credly_ops.autopilot import autopilot_status

    status = autopilot_status(ws.store, skilljar=skilljar_settings(ws))
    icon = {
        "off": ":material/power_off:",
        "paused": ":material/pause_circle:",
        "shadow": ":material/visibility:",
        "running": ":material/bolt:",
    }[status.mode]
    st.caption(f"{icon} {status.sentence()}")


def wait_for_demo_credly(ws: Workspace) -> None:
    """For pages that show what the demo Credly serves (the template pictures): wait for its
    start, saying so while it lasts."""
    if not ws.wait_for_demo_credly(timeout=0):
        with st.spinner("Starting the demo Credly…"):
            ws.wait_for_demo_credly()


def current_actor() -> Actor:
    """Who is using the app: the signed-in user with their role, or the local user.

    With sign-in configured and nobody signed in, this stops the page: no default identity
    ever carries a permission."""
    actor = st.session_state.get("actor")
    if isinstance(actor, Actor):
        return actor
    if access().sign_in:
        st.error("Sign in first.")
        st.stop()
    return LOCAL_ACTOR


@dataclass(frozen=True)
class PageSpec:
    path: str
    title: str
    icon: str
    permission: Permission


PAGES = (
    PageSpec("pages/funnel.py", "Funnel", ":material/filter_alt:", Permission.VIEW),
    PageSpec("pages/bulk_issue.py", "Bulk issue", ":material/upload_file:", Permission.ISSUE),
    PageSpec(
        "pages/student_preview.py", "Student preview", ":material/person_search:", Permission.VIEW
    ),
    PageSpec("pages/autopilot.py", "Autopilot", ":material/autoplay:", Permission.VIEW),
    PageSpec("pages/renewals.py", "Renewals", ":material/event_repeat:", Permission.VIEW),
    PageSpec("pages/health.py", "Health", ":material/health_and_safety:", Permission.VIEW),
    PageSpec("pages/settings.py", "Settings", ":material/settings:", Permission.CHANGE_SETTINGS),
    PageSpec("pages/audit.py", "Audit", ":material/history:", Permission.VIEW_AUDIT),
)


def pages_for(actor: Actor) -> list[PageSpec]:
    """The pages this actor's role may open: the navigation lists only these."""
    return [page for page in PAGES if actor.can(page.permission)]


def navigation(actor: Actor) -> st.Page:
    """Route to the pages this actor may open, and list them at the top of the sidebar.

    The list is drawn here, not by Streamlit: its own sidebar navigation is switched off
    (``client.showSidebarNavigation = false`` in ``.streamlit/config.toml``) because, until
    ``st.navigation`` runs, it shows the raw file names in ``pages/``, unguarded.  Call this
    before anything slow, so the navigation is the first thing on screen."""
    pages = [
        st.Page(spec.path, title=spec.title, icon=spec.icon, default=i == 0)
        for i, spec in enumerate(pages_for(actor))
    ]
    current = st.navigation(pages, position="hidden")
    with st.sidebar.container(key="navigation"):
        for page in pages:
            st.page_link(page, label=page.title, icon=page.icon, use_container_width=True)
    return current


@st.cache_resource
def access() -> AccessPolicy:
    return access_policy(read_secrets_file())


def sign_in() -> Actor:
    """The gate in front of every page: local mode, or OIDC sign-in and a role.

    Never a half state: a broken ``[auth]`` stops the app with the reason; local mode refuses
    to serve anything but a loopback address.
    """
    try:
        policy = access()
    except (AuthConfigError, ConfigError) as exc:
        message = f"Sign-in is misconfigured, so credly-ops will not start: {exc}"
        _only_page(_error_view(message), "credly-ops", ":material/error:")
    if not policy.sign_in:
        address = str(st.get_option("server.address") or "")
        if not is_loopback(address):
            message = (
                "Local mode (no sign-in configured) serves 127.0.0.1 only. Configure sign-in "
                "([auth] and [roles] in .streamlit/secrets.toml) to serve other addresses."
            )
            _only_page(_error_view(message), "credly-ops", ":material/error:")
        st.session_state["actor"] = LOCAL_ACTOR
        return LOCAL_ACTOR
    if not st.user.is_logged_in:
        _only_page(_sign_in_view(policy), "Sign in", ":material/login:")
    decision = decide_sign_in(policy, st.user.to_dict())
    if decision.role is None:
        _only_page(_no_access_view(decision), "No access", ":material/block:")
    actor = Actor(decision.email, decision.role)
    st.session_state["actor"] = actor
    return actor


def _only_page(view: Callable[[], None], title: str, icon: str) -> NoReturn:
    """Serve one page and nothing else.  Calling st.navigation even here matters: a script
    that never calls it would fall back to listing and serving every file in pages/."""
    st.navigation([st.Page(view, title=title, icon=icon, url_path="welcome")]).run()
    st.stop()
    raise AssertionError("st.stop() returned")


def _error_view(message: str) -> Callable[[], None]:
    def view() -> None:
        st.error(message)

    return view


def _sign_in_view(policy: AccessPolicy) -> Callable[[], None]:
    def view() -> None:
        st.title("credly-ops")
        st.write("Sign in to continue.")
        if st.button("Sign in", type="primary", icon=":material/login:"):
            if policy.provider:
                st.login(policy.provider)
            else:
                st.login()

    return view


def _no_access_view(decision: SignInDecision) -> Callable[[], None]:
    def view() -> None:
        st.title("No access")
        who = decision.email or "an account without an email"
        st.markdown(f"You are signed in as **{_md(who)}**.")
        st.warning(_md(decision.reason), icon=":material/block:")
        st.button("Sign out", on_click=st.logout)

    return view


def _md(text: str) -> str:
    """Text from an ID token shown literally inside Markdown."""
    return re.sub(r"([\\`*_{}\[\]#|<>~$])", r"\\\1", text)


def require(permission: Permission) -> Actor:
    """The check at the top of a page: stop with a polite message if the role may not."""
    actor = current_actor()
    if not actor.can(permission):
        st.error(
            f"Your role ({actor.role.value}) does not include this page. "
            "Ask an administrator if you need it."
        )
        st.stop()
    return actor


def settings_or_stop() -> Settings:
    try:
        return workspace().settings
    except ConfigError as exc:
        st.error(f"credly-ops is not configured correctly: {exc}")
        st.stop()
        raise


def ago(moment: datetime | None) -> str:
    return timeutil.ago(moment)


def run_sync(ws: Workspace, *, full: bool = False) -> None:
    """Sync with a progress bar; the outcome is kept for the next run of the script to show."""
    import time

    from credly_ops.issuance.upload import WAIT_FOR_SYNC_SECONDS
    from credly_ops.store import CacheBusy
    from credly_ops.sync import sync
    from credly_ops.sync_history import SyncRunning

    bar = st.sidebar.progress(0.0, text="Syncing with Credly…")

    def progress(done: int, message: str, total: int | None = None) -> None:
        fraction = min(done / total, 1.0) if total else min(0.05 + done / 200_000, 0.95)
        bar.progress(fraction, text=message)

    deadline = time.monotonic() + WAIT_FOR_SYNC_SECONDS
    try:
        while True:  # a sync already running (automatic issuing's, a cron's): wait, then ours
            try:
                with ws.client() as client:
                    result = sync(
                        client, ws.store, full=full, actor=current_actor(), progress=progress
                    )
                break
            except SyncRunning:
                if time.monotonic() >= deadline:
                    raise
                bar.progress(0.02, text="Another sync is running; waiting for it to finish…")
                time.sleep(1.0)
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
    from credly_ops.store import SETTING_INTEGRATION_NAME
    from credly_ops.sync_history import sync_health

    settings = ws.settings
    with st.sidebar:
        actor = current_actor()
        if actor is LOCAL_ACTOR:
            st.caption(":material/lock_open: Local mode — no sign-in; serving 127.0.0.1 only.")
        else:
            st.caption(f":material/person: {actor.name} · {actor.role.value}")
            st.button("Sign out", on_click=st.logout, icon=":material/logout:")
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
        health = sync_health(ws.store)
        info = health.last_sync
        when = info["finished_at"] if info else None
        status.caption(f"**{name}**  \nOrganization `{settings.org_id}`")
        status.caption(
            f"Last sync: **{ago(when)}**"
            + (f" · {info['badges']:,} badges, {info['templates']} templates" if info else "")
        )
        reconciled = health.last_reconcile
        status.caption(
            "Last reconciliation: "
            + (f"**{ago(reconciled['finished_at'])}**" if reconciled else "**never**")
        )
        if health.message:
            status.warning(health.message, icon=":material/sync_problem:")
        autopilot_line(ws)
        checked = health_monitor(ws).latest()  # never waits: checking runs in the background
        status.caption(f"Health: **{checked.summary()}**" if checked else "Health: checking…")
        outcome = st.session_state.pop("sync_outcome", None)
        if outcome and outcome[0] == "success":
            st.success(outcome[1], icon=":material/check_circle:")
        elif outcome:
            st.error(outcome[1], icon=":material/error:")


@contextmanager
def cache_problems_said() -> Iterator[None]:
    """Show a cache that cannot be used (unreadable, another organization's, a missing folder)
    as its one plain sentence, instead of an error page: nothing else runs."""
    try:
        yield
    except ConfigError as exc:
        st.error(str(exc), icon=":material/database:")
        st.stop()

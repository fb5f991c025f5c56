"""The frame in a real browser: the first paint, sidebar status, a completed sync, every page
reachable."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import ARTIFACTS, LiveApp, go_to, navigation, open_app, start_app, wait_idle

#: Streamlit's automatic list of pages/ names the files, lower-case: "streamlit app", "audit",
#: "bulk issue", "funnel", "settings", "student preview"; the real navigation, the titles
TITLES = (
    "Funnel",
    "Bulk issue",
    "Student preview",
    "Autopilot",
    "Renewals",
    "Health",
    "Settings",
    "Audit",
)

#: from the first response on, the label of every link the sidebar shows (icons left out: a
#: Material icon is drawn from its name, "settings") and whether Streamlit's own navigation
#: element ever existed
WATCH_SIDEBAR = """
window.__sidebar = {links: [], streamlitNav: false};
const label = (a) => {
  const copy = a.cloneNode(true);
  copy.querySelectorAll('[data-testid="stIconMaterial"]').forEach((icon) => icon.remove());
  return copy.textContent.trim();
};
new MutationObserver(() => {
  document.querySelectorAll('[data-testid="stSidebar"] a').forEach((a) => {
    const text = label(a);
    if (!window.__sidebar.links.includes(text)) window.__sidebar.links.push(text);
  });
  if (document.querySelector('[data-testid="stSidebarNav"]')) window.__sidebar.streamlitNav = true;
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


@pytest.fixture
def fresh_app(tmp_path, browser) -> Iterator[LiveApp]:
    """The app just started: no workspace yet, the demo Credly not running."""
    app, proc = start_app(tmp_path)
    try:
        yield app
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_the_first_paint_never_shows_the_raw_page_list(fresh_app, page) -> None:
    page.add_init_script(WATCH_SIDEBAR)
    open_app(page, fresh_app.url)
    nav = navigation(page).inner_text()
    assert all(title in nav for title in TITLES), nav
    seen = page.evaluate("window.__sidebar")
    assert sorted(seen["links"]) == sorted(TITLES), seen["links"]  # and never a raw file name
    assert seen["streamlitNav"] is False
    sidebar = page.get_by_test_id("stSidebar").inner_text()
    assert "DEMO" in sidebar and "Last sync" in sidebar


def test_sidebar_shows_the_demo_and_a_completed_sync(live_app, page) -> None:
    open_app(page, live_app.url)
    sidebar = page.get_by_test_id("stSidebar")
    assert "DEMO" in sidebar.inner_text()
    assert "Local mode — no sign-in" in sidebar.inner_text()
    page.get_by_role("button", name="Sync now").click()
    page.get_by_text("Synced:").wait_for()
    wait_idle(page)
    assert "Last sync: just now" in sidebar.inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "frame.png"), full_page=True)


def test_every_page_opens_without_an_error(live_app, page) -> None:
    open_app(page, live_app.url)
    pages = (
        "Bulk issue",
        "Student preview",
        "Autopilot",
        "Renewals",
        "Health",
        "Settings",
        "Audit",
        "Funnel",
    )
    for title in pages:
        go_to(page, title)
        assert page.get_by_test_id("stException").count() == 0, title

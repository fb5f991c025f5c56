"""The frame in a real browser: sidebar status, a completed sync, every page reachable."""

from __future__ import annotations

from tests.e2e.conftest import ARTIFACTS, open_app, wait_idle


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
    for title in ("Bulk issue", "Student preview", "Settings", "Audit", "Funnel"):
        page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
        page.get_by_role("heading", name=title).first.wait_for()
        wait_idle(page)
        assert page.get_by_test_id("stException").count() == 0, title

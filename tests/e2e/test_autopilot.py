"""Automatic issuing in the demo, in a real browser: a student finishes a course on the demo
Skilljar, and the badge appears on the Funnel and in the Student preview — the server never
restarted, the page never reloaded by hand."""

from __future__ import annotations

import re

from tests.e2e.conftest import ARTIFACTS, go_to, open_app, wait_idle


def issued(page) -> int:
    """The Funnel's "Issued" headline number."""
    label = page.get_by_test_id("stMetricLabel").get_by_text("Issued", exact=True)
    value = page.get_by_test_id("stMetric").filter(has=label).get_by_test_id("stMetricValue")
    return int(value.first.inner_text().replace(",", ""))


def test_a_new_completion_becomes_a_badge_on_the_funnel_and_the_preview(live_app, page) -> None:
    open_app(page, live_app.url)
    go_to(page, "Autopilot")
    # the demo's worker runs inside the app: wait for its first cycle (it decides the history)
    page.get_by_test_id("stMetric").filter(has_text="Last cycle").filter(
        has_not_text="never"
    ).wait_for(timeout=180_000)
    go_to(page, "Funnel")
    page.get_by_test_id("stMetricLabel").get_by_text("Issued", exact=True).wait_for()
    before = issued(page)

    go_to(page, "Autopilot")
    page.get_by_role("button", name="A student finishes a course now").click()
    done = page.get_by_test_id("stAlert").filter(has_text="has the badge now")
    done.wait_for(timeout=120_000)  # the page refreshes itself; nothing is reloaded
    email = re.search(r"[\w.+-]+@[\w.-]+\.\w+", done.inner_text()).group(0)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "autopilot.png"), full_page=True)

    go_to(page, "Funnel")
    page.get_by_test_id("stMetricLabel").get_by_text("Issued", exact=True).wait_for()
    assert issued(page) == before + 1

    go_to(page, "Student preview")
    box = page.get_by_role("textbox", name="Student email")
    box.fill(email)
    box.press("Enter")
    page.get_by_role("heading", name="Badges Earned").wait_for()
    wait_idle(page)
    assert page.get_by_role("link", name="Accept").count() >= 1
    assert page.get_by_test_id("stException").count() == 0

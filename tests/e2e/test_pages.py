"""The pages in a real browser, against the demo world."""

from __future__ import annotations

from pathlib import Path

from credly_ops.emulators.demo_world import generate, read_world_file
from tests.e2e.conftest import ARTIFACTS, go_to, open_app, wait_idle


def go(page, live_app, title: str) -> None:
    open_app(page, live_app.url)
    go_to(page, title)


def demo_student(live_app, *states: str) -> str:
    """An email whose demo badges include every one of ``states`` (the world is deterministic)."""
    anchor, seed = read_world_file(live_app.data)
    demo = generate(anchor, seed=seed)
    by_email: dict[str, set[str]] = {}
    for badge in demo.badges:
        by_email.setdefault(badge["recipient_email"], set()).add(badge["state"])
    return next(e for e, s in sorted(by_email.items()) if set(states) <= s)


def test_funnel_draws_its_charts(live_app, page) -> None:
    go(page, live_app, "Funnel")
    page.locator(".js-plotly-plot").first.wait_for()
    wait_idle(page)
    assert page.locator(".js-plotly-plot").count() >= 4
    assert page.get_by_test_id("stException").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "funnel.png"), full_page=True)


def test_student_preview_shows_badges_earned_above_registrations(live_app, page) -> None:
    email = demo_student(live_app, "pending", "accepted")
    go(page, live_app, "Student preview")
    box = page.get_by_role("textbox", name="Student email")
    box.fill(email)
    box.press("Enter")
    page.get_by_role("heading", name="Badges Earned").wait_for()
    wait_idle(page)
    accept = page.get_by_role("link", name="Accept").first
    assert "/badges/" in accept.get_attribute("href")
    assert accept.get_attribute("href").endswith("/accept")
    view = page.locator("a.co-view").first
    assert view.get_attribute("href").endswith("/earner/earned")
    earned = page.get_by_role("heading", name="Badges Earned").bounding_box()
    registrations = page.get_by_role("heading", name="Registrations").bounding_box()
    assert earned["y"] < registrations["y"]
    assert page.get_by_text("Why — staff only").count() == 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "student_preview.png"), full_page=True)


def test_settings_refuses_a_bad_rules_file_and_names_the_row(
    live_app, page, tmp_path: Path
) -> None:
    bad = tmp_path / "bad_rules.csv"
    bad.write_text(
        "course_id,template_id,method,expiration_months\nc-9,nope,sometimes,-1\n", encoding="utf-8"
    )
    go(page, live_app, "Settings")
    page.locator("input[type=file]").first.set_input_files(str(bad))
    page.get_by_role("button", name="Replace the rules with this file").click()
    page.get_by_text("row 2, method").first.wait_for()
    text = page.get_by_test_id("stMain").inner_text()
    assert "'sometimes' is not one of issue, update, issue_or_update" in text
    assert "must not be negative" in text
    assert "Imported" not in text


def test_bulk_issue_upload_plan_confirm_done_and_report(live_app, page, tmp_path: Path) -> None:
    from credly_ops.emulators.demo_world import COURSES

    cloud = next(c for c in COURSES if c.title == "Cloud Foundations")
    unmapped = next(c for c in COURSES if c.template_name is None)
    rows = [
        "Email,First Name,Last Name,Course ID,Completed At,Success Status",
        f"e2e.one@example.com,Eve,One,{cloud.course_id},2026-01-05 10:00,passed",
        f"e2e.two@example.com,Eve,Two,{cloud.course_id},2026-01-06 11:00,passed",
        f"e2e.three@example.com,Eve,Three,{cloud.course_id},2026-01-07 12:00,failed",
        f"e2e.four@example.com,Eve,Four,{unmapped.course_id},2026-01-08 13:00,",
        f"not-an-email,Eve,Five,{cloud.course_id},2026-01-09 14:00,passed",
    ]
    upload = tmp_path / "completions.csv"
    upload.write_text("\n".join(rows) + "\n", encoding="utf-8")
    go(page, live_app, "Bulk issue")
    page.locator("input[type=file]").first.set_input_files(str(upload))
    confirm = page.get_by_role("button", name="Confirm and issue 2 badges")
    confirm.wait_for()
    main = page.get_by_test_id("stMain")
    assert "1 row cannot be used as they are" in main.inner_text()
    confirm.click()
    page.get_by_text("done", exact=True).first.wait_for(timeout=120_000)
    wait_idle(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the report (CSV)").click()
    report = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert report.splitlines()[0] == (
        "row,email,course_id,completed_at,outcome,reason,badge_id,planned"
    )
    outcomes = [line.split(",")[4] for line in report.splitlines()[1:]]
    assert sorted(outcomes) == ["invalid", "issued", "issued", "skipped", "skipped"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "bulk_issue.png"), full_page=True)


def test_renewals_shows_expiries_and_the_outreach_list(live_app, page) -> None:
    go(page, live_app, "Renewals")
    page.locator(".js-plotly-plot").first.wait_for()
    wait_idle(page)
    main = page.get_by_test_id("stMain")
    assert main.get_by_text("Expiring within 30 days").count() == 1
    assert main.get_by_role("heading", name="Per template").count() == 1
    assert main.get_by_test_id("stDataFrame").count() == 2  # per template, students to reach
    assert page.get_by_role("button", name="Download the outreach CSV").is_enabled()
    assert page.get_by_test_id("stException").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "renewals.png"), full_page=True)


def test_health_shows_the_token_expiring_and_the_archived_template(live_app, page) -> None:
    go(page, live_app, "Health")
    page.get_by_text("Credly token").first.wait_for()
    wait_idle(page)
    text = page.get_by_test_id("stMain").inner_text()
    assert "expires in" in text
    assert "Partner Sales Accreditation is archived" in text
    assert page.get_by_test_id("stException").count() == 0
    sidebar = page.get_by_test_id("stSidebar").inner_text()
    assert "Health:" in sidebar
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "health.png"), full_page=True)

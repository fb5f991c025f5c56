"""The Bulk issue page, driven headless with Streamlit's AppTest on a copy of the demo cache.

The page's Credly is an emulator of this test's own (the demo's templates, no badges), so what
the page issues never changes the session-wide demo world other tests read.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import ui
from credly_ops.access import Actor, Role
from credly_ops.config import DEMO_API_TOKEN, DEMO_ORG_ID
from credly_ops.exports import read_csv_report
from credly_ops.issuance import job_report, report_csv, running_jobs
from credly_ops.models import IssueMethod
from credly_ops.store import Store

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "bulk_issue.py")
CSM = Actor("carl.csm", Role.CSM)
VIEWER = Actor("vera.viewer", Role.VIEWER)
T0 = datetime(2025, 9, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def credly(demo_site, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[object]:
    """A copy of the demo cache, and an emulator with the demo's templates and no badges."""
    from credly_ops.emulators.credly import World, create_app
    from credly_ops.emulators.server import serve_in_thread

    st.cache_resource.clear()
    st.cache_data.clear()
    world = World()
    world.add_org(DEMO_ORG_ID, "Northwind Academy", DEMO_API_TOKEN)
    for template in demo_site.demo.templates:
        world.add_template(DEMO_ORG_ID, **template)
    server = serve_in_thread(create_app(world), host="127.0.0.1", port=0)
    demo_site.env(monkeypatch, demo_site.copy_cache(tmp_path / "c.duckdb"))
    monkeypatch.setenv("CREDLY_API_URL", f"{server.url}/v1")
    world.control_url = f"{server.url}/_emulator"  # type: ignore[attr-defined]
    ui.workspace.clear()
    try:
        yield world
    finally:
        wait_for_jobs()
        ui.workspace.clear()
        server.stop()


@pytest.fixture
def course(demo_site) -> str:
    """A demo course whose rule issues an active template."""
    active = {t["id"] for t in demo_site.demo.templates if t.get("state", "active") == "active"}
    return next(
        r.course_id
        for r in demo_site.demo.rules
        if r.method is IssueMethod.ISSUE and r.template_id in active
    )


def upload_bytes(course: str, rows: int = 3, *, start: datetime = T0) -> bytes:
    lines = ["email,first_name,last_name,course_id,completed_at"]
    for i in range(rows):
        when = start + timedelta(days=i)
        lines.append(f"page{i}@bulk-test.example,Pat,Page{i},{course},{when:%F %T}")
    lines.append(f"not-an-email,Pat,Page,{course},2025-09-01")
    lines.append(f"nobody@bulk-test.example,Pat,Page,no-such-course,{T0:%F}")
    return ("\n".join(lines) + "\n").encode()


def wait_for_jobs(timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while running_jobs() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running_jobs(), "the background job did not finish"


def open_page(actor: Actor = CSM) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["actor"] = actor
    at.run()
    assert not at.exception, at.exception
    return at


def upload(at: AppTest, data: bytes, name: str = "completions.csv") -> AppTest:
    [uploader] = at.file_uploader
    uploader.set_value((name, data, "text/csv")).run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    parts: list[str] = []
    for kind in ("markdown", "caption", "info", "success", "error", "warning"):
        parts.extend(str(e.value) for e in at.get(kind))
    parts.extend(f"{m.label}={m.value}" for m in at.metric)
    return "\n".join(parts)


def button(at: AppTest, label: str):
    found = [b for b in at.button if b.label.startswith(label)]
    assert found, [b.label for b in at.button]
    return found[0]


def test_upload_plan_confirm_and_done(credly, course: str) -> None:
    world = credly
    at = upload(open_page(), upload_bytes(course))
    shown = texts(at)
    assert "Rows read=5" in shown and "Rows with errors=1" in shown
    assert "Issue=3" in shown and "Skip=1" in shown and "Invalid=1" in shown
    assert "synced with Credly just before planning" in shown
    [bad_rows] = [d for d in at.dataframe if "column" in d.value.columns]
    assert list(bad_rows.value["row"]) == [5]

    button(at, "Confirm and issue 3 badges").click().run()
    assert not at.exception, at.exception
    wait_for_jobs()
    at.run()
    assert not at.exception, at.exception
    shown = texts(at)
    assert "**done**" in shown
    assert "Issued=3" in shown and "Failed=0" in shown
    badges = world.badges_for(DEMO_ORG_ID)
    assert sorted(b["recipient_email"] for b in badges) == [
        f"page{i}@bulk-test.example" for i in range(3)
    ]
    assert sorted(b["issued_at"] for b in badges) == [T0 + timedelta(days=i) for i in range(3)]
    report = next(
        d for d in at.get("download_button") if d.proto.label.startswith("Download the report")
    )
    assert report is not None
    [job] = [d for d in at.dataframe if "job" in d.value.columns]
    assert list(job.value["status"]) == ["done"]
    assert list(job.value["issued"]) == [3]


def test_a_refreshed_browser_finds_the_job_still_running(credly, course: str) -> None:
    import httpx

    httpx.post(f"{credly.control_url}/faults", json={"latency_ms": 150}, timeout=5)
    at = upload(open_page(), upload_bytes(course, rows=12))
    button(at, "Confirm and issue 12 badges").click().run()
    assert not at.exception, at.exception
    assert not at.file_uploader[0].value  # the plan is done with: a fresh uploader
    assert not [m for m in at.metric if m.label == "Issue"]

    refreshed = open_page()  # a new browser session: nothing carried over but the server
    shown = texts(refreshed)
    assert "**running**" in shown and "You may leave this page" in shown
    assert [b for b in refreshed.button if b.label.startswith("Confirm")] == []
    wait_for_jobs()
    refreshed.run()
    assert "**done**" in texts(refreshed) and "Issued=12" in texts(refreshed)
    assert len(credly.badges_for(DEMO_ORG_ID)) == 12


def test_a_viewer_cannot_use_the_page(credly) -> None:
    at = open_page(VIEWER)
    assert any("does not include this page" in e.value for e in at.error)
    assert not at.get("file_uploader")
    assert not [b for b in at.button if b.label.startswith("Confirm")]
    assert credly.badges_for(DEMO_ORG_ID) == []


def test_the_rows_of_each_class_can_be_browsed(credly, course: str, demo_site) -> None:
    at = upload(open_page(), upload_bytes(course))
    [rows] = [d for d in at.dataframe if "why" in d.value.columns]
    assert list(rows.value["outcome"]) == ["issue"] * 3
    at.button_group(key="bulk_class").set_value("skip").run()
    [rows] = [d for d in at.dataframe if "why" in d.value.columns]
    assert list(rows.value["reason"]) == ["no_rule"]
    assert "No badge rule" in rows.value["why"][0]
    at.button_group(key="bulk_class").set_value("backfill").run()
    assert not at.exception
    assert "No row is in the class “backfill”." in texts(at)

    # completions from before the demo rules went live are a deliberate backfill (recent
    # enough that their badges have not expired yet: those would be skipped, rule 11)
    installed = next(r.active_from for r in demo_site.demo.rules if r.course_id == course)
    assert installed is not None
    start = installed - timedelta(days=30)
    at = upload(open_page(), upload_bytes(course, start=start))
    assert "flagged **backfill**" in texts(at)
    at.button_group(key="bulk_class").set_value("backfill").run()
    [rows] = [d for d in at.dataframe if "why" in d.value.columns]
    assert list(rows.value["outcome"]) == ["issue"] * 3


def test_a_dry_run_sends_nothing_and_is_audited(credly, course: str) -> None:
    at = upload(open_page(), upload_bytes(course))
    at.checkbox(key="bulk_dry_run").check().run()
    button(at, "Record the dry run").click().run()
    assert not at.exception, at.exception
    assert "Dry run recorded" in texts(at)
    assert credly.badges_for(DEMO_ORG_ID) == []
    store = Store(ui.workspace().settings.db_path)
    with store.session() as cur:
        assert cur.execute("SELECT count(*) FROM jobs WHERE kind = 'bulk_issue'").fetchone() == (0,)
        assert cur.execute("SELECT actor FROM audit WHERE action = 'issue.dry_run'").fetchall() == [
            (CSM.name,)
        ]


def test_a_windows_1252_file_asks_for_its_encoding(credly, course: str) -> None:
    data = (
        "email,first_name,last_name,course_id,completed_at\n"
        f"j@bulk-test.example,José,Núñez,{course},2025-09-01\n"
    )
    at = upload(open_page(), data.encode("cp1252"))
    assert any("not UTF-8" in e.value for e in at.error)
    at.radio(key="bulk_encoding").set_value("Windows-1252").run()
    assert not at.exception, at.exception
    assert not at.error
    assert "Issue=1" in texts(at)


def test_an_interrupted_job_is_listed_and_resumed(credly, course: str) -> None:
    from credly_ops.issuance import create_job_from, prepare

    ws = ui.workspace()
    prepared = prepare(ws, CSM, upload_bytes(course, rows=4), source_name="earlier.csv")
    job_id = create_job_from(ws, CSM, prepared)
    with ws.store.transaction() as cur:  # a runner that died mid-run
        cur.execute("UPDATE jobs SET status = 'running', heartbeat_at = ?", [datetime(2025, 1, 1)])
    at = open_page()
    [jobs] = [d for d in at.dataframe if "job" in d.value.columns]
    assert list(jobs.value["status"]) == ["interrupted"]
    assert list(jobs.value["not sent"]) == [4]
    at.selectbox(key="bulk_pick").set_value(job_id).run()
    assert not at.exception, at.exception
    button(at, "Resume (4 rows left)").click().run()
    assert not at.exception, at.exception
    wait_for_jobs()
    at.run()
    assert "Issued=4" in texts(at)
    assert len(credly.badges_for(DEMO_ORG_ID)) == 4
    report = read_csv_report(report_csv(job_report(ws.store, job_id)))
    assert [line["outcome"] for line in report] == ["issued"] * 4 + ["invalid", "skipped"]


def test_the_template_of_accepted_columns_can_be_downloaded(credly) -> None:
    at = open_page()
    [template] = [
        d for d in at.get("download_button") if d.proto.label == "Download a CSV template"
    ]
    assert template is not None

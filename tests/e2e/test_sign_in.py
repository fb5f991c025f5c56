"""Sign-in and roles in a real browser: an OIDC provider on loopback signs people in."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest

from credly_ops.emulators.server import serve_in_thread
from tests.e2e.conftest import (
    ARTIFACTS,
    ROOT,
    LiveApp,
    free_port,
    navigation,
    start_app,
    wait_idle,
)
from tests.e2e.oidc import CLIENT_ID, CLIENT_SECRET, Provider


@pytest.fixture(scope="module")
def signed_in_app(tmp_path_factory: pytest.TempPathFactory, browser) -> Iterator[LiveApp]:
    provider = Provider()
    server = serve_in_thread(provider.app(), host="127.0.0.1", port=0)
    provider.issuer = server.url
    home = tmp_path_factory.mktemp("signin")
    app_port = free_port()
    (home / ".streamlit").mkdir()
    shutil.copyfile(ROOT / ".streamlit" / "config.toml", home / ".streamlit" / "config.toml")
    (home / ".streamlit" / "secrets.toml").write_text(
        f"""
[auth]
redirect_uri = "http://127.0.0.1:{app_port}/oauth2callback"
cookie_secret = "e2e-cookie-secret-0123456789abcdef"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
server_metadata_url = "{server.url}/.well-known/openid-configuration"
# on here, so the browser shows it never overrides an explicit email_verified: false
accept_missing_email_verified = true

[roles]
admin = ["admin@example.com"]
viewer = ["viewer@example.com"]
""",
        encoding="utf-8",
    )
    app, proc = start_app(home, cwd=home, port=app_port)
    app.provider = provider  # type: ignore[attr-defined]
    try:
        yield app
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        server.stop()


def start_sign_in(page, app: LiveApp, email: str, email_verified: object = True) -> None:
    """Have the provider sign in ``email`` with this ``email_verified`` claim, and click."""
    app.provider.email = email  # type: ignore[attr-defined]
    app.provider.email_verified = email_verified  # type: ignore[attr-defined]
    page.goto(app.url)
    page.get_by_role("button", name="Sign in").click()


def sign_in(page, app: LiveApp, email: str) -> None:
    start_sign_in(page, app, email)
    # the provider redirects straight back; the app then names the user in the sidebar
    page.get_by_test_id("stSidebar").get_by_text(email, exact=False).wait_for()
    wait_idle(page)


def test_a_viewer_cannot_reach_bulk_issue_even_by_url(signed_in_app, page) -> None:
    sign_in(page, signed_in_app, "viewer@example.com")
    sidebar = page.get_by_test_id("stSidebar").inner_text()
    assert "viewer@example.com · viewer" in sidebar
    nav = navigation(page).inner_text()
    assert "Funnel" in nav and "Student preview" in nav
    assert "Bulk issue" not in nav and "Settings" not in nav and "Audit" not in nav
    page.goto(f"{signed_in_app.url}/bulk_issue")
    page.get_by_test_id("stSidebar").wait_for()
    wait_idle(page)
    assert page.get_by_role("heading", name="Bulk issue").count() == 0
    assert page.get_by_role("button", name="Confirm", exact=False).count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "viewer_bulk_issue_by_url.png"), full_page=True)


def test_an_admin_email_the_provider_has_not_verified_gets_no_access(signed_in_app, page) -> None:
    start_sign_in(page, signed_in_app, "admin@example.com", email_verified=False)
    page.get_by_role("heading", name="No access").wait_for()
    wait_idle(page)
    main = page.get_by_test_id("stMain").inner_text()
    assert "admin@example.com" in main
    assert "says admin@example.com is not verified" in main
    assert navigation(page).count() == 0
    assert page.get_by_role("button", name="Sync now").count() == 0
    page.goto(f"{signed_in_app.url}/settings")
    page.get_by_role("heading", name="No access").wait_for()
    wait_idle(page)
    assert page.get_by_role("heading", name="Settings").count() == 0
    assert page.get_by_role("button", name="Save", exact=False).count() == 0
    assert "is not verified" in page.get_by_test_id("stMain").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "unverified_admin.png"), full_page=True)

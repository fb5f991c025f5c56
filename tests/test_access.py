"""Who may do what: the role table, the sign-in configuration, and the app's gates."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from credly_ops import config
from credly_ops.access import (
    LOCAL_ACTOR,
    AccessPolicy,
    Actor,
    AuthConfigError,
    Permission,
    PermissionDenied,
    Role,
    access_policy,
    command_line_actor,
    require,
)

ROOT = Path(__file__).resolve().parent.parent

EXPECTED = {
    Role.VIEWER: {Permission.VIEW, Permission.SYNC},
    Role.CSM: {Permission.VIEW, Permission.SYNC, Permission.ISSUE},
    Role.ADMIN: set(Permission),
}

AUTH = """
[auth]
redirect_uri = "http://localhost:8501/oauth2callback"
cookie_secret = "not-a-real-cookie-secret"
client_id = "client"
client_secret = "client-secret"
server_metadata_url = "https://login.example.com/.well-known/openid-configuration"

[roles]
admin = ["boss@acme.com"]
csm = ["@acme.com"]
viewer = ["*@partner.org", "guest@gmail.com"]
"""


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", list(Permission))
def test_the_role_table(role: Role, permission: Permission) -> None:
    actor = Actor("someone", role)
    assert actor.can(permission) is (permission in EXPECTED[role])
    if permission in EXPECTED[role]:
        require(actor, permission)
    else:
        with pytest.raises(PermissionDenied):
            require(actor, permission)


def test_the_command_line_is_a_named_local_admin() -> None:
    actor = command_line_actor()
    assert actor.role is Role.ADMIN
    assert actor.name.startswith("cli:")


@pytest.mark.parametrize(
    ("email", "role"),
    [
        ("boss@acme.com", Role.ADMIN),
        (" BOSS@ACME.com ", Role.ADMIN),
        ("ada@acme.com", Role.CSM),
        ("x@partner.org", Role.VIEWER),
        ("guest@gmail.com", Role.VIEWER),
        ("other@gmail.com", None),
        ("ada@acme.com.evil.org", None),
        ("", None),
        (None, None),
    ],
)
def test_roles_by_email_and_domain(email: str | None, role: Role | None) -> None:
    import tomllib

    policy = access_policy(tomllib.loads(AUTH))
    assert policy.sign_in is True
    assert policy.role_for(email) == role


def test_no_auth_section_is_local_mode() -> None:
    policy = access_policy({})
    assert policy == AccessPolicy(sign_in=False, provider=None, roles={})
    assert policy.role_for(None) is Role.ADMIN


@pytest.mark.parametrize(
    ("secrets", "fragment"),
    [
        ({"auth": {"redirect_uri": "x"}}, "missing cookie_secret, client_id"),
        (
            {"auth": {"redirect_uri": "x", "cookie_secret": "y", "google": {"client_id": "c"}}},
            "google.client_secret",
        ),
        (
            {
                "auth": {
                    "redirect_uri": "x",
                    "cookie_secret": "y",
                    "client_id": "c",
                    "client_secret": "s",
                    "server_metadata_url": "u",
                }
            },
            "[roles] names nobody",
        ),
        ({"roles": {"owner": ["a@b.c"]}}, "'owner' is not a role"),
        ({"roles": {"admin": 3}}, "admin must be a list"),
    ],
)
def test_a_half_configured_sign_in_is_an_error(secrets: dict, fragment: str) -> None:
    with pytest.raises(AuthConfigError) as info:
        access_policy(secrets)
    assert fragment in str(info.value)
    assert "client-secret" not in str(info.value)


@pytest.mark.parametrize(
    ("role", "titles"),
    [
        (Role.VIEWER, ["Funnel", "Student preview"]),
        (Role.CSM, ["Funnel", "Bulk issue", "Student preview"]),
        (Role.ADMIN, ["Funnel", "Bulk issue", "Student preview", "Settings", "Audit"]),
    ],
)
def test_navigation_lists_only_the_pages_a_role_may_open(role: Role, titles: list[str]) -> None:
    import ui

    assert [p.title for p in ui.pages_for(Actor("x", role))] == titles


# -- the app's gates, in AppTest --------------------------------------------------------------


@pytest.fixture
def app_env(demo_site, monkeypatch, tmp_path):
    demo_site.env(monkeypatch, demo_site.copy_cache(tmp_path / "cache.duckdb"))
    monkeypatch.chdir(ROOT)
    st.cache_resource.clear()
    st.cache_data.clear()
    return tmp_path


def with_auth(tmp_path: Path, monkeypatch) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(AUTH, encoding="utf-8")
    monkeypatch.setattr(config, "DEFAULT_SECRETS_PATH", secrets)


def texts(at: AppTest) -> str:
    parts = (
        [m.value for m in at.markdown] + [e.value for e in at.error] + [t.value for t in at.title]
    )
    parts += [c.value for c in at.sidebar.caption]
    return " ".join(str(p) for p in parts)


def test_local_mode_says_so_and_acts_as_admin(app_env) -> None:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    at.run()
    assert not at.exception
    assert "Local mode — no sign-in" in texts(at)
    assert at.session_state["actor"] == LOCAL_ACTOR


def test_signed_out_users_see_only_the_sign_in(app_env, monkeypatch) -> None:
    with_auth(app_env, monkeypatch)
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    at.user = {"is_logged_in": False}
    at.run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Sign in"]
    assert "Funnel" not in [t.value for t in at.title]


def test_unknown_signed_in_users_get_no_access(app_env, monkeypatch) -> None:
    with_auth(app_env, monkeypatch)
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    at.user = {"is_logged_in": True, "email": "stranger@gmail.com"}
    at.run()
    assert not at.exception
    assert "No access" in texts(at)
    assert "stranger@gmail.com" in texts(at)


def test_a_signed_in_viewer_is_named_with_their_role(app_env, monkeypatch) -> None:
    with_auth(app_env, monkeypatch)
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    at.user = {"is_logged_in": True, "email": "x@partner.org"}
    at.run()
    assert not at.exception
    assert at.session_state["actor"] == Actor("x@partner.org", Role.VIEWER)
    assert "x@partner.org · viewer" in texts(at)


@pytest.mark.parametrize(
    ("page", "role"),
    [
        ("pages/bulk_issue.py", Role.VIEWER),
        ("pages/settings.py", Role.VIEWER),
        ("pages/settings.py", Role.CSM),
        ("pages/audit.py", Role.CSM),
    ],
)
def test_each_page_checks_the_role_itself(app_env, page: str, role: Role) -> None:
    at = AppTest.from_file(str(ROOT / page), default_timeout=60)
    at.session_state["actor"] = Actor("someone", role)
    at.run()
    assert not at.exception
    assert any("does not include this page" in e.value for e in at.error)


def test_with_sign_in_configured_no_page_assumes_an_identity(app_env, monkeypatch) -> None:
    with_auth(app_env, monkeypatch)
    at = AppTest.from_file(str(ROOT / "pages/student_preview.py"), default_timeout=60)
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Sign in first."]
    assert not at.text_input

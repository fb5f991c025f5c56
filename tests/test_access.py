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
    SignInDecision,
    access_policy,
    command_line_actor,
    decide_sign_in,
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


def policy_with(accept_missing: bool) -> AccessPolicy:
    import tomllib

    secrets = tomllib.loads(AUTH)
    secrets["auth"]["accept_missing_email_verified"] = accept_missing
    return access_policy(secrets)


MISSING = object()  # the token carries no email_verified claim at all


@pytest.mark.parametrize(
    ("verified", "accept_missing", "role", "reason"),
    [
        (True, False, Role.ADMIN, ""),
        (True, True, Role.ADMIN, ""),
        (False, False, None, "is not verified"),
        (False, True, None, "is not verified"),  # the opt-in never overrides an explicit no
        (MISSING, False, None, "did not say whether boss@acme.com is verified"),
        (MISSING, True, Role.ADMIN, ""),
        (None, False, None, "did not say whether"),  # a null claim says nothing either
        (None, True, Role.ADMIN, ""),
        ("true", False, Role.ADMIN, ""),  # some providers send the string
        (" TRUE ", False, Role.ADMIN, ""),
        ("false", False, None, "is not verified"),
        ("false", True, None, "is not verified"),
        ("yes", False, None, "is not verified"),
        (1, False, None, "is not verified"),
        ("", True, None, "is not verified"),
    ],
)
def test_only_a_verified_email_gets_a_role(
    verified: object, accept_missing: bool, role: Role | None, reason: str
) -> None:
    claims: dict[str, object] = {"email": "boss@acme.com", "sub": "1"}
    if verified is not MISSING:
        claims["email_verified"] = verified
    decision = decide_sign_in(policy_with(accept_missing), claims)
    assert decision.role == role
    assert decision.email == "boss@acme.com"
    if reason:
        assert reason in decision.reason
    else:
        assert decision.reason == ""


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        (
            {"email": "other@gmail.com", "email_verified": True},
            SignInDecision(
                "other@gmail.com",
                None,
                "other@gmail.com has no role in credly-ops. Ask an administrator to add you.",
            ),
        ),
        ({"email_verified": True}, SignInDecision("", None, "")),
        ({"email": "  ", "email_verified": True}, SignInDecision("", None, "")),
        ({"email": ["boss@acme.com"], "email_verified": True}, SignInDecision("", None, "")),
        (
            {"email": " ada@acme.com ", "email_verified": "true"},
            SignInDecision("ada@acme.com", Role.CSM),
        ),
    ],
)
def test_a_verified_email_still_needs_a_matching_role(
    claims: dict[str, object], expected: SignInDecision
) -> None:
    decision = decide_sign_in(policy_with(False), claims)
    assert (decision.email, decision.role) == (expected.email, expected.role)
    if expected.reason:
        assert decision.reason == expected.reason
    if not expected.email:
        assert "did not include an email address" in decision.reason


def test_the_opt_in_is_off_unless_set_and_must_be_a_boolean() -> None:
    import tomllib

    assert access_policy(tomllib.loads(AUTH)).accept_missing_email_verified is False
    assert policy_with(True).accept_missing_email_verified is True
    secrets = tomllib.loads(AUTH)
    secrets["auth"]["accept_missing_email_verified"] = "yes"
    with pytest.raises(AuthConfigError, match="accept_missing_email_verified must be true"):
        access_policy(secrets)


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
        (Role.VIEWER, ["Funnel", "Student preview", "Autopilot", "Renewals", "Health"]),
        (Role.CSM, ["Funnel", "Bulk issue", "Student preview", "Autopilot", "Renewals", "Health"]),
        (
            Role.ADMIN,
            [
                "Funnel",
                "Bulk issue",
                "Student preview",
                "Autopilot",
                "Renewals",
                "Health",
                "Settings",
                "Audit",
            ],
        ),
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
        [m.value for m in at.markdown]
        + [e.value for e in at.error]
        + [w.value for w in at.warning]
        + [t.value for t in at.title]
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
    at.user = {"is_logged_in": True, "email": "stranger@gmail.com", "email_verified": True}
    at.run()
    assert not at.exception
    assert "No access" in texts(at)
    assert "stranger@gmail.com has no role in credly-ops" in texts(at)
    assert "actor" not in at.session_state


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"email_verified": False}, "says boss@acme.com is not verified"),
        ({}, "did not say whether boss@acme.com is verified"),
    ],
)
def test_an_unverified_admin_email_gets_no_access_and_the_reason(
    app_env, monkeypatch, claims: dict, reason: str
) -> None:
    with_auth(app_env, monkeypatch)
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    at.user = {"is_logged_in": True, "email": "boss@acme.com", **claims}
    at.run()
    assert not at.exception
    assert "No access" in texts(at)
    assert reason in texts(at)
    assert "actor" not in at.session_state
    assert "Settings" not in [t.value for t in at.title]


def test_a_signed_in_viewer_is_named_with_their_role(app_env, monkeypatch) -> None:
    with_auth(app_env, monkeypatch)
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    at.user = {"is_logged_in": True, "email": "x@partner.org", "email_verified": True}
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

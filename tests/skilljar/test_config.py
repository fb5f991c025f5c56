"""Skilljar settings: precedence, "not configured" as a value, secrets masked and hidden."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from credly_ops import config
from credly_ops.config import (
    ConfigError,
    SkilljarNotConfigured,
    SkilljarSettings,
    load_skilljar_settings,
)

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sj-secret-0123456789-abcdef"
HOOK = "hook-secret-9876543210"


def write_secrets(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "secrets.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_nothing_set_is_not_configured_and_names_what_is_missing(tmp_path: Path) -> None:
    result = load_skilljar_settings(environ={}, secrets_path=tmp_path / "none.toml")
    assert isinstance(result, SkilljarNotConfigured)
    assert result.configured is False
    assert result.missing == (
        "client_id (SKILLJAR_CLIENT_ID)",
        "client_secret (SKILLJAR_CLIENT_SECRET)",
    )
    assert "SKILLJAR_CLIENT_SECRET" in result.describe()["skilljar"]
    assert result.secrets() == []


def test_only_the_secret_missing_is_named() -> None:
    result = load_skilljar_settings(environ={"SKILLJAR_CLIENT_ID": "cid"})
    assert isinstance(result, SkilljarNotConfigured)
    assert result.missing == ("client_secret (SKILLJAR_CLIENT_SECRET)",)


def test_environment_alone_configures_with_the_default_url() -> None:
    result = load_skilljar_settings(
        environ={"SKILLJAR_CLIENT_ID": " cid ", "SKILLJAR_CLIENT_SECRET": SECRET}
    )
    assert isinstance(result, SkilljarSettings)
    assert result.configured is True
    assert result.api_url == "https://api.skilljar.com"
    assert result.client_id == "cid"
    assert result.client_secret.get_secret_value() == SECRET
    assert result.domain is None and result.webhook_secret is None


def test_arguments_beat_secrets_beat_environment(tmp_path: Path) -> None:
    secrets = write_secrets(
        tmp_path,
        '[skilljar]\nclient_id = "from-secrets"\nclient_secret = "secret-from-file"\n'
        'domain = "secrets.example.com"\napi_url = "http://127.0.0.1:9/v2/"\n',
    )
    environ = {
        "SKILLJAR_CLIENT_ID": "from-env",
        "SKILLJAR_CLIENT_SECRET": "secret-from-env",
        "SKILLJAR_DOMAIN": "env.example.com",
        "SKILLJAR_WEBHOOK_SECRET": HOOK,
    }
    result = load_skilljar_settings(client_id="from-args", secrets_path=secrets, environ=environ)
    assert isinstance(result, SkilljarSettings)
    assert result.client_id == "from-args"
    assert result.client_secret.get_secret_value() == "secret-from-file"
    assert result.domain == "secrets.example.com"
    # the version suffix and trailing slash are dropped: the client adds /v1 or /v2 itself
    assert result.api_url == "http://127.0.0.1:9"
    assert result.webhook_secret is not None
    assert result.webhook_secret.get_secret_value() == HOOK


def test_the_default_secrets_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_secrets(tmp_path, '[skilljar]\nclient_id = "c"\nclient_secret = "s-123456789"\n')
    monkeypatch.setattr(config, "DEFAULT_SECRETS_PATH", path)
    assert isinstance(load_skilljar_settings(environ={}), SkilljarSettings)


def test_describe_masks_both_secrets_and_repr_hides_them() -> None:
    result = load_skilljar_settings(client_id="cid", client_secret=SECRET, webhook_secret=HOOK)
    assert isinstance(result, SkilljarSettings)
    shown = result.describe()
    assert SECRET not in str(shown) and HOOK not in str(shown)
    assert shown["client_secret"].endswith(SECRET[-4:])
    assert shown["domain"] == "(all domains)"
    assert SECRET not in repr(result) and HOOK not in repr(result)
    assert sorted(result.secrets()) == sorted([SECRET, HOOK])


def test_a_bad_value_is_an_error_that_hides_the_secret() -> None:
    with pytest.raises(ValidationError) as caught:
        SkilljarSettings(api_url="x", client_id="c", client_secret=SECRET, domain=42)  # type: ignore[arg-type]
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('[skilljar]\nclient_id = 7\nclient_secret = "s"\n', "client_id must be text"),
        ('[skilljar]\nclientid = "c"\n', "unknown key 'clientid'"),
        ('skilljar = "c"\n', "must be a table"),
        (
            '[skilljar]\nclient_id = "c"\nclient_secret = "s"\napi_url = "ftp://x"\n',
            "http(s) URL",
        ),
        (
            '[skilljar]\nclient_id = "c"\nclient_secret = "s"\n'
            'api_url = "https://c:topsecretpw@api.skilljar.com"\n',
            "must not carry credentials",
        ),
    ],
)
def test_unusable_values_name_the_key(tmp_path: Path, body: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_skilljar_settings(secrets_path=write_secrets(tmp_path, body), environ={})
    assert fragment in str(caught.value)
    assert "topsecretpw" not in str(caught.value)


def test_the_shipped_example_configures_skilljar(tmp_path: Path) -> None:
    example = (ROOT / ".streamlit" / "secrets.toml.example").read_text(encoding="utf-8")
    assert "skilljar" in tomllib.loads(example)
    path = write_secrets(tmp_path, example)
    assert isinstance(load_skilljar_settings(secrets_path=path, environ={}), SkilljarSettings)


def test_credly_settings_ignore_the_skilljar_table(tmp_path: Path) -> None:
    path = write_secrets(tmp_path, '[skilljar]\nclient_id = "c"\nclient_secret = "s"\n')
    settings = config.load_settings(secrets_path=path, environ={})
    assert settings.is_demo

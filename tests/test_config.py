from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from credly_ops.config import (
    BASE_URLS,
    DEMO_ORG_ID,
    ConfigError,
    Settings,
    load_settings,
    mask_secret,
)
from credly_ops.models import Environment
from credly_ops.redaction import MASK

SECRET = "s3cr3t-token-value-123456"


def write_secrets(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "secrets.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_nothing_configured_means_demo(tmp_path: Path) -> None:
    s = load_settings(environ={})
    assert s.env is Environment.DEMO
    assert s.org_id == DEMO_ORG_ID
    assert s.api_url == BASE_URLS[Environment.DEMO]
    assert s.api_url.startswith("http://127.0.0.1:")
    assert s.db_path == Path("data/credly_ops.duckdb")


def test_org_and_token_without_env_means_production() -> None:
    s = load_settings(environ={"CREDLY_ORG_ID": "org-1", "CREDLY_API_TOKEN": SECRET})
    assert s.env is Environment.PRODUCTION
    assert s.api_url == "https://api.credly.com/v1"


def test_sandbox_url_is_credlys() -> None:
    s = load_settings(env="sandbox", org_id="o", api_token=SECRET, environ={})
    assert s.api_url == "https://sandbox-api.credly.com/v1"


def test_precedence_arguments_then_secrets_then_environment(tmp_path: Path) -> None:
    secrets = write_secrets(
        tmp_path, '[credly]\nenv = "sandbox"\norg_id = "from-secrets"\napi_token = "tok-secrets"\n'
    )
    environ = {
        "CREDLY_ENV": "production",
        "CREDLY_ORG_ID": "from-env",
        "CREDLY_API_TOKEN": "tok-env",
        "CREDLY_OPS_DB": "/tmp/env.duckdb",
    }
    s = load_settings(secrets_path=secrets, environ=environ)
    assert (s.env, s.org_id, s.api_token.get_secret_value()) == (
        Environment.SANDBOX,
        "from-secrets",
        "tok-secrets",
    )
    assert s.db_path == Path("/tmp/env.duckdb")  # not in secrets: the environment fills it
    s = load_settings(org_id="from-args", secrets_path=secrets, environ=environ)
    assert s.org_id == "from-args"


def test_api_url_override_and_trailing_slash() -> None:
    s = load_settings(api_url="http://127.0.0.1:9999/v1/", environ={})
    assert s.api_url == "http://127.0.0.1:9999/v1"


@pytest.mark.parametrize(
    ("environ", "fragment"),
    [
        ({"CREDLY_ENV": "production", "CREDLY_ORG_ID": "o"}, "api_token (CREDLY_API_TOKEN)"),
        ({"CREDLY_ENV": "sandbox", "CREDLY_API_TOKEN": SECRET}, "org_id (CREDLY_ORG_ID)"),
        ({"CREDLY_ENV": "staging"}, "env must be one of demo, sandbox, production"),
    ],
)
def test_unusable_configuration_names_the_key(environ: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ=environ)
    assert fragment in str(info.value)
    assert SECRET not in str(info.value)


def test_broken_secrets_file_is_a_clear_error(tmp_path: Path) -> None:
    secrets = write_secrets(tmp_path, f'[credly]\napi_token = "{SECRET}\n')
    with pytest.raises(ConfigError) as info:
        load_settings(secrets_path=secrets, environ={})
    assert "not valid TOML" in str(info.value)
    assert SECRET not in str(info.value)


def test_token_never_in_repr_dump_or_description() -> None:
    s = load_settings(env="sandbox", org_id="o", api_token=SECRET, environ={})
    for text in (repr(s), str(s), s.model_dump_json(), str(s.model_dump()), str(s.describe())):
        assert SECRET not in text
    assert s.describe()["token"] == MASK + "3456"


def test_validation_errors_hide_the_token() -> None:
    with pytest.raises(ValidationError) as info:
        Settings(
            env=Environment.SANDBOX,
            org_id="o",
            api_token=SecretStr(SECRET),
            api_url="x",
            db_path=Path("x"),
            unexpected=SECRET,  # type: ignore[call-arg]
        )
    assert SECRET not in str(info.value)


def test_settings_are_immutable() -> None:
    s = load_settings(environ={})
    with pytest.raises(ValidationError):
        s.org_id = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("secret", "masked"), [("", "(not set)"), ("short", MASK), (SECRET, MASK + "3456")]
)
def test_mask_secret(secret: str, masked: str) -> None:
    assert mask_secret(secret) == masked

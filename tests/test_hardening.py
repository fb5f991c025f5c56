"""Safe defaults the app ships with, read from the files that set them."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

from credly_ops.completions import DEFAULT_MAX_BYTES

ROOT = Path(__file__).resolve().parent.parent


def config() -> dict:
    return tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))


def test_users_never_see_error_details_or_tracebacks() -> None:
    assert config()["client"]["showErrorDetails"] == "none"


def test_the_server_binds_loopback_with_xsrf_and_no_telemetry() -> None:
    c = config()
    assert c["server"]["address"] == "127.0.0.1"
    assert c["server"]["enableXsrfProtection"] is True
    assert c["browser"]["gatherUsageStats"] is False


def test_the_upload_limit_matches_the_reader() -> None:
    assert config()["server"]["maxUploadSize"] * 1024 * 1024 == DEFAULT_MAX_BYTES


def test_secrets_are_ignored_by_git_and_an_example_is_shipped() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".streamlit/secrets.toml"], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0
    example = (ROOT / ".streamlit" / "secrets.toml.example").read_text(encoding="utf-8")
    assert "[credly]" in example and "api_token" in example

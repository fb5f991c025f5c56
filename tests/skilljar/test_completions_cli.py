"""``credly-ops completions sync``: its JSON, its exits, and what it never prints."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from credly_ops.cli import main
from credly_ops.config import DEMO_ORG_ID
from tests.skilljar.conftest import CLIENT_ID, CLIENT_SECRET, Site

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def configured(skilljar: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A sandbox organization (no demo), Skilljar configured through the environment."""
    monkeypatch.chdir(tmp_path)  # no .streamlit/secrets.toml here
    monkeypatch.setenv("CREDLY_ENV", "sandbox")
    monkeypatch.setenv("CREDLY_ORG_ID", DEMO_ORG_ID)
    monkeypatch.setenv("CREDLY_API_TOKEN", "credly-token-for-tests")
    monkeypatch.setenv("CREDLY_OPS_DB", str(tmp_path / "c.duckdb"))
    monkeypatch.setenv("SKILLJAR_API_URL", skilljar.url)
    monkeypatch.setenv("SKILLJAR_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("SKILLJAR_CLIENT_SECRET", CLIENT_SECRET)
    for day in range(1, 6):
        skilljar.world.add_enrollment(
            email=f"s{day}@example.com",
            course_id="crs-py",
            completed_at=NOW - timedelta(days=day),
            success_status="PASSED",
        )
    return tmp_path


def test_json_prints_exactly_the_documented_keys(
    configured: Path, skilljar: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["completions", "sync", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"completions", "new", "pages", "seconds"}
    assert (out["completions"], out["new"], out["pages"]) == (5, 5, 1)
    skilljar.world.add_enrollment(
        email="back@example.com",
        course_id="crs-py",
        completed_at=NOW - timedelta(days=9),
        success_status="PASSED",
    )
    assert main(["completions", "sync", "--json", "--overlap-days", "10"]) == 0
    assert json.loads(capsys.readouterr().out)["new"] == 1
    assert main(["completions", "sync"]) == 0
    assert "0 new, 6 Skilljar completions cached" in capsys.readouterr().out
    assert main(["status"]) == 0
    last = json.loads(capsys.readouterr().out)["last_completions_read"]
    assert (last["kind"], last["status"], last["new"]) == ("incremental", "ok", 0)


def test_another_account_exits_2_with_a_sentence(
    configured: Path, skilljar: Site, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    assert main(["completions", "sync", "--json"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("SKILLJAR_DOMAIN", "academy.example.com")
    assert main(["completions", "sync", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "one cache reads one Skilljar account" in captured.err
    assert "academy.example.com" in captured.err


def test_not_configured_exits_2_naming_the_missing_keys(
    configured: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.delenv("SKILLJAR_CLIENT_SECRET")
    assert main(["completions", "sync", "--json"]) == 2
    err = capsys.readouterr().err
    assert "Skilljar is not configured" in err and "SKILLJAR_CLIENT_SECRET" in err
    assert "SKILLJAR_CLIENT_ID" not in err


def test_refused_credentials_exit_2_and_no_secret_is_printed(
    configured: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    wrong = "sj-rotated-SECRET-55555"
    monkeypatch.setenv("SKILLJAR_CLIENT_SECRET", wrong)
    assert main(["completions", "sync"]) == 2
    captured = capsys.readouterr()
    assert "wrong or was rotated" in captured.err
    assert wrong not in captured.out + captured.err
    monkeypatch.setenv("SKILLJAR_CLIENT_SECRET", CLIENT_SECRET)
    assert main(["-v", "completions", "sync", "--json"]) == 0
    captured = capsys.readouterr()
    assert CLIENT_SECRET not in captured.out + captured.err


def test_an_unreachable_skilljar_exits_2(
    configured: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv("SKILLJAR_API_URL", f"http://127.0.0.1:{closed}")
    assert main(["completions", "sync", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Skilljar could not be read" in captured.err

"""``credly-ops hooks`` refuses to start when it could authenticate nothing, or is exposed."""

from __future__ import annotations

import pytest

from credly_ops.cli import main
from tests.hooks.conftest import CLIENT_ID, CLIENT_SECRET, HOOK_SECRET


def test_without_skilljar_it_refuses_to_start(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("CREDLY_OPS_DB", str(tmp_path / "c.duckdb"))
    monkeypatch.setenv("SKILLJAR_WEBHOOK_SECRET", HOOK_SECRET)  # not enough without a client
    assert main(["hooks", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "no webhook secret is configured" in err and "client id and secret" in err
    assert err.count(".") >= 1 and len(err.strip().splitlines()) <= 2
    assert HOOK_SECRET not in err
    assert not (tmp_path / "c.hooks").exists()


def test_without_a_webhook_secret_it_refuses_to_start(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("CREDLY_OPS_DB", str(tmp_path / "c.duckdb"))
    monkeypatch.setenv("SKILLJAR_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("SKILLJAR_CLIENT_SECRET", CLIENT_SECRET)
    assert main(["hooks", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "SKILLJAR_WEBHOOK_SECRET" in err and "client id" not in err
    assert CLIENT_SECRET not in err


def test_it_listens_on_loopback_unless_told(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("CREDLY_OPS_DB", str(tmp_path / "c.duckdb"))
    monkeypatch.setenv("SKILLJAR_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("SKILLJAR_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("SKILLJAR_WEBHOOK_SECRET", HOOK_SECRET)
    assert main(["hooks", "--host", "0.0.0.0", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "'0.0.0.0' is not a loopback address" in err and "--public" in err


def test_a_missing_cache_folder_is_said(tmp_path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("CREDLY_OPS_DB", str(tmp_path / "absent" / "c.duckdb"))
    monkeypatch.setenv("SKILLJAR_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("SKILLJAR_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("SKILLJAR_WEBHOOK_SECRET", HOOK_SECRET)
    assert main(["hooks", "--port", "1"]) == 2
    assert "does not exist" in capsys.readouterr().err

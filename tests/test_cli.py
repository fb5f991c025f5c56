from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from credly_ops.cli import build_parser, main
from credly_ops.config import DEMO_ORG_ID
from tests.conftest import TEST_TOKEN


def subcommands(parser) -> dict:
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            return dict(action.choices)
    return {}


def all_commands() -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for name, sub in subcommands(build_parser()).items():
        nested = subcommands(sub)
        out.extend((name, n) for n in nested) if nested else out.append((name,))
    return out


@pytest.mark.parametrize("command", all_commands(), ids=" ".join)
def test_every_command_has_help_text(command: tuple[str, ...], capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: credly-ops {' '.join(command)}" in out
    # a description beyond the usage line
    assert len(out.strip().splitlines()) > 2


def test_the_readme_names_every_command() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    for command in {c[0] for c in all_commands()}:
        assert f"credly-ops {command}" in readme, command


def test_sync_json_prints_the_documented_keys(
    emulator, world, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("CREDLY_ENV", "sandbox")
    monkeypatch.setenv("CREDLY_ORG_ID", DEMO_ORG_ID)
    monkeypatch.setenv("CREDLY_API_TOKEN", TEST_TOKEN)
    monkeypatch.setenv("CREDLY_API_URL", emulator)
    monkeypatch.setenv("CREDLY_OPS_DB", str(tmp_path / "c.duckdb"))
    assert main(["sync", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"templates", "badges", "changed", "pages", "seconds"}
    assert out["templates"] == 4 and out["badges"] == 0


def test_configuration_errors_exit_2_with_a_sentence(monkeypatch, capsys) -> None:
    monkeypatch.setenv("CREDLY_ENV", "production")
    monkeypatch.setenv("CREDLY_API_TOKEN", TEST_TOKEN)
    assert main(["sync"]) == 2
    err = capsys.readouterr().err
    assert "needs org_id (CREDLY_ORG_ID)" in err
    assert TEST_TOKEN not in err


def test_a_wrong_token_exits_1_without_showing_it(emulator, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("CREDLY_ENV", "sandbox")
    monkeypatch.setenv("CREDLY_ORG_ID", DEMO_ORG_ID)
    monkeypatch.setenv("CREDLY_API_TOKEN", "bad-" + TEST_TOKEN)
    monkeypatch.setenv("CREDLY_API_URL", emulator)
    monkeypatch.setenv("CREDLY_OPS_DB", str(tmp_path / "c.duckdb"))
    assert main(["sync"]) == 1
    captured = capsys.readouterr()
    assert "401" in captured.err
    assert TEST_TOKEN not in captured.err + captured.out


def test_status_masks_the_token(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("CREDLY_ENV", "sandbox")
    monkeypatch.setenv("CREDLY_ORG_ID", "org-9")
    monkeypatch.setenv("CREDLY_API_TOKEN", TEST_TOKEN)
    monkeypatch.setenv("CREDLY_OPS_DB", str(tmp_path / "c.duckdb"))
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert TEST_TOKEN not in out
    assert json.loads(out)["token"].endswith(TEST_TOKEN[-4:])


def test_rules_round_trip_and_bad_files_save_nothing(
    emulator, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("CREDLY_ENV", "sandbox")
    monkeypatch.setenv("CREDLY_ORG_ID", DEMO_ORG_ID)
    monkeypatch.setenv("CREDLY_API_TOKEN", TEST_TOKEN)
    monkeypatch.setenv("CREDLY_API_URL", emulator)
    monkeypatch.setenv("CREDLY_OPS_DB", str(tmp_path / "c.duckdb"))
    assert main(["sync"]) == 0
    good = tmp_path / "rules.csv"
    good.write_text(
        "course_id,course_title,template_id,method,expiration_months,expiration_days,"
        "require_pass,active_from\n"
        "c-1,Intro,tpl-active,issue,12,0,true,2025-01-01\n"
        "c-2,Old,tpl-archived,issue_or_update,,,false,\n",
        encoding="utf-8",
    )
    assert main(["rules", "import", str(good)]) == 0
    assert "row 3, template_id: template 'Old Badge' is archived" in capsys.readouterr().err
    exported = tmp_path / "out.csv"
    assert main(["rules", "export", str(exported)]) == 0
    text = exported.read_text(encoding="utf-8-sig")
    assert "c-1,Intro,tpl-active,issue,12,0,true,2025-01-01T00:00:00+00:00" in text
    # a blank active_from is the moment of the import: the badge is installed now
    assert re.search(r"c-2,Old,tpl-archived,issue_or_update,0,0,false,20\d\d-\d\d-\d\dT", text)
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "course_id,template_id,method,expiration_months\nc-9,tpl-active,sometimes,-1\n",
        encoding="utf-8",
    )
    capsys.readouterr()
    assert main(["rules", "import", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "row 2, method: 'sometimes' is not one of issue, update, issue_or_update" in err
    assert "row 2, expiration_months: must not be negative" in err
    assert "nothing was saved" in err
    assert main(["rules", "export", str(exported)]) == 0
    assert "c-1" in exported.read_text(encoding="utf-8-sig")


def test_the_console_script_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "credly_ops.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0
    assert "sync" in out.stdout and "demo" in out.stdout

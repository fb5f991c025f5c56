from __future__ import annotations

import ast
import io
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import click
import pytest

from credly_ops.cli import credly_ops_command, main
from credly_ops.completions import MB, CompletionFileError
from credly_ops.config import DEMO_ORG_ID
from tests.conftest import TEST_TOKEN


def all_commands() -> list[tuple[str, ...]]:
    """Every command line that runs something: ``(name,)`` or ``(group, name)``."""
    out: list[tuple[str, ...]] = []
    for name, command in credly_ops_command.commands.items():
        nested = getattr(command, "commands", {})
        out.extend((name, n) for n in nested) if nested else out.append((name,))
    return out


def test_the_commands_are_the_documented_ones() -> None:
    assert sorted(all_commands()) == [
        ("audit",),
        ("autopilot", "pause"),
        ("autopilot", "resume"),
        ("autopilot", "run"),
        ("autopilot", "status"),
        ("completions", "sync"),
        ("demo",),
        ("doctor",),
        ("emulator",),
        ("expiring",),
        ("funnel",),
        ("hooks",),
        ("issue",),
        ("rules", "export"),
        ("rules", "import"),
        ("status",),
        ("student",),
        ("sync",),
    ]


@pytest.mark.parametrize("command", all_commands(), ids=" ".join)
def test_every_command_has_help_text(command: tuple[str, ...], capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert f"Usage: credly-ops {' '.join(command)} " in out
    # a description beyond the usage line, and help on every option
    text = out.split("Options:")[0].split("\n", 1)[1]
    assert len(text.split()) > 5, out
    found: click.Command = credly_ops_command
    for name in command:
        found = found.commands[name]  # type: ignore[attr-defined]
    for param in found.params:
        if isinstance(param, click.Option):
            assert param.help, f"{command} {param.opts} has no help"
            assert param.opts[-1] in out


def test_the_top_level_help_lists_every_command_and_a_bad_command_line_exits_2(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["-h"])
    assert info.value.code == 0
    listing = capsys.readouterr().out.split("Commands:")[1]
    for name in credly_ops_command.commands:
        assert re.search(rf"^  {name}  +\S", listing, re.M), name
    for argv in ([], ["no-such-command"], ["sync", "--no-such-flag"], ["rules"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2, argv
    err = capsys.readouterr().err
    assert "No such command 'no-such-command'" in err and "--no-such-flag" in err


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


#: runs the command line in a fresh process, then prints that process's peak resident memory
#: (kB). VmHWM belongs to the process image after exec; getrusage's ru_maxrss would also count
#: the pytest process the child was forked from.
PEAK_MEMORY = """
import sys
from credly_ops.cli import main
code = main(sys.argv[1:])
with open("/proc/self/status") as status:
    print(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
sys.exit(code)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_a_huge_completion_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """A 1 GB file is refused from its size alone: the process never holds it in memory."""
    huge = tmp_path / "huge.csv"
    huge.write_bytes(b"Email,First Name,Last Name,Course ID,Completed At\n")
    os.truncate(huge, 1024 * MB)  # sparse: no disk, but reading it would take 1 GB of memory
    env = {
        **os.environ,  # no CREDLY_* left (the autouse fixture); PYTHONPATH kept
        "HOME": str(tmp_path),
        "CREDLY_ENV": "sandbox",
        "CREDLY_ORG_ID": DEMO_ORG_ID,
        "CREDLY_API_TOKEN": TEST_TOKEN,
        "CREDLY_API_URL": "http://127.0.0.1:9/v1",  # never reached: the file is refused first
        "CREDLY_OPS_DB": str(tmp_path / "c.duckdb"),
    }
    done = subprocess.run(
        [sys.executable, "-c", PEAK_MEMORY, "issue", str(huge), "--dry-run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "credly-ops issue: huge.csv: The file is 1024 MB; the limit is 20 MB." in done.stderr
    peak_mb = int(done.stdout.split()[-1]) / 1024
    assert peak_mb < 400, f"peak memory {peak_mb:.0f} MB: the file was read"


def test_a_completion_file_without_a_size_is_read_no_further_than_the_limit(
    tmp_path: Path,
) -> None:
    """A pipe has no size to check: at most limit + 1 bytes are read, then it is refused."""
    from credly_ops.cli.issue import read_completion_file

    exact = tmp_path / "exact.csv"
    exact.write_bytes(b"x" * MB)
    assert read_completion_file(exact, limit=MB) == b"x" * MB
    exact.write_bytes(b"x" * (MB + 1))
    with pytest.raises(CompletionFileError, match=r"^The file is 1\.1 MB; the limit is 1 MB\.$"):
        read_completion_file(exact, limit=MB)

    pipe = tmp_path / "pipe.csv"
    os.mkfifo(pipe)
    written: list[int] = []

    def write() -> None:
        try:
            with open(pipe, "wb", buffering=0) as sink:
                for _ in range(3000):
                    sink.write(b"y" * 1000)
                    written.append(1000)
        except BrokenPipeError:
            pass  # the reader stopped reading: the point

    writer = threading.Thread(target=write)
    writer.start()
    with pytest.raises(CompletionFileError, match=r"^The file is over 1 MB; the limit is 1 MB\.$"):
        read_completion_file(pipe, limit=MB)
    writer.join(timeout=10)
    assert not writer.is_alive()
    assert sum(written) < 3_000_000  # the reader stopped early; the writer was cut off


class Terminal(io.StringIO):
    """An output stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def sandbox(monkeypatch: pytest.MonkeyPatch, emulator: str, db: Path) -> None:
    monkeypatch.setenv("CREDLY_ENV", "sandbox")
    monkeypatch.setenv("CREDLY_ORG_ID", DEMO_ORG_ID)
    monkeypatch.setenv("CREDLY_API_TOKEN", TEST_TOKEN)
    monkeypatch.setenv("CREDLY_API_URL", emulator)
    monkeypatch.setenv("CREDLY_OPS_DB", str(db))


def test_sync_draws_progress_only_on_a_terminal(emulator, world, tmp_path, monkeypatch) -> None:
    for i in range(3):
        world.issue(
            DEMO_ORG_ID,
            {
                "badge_template_id": "tpl-active",
                "recipient_email": f"s{i}@example.com",
                "issued_to_first_name": "Stu",
                "issued_to_last_name": "Dent",
                "issued_at": "2025-03-01T09:00:00Z",
            },
        )
    sandbox(monkeypatch, emulator, tmp_path / "c.duckdb")
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["sync", "--full"]) == 0
    drawn = terminal.getvalue()
    assert "\x1b[" in drawn  # drawn in place, in colour
    assert re.search(r"\rsync .*3 badges read", ANSI.sub("", drawn)), drawn


def test_errors_are_red_on_a_terminal_and_plain_in_a_pipe(monkeypatch, capsys) -> None:
    monkeypatch.setenv("CREDLY_ENV", "production")
    monkeypatch.setenv("CREDLY_API_TOKEN", TEST_TOKEN)
    assert main(["status"]) == 2
    piped = capsys.readouterr().err
    assert piped == (
        "credly-ops status: configuration: the production environment needs org_id "
        "(CREDLY_ORG_ID)\n"
    )
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["status"]) == 2
    drawn = terminal.getvalue()
    assert "\x1b[" in drawn and "31" in drawn.split("credly-ops")[0]  # red
    assert ANSI.sub("", drawn) == piped
    assert TEST_TOKEN not in drawn


def test_the_audit_trail_is_a_table_on_a_terminal(emulator, tmp_path, monkeypatch, capsys) -> None:
    sandbox(monkeypatch, emulator, tmp_path / "c.duckdb")
    assert main(["sync"]) == 0
    capsys.readouterr()
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert main(["audit"]) == 0
    lines = [line.strip() for line in ANSI.sub("", terminal.getvalue()).splitlines()]
    header = next(line for line in lines if line.startswith("when (UTC)"))
    assert header.split() == ["when", "(UTC)", "actor", "action", "target", "outcome", "detail"]
    row = next(line for line in lines if " sync " in line)
    assert re.match(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +cli:\S+ \(admin\) +sync +full +ok +\{", row
    ), row


def test_imports_point_down() -> None:
    """The core never imports the command line, and no command imports the package that
    registers it (only its context, exits and output modules)."""
    root = Path(__file__).parent.parent / "credly_ops"
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            else:
                continue
            for module in modules:
                if path.parent.name != "cli":
                    assert not module.startswith("credly_ops.cli"), f"{path} imports {module}"
                elif path.name not in ("__init__.py", "__main__.py"):
                    assert module != "credly_ops.cli", f"{path} imports the registering package"

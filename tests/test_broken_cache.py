"""A cache file that cannot be used says what is wrong, which file, and what to do."""

from __future__ import annotations

import os
import random
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from credly_ops.access import SYSTEM_ACTOR
from credly_ops.cli import main
from credly_ops.config import ConfigError, load_settings
from credly_ops.store import CacheFolderMissing, CacheUnreadable, Store
from credly_ops.workspace import cache_identity


def healthy_cache(path: Path, badges: int = 30_000) -> Path:
    """A real cache with enough rows that its data spans many blocks, recorded as the demo
    organization's (what the commands below are configured for)."""
    store = Store(path, identity=cache_identity(load_settings()))
    with store.transaction() as cur:
        cur.execute(
            "INSERT INTO badges (id, template_id, recipient_email, state, issued_at, synced_at) "
            "SELECT 'b-' || i, 'tpl', 'student' || i || '@example.com', 'pending', "
            "TIMESTAMP '2025-01-01' + to_minutes(i), TIMESTAMP '2025-01-01' FROM range(?) t(i)",
            [badges],
        )
    with store.session() as cur:
        cur.execute("CHECKPOINT")
    return path


def truncate(path: Path) -> None:
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 8)


def empty(path: Path) -> None:
    path.write_bytes(b"")


def random_bytes(path: Path) -> None:
    path.write_bytes(random.Random(7).randbytes(200_000))


def flip_header_block(path: Path) -> None:
    """The checksum of the first metadata block no longer matches."""
    with path.open("r+b") as f:
        f.seek(4096 + 20)
        chunk = f.read(32)
        f.seek(4096 + 20)
        f.write(bytes(b ^ 0xFF for b in chunk))


def flip_data_blocks(path: Path) -> None:
    """The blocks holding the badges' emails no longer match their checksums: the file opens,
    and the damage is found when those blocks are read."""
    with Store(path).session() as cur:
        header, block_size = (
            3 * 4096,
            int(cur.execute("SELECT block_size FROM pragma_database_size()").fetchone()[0]),
        )
        blocks = sorted(
            {
                int(r[0])
                for r in cur.execute(
                    "SELECT block_id FROM pragma_storage_info('badges') "
                    "WHERE column_name = 'recipient_email' AND block_id >= 0"
                ).fetchall()
            }
        )
    assert blocks
    with path.open("r+b") as f:
        for block in blocks:
            f.seek(header + block * block_size + 512)
            chunk = f.read(32)
            f.seek(header + block * block_size + 512)
            f.write(bytes(b ^ 0xFF for b in chunk))


DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated": truncate,
    "empty": empty,
    "random bytes": random_bytes,
    "checksum (header)": flip_header_block,
    "checksum (data)": flip_data_blocks,
}


def count_badges(store: Store) -> int:
    with store.session() as cur:
        row = cur.execute("SELECT count(*), sum(length(recipient_email)) FROM badges").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_cache_is_a_plain_sentence_and_the_file_is_kept(
    kind: str, tmp_path: Path
) -> None:
    path = healthy_cache(tmp_path / "cache.duckdb")
    assert count_badges(Store(path)) == 30_000
    DAMAGE[kind](path)
    damaged = path.read_bytes()

    with pytest.raises(CacheUnreadable) as info:
        count_badges(Store(path))
    message = str(info.value)
    assert isinstance(info.value, ConfigError)
    assert str(path) in message
    assert "damaged" in message
    assert "restore it from a backup" in message
    assert "move it aside" in message and "sync --full" in message
    assert "keep the file rather than delete it" in message
    # never deleted, never rewritten
    assert path.read_bytes() == damaged


EVERY_COMMAND = (
    ["status"],
    ["funnel", "--json"],
    ["audit"],
    ["rules", "export"],
    ["student", "student1@example.com"],
    ["sync"],
)
#: damage inside the badges' blocks is found by the commands that read badges (the funnel
#: reads the completion → badge link, not the badges)
BADGE_READERS = (["student", "student1@example.com"],)


@pytest.mark.parametrize(
    ("kind", "commands"),
    [
        ("truncated", EVERY_COMMAND),
        ("random bytes", EVERY_COMMAND),
        ("empty", EVERY_COMMAND),
        ("checksum (header)", EVERY_COMMAND),
        ("checksum (data)", BADGE_READERS),
    ],
)
def test_commands_exit_2_on_a_damaged_cache(
    kind: str,
    commands: tuple[list[str], ...],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = healthy_cache(tmp_path / "cache.duckdb")
    DAMAGE[kind](path)
    damaged = path.read_bytes()
    for command in commands:
        assert main(["--db", str(path), *command]) == 2, command
        err = capsys.readouterr().err
        assert f"the cache file {path}" in err, command
        assert "restore it from a backup" in err
        assert "Traceback" not in err and "IOException" not in err
    assert path.read_bytes() == damaged


def _read_only_message(path: Path) -> str:
    with pytest.raises(CacheUnreadable) as info:
        Store(path).set_setting("k", "v", actor=SYSTEM_ACTOR)
    return str(info.value)


def test_a_read_only_cache_says_so(tmp_path: Path) -> None:
    """Without write permission on the file and its folder.  Root ignores permissions, so
    there the test skips (the immutable-file test below stands in for it)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    path = healthy_cache(folder / "cache.duckdb", badges=10)
    path.chmod(stat.S_IRUSR)
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.access(path, os.W_OK):
            pytest.skip("running as root: permissions do not stop writes here")
        message = _read_only_message(path)
        assert "cannot be written" in message and str(path) in message
    finally:
        folder.chmod(stat.S_IRWXU)
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_an_immutable_cache_says_it_cannot_be_written(tmp_path: Path) -> None:
    """What a read-only mount looks like to DuckDB, made with ``chattr +i`` (needs root: a
    read-only bind mount cannot be made inside the test)."""
    path = healthy_cache(tmp_path / "cache.duckdb", badges=10)
    before = path.read_bytes()
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("no chattr here")
    made = subprocess.run([chattr, "+i", str(path)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip("cannot make a file immutable here (not root, or the file system refuses)")
    try:
        message = _read_only_message(path)
        assert message.startswith(f"the cache file {path} cannot be written")
        assert "write access" in message and "keep the file rather than delete it" in message
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)
    assert path.read_bytes() == before


def test_a_named_cache_in_a_missing_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    typo = tmp_path / "dtaa" / "cache.duckdb"
    assert main(["--db", str(typo), "status"]) == 2
    err = capsys.readouterr().err
    assert f"the folder {typo.parent}" in err and "does not exist" in err
    assert not typo.parent.exists()
    monkeypatch.setenv("CREDLY_OPS_DB", str(typo))
    assert main(["rules", "export"]) == 2
    assert not typo.parent.exists()
    with pytest.raises(CacheFolderMissing):
        Store(typo, create_folder=False).get_setting("x")
    # the default data/ folder is made when missing, as before
    monkeypatch.delenv("CREDLY_OPS_DB")
    assert main(["status"]) == 0
    assert (tmp_path / "data" / "credly_ops.duckdb").is_file()
    # and a named file whose folder exists is created
    named = tmp_path / "elsewhere.duckdb"
    assert main(["--db", str(named), "status"]) == 0
    assert named.is_file()


def test_a_healthy_copy_still_opens(tmp_path: Path) -> None:
    """The damage, not the copying, is what the tests above detect: a file with many free
    blocks after most of its rows were deleted is healthy.  (The demo cache the app tests copy
    has free blocks past its end: they open it on every run.)"""
    path = healthy_cache(tmp_path / "cache.duckdb", badges=200_000)
    with Store(path).transaction() as cur:
        cur.execute(
            "DELETE FROM badges WHERE issued_at >= TIMESTAMP '2025-01-01' + to_minutes(30000)"
        )
    with Store(path).session() as cur:
        cur.execute("CHECKPOINT")
        total, used = cur.execute(
            "SELECT total_blocks, used_blocks FROM pragma_database_size()"
        ).fetchone()
    assert total > used
    copy = tmp_path / "copy.duckdb"
    shutil.copyfile(path, copy)
    assert count_badges(Store(copy)) == 30_000

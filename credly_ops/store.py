"""The DuckDB cache: connection handling, settings and the audit trail (the tables and their
migrations are :mod:`credly_ops.schema`).

One piece on purpose: opening the file (lock waits, migrations, the organization check, a
damaged file said plainly) is one sequence that every unit of work goes through once; what it
runs is in :mod:`credly_ops.schema`.

Connection discipline (DuckDB lets one process at a time open a file for writing):

* inside a process, one database instance is shared by every thread; each unit of work gets its
  own cursor from :meth:`Store.session`;
* across processes, the file is held only while at least one unit of work is running and is
  let go as soon as the last one ends, so the app and a cron ``credly-ops sync`` take turns;
* a process that finds the file locked retries the named lock error a bounded number of times,
  then raises :class:`CacheBusy` with a plain sentence.

Every connection is opened with external access disabled: nothing read through SQL can reach
the file system or the network, and values always travel as parameters, never inside SQL text.

One cache, one organization: a store opened with the configured :class:`CacheIdentity`
records it in ``cache_identity`` the first time (a cache that already holds data from before
identities were recorded adopts it, with an audit row saying so), and from then on refuses, with
:class:`CacheOfAnotherOrganization`, a process configured for another organization or
environment, before any other statement runs.  The identity is the environment and the
organization id; the API base URL is recorded beside them for people to read, not compared (one
organization can be reached through a proxy, and the demo emulator's port changes).

A cache file that cannot be used (not a DuckDB file, truncated, a checksum that does not match,
no permission to write) is :class:`CacheUnreadable`, a sentence naming the file and what to do;
a cache whose folder does not exist is :class:`CacheFolderMissing` unless the store was told it
may create it (the default ``data/`` folder).  All three are configuration errors: every command
exits 2 and the pages show the sentence.

Timestamps are stored as naive ``TIMESTAMP`` in UTC; :func:`to_db_time` and
:func:`from_db_time` convert at the edge.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from credly_ops.access import SYSTEM_ACTOR, Actor, Permission, require
from credly_ops.config import ConfigError, default_db_path
from credly_ops.schema import DATA_TABLES, migrate
from credly_ops.timeutil import as_utc, utcnow

#: a process that finds the file held tries again this often (jittered ±50 %, so two waiting
#: processes do not knock in step), this many times: about 12 s in all. Short tries catch the
#: moments between another process's units of work, which are short.
LOCK_RETRIES = 400
LOCK_WAIT_SECONDS = 0.03

SETTING_INTEGRATION_NAME = "integration_name"
SETTING_BADGES_TABLE_ENABLED = "badges_earned_enabled"
SETTING_DEMO_ANCHOR = "demo_anchor"
SETTING_DEMO_SEED = "demo_seed"


class CacheBusy(RuntimeError):
    """Another process has held the cache file for longer than we were willing to wait."""


@dataclass(frozen=True)
class CacheIdentity:
    """Which Credly organization, in which environment, a cache mirrors."""

    environment: str
    organization_id: str
    api_url: str

    def same_organization(self, other: CacheIdentity) -> bool:
        return (self.environment, self.organization_id) == (
            other.environment,
            other.organization_id,
        )

    def describe(self) -> str:
        return f"the {self.environment} organization {self.organization_id}"


class CacheOfAnotherOrganization(ConfigError):
    """The cache file mirrors another organization or environment than the configured one."""

    def __init__(self, path: Path, recorded: CacheIdentity, configured: CacheIdentity) -> None:
        self.path, self.recorded, self.configured = path, recorded, configured
        own = default_db_path(configured.environment, configured.organization_id)
        super().__init__(
            f"the cache file {path} belongs to {recorded.describe()}, but this process is "
            f"configured for {configured.describe()}, so it will neither read nor write it: set "
            f"CREDLY_OPS_DB (or --db, or db in the [credly] secrets) to another file, or unset "
            f"it to use this organization's own default file {own}"
        )


class CacheUnreadable(ConfigError):
    """The cache file exists but cannot be used: damaged, not a DuckDB file, or not writable."""

    def __init__(self, path: Path, problem: str, remedy: str) -> None:
        self.path = path
        super().__init__(f"the cache file {path} {problem}: {remedy}")


class CacheFolderMissing(ConfigError):
    """The folder of a cache file named explicitly does not exist (a typo, most often)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(
            f"the folder {path.parent} of the cache file {path} does not exist: check the path "
            f"given in --db, CREDLY_OPS_DB or the [credly] secrets for a typo, or create the "
            f"folder first"
        )


_DAMAGE_MARKS = (
    "not a valid DuckDB database file",
    "Could not read enough bytes",
    "Corrupt database file",
    "checksum",
    "Failure while replaying WAL",
    "database has been invalidated",
)
_PERMISSION_MARKS = (
    "Permission denied",
    "Operation not permitted",
    "Read-only file system",
    "read-only",
)
_KEEP_IT = "the ledger and the audit trail live in it, so keep the file rather than delete it"


def unreadable_cache(path: Path, exc: BaseException) -> CacheUnreadable | None:
    """The plain-sentence error for a DuckDB error that means the file itself is unusable."""
    text = str(exc)
    if any(mark in text for mark in _DAMAGE_MARKS):
        return CacheUnreadable(
            path,
            "is damaged or is not a DuckDB database (truncated, overwritten or corrupt)",
            "restore it from a backup, or move it aside (" + _KEEP_IT + ") and run "
            "'credly-ops sync --full' to build a fresh cache from Credly",
        )
    if any(mark in text for mark in _PERMISSION_MARKS):
        return CacheUnreadable(
            path,
            "cannot be written (no permission, or a read-only mount)",
            "give this user write access to the file and its folder, or point CREDLY_OPS_DB "
            "at a writable copy (" + _KEEP_IT + ")",
        )
    return None


def to_db_time(value: datetime | None) -> datetime | None:
    """Aware datetime → naive UTC for storage."""
    if value is None:
        return None
    return as_utc(value).replace(tzinfo=None)


def from_db_time(value: datetime | None) -> datetime | None:
    """Stored naive UTC → aware UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, duckdb.IOException) and (
        "Could not set lock" in text or "Conflicting lock" in text
    )


@dataclass
class _Open:
    con: duckdb.DuckDBPyConnection
    users: int


class Store:
    """The cache file: open on demand, shared by threads, released when idle.

    ``identity`` is the configured organization (see the module docstring); without one (tests,
    tools that look at any cache) nothing is checked or recorded.  ``create_folder`` allows the
    file's folder to be made when it is missing (the default ``data/``); otherwise a missing
    folder is :class:`CacheFolderMissing`.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        identity: CacheIdentity | None = None,
        create_folder: bool = True,
        lock_retries: int = LOCK_RETRIES,
        lock_wait: float = LOCK_WAIT_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = Path(path)
        self.identity = identity
        self.create_folder = create_folder
        self.lock_retries = lock_retries
        self.lock_wait = lock_wait
        self._sleep = sleep
        self._guard = threading.Lock()
        self._open: _Open | None = None
        self._migrated = False

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # -- connection handling -------------------------------------------------------------

    def _connect(self) -> duckdb.DuckDBPyConnection:
        if not self.path.parent.is_dir():
            if not self.create_folder:
                raise CacheFolderMissing(self.path)
            self.path.parent.mkdir(parents=True, exist_ok=True)
        last: BaseException | None = None
        for attempt in range(self.lock_retries + 1):
            try:
                return duckdb.connect(str(self.path), config={"enable_external_access": False})
            except duckdb.Error as exc:
                if not _is_lock_error(exc):
                    raise self._plain(exc) from None
                last = exc
                if attempt < self.lock_retries:
                    self._sleep(self.lock_wait * random.uniform(0.5, 1.5))
        waited = self.lock_retries * self.lock_wait
        raise CacheBusy(
            f"cache busy: another credly-ops process is using {self.path} "
            f"(waited {waited:.0f} s); try again when it has finished"
        ) from last

    def _plain(self, exc: BaseException) -> BaseException:
        """A file-level DuckDB error as a sentence; any other error as it was."""
        return unreadable_cache(self.path, exc) or exc

    def _acquire(self) -> duckdb.DuckDBPyConnection:
        with self._guard:
            if self._open is None:
                con = self._connect()
                if not self._migrated:
                    try:
                        check_whole(con, self.path)
                        migrate(con)
                        if self.identity is not None:
                            check_identity(con, self.path, self.identity)
                    except BaseException as exc:
                        con.close()
                        if isinstance(exc, duckdb.Error):
                            raise self._plain(exc) from None
                        raise
                    self._migrated = True
                self._open = _Open(con, 0)
            self._open.users += 1
            return self._open.con

    def _release(self) -> None:
        with self._guard:
            if self._open is None:
                return
            self._open.users -= 1
            if self._open.users <= 0:
                con, self._open = self._open.con, None
                try:
                    con.close()
                except duckdb.Error as exc:
                    raise self._plain(exc) from None

    @contextmanager
    def session(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor for one unit of work; the file is let go when no unit is running."""
        con = self._acquire()
        try:
            cur = con.cursor()
            try:
                yield cur
            except duckdb.Error as exc:
                plain = unreadable_cache(self.path, exc)
                if plain is None:
                    raise
                raise plain from None
            finally:
                cur.close()
        finally:
            self._release()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A unit of work that commits as a whole or not at all."""
        with self.session() as cur:
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    @contextmanager
    def held(self) -> Iterator[None]:
        """Keep the file open across several units of work.  Other processes wait meanwhile:
        use it only for work that must not be interleaved, never around network calls."""
        self._acquire()
        try:
            yield
        finally:
            self._release()

    def recorded_identity(self) -> CacheIdentity | None:
        """The organization this cache mirrors, or ``None`` before it is recorded."""
        with self.session() as cur:
            return read_identity(cur)

    # -- settings and audit --------------------------------------------------------------

    def get_setting(self, key: str, default: str | None = None) -> str | None:
        with self.session() as cur:
            row = cur.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
        return default if row is None else row[0]

    def set_setting(self, key: str, value: str, *, actor: Actor) -> None:
        """Change one setting (admins only), with an audit row saying who, from what, to what."""
        require(actor, Permission.CHANGE_SETTINGS)
        with self.transaction() as cur:
            old = cur.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
            cur.execute(
                "INSERT OR REPLACE INTO settings (key, value, updated_at, updated_by) "
                "VALUES (?, ?, ?, ?)",
                [key, value, to_db_time(utcnow()), actor.name],
            )
            write_audit(
                cur,
                actor=actor,
                action="setting.change",
                target=key,
                outcome="ok",
                detail={"from": None if old is None else old[0], "to": value},
            )

    def audit(self, **fields: Any) -> None:
        with self.session() as cur:
            write_audit(cur, **fields)


def write_audit(
    cur: duckdb.DuckDBPyConnection,
    *,
    actor: Actor,
    action: str,
    outcome: str,
    target: str | None = None,
    job_id: str | None = None,
    detail: dict[str, Any] | str | None = None,
) -> None:
    """Append one audit row inside the caller's unit of work, saying who (the actor's name and
    role) did what (never a token: callers pass identifiers and counts, and the detail is JSON
    of plain values)."""
    text = detail if isinstance(detail, str) or detail is None else json.dumps(detail, default=str)
    cur.execute(
        "INSERT INTO audit (occurred_at, actor, role, action, target, job_id, outcome, detail) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [to_db_time(utcnow()), actor.name, actor.role.value, action, target, job_id, outcome, text],
    )


#: a DuckDB file starts with three 4 KiB headers, then its blocks
_FILE_HEADERS = 3 * 4096


def check_whole(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """A file shorter than the blocks in use was truncated: DuckDB would only notice
    when a missing block is read, perhaps deep inside some later command."""
    row = con.execute("SELECT block_size, used_blocks FROM pragma_database_size()").fetchone()
    if row is None or not path.is_file():
        return
    # every block in use sits at its own place in the file (free blocks may lie past its end)
    expected = _FILE_HEADERS + int(row[0]) * int(row[1])
    if int(row[1]) and path.stat().st_size < expected:
        raise CacheUnreadable(
            path,
            "is damaged or is not a DuckDB database (truncated, overwritten or corrupt)",
            "restore it from a backup, or move it aside (" + _KEEP_IT + ") and run "
            "'credly-ops sync --full' to build a fresh cache from Credly",
        )


def read_identity(cur: duckdb.DuckDBPyConnection) -> CacheIdentity | None:
    row = cur.execute(
        "SELECT environment, organization_id, api_url FROM cache_identity WHERE id = 1"
    ).fetchone()
    return None if row is None else CacheIdentity(str(row[0]), str(row[1]), str(row[2]))


def check_identity(con: duckdb.DuckDBPyConnection, path: Path, identity: CacheIdentity) -> None:
    """Refuse a cache of another organization; record the identity in one that has none.

    A cache with no identity and no data is claimed silently.  One with data but no identity
    (written before identities were recorded) adopts the identity of the first configured
    process that opens it, with an audit row saying so: it was made by the only organization
    that install was configured for, and refusing it would lock its ledger away.
    """
    recorded = read_identity(con)
    if recorded is not None:
        if not recorded.same_organization(identity):
            raise CacheOfAnotherOrganization(path, recorded, identity)
        return
    con.execute("BEGIN TRANSACTION")
    try:
        held = {
            table: int(row[0])
            for table in DATA_TABLES
            if (row := con.execute(f"SELECT count(*) FROM {table}").fetchone()) and row[0]
        }
        how = "adopted" if held else "first_use"
        con.execute(
            "INSERT INTO cache_identity (id, environment, organization_id, api_url, recorded_at, "
            "how) VALUES (1, ?, ?, ?, ?, ?)",
            [
                identity.environment,
                identity.organization_id,
                identity.api_url,
                to_db_time(utcnow()),
                how,
            ],
        )
        if held:
            write_audit(
                con,
                actor=SYSTEM_ACTOR,
                action="cache.adopt",
                target=identity.organization_id,
                outcome="ok",
                detail={
                    "environment": identity.environment,
                    "organization_id": identity.organization_id,
                    "api_url": identity.api_url,
                    "why": "the cache held data but no recorded organization",
                    "rows": held,
                    "process": os.getpid(),
                },
            )
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")

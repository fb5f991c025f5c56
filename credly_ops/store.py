"""The DuckDB cache: schema and migrations, connection handling, settings and the audit trail.

One piece on purpose: opening the file (lock waits, migrations, the organization check, a
damaged file said plainly) is one sequence that every unit of work goes through once.

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


MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE templates (
            id VARCHAR PRIMARY KEY,
            name VARCHAR NOT NULL,
            state VARCHAR NOT NULL,
            allow_duplicate_badges BOOLEAN NOT NULL DEFAULT FALSE,
            description VARCHAR,
            image_url VARCHAR,
            url VARCHAR,
            created_at TIMESTAMP,
            updated_at TIMESTAMP,
            synced_at TIMESTAMP NOT NULL
        );
        CREATE TABLE badges (
            id VARCHAR PRIMARY KEY,
            template_id VARCHAR NOT NULL,
            template_name VARCHAR,
            recipient_email VARCHAR NOT NULL,
            first_name VARCHAR,
            last_name VARCHAR,
            issuer_earner_id VARCHAR,
            state VARCHAR NOT NULL,
            issued_at TIMESTAMP NOT NULL,
            expires_at TIMESTAMP,
            state_updated_at TIMESTAMP,
            created_at TIMESTAMP,
            updated_at TIMESTAMP,
            badge_url VARCHAR,
            accept_badge_url VARCHAR,
            image_url VARCHAR,
            replaces_badge_id VARCHAR,
            replacement_badge_id VARCHAR,
            suppress_notification BOOLEAN NOT NULL DEFAULT FALSE,
            revocation_reason VARCHAR,
            synced_at TIMESTAMP NOT NULL
        );
        CREATE TABLE syncs (
            id INTEGER PRIMARY KEY,
            kind VARCHAR NOT NULL,
            started_at TIMESTAMP NOT NULL,
            finished_at TIMESTAMP,
            status VARCHAR NOT NULL,
            templates INTEGER,
            badges INTEGER,
            changed INTEGER,
            pages INTEGER,
            high_water TIMESTAMP,
            error VARCHAR
        );
        CREATE TABLE badge_snapshots (
            sync_id INTEGER NOT NULL,
            taken_at TIMESTAMP NOT NULL,
            template_id VARCHAR NOT NULL,
            state VARCHAR NOT NULL,
            badges INTEGER NOT NULL
        );
        CREATE TABLE completions (
            id VARCHAR PRIMARY KEY,
            email VARCHAR NOT NULL,
            first_name VARCHAR,
            last_name VARCHAR,
            course_id VARCHAR,
            course_title VARCHAR,
            completed_at TIMESTAMP NOT NULL,
            status VARCHAR,
            score DOUBLE,
            source VARCHAR NOT NULL,
            loaded_at TIMESTAMP NOT NULL
        );
        CREATE TABLE badge_rules (
            course_id VARCHAR PRIMARY KEY,
            course_title VARCHAR,
            template_id VARCHAR NOT NULL,
            template_name VARCHAR,
            method VARCHAR NOT NULL,
            expiration_months INTEGER NOT NULL DEFAULT 0,
            expiration_days INTEGER NOT NULL DEFAULT 0,
            require_pass BOOLEAN NOT NULL DEFAULT TRUE,
            active_from TIMESTAMP,
            updated_at TIMESTAMP NOT NULL,
            updated_by VARCHAR NOT NULL
        );
        CREATE TABLE settings (
            key VARCHAR PRIMARY KEY,
            value VARCHAR,
            updated_at TIMESTAMP NOT NULL,
            updated_by VARCHAR NOT NULL
        );
        CREATE TABLE jobs (
            id VARCHAR PRIMARY KEY,
            kind VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            created_by VARCHAR NOT NULL,
            source_name VARCHAR,
            source_sha256 VARCHAR,
            status VARCHAR NOT NULL,
            options VARCHAR,
            rows INTEGER NOT NULL DEFAULT 0,
            started_at TIMESTAMP,
            finished_at TIMESTAMP,
            heartbeat_at TIMESTAMP
        );
        CREATE TABLE ledger (
            job_id VARCHAR NOT NULL,
            row_no INTEGER NOT NULL,
            key VARCHAR NOT NULL,
            email VARCHAR,
            first_name VARCHAR,
            last_name VARCHAR,
            course_id VARCHAR,
            course_title VARCHAR,
            completed_at TIMESTAMP,
            template_id VARCHAR,
            outcome VARCHAR NOT NULL,
            reason VARCHAR NOT NULL,
            flags VARCHAR NOT NULL DEFAULT '',
            issued_at TIMESTAMP,
            expires_at TIMESTAMP,
            target_badge_id VARCHAR,
            status VARCHAR NOT NULL,
            badge_id VARCHAR,
            error_class VARCHAR,
            error_message VARCHAR,
            attempts INTEGER NOT NULL DEFAULT 0,
            updated_at TIMESTAMP NOT NULL,
            PRIMARY KEY (job_id, row_no)
        );
        CREATE SEQUENCE audit_seq START 1;
        CREATE TABLE audit (
            id BIGINT PRIMARY KEY DEFAULT nextval('audit_seq'),
            occurred_at TIMESTAMP NOT NULL,
            actor VARCHAR NOT NULL,
            role VARCHAR,
            action VARCHAR NOT NULL,
            target VARCHAR,
            job_id VARCHAR,
            outcome VARCHAR NOT NULL,
            detail VARCHAR
        );
        """,
    ),
    (
        2,
        """
        CREATE INDEX badges_email ON badges (recipient_email);
        CREATE INDEX badges_updated ON badges (updated_at);
        CREATE INDEX completions_email ON completions (email);
        CREATE INDEX ledger_key ON ledger (key);
        """,
    ),
    (
        3,
        """
        CREATE TABLE cache_identity (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            environment VARCHAR NOT NULL,
            organization_id VARCHAR NOT NULL,
            api_url VARCHAR NOT NULL,
            recorded_at TIMESTAMP NOT NULL,
            how VARCHAR NOT NULL
        );
        """,
    ),
    (
        4,
        """
        ALTER TABLE syncs ADD COLUMN heartbeat_at TIMESTAMP;
        ALTER TABLE syncs ADD COLUMN runner VARCHAR;
        ALTER TABLE syncs ADD COLUMN read INTEGER;
        ALTER TABLE syncs ADD COLUMN removed INTEGER;
        """,
    ),
    (
        5,
        # the ledger keeps what it needs to decide a row again at send time, and the plan's
        # decision beside the latest one (credly_ops.ledger)
        """
        ALTER TABLE ledger ADD COLUMN date_only BOOLEAN DEFAULT FALSE;
        ALTER TABLE ledger ADD COLUMN success_status VARCHAR;
        ALTER TABLE ledger ADD COLUMN planned_outcome VARCHAR;
        ALTER TABLE ledger ADD COLUMN planned_reason VARCHAR;
        CREATE INDEX ledger_email ON ledger (email);
        ALTER TABLE jobs ADD COLUMN runner VARCHAR;
        """,
    ),
    (
        6,
        # completions read from Skilljar (credly_ops.completions_sync): every read with its
        # heartbeat and high-water mark, and the one Skilljar account this cache reads
        """
        CREATE TABLE completion_reads (
            id INTEGER PRIMARY KEY,
            kind VARCHAR NOT NULL,
            started_at TIMESTAMP NOT NULL,
            finished_at TIMESTAMP,
            heartbeat_at TIMESTAMP,
            runner VARCHAR,
            status VARCHAR NOT NULL,
            since TIMESTAMP,
            pages INTEGER NOT NULL DEFAULT 0,
            read INTEGER NOT NULL DEFAULT 0,
            new INTEGER NOT NULL DEFAULT 0,
            skipped INTEGER NOT NULL DEFAULT 0,
            high_water TIMESTAMP,
            error VARCHAR
        );
        CREATE TABLE skilljar_account (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            api_url VARCHAR NOT NULL,
            domain VARCHAR,
            recorded_at TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        7,
        # automatic issuing (credly_ops.autopilot): rules may be manual-only; which completion
        # each automatic decision was about (live rows point at their ledger row, shadow rows
        # carry the decision itself); the workers' heartbeats and the cycles they ran
        """
        ALTER TABLE badge_rules ADD COLUMN automatic BOOLEAN DEFAULT TRUE;
        CREATE TABLE autopilot_decisions (
            job_id VARCHAR NOT NULL,
            row_no INTEGER NOT NULL,
            completion_id VARCHAR NOT NULL,
            shadow BOOLEAN NOT NULL,
            decided_at TIMESTAMP NOT NULL,
            email VARCHAR,
            course_id VARCHAR,
            template_id VARCHAR,
            completed_at TIMESTAMP,
            outcome VARCHAR NOT NULL,
            reason VARCHAR NOT NULL,
            issued_at TIMESTAMP,
            expires_at TIMESTAMP,
            matched_badge_id VARCHAR,
            PRIMARY KEY (job_id, row_no)
        );
        CREATE INDEX autopilot_decisions_completion ON autopilot_decisions (completion_id);
        CREATE TABLE autopilot_workers (
            runner VARCHAR PRIMARY KEY,
            started_at TIMESTAMP NOT NULL,
            heartbeat_at TIMESTAMP NOT NULL,
            next_cycle_at TIMESTAMP,
            stopped_at TIMESTAMP
        );
        CREATE TABLE autopilot_cycles (
            id VARCHAR PRIMARY KEY,
            runner VARCHAR NOT NULL,
            started_at TIMESTAMP NOT NULL,
            finished_at TIMESTAMP,
            shadow BOOLEAN NOT NULL,
            outcome VARCHAR NOT NULL,
            result VARCHAR
        );
        """,
    ),
    (
        8,
        # Skilljar webhook deliveries, moved here from the receiver's spool
        # (credly_ops.hooks.ingestion): accepted | rejected (detail says why) | duplicate
        """
        CREATE TABLE webhook_events (
            id VARCHAR PRIMARY KEY,
            received_at TIMESTAMP NOT NULL,
            event_type VARCHAR,
            email VARCHAR,
            course_id VARCHAR,
            status VARCHAR NOT NULL,
            detail VARCHAR,
            repeat_key VARCHAR,
            body_excerpt VARCHAR,
            processed_at TIMESTAMP NOT NULL
        );
        CREATE INDEX webhook_events_repeat ON webhook_events (repeat_key);
        CREATE INDEX webhook_events_received ON webhook_events (received_at);
        """,
    ),
    (
        9,
        # the completion → badge link the funnel and the Student preview read
        # (credly_ops.links); filled by links.rebuild when a cache is opened with data in it
        """
        ALTER TABLE completions ADD COLUMN date_only BOOLEAN DEFAULT FALSE;
        CREATE TABLE completion_links (
            completion_id VARCHAR,
            email VARCHAR NOT NULL,
            course_id VARCHAR,
            course_title VARCHAR,
            template_id VARCHAR,
            completed_at TIMESTAMP,
            eligible BOOLEAN NOT NULL,
            outcome VARCHAR NOT NULL,
            reason VARCHAR NOT NULL,
            root_id VARCHAR,
            badge_id VARCHAR,
            state VARCHAR,
            issued_at TIMESTAMP,
            sent_at TIMESTAMP,
            accepted_at TIMESTAMP,
            end_sent_at TIMESTAMP,
            end_left_at TIMESTAMP,
            end_suppressed BOOLEAN,
            prior_reminders INTEGER,
            linked_at TIMESTAMP NOT NULL
        );
        """,
    ),
)
#: the migration that creates the completion → badge link (rebuilt after it runs)
LINK_MIGRATION = 9

#: tables whose rows mean a cache already holds an organization's data
DATA_TABLES = (
    "badges",
    "templates",
    "syncs",
    "completions",
    "badge_rules",
    "jobs",
    "ledger",
    "audit",
    "settings",
)

SCHEMA_VERSION = MIGRATIONS[-1][0]


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


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Bring the schema to :data:`SCHEMA_VERSION`; returns the version found before."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
        "applied_at TIMESTAMP NOT NULL)"
    )
    row = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    current = int(row[0]) if row else 0
    for version, sql in MIGRATIONS:
        if version <= current:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            for statement in _statements(sql):
                con.execute(statement)
            con.execute("INSERT INTO schema_version VALUES (?, ?)", [version, to_db_time(utcnow())])
            if version == LINK_MIGRATION and current:
                from credly_ops.links import rebuild

                rebuild(con)
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
    return current


def _statements(sql: str) -> list[str]:
    return [s.strip() for s in sql.split(";") if s.strip()]

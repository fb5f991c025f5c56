"""The DuckDB cache: schema and migrations, connection handling, settings and the audit trail.

Connection discipline (DuckDB lets one process at a time open a file for writing):

* inside a process, one database instance is shared by every thread; each unit of work gets its
  own cursor from :meth:`Store.session`;
* across processes, the file is held only while at least one unit of work is running and is
  let go as soon as the last one ends, so the app and a cron ``credly-ops sync`` take turns;
* a process that finds the file locked retries the named lock error a bounded number of times,
  then raises :class:`CacheBusy` with a plain sentence.

Every connection is opened with external access disabled: nothing read through SQL can reach
the file system or the network, and values always travel as parameters, never inside SQL text.

Timestamps are stored as naive ``TIMESTAMP`` in UTC; :func:`to_db_time` and
:func:`from_db_time` convert at the edge.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from credly_ops.access import Actor, Permission, require
from credly_ops.timeutil import as_utc, utcnow

LOCK_RETRIES = 40
LOCK_WAIT_SECONDS = 0.25

SETTING_INTEGRATION_NAME = "integration_name"
SETTING_BADGES_TABLE_ENABLED = "badges_earned_enabled"
SETTING_DEMO_ANCHOR = "demo_anchor"
SETTING_DEMO_SEED = "demo_seed"


class CacheBusy(RuntimeError):
    """Another process has held the cache file for longer than we were willing to wait."""


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
        10,
        # the ledger keeps what it needs to decide a row again at send time, and the plan's
        # decision beside the latest one (credly_ops.ledger)
        """
        ALTER TABLE ledger ADD COLUMN date_only BOOLEAN DEFAULT FALSE;
        ALTER TABLE ledger ADD COLUMN success_status VARCHAR;
        ALTER TABLE ledger ADD COLUMN planned_outcome VARCHAR;
        ALTER TABLE ledger ADD COLUMN planned_reason VARCHAR;
        UPDATE ledger SET planned_outcome = outcome, planned_reason = reason;
        CREATE INDEX ledger_email ON ledger (email);
        ALTER TABLE jobs ADD COLUMN runner VARCHAR;
        """,
    ),
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
    """The cache file: open on demand, shared by threads, released when idle."""

    def __init__(
        self,
        path: Path | str,
        *,
        lock_retries: int = LOCK_RETRIES,
        lock_wait: float = LOCK_WAIT_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = Path(path)
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        last: BaseException | None = None
        for attempt in range(self.lock_retries + 1):
            try:
                return duckdb.connect(str(self.path), config={"enable_external_access": False})
            except duckdb.Error as exc:
                if not _is_lock_error(exc):
                    raise
                last = exc
                if attempt < self.lock_retries:
                    self._sleep(self.lock_wait)
        waited = self.lock_retries * self.lock_wait
        raise CacheBusy(
            f"cache busy: another credly-ops process is using {self.path} "
            f"(waited {waited:.0f} s); try again when it has finished"
        ) from last

    def _acquire(self) -> duckdb.DuckDBPyConnection:
        with self._guard:
            if self._open is None:
                con = self._connect()
                if not self._migrated:
                    try:
                        migrate(con)
                    except BaseException:
                        con.close()
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
                self._open.con.close()
                self._open = None

    @contextmanager
    def session(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor for one unit of work; the file is let go when no unit is running."""
        con = self._acquire()
        try:
            cur = con.cursor()
            try:
                yield cur
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
        """Keep the file open across several units of work (a long sync or job)."""
        self._acquire()
        try:
            yield
        finally:
            self._release()

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
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
    return current


def _statements(sql: str) -> list[str]:
    return [s.strip() for s in sql.split(";") if s.strip()]

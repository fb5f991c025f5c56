"""The cache's tables: every migration, in order, as the SQL that creates and changes them, and
:func:`migrate`, which brings a file to :data:`SCHEMA_VERSION` (each migration in its own
transaction, recorded in ``schema_version``).  :class:`credly_ops.store.Store` runs it when it
opens a file; this is where to read what a table holds.
"""

from __future__ import annotations

import duckdb

from credly_ops.timeutil import utcnow

__all__ = ["DATA_TABLES", "LINK_MIGRATION", "MIGRATIONS", "SCHEMA_VERSION", "migrate"]

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
            applied_at = utcnow().replace(tzinfo=None)  # naive UTC, as every time is stored
            con.execute("INSERT INTO schema_version VALUES (?, ?)", [version, applied_at])
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

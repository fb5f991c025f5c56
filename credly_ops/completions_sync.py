"""Skilljar completions into the cache: the read behind automatic issuing.

:func:`sync_completions` reads completed enrollments from Skilljar (``reference/skilljar_api.md``
§4) into the ``completions`` table with ``source = 'skilljar'``:

* **incremental** on a high-water mark — the largest ``completed_at`` over every row any earlier
  read saw (Skilljar promises no order) — **with an overlap window** (default 3 days, the cache
  setting ``completions.overlap_days``, or the caller's): an admin can mark a student complete
  with a date in the past, so each read asks again for the last few days before the mark;
* **full** (``full=True``, and the first read of a cache) rereads everything;
* **de-duplicated**: within a read by (enrollment id, completed_at); across reads by the
  completion's id (:func:`credly_ops.lms.completion_id`), so a completion read twice is one row,
  and a row already in the cache is left as it is (never counted new again);
* **recorded** in ``completion_reads``: each read with its kind, heartbeat (refreshed with every
  page), pages, rows and high-water mark, so the status can say when completions were last read;
  a read whose process died is marked ``interrupted`` by the next one;
* **one page at a time**: each page is stored in its own unit of work, so the cache file (shared
  with the app, the issuer and the webhook receiver) is never held while Skilljar is being read.

One Skilljar account per cache: the first read records the account's API root (and training
domain) in ``skilljar_account``; a process configured for another one gets
:class:`OtherSkilljarAccount` (a configuration error: exit 2) before anything is read.

:func:`read_student_completions` is the read a webhook hint asks for: one student's completions
(of one course), through the same storing and recording.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb

from credly_ops.access import SYSTEM_ACTOR, Actor
from credly_ops.config import ConfigError, SkilljarSettings
from credly_ops.lms import completion_id, save_completions
from credly_ops.runners import runner_is_gone, this_runner
from credly_ops.skilljar import SkilljarClient, SkilljarCompletion
from credly_ops.store import Store, from_db_time, to_db_time, write_audit
from credly_ops.timeutil import as_utc, utcnow

__all__ = [
    "DEFAULT_OVERLAP",
    "READ_STALE_AFTER",
    "SETTING_OVERLAP_DAYS",
    "SOURCE",
    "CompletionsRead",
    "OtherSkilljarAccount",
    "high_water_mark",
    "last_completions_read",
    "overlap_from_settings",
    "read_student_completions",
    "record_demo_read",
    "skilljar_client",
    "sync_completions",
]

#: how far before the high-water mark an incremental read starts again
DEFAULT_OVERLAP = timedelta(days=3)
#: the cache setting that overrides :data:`DEFAULT_OVERLAP` (a whole number of days)
SETTING_OVERLAP_DAYS = "completions.overlap_days"
#: the ``completions.source`` of what Skilljar gave
SOURCE = "skilljar"
#: a ``running`` read not heard of for this long has lost its process
READ_STALE_AFTER = timedelta(minutes=10)

Progress = Callable[[int, str], None]


@dataclass(frozen=True)
class CompletionsRead:
    """What one read of completions did."""

    completions: int  # Skilljar completions the cache holds after the read
    new: int  # added by this read
    pages: int  # pages read
    seconds: float
    high_water: datetime | None
    skipped: int  # enrollments unreadable / not usable

    def as_json(self) -> dict[str, Any]:
        return {
            "completions": self.completions,
            "new": self.new,
            "pages": self.pages,
            "seconds": round(self.seconds, 3),
        }


class OtherSkilljarAccount(ConfigError):
    """The cache holds completions of another Skilljar account (or training domain)."""

    def __init__(
        self, recorded: tuple[str, str | None], configured: tuple[str, str | None]
    ) -> None:
        def name(account: tuple[str, str | None]) -> str:
            url, domain = account
            return f"{url} ({'domain ' + domain if domain else 'all domains'})"

        super().__init__(
            f"this cache holds completions read from the Skilljar account at {name(recorded)}, "
            f"but Skilljar is configured for {name(configured)}; one cache reads one Skilljar "
            "account: configure that account again, or use another cache file (--db)"
        )


def skilljar_client(settings: SkilljarSettings, **kwargs: Any) -> SkilljarClient:
    """A client for the configured Skilljar account."""
    return SkilljarClient.from_settings(settings, **kwargs)


# -- settings ---------------------------------------------------------------------------------


def overlap_from_settings(store: Store) -> timedelta:
    """The overlap window: the cache setting ``completions.overlap_days``, else 3 days."""
    raw = store.get_setting(SETTING_OVERLAP_DAYS)
    if raw is None or not raw.strip():
        return DEFAULT_OVERLAP
    try:
        days = int(raw.strip())
    except ValueError:
        days = -1
    if days < 0:
        raise ConfigError(
            f"the setting {SETTING_OVERLAP_DAYS} must be a whole number of days, 0 or more; "
            f"got {raw[:20]!r}"
        )
    return timedelta(days=days)


# -- the account --------------------------------------------------------------------------------


def _account_of(client: SkilljarClient) -> tuple[str, str | None]:
    return client.api_url.rstrip("/").lower(), client.domain


def _check_account(cur: duckdb.DuckDBPyConnection, client: SkilljarClient) -> bool:
    """Refuse another account; whether one is recorded already."""
    row = cur.execute("SELECT api_url, domain FROM skilljar_account WHERE id = 1").fetchone()
    if row is None:
        return False
    recorded = (str(row[0]), None if row[1] is None else str(row[1]))
    configured = _account_of(client)
    if recorded != configured:
        raise OtherSkilljarAccount(recorded, configured)
    return True


def _record_account(cur: duckdb.DuckDBPyConnection, client: SkilljarClient) -> None:
    if _check_account(cur, client):
        return
    url, domain = _account_of(client)
    cur.execute(
        "INSERT INTO skilljar_account (id, api_url, domain, recorded_at) VALUES (1, ?, ?, ?)",
        [url, domain, to_db_time(utcnow())],
    )


# -- the read history -------------------------------------------------------------------------


def high_water_mark(store: Store) -> datetime | None:
    """The largest ``completed_at`` any finished read (or the demo build) saw."""
    with store.session() as cur:
        row = cur.execute(
            "SELECT max(high_water) FROM completion_reads "
            "WHERE status = 'ok' AND kind IN ('full', 'incremental', 'demo')"
        ).fetchone()
    return None if row is None else from_db_time(row[0])


def last_completions_read(store: Store) -> dict[str, Any] | None:
    """The newest read of completions (any status), for the status page, or ``None``."""
    with store.session() as cur:
        row = cur.execute(
            "SELECT id, kind, status, started_at, finished_at, coalesce(heartbeat_at, started_at), "
            "runner, since, pages, read, new, skipped, high_water, error FROM completion_reads "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()
    if row is None:
        return None
    keys = (
        "id",
        "kind",
        "status",
        "started_at",
        "finished_at",
        "last_heard_at",
        "runner",
        "since",
        "pages",
        "read",
        "new",
        "skipped",
        "high_water",
        "error",
    )
    out = dict(zip(keys, row, strict=True))
    for key in ("started_at", "finished_at", "last_heard_at", "since", "high_water"):
        out[key] = from_db_time(out[key])
    if out["status"] == "running" and _abandoned(out["runner"], out["last_heard_at"], utcnow()):
        out["status"] = "interrupted"
    return out


def _abandoned(runner: str | None, heard: datetime | None, at: datetime) -> bool:
    return runner_is_gone(runner) or heard is None or heard < at - READ_STALE_AFTER


def _claim(store: Store, kind: str, started_at: datetime, since: datetime | None) -> int:
    with store.transaction() as cur:
        for read_id, runner, heard in cur.execute(
            "SELECT id, runner, coalesce(heartbeat_at, started_at) FROM completion_reads "
            "WHERE status = 'running'"
        ).fetchall():
            if _abandoned(runner, from_db_time(heard), started_at):
                cur.execute(
                    "UPDATE completion_reads SET status = 'interrupted', finished_at = ?, "
                    "error = ? WHERE id = ?",
                    [heard, "the process running it stopped before it finished", read_id],
                )
        row = cur.execute("SELECT coalesce(max(id), 0) + 1 FROM completion_reads").fetchone()
        read_id = int(row[0]) if row else 1
        cur.execute(
            "INSERT INTO completion_reads (id, kind, started_at, heartbeat_at, runner, status, "
            "since) VALUES (?, ?, ?, ?, ?, 'running', ?)",
            [
                read_id,
                kind,
                to_db_time(started_at),
                to_db_time(started_at),
                this_runner(),
                to_db_time(since),
            ],
        )
    return read_id


def _fail(
    store: Store, read_id: int, kind: str, exc: BaseException, now: datetime, actor: Actor
) -> None:
    status = "interrupted" if isinstance(exc, KeyboardInterrupt | SystemExit) else "failed"
    with store.transaction() as cur:
        cur.execute(
            "UPDATE completion_reads SET status = ?, finished_at = ?, error = ? WHERE id = ?",
            # the class and Skilljar's scrubbed words: never a secret (see the client)
            [status, to_db_time(now), f"{type(exc).__name__}: {str(exc)[:500]}", read_id],
        )
        write_audit(
            cur,
            actor=actor,
            action="completions.read",
            target=kind,
            outcome=status,
            detail={"error": type(exc).__name__},
        )


def record_demo_read(
    cur: duckdb.DuckDBPyConnection, *, rows: int, high_water: datetime | None, at: datetime
) -> None:
    """Inside the demo build's unit of work: the demo's completions were loaded as a full read
    of the demo Skilljar would store them, so the first real read is incremental."""
    row = cur.execute("SELECT coalesce(max(id), 0) + 1 FROM completion_reads").fetchone()
    cur.execute(
        "INSERT INTO completion_reads (id, kind, started_at, finished_at, heartbeat_at, runner, "
        "status, read, new, high_water) VALUES (?, 'demo', ?, ?, ?, ?, 'ok', ?, ?, ?)",
        [
            int(row[0]) if row else 1,
            to_db_time(at),
            to_db_time(at),
            to_db_time(at),
            this_runner(),
            rows,
            rows,
            to_db_time(high_water),
        ],
    )


# -- storing ----------------------------------------------------------------------------------


def store_completions(
    cur: duckdb.DuckDBPyConnection, found: Sequence[SkilljarCompletion], loaded_at: datetime
) -> int:
    """Inside the caller's unit of work: add the completions the cache does not hold yet (as
    ``source = 'skilljar'``); returns how many were new.  A completion already there — read
    before, uploaded, or loaded by the demo — is left as it is."""
    if not found:
        return 0
    by_id = {completion_id(item.completion): item.completion for item in found}
    held = {
        str(row[0])
        for row in cur.execute(
            "SELECT id FROM completions WHERE id IN (SELECT unnest(?::VARCHAR[]))",
            [list(by_id)],
        ).fetchall()
    }
    fresh = [c for key, c in by_id.items() if key not in held]
    save_completions(cur, fresh, source=SOURCE, loaded_at=loaded_at)
    return len(fresh)


def _held(cur: duckdb.DuckDBPyConnection) -> int:
    row = cur.execute("SELECT count(*) FROM completions WHERE source = ?", [SOURCE]).fetchone()
    return int(row[0]) if row else 0


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(as_utc(a), as_utc(b))


# -- the reads ----------------------------------------------------------------------------------


def sync_completions(
    store: Store,
    client: SkilljarClient,
    *,
    full: bool = False,
    overlap: timedelta | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
    actor: Actor = SYSTEM_ACTOR,
) -> CompletionsRead:
    """Read Skilljar's completions into the cache (see the module docstring)."""
    if overlap is not None and overlap < timedelta(0):
        raise ConfigError("the overlap window must be 0 days or more")
    started_at = now or utcnow()
    with store.session() as cur:
        _check_account(cur, client)
    window = overlap_from_settings(store) if overlap is None else overlap
    mark = None if full else high_water_mark(store)
    kind = "full" if mark is None else "incremental"
    since = None if mark is None else mark - window
    return _read(
        store,
        client,
        kind=kind,
        since=since,
        started_at=started_at,
        mark=mark,
        progress=progress,
        actor=actor,
        filters={"completed_gte": since},
    )


def read_student_completions(
    store: Store,
    client: SkilljarClient,
    *,
    email: str,
    course_id: str | None,
    now: datetime | None = None,
    actor: Actor = SYSTEM_ACTOR,
) -> CompletionsRead:
    """Read one student's completions (of ``course_id`` when given) into the cache: the truth
    behind a webhook hint.  Does not move the high-water mark of the incremental reads."""
    if "@" not in email:
        raise ValueError("a student's completions are read by email address")
    started_at = now or utcnow()
    with store.session() as cur:
        _check_account(cur, client)
    return _read(
        store,
        client,
        kind="student",
        since=None,
        started_at=started_at,
        mark=None,
        progress=None,
        actor=actor,
        filters={"email": email.strip(), "course_id": course_id or None},
    )


def _read(
    store: Store,
    client: SkilljarClient,
    *,
    kind: str,
    since: datetime | None,
    started_at: datetime,
    mark: datetime | None,
    progress: Progress | None,
    actor: Actor,
    filters: dict[str, Any],
) -> CompletionsRead:
    clock = time.perf_counter()
    read_id = _claim(store, kind, started_at, since)
    pages = read = new = skipped = 0
    high_water: datetime | None = None
    try:
        for page in client.completion_pages(**filters):
            pages += 1
            read += len(page.completions)
            skipped += len(page.skipped)
            high_water = _later(high_water, page.high_water)
            with store.transaction() as cur:
                _record_account(cur, client)
                new += store_completions(cur, page.completions, started_at)
                cur.execute(
                    "UPDATE completion_reads SET heartbeat_at = ?, pages = ?, read = ?, new = ?, "
                    "skipped = ? WHERE id = ?",
                    [to_db_time(utcnow()), pages, read, new, skipped, read_id],
                )
            if progress is not None:
                progress(read, f"{read:,} completions read, {new:,} new")
        kept = _later(mark, high_water)
        with store.transaction() as cur:
            held = _held(cur)
            finished = to_db_time(utcnow())
            cur.execute(
                "UPDATE completion_reads SET status = 'ok', finished_at = ?, heartbeat_at = ?, "
                "pages = ?, read = ?, new = ?, skipped = ?, high_water = ? WHERE id = ?",
                [finished, finished, pages, read, new, skipped, to_db_time(kept), read_id],
            )
            write_audit(
                cur,
                actor=actor,
                action="completions.read",
                target=kind,
                outcome="ok",
                detail={"pages": pages, "read": read, "new": new, "skipped": skipped},
            )
    except BaseException as exc:
        _fail(store, read_id, kind, exc, utcnow(), actor)
        raise
    return CompletionsRead(
        completions=held,
        new=new,
        pages=pages,
        seconds=time.perf_counter() - clock,
        high_water=kept,
        skipped=skipped,
    )

"""The sync history: who is syncing, how far it got, and whether the last sync finished.

Every sync (full, incremental or ``reconcile``) is a row of ``syncs``.  One runs at a time per
cache: :func:`claim_sync` records a new ``running`` row, after marking ``interrupted`` any
``running`` row whose process is gone (same machine) or silent for :data:`SYNC_STALE_AFTER`;
while a live one runs it raises :class:`SyncRunning`.  Each page refreshes the row's heartbeat,
pages and badges read (:func:`beat`), inside that page's own unit of work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb

from credly_ops.access import Actor
from credly_ops.runners import runner_is_gone, this_runner
from credly_ops.store import CacheBusy, Store, from_db_time, to_db_time, write_audit
from credly_ops.timeutil import utcnow

#: a ``running`` sync not heard of for this long (its heartbeat is refreshed with every page)
#: has lost its process: the next sync marks it ``interrupted``.  A process on this machine
#: that is gone is recognised at once, whatever its heartbeat says.
SYNC_STALE_AFTER = timedelta(minutes=10)


class SyncRunning(CacheBusy):
    """Another live sync of the same cache is running; this one did not start."""


def last_sync(store: Store) -> dict[str, Any] | None:
    """The latest finished full or incremental sync, or ``None``."""
    with store.session() as cur:
        row = cur.execute(
            "SELECT id, kind, started_at, finished_at, templates, badges, changed, pages, "
            "high_water FROM syncs WHERE status = 'ok' AND kind IN ('full', 'incremental') "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()
    if row is None:
        return None
    keys = ("id", "kind", "started_at", "finished_at", "templates", "badges", "changed", "pages")
    out = dict(zip(keys, row[:8], strict=True))
    out["started_at"] = from_db_time(out["started_at"])
    out["finished_at"] = from_db_time(out["finished_at"])
    out["high_water"] = from_db_time(row[8])
    return out


def last_reconcile(store: Store) -> dict[str, Any] | None:
    """The latest finished reconciliation, or ``None``."""
    with store.session() as cur:
        row = cur.execute(
            "SELECT id, started_at, finished_at, read, removed, badges, pages FROM syncs "
            "WHERE status = 'ok' AND kind = 'reconcile' ORDER BY id DESC LIMIT 1"
        ).fetchone()
    if row is None:
        return None
    keys = ("id", "started_at", "finished_at", "seen", "removed", "badges", "pages")
    out = dict(zip(keys, row, strict=True))
    out["started_at"] = from_db_time(out["started_at"])
    out["finished_at"] = from_db_time(out["finished_at"])
    return out


# -- who is syncing: one sync at a time, a heartbeat per page ------------------------------


def _is_abandoned(
    runner: str | None, last_heard: datetime | None, at: datetime, stale_after: timedelta
) -> bool:
    return runner_is_gone(runner) or last_heard is None or last_heard < at - stale_after


def _settle_abandoned(
    cur: duckdb.DuckDBPyConnection, at: datetime, stale_after: timedelta, actor: Actor
) -> list[int]:
    """Mark every ``running`` sync whose process is gone, or silent for ``stale_after``,
    ``interrupted``; returns their ids."""
    rows = cur.execute(
        "SELECT id, kind, runner, coalesce(heartbeat_at, started_at), pages, read FROM syncs "
        "WHERE status = 'running'"
    ).fetchall()
    settled = []
    for sync_id, kind, runner, heard, pages, read in rows:
        last_heard = from_db_time(heard)
        if not _is_abandoned(runner, last_heard, at, stale_after):
            continue
        cur.execute(
            "UPDATE syncs SET status = 'interrupted', finished_at = ?, error = ? WHERE id = ?",
            [
                to_db_time(last_heard),
                "the process running it stopped before it finished",
                sync_id,
            ],
        )
        write_audit(
            cur,
            actor=actor,
            action="sync",
            target=str(kind),
            outcome="interrupted",
            detail={"sync_id": int(sync_id), "pages": pages, "read": read},
        )
        settled.append(int(sync_id))
    return settled


def claim_sync(
    store: Store,
    kind: str,
    started_at: datetime,
    stale_after: timedelta,
    actor: Actor,
) -> int:
    """Record a new ``running`` sync, after settling abandoned ones; refuses while a live sync
    of this cache runs in another process or thread."""
    with store.transaction() as cur:
        _settle_abandoned(cur, started_at, stale_after, actor)
        live = cur.execute(
            "SELECT kind, started_at FROM syncs WHERE status = 'running' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        sync_id = 0
        if live is None:
            row = cur.execute("SELECT coalesce(max(id), 0) + 1 FROM syncs").fetchone()
            sync_id = int(row[0]) if row else 1
            cur.execute(
                "INSERT INTO syncs (id, kind, started_at, status, heartbeat_at, runner, pages, "
                "read, changed) VALUES (?, ?, ?, 'running', ?, ?, 0, 0, 0)",
                [sync_id, kind, to_db_time(started_at), to_db_time(started_at), this_runner()],
            )
    if live is not None:
        since = from_db_time(live[1])
        assert since is not None
        raise SyncRunning(
            f"cache busy: a {live[0]} sync of {store.path} started at "
            f"{since:%Y-%m-%d %H:%M} UTC is still running; try again when it has finished"
        )
    return sync_id


def beat(
    cur: duckdb.DuckDBPyConnection,
    sync_id: int,
    *,
    pages: int,
    read: int,
    changed: int,
) -> None:
    """Inside a page's unit of work: the sync is alive, and this is how far it got."""
    cur.execute(
        "UPDATE syncs SET heartbeat_at = ?, pages = ?, read = ?, changed = ? WHERE id = ?",
        [to_db_time(utcnow()), pages, read, changed, sync_id],
    )


def record_failure(
    store: Store,
    sync_id: int,
    kind: str,
    exc: BaseException,
    actor: Actor,
    now: Callable[[], datetime],
) -> None:
    status = "interrupted" if isinstance(exc, KeyboardInterrupt | SystemExit) else "failed"
    with store.transaction() as cur:
        cur.execute(
            "UPDATE syncs SET status = ?, finished_at = ?, error = ? WHERE id = ?",
            [status, to_db_time(now()), type(exc).__name__ + ": " + str(exc)[:500], sync_id],
        )
        write_audit(
            cur,
            actor=actor,
            action="sync",
            target=kind,
            outcome=status,
            detail={"error": type(exc).__name__},
        )


# -- health: did the last sync finish? -------------------------------------------------------


@dataclass(frozen=True)
class SyncHealth:
    """What the sync history says about how far the cache can be trusted.

    ``unfinished`` is the newest full or incremental sync after the last finished one, when it
    did not finish (``status`` ``interrupted``, ``failed``, or ``running`` while its process is
    alive), with when it started, when it was last heard of, and how much it had read.
    """

    last_sync: dict[str, Any] | None
    unfinished: dict[str, Any] | None
    last_reconcile: dict[str, Any] | None

    @property
    def finished(self) -> bool:
        """The last sync finished (or none ever started)."""
        return self.unfinished is None

    @property
    def message(self) -> str | None:
        """One sentence for people, or ``None`` when the last sync finished."""
        u = self.unfinished
        if u is None:
            return None
        started = f"{u['started_at']:%Y-%m-%d %H:%M} UTC"
        read = f"{u['pages']:,} pages, {u['read']:,} badges read"
        partial = (
            "no sync has finished yet, so the cache holds partial data"
            if self.last_sync is None
            else "badges changed since the last finished sync "
            f"({self.last_sync['finished_at']:%Y-%m-%d %H:%M} UTC) may be missing or stale"
        )
        if u["status"] == "running":
            return f"A {u['kind']} sync started at {started} is running ({read} so far); {partial}."
        heard = u["last_heard_at"]
        when = f", last heard of at {heard:%Y-%m-%d %H:%M} UTC" if heard else ""
        how = "failed" if u["status"] == "failed" else "was interrupted"
        return (
            f"The last sync did not finish: a {u['kind']} sync started at {started} {how} "
            f"after {read}{when}; {partial}. Run a sync again."
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "last_sync": self.last_sync,
            "last_sync_finished": self.finished,
            "unfinished_sync": self.unfinished,
            "sync_warning": self.message,
            "last_reconcile": self.last_reconcile,
        }


def sync_health(
    store: Store,
    *,
    now: Callable[[], datetime] = utcnow,
    stale_after: timedelta = SYNC_STALE_AFTER,
) -> SyncHealth:
    """Did the last sync finish?  Reads only: an abandoned sync shows as ``interrupted`` here
    and is marked so in the history by the next sync."""
    done = last_sync(store)
    with store.session() as cur:
        row = cur.execute(
            "SELECT id, kind, status, started_at, coalesce(heartbeat_at, started_at), runner, "
            "coalesce(pages, 0), coalesce(read, 0), error FROM syncs "
            "WHERE kind IN ('full', 'incremental') AND status <> 'ok' AND id > ? "
            "ORDER BY id DESC LIMIT 1",
            [0 if done is None else done["id"]],
        ).fetchone()
    unfinished = None
    if row is not None:
        sync_id, kind, status, started_at, heard, runner, pages, read, error = row
        last_heard = from_db_time(heard)
        if status == "running" and _is_abandoned(runner, last_heard, now(), stale_after):
            status = "interrupted"
        unfinished = {
            "id": int(sync_id),
            "kind": kind,
            "status": status,
            "started_at": from_db_time(started_at),
            "last_heard_at": last_heard,
            "pages": int(pages),
            "read": int(read),
            "error": error,
        }
    return SyncHealth(done, unfinished, last_reconcile(store))

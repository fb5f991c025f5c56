"""Credly → DuckDB: full and incremental sync, with a snapshot of badge states per sync.

* A **full** sync reads every template and every issued badge (the high-volume export, which
  pages with an opaque cursor), upserts them, and removes cached badges Credly no longer has.
* An **incremental** sync reads ``/badges`` newest-change first (``sort=-updated_at``) and stops
  at the previous sync's high-water mark, so its cost grows with the changes, not with the size
  of the organization.  Without a previous sync it is a full one.
* A **reconciliation** (:func:`reconcile`) reads only the ids of every badge and removes the
  cached ones Credly no longer has (deleted badges never show in an incremental sync).

Each unit of work is one page: the file is held while a page is written and let go while the
next one is read from Credly, so the app, a CLI job and a cron sync take turns.  Every page also
refreshes the sync's heartbeat in the sync history, so a sync whose process was killed is told
from a live one (:func:`sync_health`, and the next sync marks it ``interrupted``).
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, TypeVar

import duckdb
import pandas as pd

from credly_ops.access import SYSTEM_ACTOR, Actor, Permission, require
from credly_ops.models import BadgeTemplate, IssuedBadge, normalize_email
from credly_ops.store import CacheBusy, Store, from_db_time, to_db_time, write_audit
from credly_ops.timeutil import utcnow

#: how far below the previous high-water mark an incremental sync still reads.  Every
#: ``updated_at`` comes from Credly's own clock, so badges stamped exactly at the mark are the
#: only ones read twice (an idempotent upsert); a badge that changes while a sync is paging is
#: newer than the mark the sync records, so the next sync reads it.
HIGH_WATER_OVERLAP = timedelta(0)

#: a ``running`` sync not heard of for this long (its heartbeat is refreshed with every page)
#: has lost its process: the next sync marks it ``interrupted``.  A process on this machine
#: that is gone is recognised at once, whatever its heartbeat says.
SYNC_STALE_AFTER = timedelta(minutes=10)

Progress = Callable[[int, str], None]
T = TypeVar("T")


class SyncRunning(CacheBusy):
    """Another live sync of the same cache is running; this one did not start."""


class SyncSource(Protocol):
    """What sync needs from a Credly client."""

    def list_templates(self) -> list[BadgeTemplate]: ...

    def high_volume_pages(self) -> Iterable[list[IssuedBadge]]: ...

    def badges_page(self, page: int, *, sort: str) -> tuple[list[IssuedBadge], Any]: ...


@dataclass(frozen=True)
class SyncResult:
    kind: Literal["full", "incremental"]
    templates: int
    badges: int
    changed: int
    pages: int
    seconds: float

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["seconds"] = round(self.seconds, 3)
        return out


BADGE_COLUMNS = (
    "id",
    "template_id",
    "template_name",
    "recipient_email",
    "first_name",
    "last_name",
    "issuer_earner_id",
    "state",
    "issued_at",
    "expires_at",
    "state_updated_at",
    "created_at",
    "updated_at",
    "badge_url",
    "accept_badge_url",
    "image_url",
    "replaces_badge_id",
    "replacement_badge_id",
    "suppress_notification",
    "revocation_reason",
    "synced_at",
)


def badge_row(badge: IssuedBadge, synced_at: datetime) -> dict[str, Any]:
    image = badge.image_url or badge.badge_template.image_url
    return {
        "id": badge.id,
        "template_id": badge.badge_template.id,
        "template_name": badge.badge_template.name,
        "recipient_email": normalize_email(badge.recipient_email),
        "first_name": badge.issued_to_first_name,
        "last_name": badge.issued_to_last_name,
        "issuer_earner_id": badge.issuer_earner_id,
        "state": badge.state,
        "issued_at": to_db_time(badge.issued_at),
        "expires_at": to_db_time(badge.expires_at),
        "state_updated_at": to_db_time(badge.state_updated_at),
        "created_at": to_db_time(badge.created_at),
        "updated_at": to_db_time(badge.updated_at),
        "badge_url": badge.badge_url,
        "accept_badge_url": badge.accept_badge_url,
        "image_url": image,
        "replaces_badge_id": badge.replaces_badge_id,
        "replacement_badge_id": badge.replacement_badge_id,
        "suppress_notification": bool(badge.suppress_badge_notification_email),
        "revocation_reason": badge.revocation_reason,
        "synced_at": to_db_time(synced_at),
    }


_TS_COLUMNS = ("issued_at", "expires_at", "state_updated_at", "created_at", "updated_at")


def _badge_frame(badges: Sequence[IssuedBadge], synced_at: datetime) -> pd.DataFrame:
    frame = pd.DataFrame([badge_row(b, synced_at) for b in badges], columns=list(BADGE_COLUMNS))
    for column in (*_TS_COLUMNS, "synced_at"):
        frame[column] = pd.to_datetime(frame[column])
    return frame


def upsert_badges(
    cur: duckdb.DuckDBPyConnection, badges: Sequence[IssuedBadge], *, synced_at: datetime
) -> int:
    """Insert or update badges; returns how many were new or different from the cache."""
    if not badges:
        return 0
    frame = _badge_frame(badges, synced_at)
    cur.register("incoming_badges", frame)
    try:
        row = cur.execute(
            """
            SELECT count(*) FROM incoming_badges i LEFT JOIN badges b ON b.id = i.id
            WHERE b.id IS NULL
               OR b.state IS DISTINCT FROM i.state
               OR b.updated_at IS DISTINCT FROM i.updated_at
               OR b.expires_at IS DISTINCT FROM i.expires_at
               OR b.replacement_badge_id IS DISTINCT FROM i.replacement_badge_id
            """
        ).fetchone()
        changed = int(row[0]) if row else 0
        columns = ", ".join(BADGE_COLUMNS)
        cur.execute(
            f"INSERT OR REPLACE INTO badges ({columns}) SELECT {columns} FROM incoming_badges"
        )
    finally:
        cur.unregister("incoming_badges")
    return changed


def upsert_templates(
    cur: duckdb.DuckDBPyConnection, templates: Sequence[BadgeTemplate], *, synced_at: datetime
) -> None:
    for t in templates:
        cur.execute(
            "INSERT OR REPLACE INTO templates (id, name, state, allow_duplicate_badges, "
            "description, image_url, url, created_at, updated_at, synced_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                t.id,
                t.name,
                str(t.state),
                bool(t.allow_duplicate_badges),
                t.description,
                t.image_url,
                t.url,
                to_db_time(t.created_at),
                to_db_time(t.updated_at),
                to_db_time(synced_at),
            ],
        )


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


def _this_runner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def runner_is_gone(runner: str | None) -> bool:
    """True when ``runner`` (``host:pid``) was a process on this machine that no longer runs.

    A runner on another machine, or one that cannot be probed, is not known to be gone: its
    heartbeat decides."""
    if not runner:
        return False
    host, _, pid_text = runner.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


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


def _claim(
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
                [sync_id, kind, to_db_time(started_at), to_db_time(started_at), _this_runner()],
            )
    if live is not None:
        since = from_db_time(live[1])
        assert since is not None
        raise SyncRunning(
            f"cache busy: a {live[0]} sync of {store.path} started at "
            f"{since:%Y-%m-%d %H:%M} UTC is still running; try again when it has finished"
        )
    return sync_id


def _beat(
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


def _record_failure(
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


def sync(
    client: SyncSource,
    store: Store,
    *,
    full: bool = False,
    actor: Actor = SYSTEM_ACTOR,
    progress: Progress | None = None,
    now: Callable[[], datetime] = utcnow,
    stale_after: timedelta = SYNC_STALE_AFTER,
) -> SyncResult:
    """Bring the cache up to date with Credly; records the sync, a snapshot and an audit row.

    The file is held one page at a time, never while Credly is being read.  A sync left
    ``running`` by a process that died is marked ``interrupted`` first; while another live
    sync runs, :class:`SyncRunning` is raised and nothing is read from Credly.
    """
    require(actor, Permission.SYNC)
    started = time.perf_counter()
    started_at = now()
    previous = last_sync(store)
    kind: Literal["full", "incremental"] = (
        "full" if full or previous is None or previous["high_water"] is None else "incremental"
    )
    sync_id = _claim(store, kind, started_at, stale_after, actor)
    try:
        templates = client.list_templates()
        pages = 1 + (len(templates) - 1) // 50 if templates else 1
        with store.transaction() as cur:
            upsert_templates(cur, templates, synced_at=started_at)
            _beat(cur, sync_id, pages=pages, read=0, changed=0)
        if kind == "full":
            changed, removed, badge_pages = _full_badges(
                client, store, sync_id, started_at, pages, progress
            )
        else:
            assert previous is not None
            changed, badge_pages = _incremental_badges(
                client, store, sync_id, started_at, previous["high_water"], pages, progress
            )
            removed = 0
        pages += badge_pages
        return _finish(store, sync_id, kind, started_at, changed, removed, pages, started, actor)
    except BaseException as exc:
        _record_failure(store, sync_id, kind, exc, actor, now)
        raise


def prefetched(pages: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Read ``pages`` in a background thread, ``depth`` ahead, so reading Credly overlaps
    writing the cache.  An error while reading is raised here; stopping early stops the reader.
    """
    buffer: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for page in pages:
                if not put(("page", page)):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put(("error", exc))
        else:
            put(("done", None))

    reader = threading.Thread(target=pump, name="sync-reader", daemon=True)
    reader.start()
    try:
        while True:
            kind, value = buffer.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        reader.join(timeout=5)


def _full_badges(
    client: SyncSource,
    store: Store,
    sync_id: int,
    started_at: datetime,
    pages_before: int,
    progress: Progress | None,
) -> tuple[int, int, int]:
    """Every badge, a page per unit of work; then the ones Credly no longer has go.
    Returns (changed, removed, pages)."""
    changed = pages = seen = 0
    for items in prefetched(client.high_volume_pages()):
        pages += 1
        seen += len(items)
        with store.transaction() as cur:
            changed += upsert_badges(cur, items, synced_at=started_at)
            _beat(cur, sync_id, pages=pages_before + pages, read=seen, changed=changed)
        if progress:
            progress(seen, f"{seen:,} badges read")
    with store.transaction() as cur:
        row = cur.execute(
            "SELECT count(*) FROM badges WHERE synced_at < ?", [to_db_time(started_at)]
        ).fetchone()
        removed = int(row[0]) if row else 0
        cur.execute("DELETE FROM badges WHERE synced_at < ?", [to_db_time(started_at)])
    return changed + removed, removed, pages


def _incremental_badges(
    client: SyncSource,
    store: Store,
    sync_id: int,
    started_at: datetime,
    high_water: datetime,
    pages_before: int,
    progress: Progress | None,
) -> tuple[int, int]:
    floor = high_water - HIGH_WATER_OVERLAP
    changed = pages = seen = 0
    page = 1
    while True:
        items, info = client.badges_page(page, sort="-updated_at")
        pages += 1
        fresh = [b for b in items if b.updated_at is None or b.updated_at >= floor]
        seen += len(fresh)
        with store.transaction() as cur:
            if fresh:
                changed += upsert_badges(cur, fresh, synced_at=started_at)
            _beat(cur, sync_id, pages=pages_before + pages, read=seen, changed=changed)
        if progress:
            progress(seen, f"{seen:,} changed badges read")
        total_pages = int(getattr(info, "total_pages", 1) or 1)
        if len(fresh) < len(items) or not items or page >= total_pages:
            break
        page += 1
    return changed, pages


def _finish(
    store: Store,
    sync_id: int,
    kind: Literal["full", "incremental"],
    started_at: datetime,
    changed: int,
    removed: int,
    pages: int,
    started: float,
    actor: Actor,
) -> SyncResult:
    with store.transaction() as cur:
        counts = cur.execute(
            "SELECT (SELECT count(*) FROM templates), (SELECT count(*) FROM badges), "
            "(SELECT max(updated_at) FROM badges)"
        ).fetchone()
        assert counts is not None
        n_templates, n_badges, high_water = int(counts[0]), int(counts[1]), counts[2]
        cur.execute(
            "INSERT INTO badge_snapshots (sync_id, taken_at, template_id, state, badges) "
            "SELECT ?, ?, template_id, state, count(*) FROM badges GROUP BY template_id, state",
            [sync_id, to_db_time(started_at)],
        )
        seconds = time.perf_counter() - started
        finished = to_db_time(utcnow())
        cur.execute(
            "UPDATE syncs SET status = 'ok', finished_at = ?, heartbeat_at = ?, templates = ?, "
            "badges = ?, changed = ?, removed = ?, pages = ?, high_water = ? WHERE id = ?",
            [
                finished,
                finished,
                n_templates,
                n_badges,
                changed,
                removed,
                pages,
                high_water,
                sync_id,
            ],
        )
        write_audit(
            cur,
            actor=actor,
            action="sync",
            target=kind,
            outcome="ok",
            detail={"templates": n_templates, "badges": n_badges, "changed": changed},
        )
    return SyncResult(kind, n_templates, n_badges, changed, pages, seconds)


# -- reconciliation: badges Credly no longer has ---------------------------------------------


class ReconcileSource(Protocol):
    """What reconciliation needs from a Credly client."""

    def high_volume_id_pages(self) -> Iterable[list[str]]: ...


@dataclass(frozen=True)
class ReconcileResult:
    seen: int
    removed: int
    badges: int
    pages: int
    seconds: float
    removed_ids: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "seen": self.seen,
            "removed": self.removed,
            "badges": self.badges,
            "pages": self.pages,
            "seconds": round(self.seconds, 3),
        }


#: how many removed badge ids the audit row lists (the count is always complete)
AUDIT_REMOVED_IDS = 50


def reconcile(
    client: ReconcileSource,
    store: Store,
    *,
    actor: Actor = SYSTEM_ACTOR,
    progress: Progress | None = None,
    now: Callable[[], datetime] = utcnow,
    stale_after: timedelta = SYNC_STALE_AFTER,
) -> ReconcileResult:
    """Remove cached badges Credly no longer has (a DELETE, such as a GDPR erasure, never
    shows in an incremental sync, which reads by ``updated_at``).

    One id-only pass over the high-volume export (``badge_format=minimal``), holding the file a
    page at a time; then, in one unit of work, every cached badge that pass did not list and
    that was cached before it started is removed.  Recorded in the sync history as kind
    ``reconcile`` with an audit row.  The ids seen are kept in memory (about 100 bytes each).
    """
    require(actor, Permission.SYNC)
    started = time.perf_counter()
    started_at = now()
    sync_id = _claim(store, "reconcile", started_at, stale_after, actor)
    try:
        seen: set[str] = set()
        pages = 0
        for ids in prefetched(client.high_volume_id_pages()):
            pages += 1
            seen.update(ids)
            with store.transaction() as cur:
                _beat(cur, sync_id, pages=pages, read=len(seen), changed=0)
            if progress:
                progress(len(seen), f"{len(seen):,} badge ids read")
        with store.transaction() as cur:
            frame = pd.DataFrame({"id": sorted(seen)}, dtype="object")
            cur.register("credly_badge_ids", frame)
            try:
                gone = [
                    str(r[0])
                    for r in cur.execute(
                        "SELECT b.id FROM badges b WHERE b.synced_at < ? AND NOT EXISTS "
                        "(SELECT 1 FROM credly_badge_ids c WHERE c.id = b.id) ORDER BY b.id",
                        [to_db_time(started_at)],
                    ).fetchall()
                ]
            finally:
                cur.unregister("credly_badge_ids")
            if gone:
                cur.executemany("DELETE FROM badges WHERE id = ?", [[g] for g in gone])
            row = cur.execute("SELECT count(*) FROM badges").fetchone()
            n_badges = int(row[0]) if row else 0
            finished = to_db_time(utcnow())
            cur.execute(
                "UPDATE syncs SET status = 'ok', finished_at = ?, heartbeat_at = ?, badges = ?, "
                "changed = ?, removed = ?, read = ?, pages = ? WHERE id = ?",
                [finished, finished, n_badges, len(gone), len(gone), len(seen), pages, sync_id],
            )
            write_audit(
                cur,
                actor=actor,
                action="sync",
                target="reconcile",
                outcome="ok",
                detail={
                    "seen": len(seen),
                    "removed": len(gone),
                    "removed_ids": gone[:AUDIT_REMOVED_IDS],
                },
            )
    except BaseException as exc:
        _record_failure(store, sync_id, "reconcile", exc, actor, now)
        raise
    return ReconcileResult(
        len(seen), len(gone), n_badges, pages, time.perf_counter() - started, tuple(gone)
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

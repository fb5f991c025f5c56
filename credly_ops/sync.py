"""Credly → DuckDB: full and incremental sync, with a snapshot of badge states per sync.

* A **full** sync reads every template and every issued badge (the high-volume export, which
  pages with an opaque cursor), upserts them, and removes cached badges Credly no longer has.
* An **incremental** sync reads ``/badges`` newest-change first (``sort=-updated_at``) and stops
  at the previous sync's high-water mark, so its cost grows with the changes, not with the size
  of the organization.  Without a previous sync it is a full one.
* A **reconciliation** (:func:`credly_ops.reconcile.reconcile`) reads only the ids of every
  badge and removes the cached ones Credly no longer has (deleted badges never show in an
  incremental sync).

Each unit of work is one page: the file is held while a page is written and let go while the
next one is read from Credly, so the app, a CLI job and a cron sync take turns.  Every page also
refreshes the sync's heartbeat in the sync history, so a sync whose process was killed is told
from a live one (:mod:`credly_ops.sync_history`: ``sync_health``, and the next sync marks it
``interrupted``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, TypeVar

import duckdb
import pandas as pd

from credly_ops.access import SYSTEM_ACTOR, Actor, Permission, require
from credly_ops.links import rebuild, relink
from credly_ops.models import BadgeTemplate, IssuedBadge, normalize_email
from credly_ops.store import Store, to_db_time, write_audit
from credly_ops.sync_history import (
    SYNC_STALE_AFTER,
    beat,
    claim_sync,
    last_sync,
    record_failure,
)
from credly_ops.timeutil import utcnow

__all__ = [
    "BADGE_COLUMNS",
    "HIGH_WATER_OVERLAP",
    "Progress",
    "SyncResult",
    "SyncSource",
    "badge_row",
    "last_sync",
    "prefetched",
    "sync",
    "upsert_badges",
    "upsert_templates",
]

#: how far below the previous high-water mark an incremental sync still reads.  Every
#: ``updated_at`` comes from Credly's own clock, so badges stamped exactly at the mark are the
#: only ones read twice (an idempotent upsert); a badge that changes while a sync is paging is
#: newer than the mark the sync records, so the next sync reads it.
HIGH_WATER_OVERLAP = timedelta(0)

Progress = Callable[[int, str], None]
T = TypeVar("T")


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
    cur: duckdb.DuckDBPyConnection,
    badges: Sequence[IssuedBadge],
    *,
    synced_at: datetime,
    relinking: bool = True,
) -> int:
    """Insert or update badges; returns how many were new or different from the cache.

    The completion → badge link of their recipients is brought up to date too, unless the
    caller relinks everyone at the end (``relinking=False``: a full sync)."""
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
    if relinking:
        relink(cur, frame["recipient_email"].unique().tolist())
    return changed


def upsert_templates(
    cur: duckdb.DuckDBPyConnection, templates: Sequence[BadgeTemplate], *, synced_at: datetime
) -> None:
    """Insert or update templates; a template whose state or one-badge-per-student setting
    changed changes what its completions' outcomes are, so the whole link is rebuilt then."""
    before = set(cur.execute("SELECT id, state, allow_duplicate_badges FROM templates").fetchall())
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
    after = {(t.id, str(t.state), bool(t.allow_duplicate_badges)) for t in templates}
    changed = {tid for tid, _, _ in after - before}
    if changed:
        ruled = {str(r[0]) for r in cur.execute("SELECT template_id FROM badge_rules").fetchall()}
        if changed & ruled:
            rebuild(cur)


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
    sync_id = claim_sync(store, kind, started_at, stale_after, actor)
    try:
        templates = client.list_templates()
        pages = 1 + (len(templates) - 1) // 50 if templates else 1
        with store.transaction() as cur:
            upsert_templates(cur, templates, synced_at=started_at)
            beat(cur, sync_id, pages=pages, read=0, changed=0)
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
        record_failure(store, sync_id, kind, exc, actor, now)
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
    """Every badge, a page per unit of work; then the ones Credly no longer has go, and the
    completion → badge link is built afresh.  Returns (changed, removed, pages)."""
    changed = pages = seen = 0
    for items in prefetched(client.high_volume_pages()):
        pages += 1
        seen += len(items)
        with store.transaction() as cur:
            changed += upsert_badges(cur, items, synced_at=started_at, relinking=False)
            beat(cur, sync_id, pages=pages_before + pages, read=seen, changed=changed)
        if progress:
            progress(seen, f"{seen:,} badges read")
    with store.transaction() as cur:
        row = cur.execute(
            "SELECT count(*) FROM badges WHERE synced_at < ?", [to_db_time(started_at)]
        ).fetchone()
        removed = int(row[0]) if row else 0
        cur.execute("DELETE FROM badges WHERE synced_at < ?", [to_db_time(started_at)])
        rebuild(cur)
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
            beat(cur, sync_id, pages=pages_before + pages, read=seen, changed=changed)
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

"""Reconciliation: cached badges Credly no longer has leave the cache.

Credly's DELETE (a GDPR erasure) never shows in an incremental sync, which reads by
``updated_at``.  :func:`reconcile` reads only the id of every badge and removes the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import pandas as pd

from credly_ops.access import SYSTEM_ACTOR, Actor, Permission, require
from credly_ops.links import relink
from credly_ops.store import Store, to_db_time, write_audit
from credly_ops.sync import Progress, prefetched
from credly_ops.sync_history import SYNC_STALE_AFTER, beat, claim_sync, record_failure
from credly_ops.timeutil import utcnow


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
    sync_id = claim_sync(store, "reconcile", started_at, stale_after, actor)
    try:
        seen: set[str] = set()
        pages = 0
        for ids in prefetched(client.high_volume_id_pages()):
            pages += 1
            seen.update(ids)
            with store.transaction() as cur:
                beat(cur, sync_id, pages=pages, read=len(seen), changed=0)
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
                emails = cur.execute(
                    "SELECT DISTINCT recipient_email FROM badges "
                    "WHERE id IN (SELECT unnest(?::VARCHAR[]))",
                    [gone],
                ).fetchall()
                cur.executemany("DELETE FROM badges WHERE id = ?", [[g] for g in gone])
                relink(cur, [str(e) for (e,) in emails])
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
        record_failure(store, sync_id, "reconcile", exc, actor, now)
        raise
    return ReconcileResult(
        len(seen), len(gone), n_badges, pages, time.perf_counter() - started, tuple(gone)
    )

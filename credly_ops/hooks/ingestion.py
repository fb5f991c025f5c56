"""From the spool into the cache: ``webhook_events`` (migration 8), and the hints it yields.

:func:`ingest` reads each spooled file, records it (accepted, rejected with why, or duplicate
of an event already accepted) and deletes the file only after its row is committed.  A crash
anywhere loses nothing and duplicates nothing: a file whose row is already in the cache (the
crash came between the commit and the delete) is simply deleted.  The accepted events'
:class:`~credly_ops.hooks.events.Hint` are returned once each, in the order received.  A hint
lost to such a crash costs nothing but time: the issuer's scheduled read finds the completion.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from credly_ops.hooks.events import Hint, read_event
from credly_ops.hooks.spool import Spool, SpoolDamaged
from credly_ops.store import Store, from_db_time, to_db_time
from credly_ops.timeutil import utcnow

log = logging.getLogger(__name__)

#: two threads of a process never take the same files (processes take turns on the cache file)
_ONE_AT_A_TIME = threading.Lock()
#: how many spooled files one unit of work moves (the cache is let go between batches)
BATCH = 200

_COLUMNS = (
    "id, received_at, event_type, email, course_id, status, detail, repeat_key, "
    "body_excerpt, processed_at"
)


def ingest(store: Store, spool: Spool, *, now: datetime | None = None) -> list[Hint]:
    """Move every spooled event into ``webhook_events``; the accepted ones' hints, once each."""
    with _ONE_AT_A_TIME:
        spool.sweep_partials()
        hints: list[Hint] = []
        files = spool.files()
        for start in range(0, len(files), BATCH):
            hints.extend(_ingest_batch(store, spool, files[start : start + BATCH], now))
        return hints


def _ingest_batch(
    store: Store, spool: Spool, files: list[Path], now: datetime | None
) -> list[Hint]:
    hints: list[Hint] = []
    done: list[Path] = []
    with store.transaction() as cur:
        processed = to_db_time(now or utcnow())
        for path in files:
            try:
                event = spool.read(path)
            except FileNotFoundError:
                continue  # another ingest took it
            except SpoolDamaged as exc:
                log.warning("%s; set aside", exc)
                path.rename(path.with_name(path.name + ".damaged"))
                continue
            if cur.execute("SELECT 1 FROM webhook_events WHERE id = ?", [event.id]).fetchone():
                done.append(path)  # recorded before a crash; its hint was already given
                continue
            read = read_event(
                event.body,
                too_large=event.too_large,
                undecodable=event.undecodable,
                size=event.size,
            )
            status, detail = read.status, read.detail
            if status == "accepted":
                earlier = cur.execute(
                    "SELECT id FROM webhook_events WHERE repeat_key = ? AND status = 'accepted' "
                    "ORDER BY received_at LIMIT 1",
                    [read.repeat_key],
                ).fetchone()
                if earlier is not None:
                    status, detail = "duplicate", f"repeats event {earlier[0]}"
            cur.execute(
                f"INSERT INTO webhook_events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    event.id,
                    to_db_time(event.received_at),
                    read.event_type,
                    read.email,
                    read.course_id,
                    status,
                    detail,
                    read.repeat_key,
                    read.excerpt,
                    processed,
                ],
            )
            done.append(path)
            if status == "accepted" and read.email is not None:
                hints.append(Hint(event.id, read.email, read.course_id, event.received_at))
    for path in done:
        spool.remove(path)
    return hints


def recent_events(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    """The latest webhook events, newest first: ``id, received_at, event_type, email,
    course_id, status, detail, processed_at`` (times aware UTC)."""
    with store.session() as cur:
        rows = cur.execute(
            "SELECT id, received_at, event_type, email, course_id, status, detail, processed_at "
            "FROM webhook_events ORDER BY received_at DESC, id DESC LIMIT ?",
            [max(int(limit), 0)],
        ).fetchall()
    keys = ("id", "received_at", "event_type", "email", "course_id", "status", "detail")
    out = []
    for row in rows:
        item = dict(zip(keys, row[:7], strict=True))
        item["received_at"] = from_db_time(row[1])
        item["processed_at"] = from_db_time(row[7])
        out.append(item)
    return out


def last_delivery(store: Store) -> datetime | None:
    """When the latest authenticated delivery (of any status) was received, or ``None``."""
    with store.session() as cur:
        row = cur.execute("SELECT max(received_at) FROM webhook_events").fetchone()
    return from_db_time(row[0]) if row else None

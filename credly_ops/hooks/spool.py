"""The spool: where the receiver puts each delivery, durably, without touching the cache.

DuckDB lets one process at a time hold the cache file, and a worker may hold it for a while;
Skilljar wants an answer quickly.  So the receiver writes each authenticated delivery to a
folder beside the cache (``<cache stem>.hooks/``), one file per event, written to a temporary
name, flushed to disk and renamed into place: a file that has its final name is whole.
:func:`credly_ops.hooks.ingestion.ingest` moves the files into the cache and deletes each one
only after its row is committed.

A spool file holds what was received and when — the body (with the webhook secret masked, in
case a sender put it there), its size, whether it was too large — and never a header.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from credly_ops.timeutil import as_utc, utcnow

#: the final name of a spooled event
SUFFIX = ".event.json"
#: a file being written (a crash can leave one: it was never answered 2xx, so the sender retries)
PARTIAL_SUFFIX = ".part"
#: a partial file older than this is a crash's leftover and is removed by the next ingest
PARTIAL_MAX_AGE_SECONDS = 3600.0
#: how often :func:`wait_for_events` looks at the folder
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class SpooledEvent:
    """One delivery as received: ``body`` is ``None`` when it was too large (``too_large``) or
    not UTF-8 text (``undecodable``)."""

    id: str
    received_at: datetime
    size: int
    too_large: bool
    undecodable: bool
    body: str | None
    path: Path

    def record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "received_at": self.received_at.isoformat(),
            "size": self.size,
            "too_large": self.too_large,
            "undecodable": self.undecodable,
            "body": self.body,
        }


class SpoolDamaged(ValueError):
    """A spool file whose content is not a spooled event (said with the file's name)."""


class Spool:
    """A folder of spooled events (made on first write; its parent must exist)."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)

    @classmethod
    def beside(cls, db_path: Path | str) -> Spool:
        """The spool of the cache file ``db_path``: ``<folder>/<stem>.hooks/``."""
        path = Path(db_path)
        return cls(path.parent / f"{path.stem}.hooks")

    def __repr__(self) -> str:
        return f"Spool({str(self.folder)!r})"

    def write(
        self,
        body: bytes | None,
        *,
        size: int,
        mask: Callable[[str], str] | None = None,
        now: datetime | None = None,
    ) -> SpooledEvent:
        """Spool one delivery (``body`` ``None``: it was larger than the limit) and return it
        once it is on disk: temporary file, fsync, rename, fsync of the folder.  ``mask``
        rewrites the body's text before it is written (the webhook secret masked)."""
        received = as_utc(now or utcnow())
        event_id = f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"
        text: str | None = None
        if body is not None:
            try:
                text = body.decode("utf-8")
                if mask is not None:
                    text = mask(text)
            except UnicodeDecodeError:
                text = None
        self.folder.mkdir(mode=0o700, exist_ok=True)
        final = self.folder / f"{event_id}{SUFFIX}"
        undecodable = body is not None and text is None
        event = SpooledEvent(event_id, received, size, body is None, undecodable, text, final)
        data = json.dumps(event.record(), ensure_ascii=False).encode("utf-8")
        partial = self.folder / f".{event_id}{PARTIAL_SUFFIX}"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(partial, final)
        _fsync_folder(self.folder)
        return event

    def files(self) -> list[Path]:
        """The spooled events waiting, oldest first."""
        try:
            names = [e.name for e in os.scandir(self.folder) if e.name.endswith(SUFFIX)]
        except FileNotFoundError:
            return []
        return [self.folder / name for name in sorted(names)]

    def waiting(self) -> int:
        """How many spooled events wait to be ingested."""
        return len(self.files())

    def read(self, path: Path) -> SpooledEvent:
        """The event in ``path``; :class:`SpoolDamaged` when it is not one."""
        try:
            raw = json.loads(path.read_bytes().decode("utf-8"))
            received = datetime.fromisoformat(raw["received_at"])
            body = raw.get("body")
            if body is not None and not isinstance(body, str):
                raise TypeError("body")
            return SpooledEvent(
                id=str(raw["id"]),
                received_at=as_utc(received),
                size=int(raw["size"]),
                too_large=bool(raw["too_large"]),
                undecodable=bool(raw.get("undecodable")),
                body=body,
                path=path,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise SpoolDamaged(f"spool file {path.name} is not a spooled event") from exc

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def sweep_partials(self, max_age: float = PARTIAL_MAX_AGE_SECONDS) -> int:
        """Remove partial files older than ``max_age`` seconds (a crash mid-write); how many."""
        removed = 0
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return 0
        cutoff = time.time() - max_age
        for entry in entries:
            if entry.name.endswith(PARTIAL_SUFFIX):
                try:
                    if entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed


def wait_for_events(spool: Spool, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for an event to be spooled (by any process); ``True`` as
    soon as one waits, ``False`` when none came.  Polls the folder every
    :data:`POLL_SECONDS` — a directory listing, nothing more."""
    deadline = time.monotonic() + max(timeout, 0.0)
    while True:
        if spool.files():
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(POLL_SECONDS, left))


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (where the platform allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

"""The local Credly's journal: one JSON line per :class:`Change`, appended and replayed.

A world seeded the same way and then given its journal back is the world that wrote it, so
the demo keeps its state across restarts.  A line cut short by a crash mid-write ends the
replay: everything before it holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from credly_ops.emulators.credly.records import Change


class Journal:
    """Append-only file of changes; opened on the first append."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None

    def append(self, change: Change) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", encoding="utf-8")
        self._handle.write(json.dumps(change.to_json(), separators=(",", ":")) + "\n")
        self._handle.flush()

    def changes(self) -> Iterator[Change]:
        """Every whole change written so far, oldest first."""
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except json.JSONDecodeError:
                    return  # a line cut short by a crash mid-write: everything before it holds
                yield Change.from_json(data)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

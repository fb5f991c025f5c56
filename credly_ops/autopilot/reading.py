"""The cycle's completions step: what automatic issuing reads from Skilljar before deciding.

Each cycle, in this order:

1. the webhook deliveries spooled by ``credly-ops hooks`` (or the demo) are moved into the
   cache (:func:`credly_ops.hooks.ingest`); each accepted one is only a *hint*: that student's
   enrollments in that course are read over the authenticated API
   (:func:`credly_ops.completions_sync.read_student_completions`), so a forged or malformed
   event can never make a completion — only Skilljar's answer can;
2. the incremental read of every completed enrollment since the high-water mark, minus the
   overlap window (:func:`credly_ops.completions_sync.sync_completions`) — the truth, which
   also finds whatever a lost webhook would have said.

:func:`hinted` tells the loop that deliveries wait, so a webhook starts the next cycle within
a second or two in any process sharing the cache file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from credly_ops.completions_sync import read_student_completions, sync_completions
from credly_ops.hooks import Spool, ingest
from credly_ops.skilljar.client import SkilljarClient
from credly_ops.workspace import Workspace

logger = logging.getLogger(__name__)


def spool_of(ws: Workspace) -> Spool:
    """The webhook spool of this workspace's cache file."""
    return Spool.beside(ws.settings.db_path)


def completions_step(ws: Workspace, client: SkilljarClient) -> Callable[[], int]:
    """The ``read_completions`` step of :func:`credly_ops.autopilot.run_cycle`: hints first,
    then the incremental read; returns how many completions are new in the cache."""
    spool = spool_of(ws)

    def read() -> int:
        new = 0
        for hint in ingest(ws.store, spool):
            found = read_student_completions(
                ws.store, client, email=hint.email, course_id=hint.course_id
            )
            logger.info(
                "webhook hint %s: %d new completion(s) read for that student",
                hint.event_id,
                found.new,
            )
            new += found.new
        return new + sync_completions(ws.store, client).new

    return read


def hinted(ws: Workspace) -> Callable[[], bool]:
    """For the loop: ``True`` when webhook deliveries wait in the spool (any process's)."""
    spool = spool_of(ws)

    def waiting() -> bool:
        try:
            return bool(spool.files())
        except OSError:
            return False

    return waiting

"""Completions read benchmark: a full read of 200,000 completed enrollments from the local
Skilljar, then 100 new completions and an incremental read.

Prints one JSON object.  The incremental read asks only for completions since the high-water
mark less the overlap window (3 days), so it reads the new completions and the window's, not
the whole history: ``incremental_pages`` against ``full_pages``, and ``pages_ratio`` /
``seconds_ratio`` (incremental over full).  The completions are spread over the 548 days
before now, as in the demo world; the emulator serves from a thread of this process.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from credly_ops.completions_sync import DEFAULT_OVERLAP, sync_completions
from credly_ops.emulators.server import serve_in_thread
from credly_ops.emulators.skilljar import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, create_app
from credly_ops.emulators.skilljar.app import build_world
from credly_ops.skilljar import SkilljarClient
from credly_ops.store import Store

COMPLETIONS = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
NEW = 100
STUDENTS = 50_000
WINDOW = timedelta(days=548)
COURSES = ("crs-python-foundations", "crs-cloud-practitioner", "crs-data-analysis")


def main() -> None:
    rng = random.Random(11)
    world = build_world(seed=11)  # the demo client, three courses and a few completions
    now = datetime.now(UTC).replace(microsecond=0)
    for n in range(COMPLETIONS):
        world.add_enrollment(
            email=f"student{n % STUDENTS}@example.com",
            course_id=COURSES[n % len(COURSES)],
            completed_at=now
            - WINDOW
            + timedelta(seconds=rng.randint(0, int(WINDOW.total_seconds()))),
            success_status="PASSED" if rng.random() > 0.1 else "FAILED",
            score=round(rng.uniform(20, 100), 1),
        )
    completed = sum(1 for e in world.enrollments.values() if e.completed_at is not None)
    server = serve_in_thread(create_app(world), host="127.0.0.1", port=0)
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            SkilljarClient(
                api_url=server.url, client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET
            ) as client,
        ):
            store = Store(Path(tmp) / "bench.duckdb")
            full = sync_completions(store, client, full=True)
            for n in range(NEW):
                world.add_enrollment(
                    email=f"newcomer{n}@example.com",
                    course_id=COURSES[n % len(COURSES)],
                    completed_at=datetime.now(UTC),
                    success_status="PASSED",
                )
            incremental = sync_completions(store, client)
    finally:
        server.stop()
    print(
        json.dumps(
            {
                "benchmark": "completions_read",
                "completed_enrollments": completed,
                "overlap_days": DEFAULT_OVERLAP.days,
                "full_pages": full.pages,
                "full_seconds": round(full.seconds, 3),
                "full_completions": full.completions,
                "new_completions": NEW,
                "incremental_pages": incremental.pages,
                "incremental_seconds": round(incremental.seconds, 3),
                "incremental_new": incremental.new,
                "pages_ratio": round(incremental.pages / full.pages, 4),
                "seconds_ratio": round(incremental.seconds / full.seconds, 4),
            }
        )
    )


if __name__ == "__main__":
    main()

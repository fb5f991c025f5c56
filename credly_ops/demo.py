"""The demo, product side: the demo's completions and badge rules in the cache, "is the demo
built", and forgetting it.

The world itself (both sides, deterministic from an anchor and a seed) is built by
:mod:`credly_ops.emulators.demo_world`; the emulator loads its Credly side, this module its
LMS side.
"""

from __future__ import annotations

import random
import secrets
from pathlib import Path
from typing import Any

import httpx

from credly_ops.access import SYSTEM_ACTOR, Actor
from credly_ops.completions_sync import SOURCE, record_demo_read
from credly_ops.config import DEMO_SKILLJAR_API_URL
from credly_ops.emulators.demo_world import (
    COURSES,
    JOURNAL_FILE,
    SKILLJAR_JOURNAL_FILE,
    WORLD_FILE,
    DemoWorld,
    new_student,
    read_world_file,
)
from credly_ops.lms import delete_completions, save_completions
from credly_ops.models import IssueMethod
from credly_ops.rules import replace_rules
from credly_ops.store import Store, write_audit


def load_cache(store: Store, demo: DemoWorld, *, actor: Actor = SYSTEM_ACTOR) -> None:
    """Write the LMS half of the demo (completions and badge rules) into the cache.

    The completions live in the demo Skilljar (:mod:`credly_ops.emulators.skilljar.seeds`);
    they are stored as a full read of it would store them (``source = 'skilljar'``, the same
    ids) and recorded as read up to the latest one, so the first completions sync of the demo
    is an incremental one and finds them all already here.
    """
    with store.transaction() as cur:
        delete_completions(cur, source="demo")  # a demo built before Skilljar held them
        delete_completions(cur, source=SOURCE)
        cur.execute("DELETE FROM completion_reads")  # the reads of the world being replaced
        save_completions(cur, demo.completions, source=SOURCE, loaded_at=demo.anchor)
        record_demo_read(
            cur,
            rows=len(demo.completions),
            high_water=max((c.completed_at for c in demo.completions), default=None),
            at=demo.anchor,
        )
        write_audit(
            cur,
            actor=actor,
            action="demo.build",
            target="cache",
            outcome="ok",
            detail={"completions": len(demo.completions), "rules": len(demo.rules)},
        )
    replace_rules(store, demo.rules, actor=actor)


def demo_is_built(store: Store, data_dir: Path) -> bool:
    if read_world_file(data_dir) is None or not store.path.exists():
        return False
    with store.session() as cur:
        row = cur.execute(
            "SELECT (SELECT count(*) FROM completions WHERE source = 'skilljar'), "
            "(SELECT count(*) FROM syncs WHERE status = 'ok')"
        ).fetchone()
    return bool(row and row[0] and row[1])


def reset_demo_files(data_dir: Path, db_path: Path) -> None:
    """Forget the demo: world file, emulator journals and the cache file."""
    for path in (
        data_dir / WORLD_FILE,
        data_dir / JOURNAL_FILE,
        data_dir / SKILLJAR_JOURNAL_FILE,
        db_path,
        Path(f"{db_path}.wal"),
    ):
        path.unlink(missing_ok=True)


#: the demo courses a new completion can earn a badge for (an active template, a first badge)
BADGE_COURSES = tuple(
    spec
    for spec in COURSES
    if spec.template_name is not None
    and spec.template_state == "active"
    and spec.method is not IssueMethod.UPDATE
)


def finish_a_course_now(
    skilljar_url: str = DEMO_SKILLJAR_API_URL,
    *,
    rng: random.Random | None = None,
    deliver: bool = True,
    timeout: float = 5.0,
) -> dict[str, Any]:
    """In the demo: a new student finishes (and passes) a badge course now, on the demo
    Skilljar; with ``deliver``, its registered ``COURSE_COMPLETION`` webhooks are called.

    Returns the demo Skilljar's summary: ``enrollment_id``, ``email``, ``course_id``,
    ``completed_at``, ``success_status`` (and ``deliveries`` when delivered).
    """
    pick = rng or random.Random(secrets.randbits(32))
    email, first, last = new_student(pick)
    course = pick.choice(BADGE_COURSES)
    body: dict[str, Any] = {
        "email": email,
        "first_name": first,
        "last_name": last,
        "course_id": course.course_id,
        "success_status": "PASSED",
        "score": round(pick.uniform(75, 100), 1),
        "max_score": 100.0,
        "deliver": deliver,
    }
    answer = httpx.post(
        f"{skilljar_url.rstrip('/')}/_emulator/completions", json=body, timeout=timeout
    )
    answer.raise_for_status()
    summary: dict[str, Any] = answer.json()
    return summary

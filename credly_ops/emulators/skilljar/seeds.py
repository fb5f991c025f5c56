"""The demo world on the Skilljar side: its courses, students and completed enrollments.

:func:`seed_demo` loads a :class:`~credly_ops.emulators.demo_world.DemoWorld`'s completions as
enrollments, with ids derived from the completion itself (the same ids on every start), so the
demo's automatic issuing reads them from a real Skilljar API.  :func:`build_demo_world` adds the
demo API client and key and, given a journal file, the enrollments and completions added since
(``a student finishes a course now``), kept across restarts like the Credly journal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from pathlib import Path
from typing import Any

from credly_ops.emulators.demo_world import COURSES, SKILLJAR_JOURNAL_FILE, DemoWorld
from credly_ops.emulators.skilljar.state import (
    DEMO_API_KEY,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    ApiError,
    SkilljarWorld,
)
from credly_ops.models import Completion, SuccessStatus, normalize_email

__all__ = [
    "JOURNAL_FILE",
    "build_demo_world",
    "enrollment_id_for",
    "seed_demo",
    "student_id_for",
]

#: the demo Skilljar's journal, beside the demo Credly's in the data folder
JOURNAL_FILE = SKILLJAR_JOURNAL_FILE

log = logging.getLogger(__name__)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def student_id_for(email: str) -> str:
    return "stu" + _digest("demo-student:" + normalize_email(email))


def enrollment_id_for(c: Completion) -> str:
    """One enrollment per demo completion: a retake is a new enrollment."""
    return "enr" + _digest(
        f"demo-enrollment:{normalize_email(c.email)}|{c.course_id}|{c.completed_at.isoformat()}"
    )


def _skilljar_status(status: SuccessStatus | None) -> str | None:
    return None if status is None else status.value.upper()


def seed_demo(world: SkilljarWorld, demo: DemoWorld) -> None:
    """The demo courses (every course of the demo, badge or not) and its completions."""
    for spec in COURSES:
        world.add_course(spec.title, spec.course_id)
    for c in demo.completions:
        world.add_enrollment(
            email=c.email,
            course_id=c.course_id,
            first_name=c.first_name,
            last_name=c.last_name,
            completed_at=c.completed_at,
            success_status=_skilljar_status(c.status),
            score=c.score,
            max_score=None if c.score is None else 100.0,
            enrollment_id=enrollment_id_for(c),
            student_id=student_id_for(c.email),
        )


class _Journal:
    """Appends one JSON line per change; thread-safe (called inside the world's lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def __call__(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), default=str)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                out.write(line + "\n")


def _replay(world: SkilljarWorld, path: Path) -> int:
    if not path.is_file():
        return 0
    count = 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            world.replay(json.loads(line))
            count += 1
        except (ApiError, ValueError, KeyError, TypeError) as exc:
            # a torn last line (the process died mid-write) or a hand edit: skip it, say so
            log.warning("%s line %d is unusable (%s); skipped", path.name, number, exc)
    return count


def build_demo_world(demo: DemoWorld, *, journal_path: Path | None = None) -> SkilljarWorld:
    """The demo Skilljar: the demo API client and key, the demo's courses and completions, then
    the journal's changes; later changes are appended to the journal."""
    world = SkilljarWorld(seed=demo.seed)
    world.add_client(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    world.add_api_key(DEMO_API_KEY)
    seed_demo(world, demo)
    if journal_path is not None:
        _replay(world, journal_path)
        world.journal = _Journal(journal_path)
    return world

"""What the automatic-issuing tests share: a workspace on the Credly emulator, rules, and a
stand-in for the completions sync that saves Skilljar completions into the cache."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from credly_ops.access import Actor, Role
from credly_ops.config import DEMO_ORG_ID
from credly_ops.lms import save_completions
from credly_ops.models import BadgeRule, Completion, SuccessStatus
from credly_ops.rules import replace_rules
from credly_ops.sync import sync
from credly_ops.timeutil import utcnow
from credly_ops.workspace import Workspace
from tests.conftest import emulator_workspace

ADMIN = Actor("admin@example.com", Role.ADMIN)
SYSTEM = Actor("autopilot-test", Role.ADMIN)
#: every completion of these tests is in the past
T0 = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)
#: the rules were installed here
INSTALLED = T0 - timedelta(days=30)


def workspace(emulator: str, tmp_path: Path, rules: Sequence[BadgeRule]) -> Workspace:
    ws = emulator_workspace(emulator, tmp_path / "cache.duckdb")
    with ws.client() as client:
        sync(client, ws.store, actor=ADMIN)
    replace_rules(ws.store, rules, actor=ADMIN)
    return ws


def rule(course: str, template: str = "tpl-active", **kw: object) -> BadgeRule:
    values: dict[str, object] = {"active_from": INSTALLED, **kw}
    return BadgeRule(course_id=course, template_id=template, **values)  # type: ignore[arg-type]


def done(email: str, course: str, at: datetime, status: SuccessStatus | None = None) -> Completion:
    return Completion(
        email=email,
        first_name="Stu",
        last_name="Dent",
        course_id=course,
        completed_at=at,
        status=status,
    )


class Skilljar:
    """The completions step of a cycle: completions that "arrive" are saved into the cache
    with source ``skilljar`` on the next read, which says how many were new."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.arriving: list[Completion] = []
        self.reads = 0

    def arrive(self, *completions: Completion) -> None:
        self.arriving.extend(completions)

    def read(self) -> int:
        self.reads += 1
        new, self.arriving = self.arriving, []
        with self.ws.store.transaction() as cur:
            save_completions(cur, new, source="skilljar", loaded_at=utcnow())
        return len(new)


def badges(world) -> Counter[tuple[str, str, datetime]]:
    """What the emulator holds: (email, template, issued_at) → how many badges."""
    return Counter(
        (b["recipient_email"], b["template_id"], b["issued_at"])
        for b in world.badges_for(DEMO_ORG_ID)
    )


def audit_actions(ws: Workspace, prefix: str) -> list[tuple[str, str, str | None]]:
    with ws.store.session() as cur:
        rows = cur.execute(
            "SELECT action, outcome, detail FROM audit WHERE action LIKE ? ORDER BY id",
            [prefix + "%"],
        ).fetchall()
    return [(str(a), str(o), d) for a, o, d in rows]

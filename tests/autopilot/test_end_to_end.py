"""Automatic issuing end to end, against both emulators over real HTTP: completions made on the
local Skilljar become badges on the local Credly through the cycle's real completions step
(webhook hints, then the incremental read with its overlap window) — exactly once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from credly_ops.autopilot import run_cycle
from credly_ops.autopilot.reading import completions_step, hinted
from credly_ops.config import DEMO_ORG_ID
from credly_ops.emulators.skilljar.state import fmt_time
from credly_ops.skilljar import SkilljarClient
from credly_ops.workspace import Workspace
from tests.autopilot.helpers import SYSTEM, rule, workspace
from tests.hooks.conftest import HOOK_SECRET, Receiver, hook_settings, start_receiver
from tests.skilljar.conftest import Site, skilljar

__all__ = ["skilljar"]

RULES = [rule("crs-py"), rule("crs-cloud", template="tpl-archived")]


@pytest.fixture
def ws(emulator: str, tmp_path: Path) -> Workspace:
    return workspace(emulator, tmp_path, RULES)


@pytest.fixture
def reader(ws: Workspace, skilljar: Site) -> Iterator[SkilljarClient]:
    client = SkilljarClient.from_settings(hook_settings(skilljar.url))
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    r = start_receiver(tmp_path, hook_settings())  # its spool is beside the workspace's cache
    try:
        yield r
    finally:
        r.http.close()
        r.server.stop()


def finish(site: Site, email: str, course_id: str, **extra: object) -> dict[str, object]:
    """A student (with a name: Credly needs one) completes a course on the local Skilljar."""
    return site.complete(email, course_id, first_name="Stu", last_name="Dent", **extra)


def at_second(value: object) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.astimezone(UTC).replace(microsecond=0)


def credly_badges(world, email: str) -> list[dict[str, object]]:
    return [b for b in world.badges_for(DEMO_ORG_ID) if b["recipient_email"] == email]


def cycle(ws: Workspace, reader: SkilljarClient) -> dict[str, object]:
    return run_cycle(ws, SYSTEM, read_completions=completions_step(ws, reader)).as_json()


def test_skilljar_completions_become_badges_once(world, ws, skilljar: Site, reader) -> None:
    finish(skilljar, "ada@example.org", "crs-py", success_status="PASSED")
    finish(skilljar, "bo@example.org", "crs-py", success_status="FAILED")
    finish(skilljar, "cy@example.org", "crs-py")  # no score: complete counts as passed
    finish(skilljar, "di@example.org", "crs-cloud", success_status="PASSED")

    first = cycle(ws, reader)

    assert first["completions_new"] == 4 and first["decided"] == 4, first
    assert (first["issued"], first["skipped"], first["failed"]) == (2, 2, 0), first
    assert first["reasons"] == {"new_badge": 2, "not_passed": 1, "template_inactive": 1}
    assert len(credly_badges(world, "ada@example.org")) == 1
    assert len(credly_badges(world, "cy@example.org")) == 1
    assert credly_badges(world, "bo@example.org") == []

    second = cycle(ws, reader)
    assert (second["completions_new"], second["decided"], second["issued"]) == (0, 0, 0)
    assert len(credly_badges(world, "ada@example.org")) == 1


def test_a_back_dated_completion_inside_the_overlap_is_issued_once(
    world, ws, skilljar: Site, reader
) -> None:
    finish(skilljar, "ada@example.org", "crs-py", success_status="PASSED")
    assert cycle(ws, reader)["issued"] == 1
    now = skilljar.world.clock.now()
    # an admin marks a student complete by hand, dated a day and a half ago
    late = finish(
        skilljar,
        "late@example.org",
        "crs-py",
        success_status="PASSED",
        completed_at=fmt_time(now - timedelta(hours=36)),
    )
    assert late["completed_at"] < fmt_time(now)

    picked = cycle(ws, reader)
    again = cycle(ws, reader)

    assert (picked["completions_new"], picked["issued"]) == (1, 1)
    assert (again["completions_new"], again["issued"]) == (0, 0)
    (badge,) = credly_badges(world, "late@example.org")
    assert at_second(badge["issued_at"]) == at_second(late["completed_at"])


def test_webhooks_are_hints_duplicates_and_forgeries_issue_nothing_extra(
    world, ws, skilljar: Site, reader, receiver: Receiver
) -> None:
    done = finish(skilljar, "ada@example.org", "crs-py", success_status="PASSED")
    delivery = {
        "enrollment_id": done["enrollment_id"],
        "target_url": receiver.url,
        "additional_headers": {"X-Webhook-Secret": HOOK_SECRET},
    }
    for _ in range(2):  # Skilljar delivers the same event twice
        skilljar.control("webhooks/deliver", delivery)
    assert hinted(ws)()  # the worker would wake: deliveries wait in the spool
    # forged: no secret — refused, nothing kept
    forged = {
        "event_type": "COURSE_COMPLETION",
        "user": {"email": "mallory@example.org"},
        "course": {"id": "crs-py"},
    }
    assert receiver.post(json.dumps(forged).encode()).status_code == 401
    # authenticated, but Skilljar knows no such completion: the read finds nothing to issue
    lying = {**forged, "user": {"email": "nobody@example.org"}}
    answer = receiver.post(json.dumps(lying).encode(), headers={"X-Webhook-Secret": HOOK_SECRET})
    assert answer.status_code == 200

    result = cycle(ws, reader)

    assert result["issued"] == 1
    assert len(credly_badges(world, "ada@example.org")) == 1
    assert credly_badges(world, "mallory@example.org") == []
    assert credly_badges(world, "nobody@example.org") == []
    assert not hinted(ws)()
    assert cycle(ws, reader)["issued"] == 0


def test_skilljar_token_expiry_and_busy_answers_are_survived(
    world, ws, skilljar: Site, reader
) -> None:
    for i in range(3):
        finish(skilljar, f"s{i}@example.org", "crs-py", success_status="PASSED")
    assert cycle(ws, reader)["issued"] == 3
    finish(skilljar, "next@example.org", "crs-py", success_status="PASSED")
    skilljar.control("tokens/expire")
    skilljar.control("faults", {"queue": [{"status": 429, "retry_after": 0}, {"status": 503}]})

    result = cycle(ws, reader)

    assert (result["completions_new"], result["issued"], result["failed"]) == (1, 1, 0)
    assert len(credly_badges(world, "next@example.org")) == 1


def test_an_unreachable_skilljar_stops_the_cycle_before_anything_is_sent(
    world, ws, emulator: str
) -> None:
    from credly_ops.autopilot import CycleUnavailable

    dead = SkilljarClient.from_settings(hook_settings("http://127.0.0.1:9"), max_attempts=1)
    before = len(world.badges_for(DEMO_ORG_ID))
    with pytest.raises((CycleUnavailable, httpx.HTTPError)):
        run_cycle(ws, SYSTEM, read_completions=completions_step(ws, dead))
    assert len(world.badges_for(DEMO_ORG_ID)) == before

"""The receiver over real HTTP: the local Skilljar delivers, the spool keeps, ingest records."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import httpx
import pytest

from credly_ops.config import SkilljarNotConfigured
from credly_ops.hooks import MAX_BODY_BYTES, ingest, last_delivery, recent_events
from tests.hooks.conftest import HOOK_SECRET, Receiver, Site, hook_settings, start_receiver

EMAIL = "ada@example.org"


def deliver(site: Site, receiver: Receiver, enrollment_id: str, **auth: object) -> int:
    """Ask the local Skilljar to deliver the enrollment's COURSE_COMPLETION event."""
    body = {"enrollment_id": enrollment_id, "target_url": receiver.url, **auth}
    answer = site.control("webhooks/deliver", body)
    (delivery,) = answer["deliveries"]
    assert "status" in delivery, delivery
    return int(delivery["status"])


HEADER = {"additional_headers": {"X-Webhook-Secret": HOOK_SECRET}}
BASIC = {"basic_auth_username": "skilljar", "basic_auth_password": HOOK_SECRET}


@pytest.mark.parametrize("auth", [HEADER, BASIC], ids=["secret-header", "basic-auth"])
def test_a_delivery_from_skilljar_is_spooled_then_ingested_once(
    skilljar: Site, receiver: Receiver, auth: dict[str, object]
) -> None:
    done = skilljar.complete("Ada@Example.org", "crs-py")
    assert deliver(skilljar, receiver, done["enrollment_id"], **auth) == 200
    assert receiver.spool.waiting() == 1
    assert receiver.wakes == [1]

    store = receiver.store()
    hints = ingest(store, receiver.spool)
    assert [(h.email, h.course_id) for h in hints] == [(EMAIL, "crs-py")]
    assert receiver.spool.waiting() == 0
    assert ingest(store, receiver.spool) == []

    (row,) = recent_events(store)
    assert row["id"] == hints[0].event_id
    assert (row["status"], row["event_type"], row["email"]) == (
        "accepted",
        "COURSE_COMPLETION",
        EMAIL,
    )
    assert row["detail"] is None and row["received_at"] == hints[0].received_at
    assert last_delivery(store) == hints[0].received_at


def test_a_repeated_delivery_gives_one_hint(skilljar: Site, receiver: Receiver) -> None:
    done = skilljar.complete(EMAIL, "crs-py")
    store = receiver.store()
    assert deliver(skilljar, receiver, done["enrollment_id"], **HEADER) == 200
    skilljar.control("clock", {"advance_seconds": 30})  # a later delivery of the same completion
    assert deliver(skilljar, receiver, done["enrollment_id"], **HEADER) == 200
    first = ingest(store, receiver.spool)
    # delivered again after the first was ingested
    assert deliver(skilljar, receiver, done["enrollment_id"], **HEADER) == 200
    second = ingest(store, receiver.spool)

    assert len(first) == 1 and second == []
    statuses = sorted(r["status"] for r in recent_events(store))
    assert statuses == ["accepted", "duplicate", "duplicate"]
    details = {r["detail"] for r in recent_events(store) if r["status"] == "duplicate"}
    assert details == {f"repeats event {first[0].event_id}"}


def test_a_retake_is_a_new_hint(skilljar: Site, receiver: Receiver) -> None:
    done = skilljar.complete(EMAIL, "crs-py", completed_at="2026-01-05T10:00:00Z")
    assert deliver(skilljar, receiver, done["enrollment_id"], **HEADER) == 200
    skilljar.control(
        "completions",
        {"enrollment_id": done["enrollment_id"], "completed_at": "2026-03-01T09:00:00Z"},
    )
    assert deliver(skilljar, receiver, done["enrollment_id"], **HEADER) == 200
    hints = ingest(receiver.store(), receiver.spool)
    assert [h.course_id for h in hints] == ["crs-py", "crs-py"]


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


FORGED: list[dict[str, str]] = [
    {},
    {"X-Webhook-Secret": "whsec-guess"},
    {"X-Webhook-Secret": HOOK_SECRET + "x"},
    {"X-Webhook-Secret": ""},
    {"Authorization": _basic("skilljar", "wrong")},
    {"Authorization": _basic(HOOK_SECRET, "")},  # the secret as the user name is not it
    {"Authorization": f"Bearer {HOOK_SECRET}"},
    {"Authorization": "Basic !!not-base64!!"},
]


@pytest.mark.parametrize("headers", FORGED)
def test_a_forged_delivery_is_refused_and_leaves_nothing(
    receiver: Receiver, headers: dict[str, str]
) -> None:
    body = json.dumps(
        {"event_type": "COURSE_COMPLETION", "user": {"email": EMAIL}, "course": {"id": "c"}}
    )
    answer = receiver.post(body.encode(), headers=headers)
    assert answer.status_code == 401
    assert not receiver.spool.folder.exists() or not any(receiver.spool.folder.iterdir())
    assert receiver.wakes == []
    store = receiver.store()
    assert ingest(store, receiver.spool) == []
    assert recent_events(store) == [] and last_delivery(store) is None


def test_a_forged_delivery_from_skilljar_is_refused(skilljar: Site, receiver: Receiver) -> None:
    done = skilljar.complete(EMAIL, "crs-py")
    wrong = {"additional_headers": {"X-Webhook-Secret": "not-the-secret"}}
    assert deliver(skilljar, receiver, done["enrollment_id"], **wrong) == 401
    assert receiver.spool.waiting() == 0


@pytest.mark.parametrize(
    "settings",
    [hook_settings(secret=None), SkilljarNotConfigured(missing=("client_id (X)",))],
    ids=["no-webhook-secret", "skilljar-not-configured"],
)
def test_without_a_secret_every_delivery_is_refused(tmp_path: Path, settings: object) -> None:
    r = start_receiver(tmp_path, settings)
    try:
        body = b'{"event_type": "COURSE_COMPLETION", "user": {"email": "a@b.org"}}'
        for headers in ({}, {"X-Webhook-Secret": ""}, {"Authorization": _basic("u", "")}):
            assert r.post(body, headers=headers).status_code == 401
        assert r.http.get(f"{r.server.url}/hooks/health").json() == {
            "status": "no webhook secret",
            "waiting": 0,
        }
        assert r.spool.waiting() == 0
    finally:
        r.http.close()
        r.server.stop()


def _event(**changes: object) -> bytes:
    event: dict[str, object] = {
        "event_type": "COURSE_COMPLETION",
        "timestamp": "2026-05-01T10:00:00Z",
        "user": {"id": "u1", "email": EMAIL},
        "course": {"id": "crs-py"},
    }
    event.update(changes)
    return json.dumps(event).encode()


MALFORMED = [
    (b"{not json", "the body is not JSON"),
    (b"", "the body is not JSON"),
    (b'{"a": 1\x00}', "the body is not JSON"),
    (b"[1, 2]", "the body is not a JSON object"),
    (b"\xff\xfe\x00garbage", "the body is not UTF-8 text"),
    (_event(event_type="COURSE_ENROLLMENT"), "event_type is not COURSE_COMPLETION"),
    (_event(event_type=None), "event_type is missing"),
    (_event(user={"id": "u1"}), "user.email is missing"),
    (_event(user="someone"), "user.email is missing"),
    (_event(user={"email": "not-an-address"}), "user.email is not an email address"),
    (_event(course={"id": "x\x00y"}), "course.id is not a course id"),
    (b"{" + b" " * (MAX_BODY_BYTES + 10) + b"}", "too large"),
]


@pytest.mark.parametrize(("body", "why"), MALFORMED, ids=[w for _, w in MALFORMED])
def test_a_malformed_delivery_is_answered_200_and_recorded_rejected(
    receiver: Receiver, body: bytes, why: str
) -> None:
    answer = receiver.post(body, headers={"X-Webhook-Secret": HOOK_SECRET})
    assert answer.status_code == 200, answer.text
    store = receiver.store()
    assert ingest(store, receiver.spool) == []
    (row,) = recent_events(store)
    assert row["status"] == "rejected"
    assert row["detail"].startswith(why)
    assert row["email"] is None


def test_the_health_check_counts_the_events_waiting(receiver: Receiver) -> None:
    health = f"{receiver.server.url}/hooks/health"
    assert receiver.http.get(health).json() == {"status": "ok", "waiting": 0}
    receiver.post(_event(), headers={"X-Webhook-Secret": HOOK_SECRET})
    assert receiver.http.get(health).json() == {"status": "ok", "waiting": 1}


def test_a_wrong_method_is_not_a_delivery(receiver: Receiver) -> None:
    answer = receiver.http.get(receiver.url, headers={"X-Webhook-Secret": HOOK_SECRET})
    assert answer.status_code == 405
    assert receiver.spool.waiting() == 0


def test_the_answer_is_quick_and_names_no_secret(receiver: Receiver) -> None:
    started = time.perf_counter()
    answer = httpx.post(
        receiver.url, content=_event(), headers={"X-Webhook-Secret": HOOK_SECRET}, timeout=10
    )
    assert time.perf_counter() - started < 1.0
    assert answer.status_code == 200
    assert set(answer.json()) == {"received"}
    assert HOOK_SECRET not in answer.text

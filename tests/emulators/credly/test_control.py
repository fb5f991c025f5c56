"""The local Credly's ``/_emulator/`` surface: earner actions, the clock, faults, statistics,
webhooks and the template pictures."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from credly_ops.emulators.credly import (
    FaultConfig,
    Faults,
    World,
    create_app,
)
from credly_ops.emulators.server import serve_in_thread
from credly_ops.timeutil import format_credly_response, parse_credly_time
from tests.emulators.credly.conftest import (
    AUTH,
    BADGES,
    EVENTS,
    ORG,
    OTHER,
    OTHER_TOKEN,
    T0,
    basic,
    body,
    issue,
)

# ----------------------------------------------------------------- earner actions and clock


def test_accept_reject_and_auto_accept(api: TestClient, emu: World) -> None:
    badge = issue(api)
    emu.clock.advance(90)
    accepted = api.post(f"/_emulator/orgs/{ORG}/badges/{badge['id']}/accept").json()["data"]
    assert accepted["state"] == "accepted"
    assert accepted["state_updated_at"] == format_credly_response(T0 + timedelta(seconds=90))
    assert accepted["updated_at"] == accepted["state_updated_at"]
    again = api.post(f"/_emulator/orgs/{ORG}/badges/{badge['id']}/reject")
    assert again.status_code == 422
    other = issue(api, recipient_email="r@example.com")
    rejected = api.post(f"/_emulator/orgs/{ORG}/badges/{other['id']}/reject").json()["data"]
    assert rejected["state"] == "rejected"
    assert api.post(f"/_emulator/orgs/{ORG}/badges/nope/accept").status_code == 404
    toggled = api.post(
        f"/_emulator/orgs/{ORG}/auto_accept", json={"email": "Auto@Example.com", "enabled": True}
    )
    assert toggled.status_code == 200
    auto = issue(api, recipient_email="auto@example.com")
    assert auto["state"] == "accepted"
    assert auto["state_updated_at"] == auto["created_at"]
    api.post(
        f"/_emulator/orgs/{ORG}/auto_accept", json={"email": "auto@example.com", "enabled": False}
    )
    assert (
        issue(api, recipient_email="auto@example.com", badge_template_id="tpl-b")["state"]
        == "pending"
    )


def test_clock_endpoints(api: TestClient, emu: World) -> None:
    assert api.get("/_emulator/clock").json()["data"]["now"] == format_credly_response(T0)
    moved = api.post("/_emulator/clock", json={"advance_seconds": 86400}).json()["data"]
    assert moved["now"] == format_credly_response(T0 + timedelta(days=1))
    frozen = api.post("/_emulator/clock", json={"now": "2030-01-01T00:00:00Z", "frozen": True})
    assert frozen.json()["data"]["now"] == "2030-01-01T00:00:00.000Z"
    assert issue(api)["created_at"] == "2030-01-01T00:00:00.000Z"
    flowing = api.post("/_emulator/clock", json={"now": "2031-01-01T00:00:00Z"}).json()["data"]
    assert flowing["frozen"] is False and flowing["now"].startswith("2031-01-01T00:00:0")
    reset = api.post("/_emulator/clock", json={"reset": True}).json()["data"]
    assert abs(parse_credly_time(reset["now"]) - datetime.now(UTC)) < timedelta(seconds=5)
    assert api.post("/_emulator/clock", json={"when": 1}).status_code == 400
    assert api.get("/_emulator/health").json()["data"]["status"] == "ok"


# --------------------------------------------------------------------------- faults


def test_rate_limit_refuses_without_processing(api: TestClient, emu: World) -> None:
    api.post("/_emulator/faults", json={"rate_limit_rps": 2})
    statuses = [
        api.post(BADGES, json=body(recipient_email=f"r{i}@example.com"), headers=AUTH)
        for i in range(4)
    ]
    assert [r.status_code for r in statuses[:2]] == [201, 201]
    limited = statuses[2]
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["data"]["message"] == "Rate limit exceeded"
    assert len(emu.badges_for(ORG)) == 2
    # another organization has its own window
    assert api.get(f"/v1/organizations/{OTHER}", headers=basic(OTHER_TOKEN)).status_code == 200
    # control endpoints are never limited
    assert all(api.get("/_emulator/health").status_code == 200 for _ in range(5))
    stats = api.get("/_emulator/stats").json()["data"]
    assert stats["faults"]["rate_limited"] == 2
    assert stats["requests"]["POST /v1/organizations/{org}/badges"] == {"201": 2, "429": 2}
    assert stats["issued_by_org"][ORG] == 2


def test_fail_rate_answers_5xx_without_processing(api: TestClient, emu: World) -> None:
    api.post("/_emulator/faults", json={"fail_rate": 1.0, "seed": 3})
    responses = [api.post(BADGES, json=body(), headers=AUTH) for _ in range(8)]
    assert {r.status_code for r in responses} == {500, 503}
    assert all(r.json()["data"]["message"] for r in responses)
    assert emu.badges_for(ORG) == []
    api.post("/_emulator/faults", json={})
    assert api.post(BADGES, json=body(), headers=AUTH).status_code == 201


def test_faults_are_deterministic_for_a_seed() -> None:
    config = FaultConfig(fail_rate=0.3, timeout_rate=0.3, seed=42)

    def run() -> list[tuple[int | None, float]]:
        faults = Faults(config)
        decisions = [faults.decide("org", "POST") for _ in range(200)]
        return [(d.refuse_status, d.hold_s) for d in decisions]

    first = run()
    assert first == run()
    assert {500, 503, None} <= {status for status, _ in first}
    assert any(hold for _, hold in first)
    gets = Faults(FaultConfig(timeout_rate=1.0)).decide("org", "GET")
    assert gets.hold_s == 0  # only mutating requests are held
    with pytest.raises(Exception, match="Rates"):
        FaultConfig.from_json({"fail_rate": 2})


def test_fault_config_endpoint_validates(api: TestClient) -> None:
    assert api.post("/_emulator/faults", json={"fail_rate": "x"}).status_code == 400
    assert api.post("/_emulator/faults", json={"surprise": 1}).status_code == 400
    set_ = api.post("/_emulator/faults", json={"latency_ms": 5, "rate_limit_rps": None}).json()
    assert set_["data"]["latency_ms"] == 5
    assert api.get("/_emulator/faults").json()["data"]["latency_ms"] == 5


def test_latency_is_async_so_requests_overlap(served: tuple[World, str]) -> None:
    _world, url = served
    httpx.post(f"{url}/_emulator/faults", json={"latency_ms": 300})

    async def fetch_all() -> list[int]:
        async with httpx.AsyncClient(base_url=url, headers=AUTH) as client:
            responses = await asyncio.gather(*(client.get(BADGES) for _ in range(6)))
        return [r.status_code for r in responses]

    started = time.perf_counter()
    # in a thread of its own: a browser test of the same session may hold this thread's loop
    with ThreadPoolExecutor(1) as pool:
        statuses = pool.submit(asyncio.run, fetch_all()).result()
    assert statuses == [200] * 6
    elapsed = time.perf_counter() - started
    # six requests, each delayed 0.3 s: one after another they would take 1.8 s at least
    assert 0.3 <= elapsed < 6 * 0.3


def test_timeout_processes_then_withholds_the_answer(served: tuple[World, str]) -> None:
    world, url = served
    httpx.post(f"{url}/_emulator/faults", json={"timeout_rate": 1.0, "timeout_hold_s": 0.9})
    with httpx.Client(base_url=url, headers=AUTH, timeout=0.25) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.post(BADGES, json=body())
        # the badge exists although its answer never arrived
        deadline = time.monotonic() + 2
        while not world.badges_for(ORG) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [b["recipient_email"] for b in world.badges_for(ORG)] == ["ada@example.com"]
        # reads are not held, and the safe-retry lookup finds it
        found = client.get(
            f"{BADGES}?filter=recipient_email::ada@example.com|badge_template_id::tpl-a"
        )
        assert found.status_code == 200
        assert found.json()["metadata"]["total_count"] == 1
    stats = httpx.get(f"{url}/_emulator/stats").json()["data"]
    assert stats["faults"]["timed_out"] == 1


def test_webhooks_post_thin_bodies_and_retry_until_200(served: tuple[World, str]) -> None:
    received: list[dict[str, Any]] = []
    lock = threading.Lock()

    async def hook(request: Request) -> JSONResponse:
        payload = await request.json()
        with lock:
            received.append(payload)
            first_try = len(received) == 1
        return JSONResponse({}, status_code=500 if first_try else 200)

    receiver = serve_in_thread(Starlette(routes=[Route("/hook", hook, methods=["POST"])]))
    _world, url = served
    try:
        with httpx.Client(base_url=url, headers=AUTH) as client:
            client.put(f"/v1/organizations/{ORG}", json={"webhook_url": f"{receiver.url}/hook"})
            created = client.post(BADGES, json=body())
            assert created.status_code == 201
            deadline = time.monotonic() + 20
            while len(received) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            event = received[0]
            assert set(event) == {"id", "organization_id", "event_type", "occurred_at"}
            assert event["event_type"] == "badge.created"
            assert received[1] == event  # retried after the 500
            detail = client.get(f"{EVENTS}/{event['id']}").json()["data"]
            assert detail["badge"]["id"] == created.json()["data"]["id"]
    finally:
        receiver.stop()


def test_template_pictures_are_served_for_the_demo() -> None:
    from starlette.testclient import TestClient

    from credly_ops.emulators.credly import World

    w = World()
    w.add_org("org-img", "Images", "tok-img")
    w.add_template("org-img", id="tpl-img", name="Cloud Foundations <Certified>")
    with TestClient(create_app(w)) as http:
        ok = http.get("/_emulator/images/tpl-img.svg")
        missing = http.get("/_emulator/images/nope.svg")
    assert ok.status_code == 200
    assert ok.headers["content-type"].startswith("image/svg+xml")
    assert ">CF</text>" in ok.text  # initials of words that start with a letter
    assert "<Certified>" not in ok.text
    assert missing.status_code == 404

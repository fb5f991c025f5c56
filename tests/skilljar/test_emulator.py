"""The local Skilljar on its own: API shapes, auth, control surface, webhook delivery."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from credly_ops.emulators.server import serve_in_thread
from credly_ops.emulators.skilljar import build_world, run_skilljar_emulator
from credly_ops.skilljar.tokens import jwt_expiry
from tests.skilljar.conftest import API_KEY, CLIENT_ID, CLIENT_SECRET, Site

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def grant(site: Site, **overrides: str) -> httpx.Response:
    form = {"grant_type": "client_credentials", "client_id": CLIENT_ID}
    form["client_secret"] = CLIENT_SECRET
    form.update(overrides)
    return site.http.post(f"{site.url}/v2/auth/token", data=form)


def bearer(site: Site) -> dict[str, str]:
    answer = grant(site)
    assert answer.status_code == 200
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def basic(key: str = API_KEY) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


# ------------------------------------------------------------------ v2 auth


def test_a_grant_answers_a_short_lived_jwt(skilljar: Site) -> None:
    skilljar.control("clock", {"now": "2026-03-01T12:00:00Z", "frozen": True})
    skilljar.control("tokens", {"lifetime_s": 120})
    answer = grant(skilljar)
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 120
    assert "enrollments:read" in body["scope"]
    assert jwt_expiry(body["access_token"]) == T0.timestamp() + 120
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert skilljar.http.get(f"{skilljar.url}/v2/courses/", headers=headers).status_code == 200
    skilljar.control("clock", {"advance_seconds": 121})
    stale = skilljar.http.get(f"{skilljar.url}/v2/courses/", headers=headers)
    assert stale.status_code == 401
    assert stale.json()["errors"][0]["title"] == "invalid_token"


@pytest.mark.parametrize(
    ("overrides", "status", "error"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client"),
        ({"client_id": "nobody"}, 401, "invalid_client"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
    ],
)
def test_a_bad_grant_is_refused(
    skilljar: Site, overrides: dict[str, str], status: int, error: str
) -> None:
    answer = grant(skilljar, **overrides)
    assert answer.status_code == status
    assert answer.json()["error"] == error
    assert skilljar.world.grants == 0


def test_a_grant_must_be_form_encoded(skilljar: Site) -> None:
    answer = skilljar.http.post(
        f"{skilljar.url}/v2/auth/token",
        json={"grant_type": "client_credentials", "client_id": CLIENT_ID},
    )
    assert answer.status_code == 400


def test_the_api_needs_a_current_token(skilljar: Site) -> None:
    url = f"{skilljar.url}/v2/enrollments/"
    assert skilljar.http.get(url).status_code == 401
    assert skilljar.http.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    headers = bearer(skilljar)
    assert skilljar.http.get(url, headers=headers).status_code == 200
    skilljar.control("tokens/expire")
    assert skilljar.http.get(url, headers=headers).status_code == 401


# ------------------------------------------------------------------ v2 lists


def test_enrollments_answer_the_json_api_envelope(skilljar: Site) -> None:
    done = skilljar.complete(
        "ada@example.com",
        "crs-py",
        first_name="Ada",
        completed_at="2026-03-01T12:00:00Z",
        success_status="PASSED",
        score=90,
    )
    url = f"{skilljar.url}/v2/enrollments/?include=student,course"
    body = skilljar.http.get(url, headers=bearer(skilljar)).json()
    assert body["has_more"] is False and body["next_cursor"] is None
    assert body["links"]["next"] is None and body["meta"] == {"page_size": 25}
    (record,) = body["data"]
    assert record["type"] == "enrollments" and record["id"] == done["enrollment_id"]
    attributes = record["attributes"]
    assert attributes["progress_status"] == "completed"
    assert attributes["success_status"] == "PASSED" and attributes["score"] == 90
    assert attributes["completed_at"] == "2026-03-01T12:00:00.000Z"
    student_ref = record["relationships"]["student"]["data"]
    assert student_ref == {"type": "students", "id": done["student_id"]}
    included = {(r["type"], r["id"]): r["attributes"] for r in body["included"]}
    assert included[("students", done["student_id"])]["email"] == "ada@example.com"
    assert included[("courses", "crs-py")] == {"title": "Python Foundations"}
    plain = skilljar.http.get(f"{skilljar.url}/v2/enrollments/", headers=bearer(skilljar)).json()
    assert "included" not in plain


def test_pages_are_capped_at_100_and_cursors_are_opaque_and_tied_to_the_query(
    skilljar: Site,
) -> None:
    for n in range(130):
        skilljar.world.add_enrollment(
            email=f"s{n}@example.com", course_id="crs-py", completed_at=T0 + timedelta(hours=n)
        )
    headers = bearer(skilljar)
    url = f"{skilljar.url}/v2/enrollments/"
    first = skilljar.http.get(url, params={"page[size]": "500"}, headers=headers).json()
    assert len(first["data"]) == 100 and first["meta"]["page_size"] == 100
    cursor = first["next_cursor"]
    assert first["has_more"] is True and isinstance(cursor, str) and not cursor.isdigit()
    assert f"page%5Bcursor%5D={cursor}" in first["links"]["next"]
    second = skilljar.http.get(
        url, params={"page[size]": "500", "page[cursor]": cursor}, headers=headers
    ).json()
    assert len(second["data"]) == 30 and second["has_more"] is False
    ids = [r["id"] for r in first["data"] + second["data"]]
    assert len(set(ids)) == 130
    other_query = skilljar.http.get(
        url, params={"page[cursor]": cursor, "filter[course.id]": "crs-py"}, headers=headers
    )
    assert other_query.status_code == 400
    forged = skilljar.http.get(url, params={"page[cursor]": "100"}, headers=headers)
    assert forged.status_code == 400


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"filter[colour]": "red"}, "Unknown filter 'colour'"),
        ({"filter[completed_gte]": "last tuesday"}, "completed_gte"),
        ({"filter[progress_status]": "done"}, "progress_status"),
        ({"filter[active]": "maybe"}, "active"),
        ({"page[size]": "ten"}, "page[size]"),
        ({"page[size]": "0"}, "page[size]"),
    ],
)
def test_bad_list_parameters_are_named(
    skilljar: Site, params: dict[str, str], fragment: str
) -> None:
    answer = skilljar.http.get(
        f"{skilljar.url}/v2/enrollments/", params=params, headers=bearer(skilljar)
    )
    assert answer.status_code == 400
    assert fragment in answer.json()["errors"][0]["detail"]


def test_courses_filter_by_title(skilljar: Site) -> None:
    headers = bearer(skilljar)
    url = f"{skilljar.url}/v2/courses/"
    everything = skilljar.http.get(url, headers=headers).json()
    assert {c["id"] for c in everything["data"]} == {"crs-py", "crs-cloud"}
    cloud = skilljar.http.get(url, params={"filter[title]": "cloud"}, headers=headers).json()
    assert [c["attributes"]["title"] for c in cloud["data"]] == ["Cloud Practitioner"]
    assert cloud["data"][0]["type"] == "courses"


def test_singular_types_switch_the_included_records_and_relationships(skilljar: Site) -> None:
    skilljar.complete("ada@example.com", "crs-py")
    skilljar.control("types", {"singular": True})
    body = skilljar.http.get(
        f"{skilljar.url}/v2/enrollments/?include=student,course", headers=bearer(skilljar)
    ).json()
    assert {r["type"] for r in body["included"]} == {"student", "course"}
    assert body["data"][0]["relationships"]["course"]["data"]["type"] == "course"


# ------------------------------------------------------------------ control surface


def test_completions_can_be_back_dated_and_retaken(skilljar: Site) -> None:
    skilljar.control("clock", {"now": "2026-03-10T00:00:00Z", "frozen": True})
    now = skilljar.complete("ada@example.com", "crs-py")
    assert now["completed_at"] == "2026-03-10T00:00:00.000Z"
    back = skilljar.complete("bob@example.com", "crs-py", completed_at="2026-01-02T03:04:05Z")
    assert back["completed_at"] == "2026-01-02T03:04:05.000Z"
    retake = skilljar.complete(
        "ada@example.com", "crs-py", enrollment_id=now["enrollment_id"], success_status="FAILED"
    )
    assert retake["enrollment_id"] == now["enrollment_id"]
    assert retake["success_status"] == "FAILED"
    assert skilljar.control("completions", {"email": "x@example.com"}, expect=400)
    unknown = skilljar.control(
        "completions", {"email": "x@example.com", "course_id": "nope"}, expect=404
    )
    assert "nope" in unknown["errors"][0]["detail"]
    pending = skilljar.control("enrollments", {"email": "p@example.com", "course_id": "crs-py"})
    assert pending["completed_at"] is None


def test_the_clock_can_be_set_moved_and_reset(skilljar: Site) -> None:
    assert skilljar.control("clock", {"now": "2026-03-01T12:00:00Z", "frozen": True})["frozen"]
    moved = skilljar.control("clock", {"advance_seconds": 90})
    assert moved["now"] == "2026-03-01T12:01:30.000Z"
    assert skilljar.control("clock", {"reset": True})["frozen"] is False
    assert skilljar.control("clock", {"sideways": 1}, expect=400)


def test_queued_faults_answer_in_order_then_stop(skilljar: Site) -> None:
    skilljar.control(
        "faults",
        {
            "queue": [
                {"status": 429, "retry_after": "7", "path": "/v2/courses"},
                {"status": 503, "path": "/v2/courses"},
            ]
        },
    )
    headers = bearer(skilljar)
    url = f"{skilljar.url}/v2/courses/"
    throttled = skilljar.http.get(url, headers=headers)
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "7"
    assert skilljar.http.get(url, headers=headers).status_code == 503
    assert skilljar.http.get(url, headers=headers).status_code == 200
    assert skilljar.control("faults", {})["injected"] == 2


@pytest.mark.parametrize(
    "body",
    [
        {"queue": [{"status": 200}]},
        {"queue": [{"status": 503, "count": 0}]},
        {"queue": ["503"]},
        {"fail_rate": 2},
        {"latency_ms": -1},
        {"speed": 1},
    ],
)
def test_bad_fault_settings_are_refused(skilljar: Site, body: dict[str, Any]) -> None:
    skilljar.control("faults", body, expect=400)


def test_a_fail_rate_is_the_same_for_the_same_seed(skilljar: Site) -> None:
    headers = bearer(skilljar)

    def run() -> list[int]:
        skilljar.control("faults", {"fail_rate": 0.5, "seed": 11})
        return [
            skilljar.http.get(f"{skilljar.url}/v2/courses/", headers=headers).status_code
            for _ in range(12)
        ]

    first, second = run(), run()
    assert first == second
    assert 200 in first and ({500, 503} & set(first))


def test_latency_slows_the_api_but_not_the_control_surface(skilljar: Site) -> None:
    headers = bearer(skilljar)
    skilljar.control("faults", {"latency_ms": 400})
    started = time.monotonic()
    assert skilljar.http.get(f"{skilljar.url}/v2/courses/", headers=headers).status_code == 200
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    skilljar.http.get(f"{skilljar.url}/_emulator/health")
    assert time.monotonic() - started < 0.4


def test_the_same_seed_builds_the_same_world() -> None:
    one, two = build_world(seed=5), build_world(seed=5)
    assert list(one.enrollments) == list(two.enrollments)
    assert list(one.enrollments) != list(build_world(seed=6).enrollments)


def test_the_emulator_binds_to_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        run_skilljar_emulator("0.0.0.0", 0)


# ------------------------------------------------------------------ v1 webhooks


def test_webhooks_are_managed_over_v1_with_the_api_key(skilljar: Site) -> None:
    url = f"{skilljar.url}/v1/webhooks"
    assert skilljar.http.get(url).status_code == 401
    assert skilljar.http.get(url, headers=basic("wrong")).status_code == 401
    assert skilljar.http.get(f"{skilljar.url}/v1/ping", headers=basic()).status_code == 200
    created = skilljar.http.post(
        url,
        headers=basic(),
        json={
            "target_url": "http://127.0.0.1:9/hooks/skilljar",
            "event_type": "COURSE_COMPLETION",
            "basic_auth_username": "skilljar",
            "basic_auth_password": "hook-password-123",
        },
    )
    assert created.status_code == 201
    hook = created.json()
    assert hook["active"] is True and "hook-password-123" not in created.text
    listed = skilljar.http.get(url, headers=basic()).json()
    assert [h["id"] for h in listed["results"]] == [hook["id"]]
    one = skilljar.http.get(f"{url}/{hook['id']}", headers=basic()).json()
    assert one["target_url"] == "http://127.0.0.1:9/hooks/skilljar"
    assert skilljar.http.delete(f"{url}/{hook['id']}", headers=basic()).status_code == 204
    assert skilljar.http.get(f"{url}/{hook['id']}", headers=basic()).status_code == 404
    bad = skilljar.http.post(url, headers=basic(), json={"target_url": "ftp://x"})
    assert bad.status_code == 400


class Receiver:
    """A loopback webhook receiver that records what arrives and answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[dict[str, Any]] = []
        self._lock = threading.Lock()

        async def hook(request: Request) -> Response:
            with self._lock:
                self.received.append(
                    {"headers": dict(request.headers), "body": json.loads(await request.body())}
                )
            return JSONResponse({}, status_code=self.status)

        self.app = Starlette(routes=[Route("/hooks/skilljar", hook, methods=["POST"])])


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    target = Receiver()
    server = serve_in_thread(target.app)
    try:
        yield target, f"{server.url}/hooks/skilljar"
    finally:
        server.stop()


def test_a_completion_is_delivered_with_basic_credentials(
    skilljar: Site, receiver: tuple[Receiver, str]
) -> None:
    target, url = receiver
    skilljar.http.post(
        f"{skilljar.url}/v1/webhooks",
        headers=basic(),
        json={
            "target_url": url,
            "event_type": "COURSE_COMPLETION",
            "basic_auth_username": "skilljar",
            "basic_auth_password": "hook-password-123",
        },
    )
    done = skilljar.complete("ada@example.com", "crs-py", first_name="Ada", deliver=True)
    assert [d["status"] for d in done["deliveries"]] == [200]
    (delivery,) = target.received
    expected = base64.b64encode(b"skilljar:hook-password-123").decode()
    assert delivery["headers"]["authorization"] == f"Basic {expected}"
    assert delivery["headers"]["user-agent"] == "skilljar"
    assert delivery["headers"]["content-type"] == "application/json"
    body = delivery["body"]
    assert body["event_type"] == "COURSE_COMPLETION"
    assert body["user"]["email"] == "ada@example.com" and body["user"]["first_name"] == "Ada"
    assert body["course"]["id"] == "crs-py" and body["course"]["title"] == "Python Foundations"
    assert set(body) >= {"timestamp", "domain"}


def test_a_completion_is_delivered_with_a_secret_header_to_a_given_target(
    skilljar: Site, receiver: tuple[Receiver, str]
) -> None:
    target, url = receiver
    done = skilljar.complete("ada@example.com", "crs-py")
    answer = skilljar.control(
        "webhooks/deliver",
        {
            "enrollment_id": done["enrollment_id"],
            "target_url": url,
            "additional_headers": {"X-Webhook-Secret": "s3cret-header-value"},
        },
    )
    assert answer["deliveries"][0]["status"] == 200
    (delivery,) = target.received
    assert delivery["headers"]["x-webhook-secret"] == "s3cret-header-value"
    assert "authorization" not in delivery["headers"]
    assert delivery["body"]["user"]["id"] == done["student_id"]


def test_a_4xx_answer_deactivates_the_webhook(
    skilljar: Site, receiver: tuple[Receiver, str]
) -> None:
    target, url = receiver
    target.status = 401
    skilljar.http.post(f"{skilljar.url}/v1/webhooks", headers=basic(), json={"target_url": url})
    first = skilljar.complete("ada@example.com", "crs-py", deliver=True)
    assert [d["status"] for d in first["deliveries"]] == [401]
    hooks = skilljar.http.get(f"{skilljar.url}/v1/webhooks", headers=basic()).json()["results"]
    assert hooks[0]["active"] is False and hooks[0]["deactivate_reason"] == "HTTP_4XX_RESPONSE"
    second = skilljar.complete("bob@example.com", "crs-py", deliver=True)
    assert second["deliveries"] == []
    assert len(target.received) == 1

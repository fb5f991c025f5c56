"""The Credly client against the local Credly, with scripted faults in front of it.

The emulator (its ASGI app, called in-process) keeps the organization's templates and badges
and counts what it creates; :class:`LocalCredly` records every request and can be told to
fail one before or after the emulator processes it, or to answer or edit it exactly, so the
exactly-once paths are tested against real state.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Literal

import httpx
import pytest
from pydantic import SecretStr

from credly_ops.config import load_settings
from credly_ops.credly import errors as E
from credly_ops.credly.client import (
    USER_AGENT,
    CredlyClient,
    IssueResult,
    PageInfo,
    issue_payload,
    replace_payload,
)
from credly_ops.credly.filters import parse_filter
from credly_ops.emulators.credly import World, create_app
from credly_ops.models import IssuedBadge, IssueRequest, ReplaceRequest

TOKEN = "tok-7f3a9c2e5b1d-s3cr3t"
ORG = "org-0001"
BASE = "https://api.credly.test/v1"
ORG_PATH = f"/v1/organizations/{ORG}"
BASIC = "Basic " + base64.b64encode(f"{TOKEN}:".encode()).decode()
TOKEN_FORMS = (TOKEN, base64.b64encode(f"{TOKEN}:".encode()).decode())

TPL_ACTIVE = "tpl-active"
TPL_DUPES = "tpl-dupes"
TPL_ARCHIVED = "tpl-archived"
TPL_DRAFT = "tpl-draft"

ISSUED = datetime(2024, 5, 1, 9, 41, 0, tzinfo=UTC)

# ---------------------------------------------------------------- the local Credly, scripted

BEFORE = {"connect", "connect_timeout", "timeout", "500", "503_html", "429", "echo_token"}
AFTER = {"timeout_after", "500_after", "lost_after", "garbled_after"}

Answer = Callable[[httpx.Request], httpx.Response]
Edit = Callable[[dict[str, Any]], None]


@dataclass
class Script:
    """What happens to the next request(s) matching ``method`` and ``path``."""

    method: str
    path: re.Pattern[str]
    kind: str  # a BEFORE or AFTER fault, "answer" or "edit"
    times: int | None  # None: every matching request
    retry_after: str | None = None
    answer: Answer | None = None
    edit: Edit | None = None


class LocalCredly(httpx.BaseTransport):
    """One organization on the emulator, served in-process, behind a script of faults.

    ``fail`` refuses a request before the emulator sees it (a transport error or an error
    answer) or loses the answer after it processed it; ``answer`` replies exactly, without
    the emulator; ``edit`` changes the emulator's JSON answer (a new field, a careless next
    link).  Everything else is the emulator's own behaviour.
    """

    def __init__(self, *, page_size: int = 50, high_volume_page_size: int = 1000) -> None:
        self.world = World()
        self.world.add_org(ORG, "Example Academy", TOKEN)
        for tid, state, dupes in (
            (TPL_ACTIVE, "active", False),
            (TPL_DUPES, "active", True),
            (TPL_ARCHIVED, "archived", False),
            (TPL_DRAFT, "draft", False),
        ):
            self.world.add_template(
                ORG, id=tid, name=f"Template {tid}", state=state, allow_duplicate_badges=dupes
            )
        self.app = create_app(
            self.world, page_size=page_size, high_volume_page_size=high_volume_page_size
        )
        self.requests: list[httpx.Request] = []
        self.scripts: list[Script] = []
        self._lock = threading.Lock()
        self._added = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._asgi = httpx.ASGITransport(app=self.app)

    # -- set-up helpers

    def fail(self, method: str, path: str, kind: str, *, times: int = 1, **kw: Any) -> None:
        assert kind in BEFORE | AFTER, kind
        self.scripts.append(Script(method, re.compile(path), kind, times, **kw))

    def answer(self, method: str, path: str, answer: Answer, *, times: int | None = 1) -> None:
        self.scripts.append(Script(method, re.compile(path), "answer", times, answer=answer))

    def edit(self, method: str, path: str, edit: Edit, *, times: int | None = None) -> None:
        self.scripts.append(Script(method, re.compile(path), "edit", times, edit=edit))

    def add_badge(
        self,
        email: str,
        template_id: str = TPL_ACTIVE,
        issued_at: datetime = ISSUED,
        *,
        state: str = "pending",
        expires_at: datetime | None = None,
    ) -> dict[str, Any]:
        """A badge already in Credly (loaded, not issued: it counts as nothing created)."""
        with self._lock:
            self._added += 1
            n = self._added
        badge_id = f"badge-{n:04d}"
        self.world.load_badges(
            ORG,
            [
                {
                    "id": badge_id,
                    "template_id": template_id,
                    "recipient_email": email,
                    "issued_to_first_name": "Ada",
                    "issued_to_last_name": "Lovelace",
                    "state": state,
                    "issued_at": issued_at,
                    "created_at": ISSUED + timedelta(minutes=n),
                    "expires_at": expires_at,
                }
            ],
        )
        record = self.world.badge_record(ORG, badge_id)
        assert record is not None
        return record

    def replace(self, badge_id: str, request: ReplaceRequest) -> None:
        """Someone else replaces the badge (through Credly, not through this client)."""
        self.world.replace(ORG, badge_id, json.loads(json.dumps(replace_payload(request))))

    # -- what Credly holds and did

    @property
    def badges(self) -> dict[str, dict[str, Any]]:
        return {b["id"]: b for b in self.world.badges_for(ORG)}

    def _count(self, op: str) -> int:
        return self.world.counters()[ORG].get(op, 0)

    @property
    def created(self) -> int:
        return self._count("badges_issued")

    @property
    def replacements(self) -> int:
        return self._count("replace")

    @property
    def revocations(self) -> int:
        return self._count("revoke")

    def requests_to(self, method: str, path_suffix: str) -> list[httpx.Request]:
        return [
            r for r in self.requests if r.method == method and r.url.path == ORG_PATH + path_suffix
        ]

    # -- the transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        script = self._take(request)
        if script is not None and script.kind in BEFORE:
            return _fail_before(script, request)
        if script is not None and script.answer is not None:
            return script.answer(request)
        response = self._emulator(request)
        if script is not None and script.edit is not None:
            data = response.json()
            script.edit(data)
            return httpx.Response(response.status_code, json=data, request=request)
        if script is not None:
            return _fail_after(script, request)
        return response

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _take(self, request: httpx.Request) -> Script | None:
        suffix = request.url.path.removeprefix(ORG_PATH)
        with self._lock:
            for i, script in enumerate(self.scripts):
                if script.method == request.method and script.path.fullmatch(suffix):
                    if script.times is not None:
                        script.times -= 1
                        if script.times == 0:
                            del self.scripts[i]
                    return script
        return None

    def _emulator(self, request: httpx.Request) -> httpx.Response:
        async def call() -> httpx.Response:
            inner = httpx.Request(
                request.method, request.url, headers=request.headers, content=request.read()
            )
            answer = await self._asgi.handle_async_request(inner)
            body = await answer.aread()
            return httpx.Response(
                answer.status_code, headers=answer.headers, content=body, request=request
            )

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout=30)


def _fail_before(script: Script, request: httpx.Request) -> httpx.Response:
    if script.kind == "connect":
        raise httpx.ConnectError("connection refused", request=request)
    if script.kind == "connect_timeout":
        raise httpx.ConnectTimeout("connect timed out", request=request)
    if script.kind == "timeout":
        raise httpx.ReadTimeout("timed out", request=request)
    if script.kind == "500":
        return _json(500, {"data": {"message": "Internal Server Error"}, "metadata": {}})
    if script.kind == "503_html":
        return httpx.Response(503, text="<html>upstream down</html>")
    if script.kind == "echo_token":
        message = f"bad header Basic {TOKEN_FORMS[1]} for {TOKEN}"
        return _json(400, {"data": {"message": message}, "metadata": {}})
    headers = {"Retry-After": script.retry_after} if script.retry_after is not None else {}
    return _json(429, {"data": {"message": "Rate limit exceeded"}}, headers=headers)


def _fail_after(script: Script, request: httpx.Request) -> httpx.Response:
    """The emulator processed the request; its answer is lost or swapped on the way back."""
    if script.kind == "timeout_after":
        raise httpx.ReadTimeout("timed out", request=request)
    if script.kind == "lost_after":
        raise httpx.RemoteProtocolError("peer closed connection", request=request)
    if script.kind == "garbled_after":
        raise httpx.ReadError("connection reset", request=request)
    assert script.kind == "500_after", script.kind
    return _json(502, {"data": {"message": "Bad Gateway"}})


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def _careless_next_links(data: dict[str, Any]) -> None:
    """Like a careless server: the next link drops the original filter and sort."""
    meta = data["metadata"]
    if meta.get("next_page_url"):
        page = httpx.URL(meta["next_page_url"]).params["page"]
        meta["next_page_url"] = f"{BASE}/organizations/{ORG}/badges?page={page}"


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def credly(request: pytest.FixtureRequest) -> Iterator[LocalCredly]:
    local = LocalCredly(**getattr(request, "param", {}))
    yield local
    local.close()


def pages_of(size: int) -> pytest.MarkDecorator:
    """The local Credly answers lists (and high-volume pages) ``size`` badges at a time."""
    options = {"page_size": size, "high_volume_page_size": size}
    return pytest.mark.parametrize("credly", [options], indirect=True)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_client(credly: LocalCredly, sleeps: list[float]) -> Iterator[Callable[..., CredlyClient]]:
    made: list[CredlyClient] = []

    def make(**kw: Any) -> CredlyClient:
        options: dict[str, Any] = {
            "base_url": BASE,
            "org_id": ORG,
            "token": TOKEN,
            "transport": credly,
            "sleep": sleeps.append,
            "rng": random.Random(7),
        }
        options.update(kw)
        client = CredlyClient(**options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., CredlyClient]) -> CredlyClient:
    return make_client()


def issue_request(
    email: str = "ada@example.com",
    template_id: str = TPL_ACTIVE,
    issued_at: datetime = ISSUED,
    expires_at: datetime | Literal[False] | None = False,
) -> IssueRequest:
    return IssueRequest(
        recipient_email=email,
        issued_to_first_name="Ada",
        issued_to_last_name="Lovelace",
        badge_template_id=template_id,
        issued_at=issued_at,
        expires_at=expires_at,
    )


# ---------------------------------------------------------------- headers, auth, set-up


def test_every_request_carries_auth_json_headers_and_timeouts(
    client: CredlyClient, credly: LocalCredly
) -> None:
    credly.add_badge("ada@example.com")
    client.get_organization()
    client.issue(issue_request("grace@example.com"))
    assert len(credly.requests) == 2
    for request in credly.requests:
        assert request.headers["Authorization"] == BASIC
        assert request.headers["Accept"] == "application/json"
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["User-Agent"] == USER_AGENT
        assert USER_AGENT.startswith("credly-ops/")
        assert request.extensions["timeout"] == {
            "connect": 5.0,
            "read": 30.0,
            "write": 30.0,
            "pool": 30.0,
        }
        assert TOKEN not in str(request.url)


def test_unset_timeouts_are_filled_in(
    make_client: Callable[..., CredlyClient], credly: LocalCredly
) -> None:
    client = make_client(timeout=httpx.Timeout(None, read=12.0))
    client.get_organization()
    assert credly.requests[0].extensions["timeout"] == {
        "connect": 5.0,
        "read": 12.0,
        "write": 30.0,
        "pool": 30.0,
    }


def test_wrong_token_is_invalid_token_and_not_retried(
    make_client: Callable[..., CredlyClient], credly: LocalCredly, sleeps: list[float]
) -> None:
    client = make_client(token=SecretStr("wrong-token"))
    with pytest.raises(E.InvalidToken) as info:
        client.get_organization()
    assert info.value.status == 401
    assert info.value.message == "Unauthorized"
    assert info.value.path == ORG_PATH
    assert len(credly.requests) == 1 and sleeps == []


def test_from_settings_uses_org_url_and_token(credly: LocalCredly, tmp_path: Any) -> None:
    settings = load_settings(
        env="sandbox",
        org_id=ORG,
        api_token=TOKEN,
        api_url=BASE,
        secrets_path=tmp_path / "none.toml",
        environ={},
    )
    with CredlyClient.from_settings(settings, transport=credly) as client:
        assert client.get_organization()["name"] == "Example Academy"
        assert client.org_id == ORG and client.base_url == BASE
    assert credly.requests[0].headers["Authorization"] == BASIC


@pytest.mark.parametrize(
    ("kw", "problem"),
    [
        ({"base_url": f"https://{TOKEN}:x@api.credly.test/v1"}, "credentials"),
        ({"base_url": f"https://api.credly.test/v1?token={TOKEN}"}, "query"),
        ({"base_url": "api.credly.test/v1"}, "absolute"),
        ({"token": "   "}, "token"),
        ({"org_id": ""}, "org_id"),
        ({"max_attempts": 0}, "max_attempts"),
    ],
)
def test_bad_construction_is_refused_without_echoing_secrets(
    make_client: Callable[..., CredlyClient], kw: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem) as info:
        make_client(**kw)
    assert TOKEN not in str(info.value)


# ---------------------------------------------------------------- GET retries


def test_get_429_honours_retry_after_and_tells_the_job(
    make_client: Callable[..., CredlyClient], credly: LocalCredly, sleeps: list[float]
) -> None:
    seen: list[float] = []
    client = make_client(on_rate_limited=seen.append)
    credly.fail("GET", "", "429", retry_after="7")
    assert client.get_organization()["id"] == ORG
    assert sleeps == [7.0]
    assert seen == [7.0]
    assert len(credly.requests) == 2


def test_get_429_with_http_date_retry_after(
    client: CredlyClient, credly: LocalCredly, sleeps: list[float]
) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=20)
    credly.fail("GET", "", "429", retry_after=soon.strftime("%a, %d %b %Y %H:%M:%S GMT"))
    client.get_organization()
    assert len(sleeps) == 1 and 15.0 <= sleeps[0] <= 20.0


def test_get_429_with_garbage_retry_after_uses_backoff(
    client: CredlyClient, credly: LocalCredly, sleeps: list[float]
) -> None:
    credly.fail("GET", "", "429", retry_after="soon-ish")
    client.get_organization()
    assert len(sleeps) == 1 and 0.0 <= sleeps[0] <= 0.5


def test_get_503_then_success(
    client: CredlyClient, credly: LocalCredly, sleeps: list[float]
) -> None:
    credly.fail("GET", "/badge_templates/.*", "503_html")
    assert client.get_template(TPL_ACTIVE).id == TPL_ACTIVE
    assert len(sleeps) == 1 and 0.0 <= sleeps[0] <= 0.5
    assert len(credly.requests) == 2


@pytest.mark.parametrize("kind", ["timeout", "connect", "connect_timeout"])
def test_get_transport_failure_then_success(
    client: CredlyClient, credly: LocalCredly, sleeps: list[float], kind: str
) -> None:
    credly.add_badge("ada@example.com")
    credly.fail("GET", "/badges", kind)
    assert [b.recipient_email for b in client.iter_badges()] == ["ada@example.com"]
    assert len(sleeps) == 1


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("503_html", E.ServerError),
        ("500", E.ServerError),
        ("timeout", E.AnswerTimedOut),
        ("connect", E.ConnectFailed),
        ("connect_timeout", E.ConnectFailed),
        ("429", E.RateLimited),
        ("lost_after", E.ConnectionLost),
        ("garbled_after", E.ConnectionLost),
    ],
)
def test_get_gives_up_after_max_attempts(
    client: CredlyClient,
    credly: LocalCredly,
    sleeps: list[float],
    kind: str,
    error: type[E.CredlyError],
) -> None:
    credly.fail("GET", "", kind, times=10)
    with pytest.raises(error):
        client.get_organization()
    assert len(credly.requests) == 5
    assert len(sleeps) == 4
    windows = [0.5, 1.0, 2.0, 4.0]
    assert all(0.0 <= s <= w for s, w in zip(sleeps, windows, strict=True))


def test_max_attempts_can_be_lowered(
    make_client: Callable[..., CredlyClient], credly: LocalCredly, sleeps: list[float]
) -> None:
    client = make_client(max_attempts=2)
    credly.fail("GET", "", "500", times=5)
    with pytest.raises(E.ServerError):
        client.get_organization()
    assert len(credly.requests) == 2 and len(sleeps) == 1


def test_non_json_error_body_uses_the_reason_phrase(
    make_client: Callable[..., CredlyClient], credly: LocalCredly
) -> None:
    client = make_client(max_attempts=1)
    credly.fail("GET", "", "503_html")
    with pytest.raises(E.ServerError) as info:
        client.get_organization()
    assert info.value.status == 503
    assert info.value.message == "Service Unavailable"
    assert info.value.method == "GET" and info.value.path == ORG_PATH


def test_get_badge_unknown_is_not_found_without_retry(
    client: CredlyClient, credly: LocalCredly, sleeps: list[float]
) -> None:
    with pytest.raises(E.NotFound) as info:
        client.get_badge("nope")
    assert info.value.path == f"{ORG_PATH}/badges/nope"
    assert len(credly.requests) == 1 and sleeps == []


def test_get_badge_reads_one_badge(client: CredlyClient, credly: LocalCredly) -> None:
    stored = credly.add_badge("ada@example.com", expires_at=ISSUED + timedelta(days=365))
    badge = client.get_badge(stored["id"])
    assert badge.id == stored["id"]
    assert badge.issued_at == ISSUED
    assert badge.expires_at == ISSUED + timedelta(days=365)


# ---------------------------------------------------------------- issue: exactly once


def test_issue_sends_credly_request_format_and_false_for_no_expiry(
    client: CredlyClient, credly: LocalCredly
) -> None:
    result = client.issue(issue_request())
    assert result == IssueResult(result.badge, recovered=False, duplicate=False)
    body = json.loads(credly.requests_to("POST", "/badges")[0].content)
    assert body["issued_at"] == "2024-05-01 09:41:00 +0000"
    assert body["expires_at"] is False
    assert body["recipient_email"] == "ada@example.com"
    assert result.badge.state == "pending"
    assert credly.created == 1
    assert credly.badges[result.badge.id]["expires_at"] is None


def test_issue_payload_formats_an_expiry_in_utc() -> None:
    minus_five = timezone(timedelta(hours=-5))
    req = issue_request(
        issued_at=datetime(2024, 5, 1, 9, 41, 0, tzinfo=minus_five),
        expires_at=datetime(2025, 5, 1, 9, 41, 0, tzinfo=minus_five),
    )
    body = issue_payload(req)
    assert body["issued_at"] == "2024-05-01 14:41:00 +0000"
    assert body["expires_at"] == "2025-05-01 14:41:00 +0000"
    assert "issuer_earner_id" not in body


@pytest.mark.parametrize("kind", ["timeout_after", "500_after", "lost_after"])
def test_issue_outcome_unknown_after_processing_is_found_not_reissued(
    client: CredlyClient, credly: LocalCredly, sleeps: list[float], kind: str
) -> None:
    credly.fail("POST", "/badges", kind)
    result = client.issue(issue_request())
    assert result.recovered is True and result.duplicate is False
    assert credly.created == 1
    assert len(credly.requests_to("POST", "/badges")) == 1
    assert result.badge.id in credly.badges
    assert len(sleeps) == 1  # a pause before looking the result up
    lookup = credly.requests_to("GET", "/badges")[0]
    assert parse_filter(lookup.url.params["filter"]) == {
        "recipient_email_all": ["ada@example.com"],
        "badge_template_id": [TPL_ACTIVE],
    }


def test_issue_5xx_not_processed_is_resent_exactly_once(
    client: CredlyClient, credly: LocalCredly
) -> None:
    credly.fail("POST", "/badges", "500")
    result = client.issue(issue_request())
    assert result.recovered is False and result.duplicate is False
    assert len(credly.requests_to("POST", "/badges")) == 2
    assert len(credly.requests_to("GET", "/badges")) == 1  # looked before resending
    assert credly.created == 1


def test_issue_timeout_before_processing_ignores_a_revoked_badge_of_the_same_completion(
    client: CredlyClient, credly: LocalCredly
) -> None:
    credly.add_badge("ada@example.com", state="revoked")
    credly.fail("POST", "/badges", "timeout")
    result = client.issue(issue_request())
    assert result.recovered is False
    assert result.badge.state == "pending"
    assert credly.created == 1
    assert len(credly.requests_to("POST", "/badges")) == 2


@pytest.mark.parametrize("kind", ["connect", "connect_timeout"])
def test_issue_connect_error_is_resent_without_lookup(
    client: CredlyClient, credly: LocalCredly, kind: str
) -> None:
    credly.fail("POST", "/badges", kind)
    result = client.issue(issue_request())
    assert result.recovered is False
    assert len(credly.requests_to("POST", "/badges")) == 2
    assert credly.requests_to("GET", "/badges") == []
    assert credly.created == 1


def test_issue_429_waits_and_resends(
    make_client: Callable[..., CredlyClient], credly: LocalCredly, sleeps: list[float]
) -> None:
    seen: list[float] = []
    client = make_client(on_rate_limited=seen.append)
    credly.fail("POST", "/badges", "429", retry_after="3")
    client.issue(issue_request())
    assert sleeps == [3.0] and seen == [3.0]
    assert len(credly.requests_to("POST", "/badges")) == 2
    assert credly.created == 1


def test_issue_gives_up_after_max_attempts_when_nothing_is_ever_processed(
    client: CredlyClient, credly: LocalCredly, sleeps: list[float]
) -> None:
    credly.fail("POST", "/badges", "timeout", times=10)
    with pytest.raises(E.AnswerTimedOut):
        client.issue(issue_request())
    assert len(credly.requests_to("POST", "/badges")) == 5
    assert len(credly.requests_to("GET", "/badges")) == 5  # a look-up after each
    assert credly.created == 0
    assert len(sleeps) == 5


def test_issue_lookup_failure_keeps_the_outcome_unknown_and_does_not_resend(
    make_client: Callable[..., CredlyClient], credly: LocalCredly
) -> None:
    client = make_client(max_attempts=2)
    credly.fail("POST", "/badges", "timeout_after")
    credly.fail("GET", "/badges", "500", times=2)
    with pytest.raises(E.AnswerTimedOut) as info:
        client.issue(issue_request())
    assert isinstance(info.value.__cause__, E.ServerError)
    assert len(credly.requests_to("POST", "/badges")) == 1
    assert credly.created == 1


def test_issue_duplicate_of_the_same_completion_returns_the_existing_badge(
    client: CredlyClient, credly: LocalCredly
) -> None:
    existing = credly.add_badge("Ada@Example.com", state="accepted")
    result = client.issue(issue_request("ada@example.com"))
    assert result.duplicate is True and result.recovered is False
    assert result.badge.id == existing["id"]
    assert credly.created == 0
    assert len(credly.requests_to("POST", "/badges")) == 1


def test_issue_duplicate_of_a_different_badge_raises(
    client: CredlyClient, credly: LocalCredly
) -> None:
    credly.add_badge("ada@example.com", issued_at=ISSUED - timedelta(days=30))
    with pytest.raises(E.DuplicateBadge) as info:
        client.issue(issue_request())
    assert info.value.status == 422
    assert len(credly.requests_to("POST", "/badges")) == 1
    assert credly.created == 0


def test_issue_after_lost_answer_then_duplicate_is_recovered(
    client: CredlyClient, credly: LocalCredly
) -> None:
    # The first POST is processed but its answer lost, and the look-up (on a lagging index)
    # misses it; the resend is refused as a duplicate of that very badge.
    credly.fail("POST", "/badges", "timeout_after")
    credly.answer(
        "GET",
        "/badges",
        lambda request: _json(200, {"data": [], "metadata": {"current_page": 1, "total_pages": 1}}),
    )
    result = client.issue(issue_request())
    assert result.recovered is True and result.duplicate is False
    assert credly.created == 1
    assert len(credly.requests_to("POST", "/badges")) == 2


@pytest.mark.parametrize(
    ("template_id", "word"), [(TPL_ARCHIVED, "archived"), (TPL_DRAFT, "draft")]
)
def test_issue_on_an_inactive_template_is_final(
    client: CredlyClient, credly: LocalCredly, sleeps: list[float], template_id: str, word: str
) -> None:
    with pytest.raises(E.TemplateNotIssuable, match=word):
        client.issue(issue_request(template_id=template_id))
    assert len(credly.requests) == 1 and sleeps == []


def test_issue_template_allowing_duplicates_issues_a_second_badge(
    client: CredlyClient, credly: LocalCredly
) -> None:
    credly.add_badge("ada@example.com", TPL_DUPES, ISSUED - timedelta(days=90))
    result = client.issue(issue_request(template_id=TPL_DUPES))
    assert result.duplicate is False and credly.created == 1


def test_issue_from_several_threads_creates_each_badge_once(
    client: CredlyClient, credly: LocalCredly
) -> None:
    emails = [f"student{i}@example.com" for i in range(12)]
    for _ in emails[::3]:
        credly.fail("POST", "/badges", "timeout_after")
    results: list[IssueResult] = []
    lock = threading.Lock()

    def work(email: str) -> None:
        result = client.issue(issue_request(email))
        with lock:
            results.append(result)

    threads = [threading.Thread(target=work, args=(email,)) for email in emails]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(r.badge.recipient_email for r in results) == sorted(emails)
    assert credly.created == len(emails)
    assert sum(r.recovered for r in results) == 4


# ---------------------------------------------------------------- pagination


@pages_of(2)
def test_pagination_rebuilds_requests_with_the_original_filter_and_sort(
    make_client: Callable[..., CredlyClient], credly: LocalCredly
) -> None:
    credly.edit("GET", "/badges", _careless_next_links)
    wanted = [credly.add_badge(f"s{i}@example.com", state="accepted") for i in range(5)]
    credly.add_badge("rejected@example.com", state="rejected")
    credly.add_badge("revoked@example.com", state="revoked")
    client = make_client()
    got = list(client.iter_badges(state=["pending", "accepted"], sort="-created_at"))
    assert [b.id for b in got] == [b["id"] for b in reversed(wanted)]
    pages = credly.requests_to("GET", "/badges")
    assert [r.url.params["page"] for r in pages] == ["1", "2", "3"]
    for r in pages:
        assert r.url.params["filter"] == "state::pending,accepted"
        assert r.url.params["sort"] == "-created_at"


@pages_of(3)
def test_pagination_stops_at_total_pages(client: CredlyClient, credly: LocalCredly) -> None:
    for i in range(6):
        credly.add_badge(f"s{i}@example.com")
    assert len(list(client.iter_badges())) == 6
    assert len(credly.requests_to("GET", "/badges")) == 2


def test_pagination_stops_on_an_empty_page_even_if_total_pages_says_more(
    client: CredlyClient, credly: LocalCredly
) -> None:
    credly.add_badge("ada@example.com")

    def nine_pages(data: dict[str, Any]) -> None:
        data["metadata"]["total_pages"] = 9

    credly.edit("GET", "/badges", nine_pages)
    assert [b.id for b in client.iter_badges()] == ["badge-0001"]
    assert len(credly.requests) == 2


@pages_of(2)
def test_badges_page_reports_page_info_and_accepts_time_filters(
    client: CredlyClient, credly: LocalCredly
) -> None:
    for i in range(3):
        credly.add_badge(f"s{i}@example.com")
    items, info = client.badges_page(2, sort=["-issued_at", "created_at"])
    assert info == PageInfo(current_page=2, total_pages=2, total_count=3, per=2)
    assert len(items) == 1
    assert credly.requests[-1].url.params["sort"] == "-issued_at|created_at"
    # time filters: datetimes in Credly's request format, dates as YYYY-MM-DD
    credly.answer("GET", "/badges", lambda request: _json(200, {"data": [], "metadata": {}}))
    items, info = client.badges_page(
        1,
        issued_at_min=datetime(2024, 1, 1, tzinfo=UTC),
        updated_at_max=date(2024, 2, 1),
        issuer_earner_id="u-1",
    )
    assert items == [] and info == PageInfo(1, 1, 0, 50)
    terms = parse_filter(credly.requests[-1].url.params["filter"])
    assert terms == {
        "issuer_earner_id": ["u-1"],
        "issued_at_min": ["2024-01-01 00:00:00 +0000"],
        "updated_at_max": ["2024-02-01"],
    }


def test_badge_filter_terms_go_out_in_one_order_whatever_the_keyword_order(
    client: CredlyClient, credly: LocalCredly
) -> None:
    credly.answer("GET", "/badges", lambda request: _json(200, {"data": [], "metadata": {}}))
    client.badges_page(1, updated_at_min=date(2024, 2, 1), query="ada", state="pending")
    assert credly.requests[-1].url.params["filter"] == (
        "state::pending|query::ada|updated_at_min::2024-02-01"
    )


def test_a_badge_search_refuses_a_term_it_does_not_take(client: CredlyClient) -> None:
    with pytest.raises(TypeError, match="expires_at_date_max"):
        client.iter_badges(expires_at_date_max=date(2025, 1, 1))  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="issued_at_min"):
        next(client.high_volume_pages(issued_at_min=date(2025, 1, 1)))  # type: ignore[call-arg]


def test_page_info_fills_gaps_in_metadata() -> None:
    assert PageInfo.from_metadata({}, requested=3, count=4) == PageInfo(3, 3, 4, 50)
    with_next = {"current_page": 2, "next_page_url": "https://x/?page=3", "per": "10"}
    assert PageInfo.from_metadata(with_next, requested=2, count=10) == PageInfo(2, 3, 10, 10)
    garbage = {"current_page": "two", "total_pages": True, "total_count": None}
    assert PageInfo.from_metadata(garbage, requested=1, count=0) == PageInfo(1, 1, 0, 50)


def test_page_numbers_start_at_one(client: CredlyClient) -> None:
    with pytest.raises(ValueError, match="start at 1"):
        client.badges_page(0)
    with pytest.raises(ValueError, match="start at 1"):
        list(client.iter_badges(start_page=0))


@pages_of(2)
def test_iter_badges_from_a_later_page(client: CredlyClient, credly: LocalCredly) -> None:
    for i in range(5):
        credly.add_badge(f"s{i}@example.com")
    got = list(client.iter_badges(start_page=2))
    assert [b.recipient_email for b in got] == [
        "s2@example.com",
        "s3@example.com",
        "s4@example.com",
    ]


def test_find_badges_uses_recipient_email_all_and_template(
    client: CredlyClient, credly: LocalCredly
) -> None:
    mine = credly.add_badge("ada@example.com", state="revoked")
    credly.add_badge("ada@example.com", TPL_DUPES)
    credly.add_badge("bob@example.com")
    found = client.find_badges(" ada@example.com ", TPL_ACTIVE)
    assert [b.id for b in found] == [mine["id"]]
    request = credly.requests_to("GET", "/badges")[0]
    assert request.url.params["filter"] == (
        f"recipient_email_all::ada@example.com|badge_template_id::{TPL_ACTIVE}"
    )


def test_templates_list_filter_sort_and_get(client: CredlyClient, credly: LocalCredly) -> None:
    active = client.list_templates(state="active")
    assert [t.id for t in active] == [TPL_ACTIVE, TPL_DUPES]
    assert active[1].allow_duplicate_badges is True
    request = credly.requests_to("GET", "/badge_templates")[0]
    assert request.url.params["filter"] == "state::active"
    assert request.url.params["sort"] == "name"
    both = list(client.iter_templates(state=["archived", "draft"], query="template"))
    assert {t.id for t in both} == {TPL_ARCHIVED, TPL_DRAFT}
    assert all(not t.can_issue for t in both)
    tpl = client.get_template(TPL_ARCHIVED)
    assert tpl.state == "archived"
    with pytest.raises(E.NotFound):
        client.get_template("missing")


def test_unknown_response_fields_are_tolerated(client: CredlyClient, credly: LocalCredly) -> None:
    def added_later(data: dict[str, Any]) -> None:
        for item in data["data"] if isinstance(data["data"], list) else [data["data"]]:
            item["brand_new_field"] = {"added": "by Credly later"}
            item.setdefault("badge_template", {})["brand_new_nested"] = True
        data["metadata"]["brand_new_meta"] = "x"

    credly.edit("GET", "/badges", added_later)
    credly.edit(
        "GET", "/badge_templates/.*", lambda d: d["data"].update(brand_new_template_field=1)
    )
    credly.edit("GET", "", lambda d: d["data"].update(brand_new=1))
    credly.add_badge("ada@example.com")
    badge = next(client.iter_badges())
    assert badge.model_extra is not None
    assert badge.model_extra["brand_new_field"] == {"added": "by Credly later"}
    tpl = client.get_template(TPL_ACTIVE)
    assert tpl.model_extra is not None and "brand_new_template_field" in tpl.model_extra
    assert client.get_organization()["brand_new"] == 1


def test_an_unreadable_badge_is_a_credly_error_without_personal_data(
    client: CredlyClient, credly: LocalCredly
) -> None:
    credly.add_badge("secret.person@example.com")
    credly.edit("GET", "/badges", lambda data: data["data"][0].pop("badge_template"))
    with pytest.raises(E.CredlyError, match="badge_template") as info:
        list(client.iter_badges())
    assert "secret.person" not in str(info.value)
    assert info.value.__cause__ is None


def test_a_garbled_success_body_on_get_is_retried(
    client: CredlyClient, credly: LocalCredly, sleeps: list[float]
) -> None:
    credly.answer("GET", "", lambda request: httpx.Response(200, text="<html>proxy</html>"))
    assert client.get_organization()["id"] == ORG
    assert len(sleeps) == 1


# ---------------------------------------------------------------- high volume


@pages_of(2)
def test_high_volume_follows_the_cursor(client: CredlyClient, credly: LocalCredly) -> None:
    given: list[str | None] = []
    credly.edit(
        "GET",
        "/high_volume_issued_badge_search",
        lambda data: given.append(data["metadata"]["next_page_url"]),
        times=3,
    )
    for i in range(5):
        credly.add_badge(f"s{i}@example.com", state="accepted")
    credly.add_badge("gone@example.com", state="revoked")
    pages = list(
        client.high_volume_pages(
            state="accepted",
            badge_format="minimal",
            start_date=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        )
    )
    assert [len(p) for p in pages] == [2, 2, 1]
    assert all(isinstance(b, IssuedBadge) for p in pages for b in p)
    first, *rest = credly.requests
    assert first.url.params["filter"] == "state::accepted"
    assert first.url.params["badge_format"] == "minimal"
    assert first.url.params["start_date"] == "2024-01-02 03:04:05"
    assert "end_date" not in first.url.params
    # later pages are the opaque cursor URL, exactly as given
    assert given[-1] is None and len(given) == 3
    assert [str(r.url) for r in rest] == given[:-1]
    assert all("cursor=" in str(r.url) and "filter" not in r.url.params for r in rest)
    assert all(r.headers["Authorization"] == BASIC for r in rest)
    assert [b.recipient_email for b in client.iter_high_volume()] == [
        *(f"s{i}@example.com" for i in range(5)),
        "gone@example.com",
    ]


@pytest.mark.parametrize(
    "next_base",
    [
        "https://evil.example/v1",
        "http://api.credly.test/v1",  # downgrade to plain text
        "https://api.credly.test:8443/v1",
        f"https://{TOKEN}@api.credly.test/v1",
    ],
)
@pages_of(1)
def test_high_volume_refuses_a_cursor_to_another_host(
    client: CredlyClient, credly: LocalCredly, next_base: str
) -> None:
    credly.add_badge("a@example.com")
    credly.add_badge("b@example.com")

    def moved(data: dict[str, Any]) -> None:
        data["metadata"]["next_page_url"] = data["metadata"]["next_page_url"].replace(
            BASE, next_base
        )

    credly.edit("GET", "/high_volume_issued_badge_search", moved)
    got: list[IssuedBadge] = []
    with pytest.raises(E.CredlyError, match="another host") as info:
        got.extend(client.iter_high_volume())
    assert [b.recipient_email for b in got] == ["a@example.com"]
    assert len(credly.requests) == 1
    assert all(r.url.host == "api.credly.test" for r in credly.requests)
    assert TOKEN not in str(info.value)


@pages_of(1)
def test_high_volume_refuses_a_cursor_that_does_not_advance(
    client: CredlyClient, credly: LocalCredly
) -> None:
    credly.add_badge("a@example.com")
    credly.add_badge("b@example.com")
    first: list[str] = []

    def stuck(data: dict[str, Any]) -> None:
        # the second page points back at itself
        if first:
            data["metadata"]["next_page_url"] = first[0]
        else:
            first.append(data["metadata"]["next_page_url"])

    credly.edit("GET", "/high_volume_issued_badge_search", stuck)
    with pytest.raises(E.CredlyError, match="did not advance"):
        list(client.iter_high_volume())
    assert len(credly.requests) == 2


def test_high_volume_rejects_an_unknown_format(client: CredlyClient) -> None:
    with pytest.raises(ValueError, match="badge_format"):
        list(client.iter_high_volume(badge_format="full"))


# ---------------------------------------------------------------- replace


def replace_request(
    expires_at: datetime | Literal[False] | None = ISSUED + timedelta(days=730),
) -> ReplaceRequest:
    return ReplaceRequest(badge_template_id=TPL_ACTIVE, issued_at=ISSUED, expires_at=expires_at)


def test_replace_creates_the_replacement(client: CredlyClient, credly: LocalCredly) -> None:
    old = credly.add_badge(
        "ada@example.com", state="accepted", expires_at=ISSUED + timedelta(days=365)
    )
    new = client.replace(old["id"], replace_request())
    assert new.replaces_badge_id == old["id"]
    assert new.expires_at == ISSUED + timedelta(days=730)
    assert new.state == "accepted"
    assert credly.badges[old["id"]]["state"] == "replaced"
    body = json.loads(credly.requests[0].content)
    assert body == {
        "badge_template_id": TPL_ACTIVE,
        "issued_at": "2024-05-01 09:41:00 +0000",
        "expires_at": "2026-05-01 09:41:00 +0000",
    }


def test_replace_payload_sends_false_for_no_expiry() -> None:
    body = replace_payload(
        ReplaceRequest(
            badge_template_id=TPL_ACTIVE,
            issued_at=ISSUED,
            notification_message="Your badge has been renewed",
        )
    )
    assert body["expires_at"] is False
    template_default = replace_payload(
        ReplaceRequest(badge_template_id=TPL_ACTIVE, issued_at=ISSUED, expires_at=None)
    )
    assert template_default["expires_at"] is None
    assert body["notification_message"] == "Your badge has been renewed"
    assert "issued_to_first_name" not in body


@pytest.mark.parametrize("kind", ["timeout_after", "500_after"])
def test_replace_outcome_unknown_after_processing_returns_the_replacement(
    client: CredlyClient, credly: LocalCredly, kind: str
) -> None:
    old = credly.add_badge("ada@example.com")
    credly.fail("POST", "/badges/.*/replace", kind)
    new = client.replace(old["id"], replace_request(expires_at=False))
    assert credly.replacements == 1
    assert len(credly.requests_to("POST", f"/badges/{old['id']}/replace")) == 1
    assert new.id == credly.badges[old["id"]]["replacement_badge_id"]
    assert new.expires_at is None


def test_replace_5xx_not_processed_is_resent_once(
    client: CredlyClient, credly: LocalCredly
) -> None:
    old = credly.add_badge("ada@example.com")
    credly.fail("POST", "/badges/.*/replace", "500")
    new = client.replace(old["id"], replace_request())
    assert credly.replacements == 1
    assert len(credly.requests_to("POST", f"/badges/{old['id']}/replace")) == 2
    assert new.replaces_badge_id == old["id"]


def test_replace_falls_back_to_search_when_get_by_id_is_missing(
    client: CredlyClient, credly: LocalCredly
) -> None:
    no_route = httpx.Response(404, text="<h1>No route</h1>")
    credly.answer("GET", "/badges/[^/]+", lambda request: no_route, times=None)
    old = credly.add_badge("ada@example.com")
    credly.fail("POST", "/badges/.*/replace", "timeout_after")
    new = client.replace(old["id"], replace_request(), recipient_email="ada@example.com")
    assert credly.replacements == 1
    assert new.replaces_badge_id == old["id"]
    assert len(credly.requests_to("POST", f"/badges/{old['id']}/replace")) == 1


def test_replace_already_replaced_with_matching_current_badge_returns_it(
    client: CredlyClient, credly: LocalCredly
) -> None:
    old = credly.add_badge("ada@example.com")
    first = client.replace(old["id"], replace_request())
    again = client.replace(old["id"], replace_request())
    assert again.id == first.id
    assert credly.replacements == 1


def test_replace_already_replaced_with_a_different_badge_raises(
    client: CredlyClient, credly: LocalCredly
) -> None:
    old = credly.add_badge("ada@example.com")
    client.replace(old["id"], replace_request(expires_at=ISSUED + timedelta(days=100)))
    with pytest.raises(E.AlreadyReplaced) as info:
        client.replace(old["id"], replace_request())
    assert info.value.current_badge_id == credly.badges[old["id"]]["replacement_badge_id"]
    assert credly.replacements == 1


def test_replace_lost_answer_then_concurrent_replace_is_not_claimed(
    client: CredlyClient, credly: LocalCredly
) -> None:
    old = credly.add_badge("ada@example.com")
    other = ReplaceRequest(
        badge_template_id=TPL_ACTIVE, issued_at=ISSUED, expires_at=ISSUED + timedelta(days=1)
    )
    # Someone else replaces the badge while our request times out before being processed.
    credly.replace(old["id"], other)
    credly.fail("POST", "/badges/.*/replace", "timeout")
    with pytest.raises(E.AlreadyReplaced):
        client.replace(old["id"], replace_request())
    assert credly.replacements == 1


# ---------------------------------------------------------------- revoke, delete, events


def test_revoke_sends_reason_in_the_body(client: CredlyClient, credly: LocalCredly) -> None:
    badge = credly.add_badge("ada@example.com")
    revoked = client.revoke(badge["id"], " issued in error ", suppress_notification=True)
    assert revoked.state == "revoked" and revoked.revocation_reason == "issued in error"
    request = credly.requests[0]
    assert request.method == "PUT"
    assert json.loads(request.content) == {
        "reason": "issued in error",
        "suppress_revoke_notification_email": True,
    }


@pytest.mark.parametrize("reason", ["", "   "])
def test_revoke_needs_a_reason(client: CredlyClient, credly: LocalCredly, reason: str) -> None:
    with pytest.raises(ValueError, match="reason"):
        client.revoke("badge-0001", reason)
    assert credly.requests == []


def test_revoke_outcome_unknown_is_looked_up_not_resent(
    client: CredlyClient, credly: LocalCredly
) -> None:
    badge = credly.add_badge("ada@example.com")
    credly.fail("PUT", "/badges/.*/revoke", "timeout_after")
    revoked = client.revoke(badge["id"], "fraud")
    assert revoked.state == "revoked"
    assert credly.revocations == 1
    assert len(credly.requests_to("PUT", f"/badges/{badge['id']}/revoke")) == 1


def test_revoking_a_revoked_badge_is_final(client: CredlyClient, credly: LocalCredly) -> None:
    badge = credly.add_badge("ada@example.com", state="revoked")
    with pytest.raises(E.ValidationFailed, match="already been revoked"):
        client.revoke(badge["id"], "again")


def test_delete_and_delete_after_a_lost_answer(client: CredlyClient, credly: LocalCredly) -> None:
    first = credly.add_badge("ada@example.com")
    second = credly.add_badge("bob@example.com")
    client.delete(first["id"])
    assert first["id"] not in credly.badges
    credly.fail("DELETE", "/badges/.*", "timeout_after")
    client.delete(second["id"])  # resent, answered 404: the first attempt worked
    assert second["id"] not in credly.badges
    assert len(credly.requests_to("DELETE", f"/badges/{second['id']}")) == 2
    with pytest.raises(E.NotFound):
        client.delete("badge-9999")


def test_organization_and_events(client: CredlyClient) -> None:
    assert client.get_organization()["name"] == "Example Academy"
    issued = client.issue(issue_request()).badge
    events, info = client.list_events()
    assert [e["event_type"] for e in events] == ["badge.created"]
    assert info.total_pages == 1 and info.total_count == 1
    assert client.get_event(events[0]["id"])["badge"]["id"] == issued.id


# ---------------------------------------------------------------- the token never leaks


def _all_text(exc: BaseException) -> str:
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts += [str(current), repr(current)]
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


def _raise_every_error(client: CredlyClient, credly: LocalCredly) -> list[E.CredlyError]:
    caught: list[E.CredlyError] = []
    credly.add_badge("ada@example.com", issued_at=ISSUED - timedelta(days=3))
    actions: list[Callable[[], object]] = [
        lambda: client.get_badge("nope"),  # NotFound
        lambda: client.issue(issue_request()),  # DuplicateBadge
        lambda: client.issue(issue_request(template_id=TPL_ARCHIVED)),  # TemplateNotIssuable
        lambda: client.issue(issue_request("x@example.com", template_id="missing")),  # 422
        lambda: client.revoke("badge-0001", "r") and client.revoke("badge-0001", "r"),
    ]
    for kind in ["500", "503_html", "429", "timeout", "connect", "lost_after"]:
        credly.fail("GET", "", kind, times=5)  # every attempt fails
        actions.append(client.get_organization)
    credly.fail("GET", "", "echo_token")  # a final answer: one attempt
    actions.append(client.get_organization)
    for action in actions:
        try:
            action()
        except E.CredlyError as exc:
            caught.append(exc)
    # an error answer for every remaining status in the tree
    for status in (400, 401, 403, 410, 418):
        credly.answer("GET", "", lambda request, s=status: _json(s, {"data": {"message": "no"}}))
        try:
            client.get_organization()
        except E.CredlyError as exc:
            caught.append(exc)
    old = credly.add_badge("z@example.com")
    return caught + _replaced_errors(client, credly, old)


def _replaced_errors(
    client: CredlyClient, credly: LocalCredly, old: dict[str, Any]
) -> list[E.CredlyError]:
    credly.replace(old["id"], replace_request(expires_at=ISSUED + timedelta(days=1)))
    try:
        client.replace(old["id"], replace_request())
    except E.AlreadyReplaced as exc:
        return [exc]
    raise AssertionError("expected AlreadyReplaced")


def test_the_token_is_in_no_repr_error_or_log(
    client: CredlyClient, credly: LocalCredly, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert TOKEN not in repr(client) and TOKEN not in str(client)
    assert repr(client) == f"CredlyClient(base_url={BASE!r}, org_id={ORG!r})"
    caught = _raise_every_error(client, credly)
    kinds = {type(exc) for exc in caught}
    assert kinds >= {
        E.NotFound,
        E.DuplicateBadge,
        E.TemplateNotIssuable,
        E.ValidationFailed,
        E.ServerError,
        E.RateLimited,
        E.AnswerTimedOut,
        E.ConnectFailed,
        E.ConnectionLost,
        E.BadRequest,
        E.InvalidToken,
        E.Forbidden,
        E.Gone,
        E.CredlyStatusError,
        E.AlreadyReplaced,
    }
    echoed = [
        exc for exc in caught if isinstance(exc, E.BadRequest) and "bad header" in exc.message
    ]
    assert echoed and "***" in echoed[0].message
    for exc in caught:
        text = _all_text(exc)
        for form in TOKEN_FORMS:
            assert form not in text, type(exc).__name__
    assert caplog.records, "the client logs its retries"
    for form in TOKEN_FORMS:
        assert form not in caplog.text
    for request in credly.requests:
        assert TOKEN not in str(request.url)

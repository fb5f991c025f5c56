"""The Credly client against a tiny stateful Credly behind ``httpx.MockTransport``.

The fake keeps badges and templates, counts what it creates, and can be told to fail a request
before or after processing it, so the exactly-once paths are tested against real state.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import math
import random
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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
from credly_ops.credly.filters import parse_filter, parse_sort
from credly_ops.models import IssuedBadge, IssueRequest, ReplaceRequest
from credly_ops.timeutil import format_credly_response, parse_credly_time

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

# ---------------------------------------------------------------- the tiny Credly

BEFORE = {"connect", "connect_timeout", "timeout", "500", "503_html", "429", "echo_token"}
AFTER = {"timeout_after", "500_after", "lost_after", "garbled_after"}


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    kind: str
    retry_after: str | None = None


@dataclass
class FakeCredly:
    """A small, stateful Credly organization."""

    per: int = 50
    get_by_id: bool = True
    hv_next_base: str = BASE
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)
    badges: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    created: int = 0
    replacements: int = 0
    revocations: int = 0

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self._cursors: dict[str, tuple[int, str | None]] = {}
        self._lock = threading.Lock()
        for tid, state, dupes in (
            (TPL_ACTIVE, "active", False),
            (TPL_DUPES, "active", True),
            (TPL_ARCHIVED, "archived", False),
            (TPL_DRAFT, "draft", False),
        ):
            self.templates[tid] = {
                "id": tid,
                "name": f"Template {tid}",
                "state": state,
                "allow_duplicate_badges": dupes,
                "brand_new_template_field": ["anything"],
                "owner": {"id": ORG, "type": "Organization"},
            }

    # -- set-up helpers

    def fail(self, method: str, path: str, kind: str, *, times: int = 1, **kw: Any) -> None:
        for _ in range(times):
            self.faults.append(Fault(method, re.compile(path), kind, **kw))

    def add_badge(
        self,
        email: str,
        template_id: str = TPL_ACTIVE,
        issued_at: datetime = ISSUED,
        *,
        state: str = "pending",
        expires_at: datetime | None = None,
    ) -> dict[str, Any]:
        n = next(self._ids)
        badge: dict[str, Any] = {
            "id": f"badge-{n:04d}",
            "seq": n,
            "state": state,
            "recipient_email": email,
            "issued_to_first_name": "Ada",
            "issued_to_last_name": "Lovelace",
            "issued_at": format_credly_response(issued_at),
            "expires_at": format_credly_response(expires_at) if expires_at else None,
            "state_updated_at": None,
            "created_at": format_credly_response(ISSUED + timedelta(minutes=n)),
            "badge_template": {
                "id": template_id,
                "name": self.templates[template_id]["name"],
                "brand_new_nested": True,
            },
            "replaces_badge_id": None,
            "replacement_badge_id": None,
            "brand_new_field": {"added": "by Credly later"},
        }
        self.badges[badge["id"]] = badge
        return badge

    def requests_to(self, method: str, path_suffix: str) -> list[httpx.Request]:
        return [
            r for r in self.requests if r.method == method and r.url.path == ORG_PATH + path_suffix
        ]

    # -- the transport

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
            if request.headers.get("Authorization") != BASIC:
                return _json(401, {"data": {"message": "Unauthorized"}, "metadata": {}})
            fault = self._take_fault(request)
            if fault is not None and fault.kind in BEFORE:
                return self._fail_before(fault, request)
            response = self._route(request)
            if fault is not None:
                self._fail_after(fault, request)
            return response

    def _take_fault(self, request: httpx.Request) -> Fault | None:
        suffix = request.url.path.removeprefix(ORG_PATH)
        for i, fault in enumerate(self.faults):
            if fault.method == request.method and fault.path.fullmatch(suffix):
                return self.faults.pop(i)
        return None

    @staticmethod
    def _fail_before(fault: Fault, request: httpx.Request) -> httpx.Response:
        if fault.kind == "connect":
            raise httpx.ConnectError("connection refused", request=request)
        if fault.kind == "connect_timeout":
            raise httpx.ConnectTimeout("connect timed out", request=request)
        if fault.kind == "timeout":
            raise httpx.ReadTimeout("timed out", request=request)
        if fault.kind == "500":
            return _json(500, {"data": {"message": "Internal Server Error"}, "metadata": {}})
        if fault.kind == "503_html":
            return httpx.Response(503, text="<html>upstream down</html>")
        if fault.kind == "echo_token":
            message = f"bad header Basic {TOKEN_FORMS[1]} for {TOKEN}"
            return _json(400, {"data": {"message": message}, "metadata": {}})
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        return _json(429, {"data": {"message": "Rate limit exceeded"}}, headers=headers)

    @staticmethod
    def _fail_after(fault: Fault, request: httpx.Request) -> None:
        if fault.kind == "timeout_after":
            raise httpx.ReadTimeout("timed out", request=request)
        if fault.kind == "lost_after":
            raise httpx.RemoteProtocolError("peer closed connection", request=request)
        if fault.kind == "garbled_after":
            raise httpx.ReadError("connection reset", request=request)
        if fault.kind == "500_after":
            raise _Answer(_json(502, {"data": {"message": "Bad Gateway"}}))

    def _route(self, request: httpx.Request) -> httpx.Response:
        suffix = request.url.path.removeprefix(ORG_PATH)
        method = request.method
        if request.url.path == ORG_PATH and method == "GET":
            return _ok({"id": ORG, "name": "Example Academy", "brand_new": 1})
        if suffix == "/badges" and method == "GET":
            return self._list_badges(request)
        if suffix == "/badges" and method == "POST":
            return self._issue(json.loads(request.content))
        if suffix == "/high_volume_issued_badge_search" and method == "GET":
            return self._high_volume(request)
        if suffix == "/badge_templates" and method == "GET":
            return self._list_templates(request)
        if suffix == "/events" and method == "GET":
            events = [{"id": "ev-1", "event_type": "badge.created", "extra": 1}]
            meta = {"current_page": 1, "total_pages": 1, "total_count": 1, "per": 50}
            return _json(200, {"data": events, "metadata": meta})
        m = re.fullmatch(r"/events/([^/]+)", suffix)
        if m and method == "GET":
            return _ok({"id": m[1], "event_type": "badge.created", "badge": {"id": "b"}})
        m = re.fullmatch(r"/badge_templates/([^/]+)", suffix)
        if m and method == "GET":
            tpl = self.templates.get(m[1])
            return _ok(tpl) if tpl else _json(404, {"data": {"message": "Not Found"}})
        m = re.fullmatch(r"/badges/([^/]+)", suffix)
        if m and method == "GET":
            if not self.get_by_id:
                return httpx.Response(404, text="<h1>No route</h1>")
            badge = self.badges.get(m[1])
            return _ok(badge) if badge else _json(404, {"data": {"message": "Not Found"}})
        if m and method == "DELETE":
            if self.badges.pop(m[1], None) is None:
                return _json(404, {"data": {"message": "Not Found"}})
            return httpx.Response(204)
        m = re.fullmatch(r"/badges/([^/]+)/replace", suffix)
        if m and method == "POST":
            return self._replace(m[1], json.loads(request.content))
        m = re.fullmatch(r"/badges/([^/]+)/revoke", suffix)
        if m and method == "PUT":
            return self._revoke(m[1], json.loads(request.content))
        return _json(404, {"data": {"message": "Not Found"}})

    def _issue(self, body: dict[str, Any]) -> httpx.Response:
        tpl = self.templates.get(body["badge_template_id"])
        if tpl is None:
            return _invalid("Badge template not found")
        if tpl["state"] != "active":
            return _invalid(f"Badge template is {tpl['state']}")
        email = body["recipient_email"].strip().lower()
        if not tpl["allow_duplicate_badges"] and any(
            b["recipient_email"].lower() == email
            and b["badge_template"]["id"] == tpl["id"]
            and b["state"] in ("pending", "accepted")
            for b in self.badges.values()
        ):
            return _invalid("Badge template has already been issued to this recipient")
        badge = self.add_badge(
            body["recipient_email"],
            tpl["id"],
            parse_credly_time(body["issued_at"]),
            expires_at=_expiry(body.get("expires_at")),
        )
        self.created += 1
        return _json(201, {"data": badge, "metadata": {}})

    def _replace(self, badge_id: str, body: dict[str, Any]) -> httpx.Response:
        old = self.badges.get(badge_id)
        if old is None:
            return _json(404, {"data": {"message": "Not Found"}})
        if old["state"] == "replaced":
            current = old
            while current["replacement_badge_id"]:
                current = self.badges[current["replacement_badge_id"]]
            return _json(
                422,
                {
                    "data": {
                        "message": "Validation failed: This badge cannot be replaced "
                        "because it has already been replaced."
                    },
                    "metadata": {"current_badge_id": current["id"]},
                },
            )
        new = self.add_badge(
            old["recipient_email"],
            body["badge_template_id"],
            parse_credly_time(body["issued_at"]),
            state=old["state"],
            expires_at=_expiry(body.get("expires_at")),
        )
        new["replaces_badge_id"] = old["id"]
        old["state"] = "replaced"
        old["replacement_badge_id"] = new["id"]
        self.replacements += 1
        return _json(201, {"data": new, "metadata": {}})

    def _revoke(self, badge_id: str, body: dict[str, Any]) -> httpx.Response:
        badge = self.badges.get(badge_id)
        if badge is None:
            return _json(404, {"data": {"message": "Not Found"}})
        if not body.get("reason"):
            return _invalid("Reason can't be blank")
        if badge["state"] == "revoked":
            return _invalid("Badge has already been revoked")
        badge["state"] = "revoked"
        badge["revocation_reason"] = body["reason"]
        self.revocations += 1
        return _ok(badge)

    def _list_badges(self, request: httpx.Request) -> httpx.Response:
        terms = parse_filter(request.url.params.get("filter"))
        items = [b for b in self.badges.values() if _badge_matches(b, terms)]
        items.sort(key=lambda b: b["seq"])
        for key, descending in reversed(parse_sort(request.url.params.get("sort"))):
            items.sort(key=lambda b, k=key: str(b.get(k)), reverse=descending)  # type: ignore[misc]
        return self._page(request, items, "badges")

    def _list_templates(self, request: httpx.Request) -> httpx.Response:
        terms = parse_filter(request.url.params.get("filter"))
        items = [
            t
            for t in self.templates.values()
            if ("state" not in terms or t["state"] in terms["state"])
            and ("query" not in terms or terms["query"][0].lower() in t["name"].lower())
        ]
        if request.url.params.get("sort") == "name":
            items.sort(key=lambda t: t["name"])
        return self._page(request, items, "badge_templates")

    def _page(self, request: httpx.Request, items: list[Any], resource: str) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        total_pages = max(1, math.ceil(len(items) / self.per))
        chunk = items[(page - 1) * self.per : page * self.per]
        # Like a careless server: the next link drops the original filter and sort.
        next_url = (
            f"{BASE}/organizations/{ORG}/{resource}?page={page + 1}" if page < total_pages else None
        )
        meta = {
            "count": len(chunk),
            "current_page": page,
            "total_count": len(items),
            "total_pages": total_pages,
            "per": self.per,
            "previous_page_url": None,
            "next_page_url": next_url,
            "brand_new_meta": "x",
        }
        return _json(200, {"data": chunk, "metadata": meta})

    def _high_volume(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        # An opaque cursor: the server remembers the offset and the original filter.
        offset, filter_text = self._cursors.get(params.get("cursor", ""), (0, params.get("filter")))
        terms = parse_filter(filter_text)
        items = sorted(
            (b for b in self.badges.values() if _badge_matches(b, terms)), key=lambda b: b["seq"]
        )
        chunk = items[offset : offset + self.per]
        next_url = None
        if offset + self.per < len(items):
            token = f"c{len(self._cursors) + 1}"
            self._cursors[token] = (offset + self.per, filter_text)
            next_url = (
                f"{self.hv_next_base}/organizations/{ORG}/high_volume_issued_badge_search"
                f"?cursor={token}&badge_format={params.get('badge_format')}"
            )
        if params.get("badge_format") == "minimal":
            chunk = [{k: b[k] for k in _MINIMAL} for b in chunk]
        return _json(200, {"data": chunk, "metadata": {"next_page_url": next_url}})


class _Answer(Exception):
    """Raised inside the fake to swap the answer after processing."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response


_MINIMAL = ("id", "state", "recipient_email", "issued_at", "expires_at", "badge_template")


def _badge_matches(badge: dict[str, Any], terms: dict[str, list[str]]) -> bool:
    for key, values in terms.items():
        if key in ("recipient_email", "recipient_email_all"):
            if badge["recipient_email"].lower() != values[0].lower():
                return False
        elif key == "badge_template_id":
            if badge["badge_template"]["id"] not in values:
                return False
        elif key == "state":
            if badge["state"] not in values:
                return False
        else:
            raise AssertionError(f"the fake does not know filter key {key!r}")
    return True


def _expiry(value: Any) -> datetime | None:
    if value is None or value is False:
        return None
    return parse_credly_time(value)


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def _ok(data: Any) -> httpx.Response:
    return _json(200, {"data": data, "metadata": {}})


def _invalid(reason: str) -> httpx.Response:
    return _json(422, {"data": {"message": f"Validation failed: {reason}"}, "metadata": {}})


def _transport(fake: FakeCredly) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        try:
            return fake(request)
        except _Answer as swapped:
            return swapped.response

    return httpx.MockTransport(handler)


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def fake() -> FakeCredly:
    return FakeCredly()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_client(fake: FakeCredly, sleeps: list[float]) -> Iterator[Callable[..., CredlyClient]]:
    made: list[CredlyClient] = []

    def make(**kw: Any) -> CredlyClient:
        options: dict[str, Any] = {
            "base_url": BASE,
            "org_id": ORG,
            "token": TOKEN,
            "transport": _transport(fake),
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
    client: CredlyClient, fake: FakeCredly
) -> None:
    fake.add_badge("ada@example.com")
    client.get_organization()
    client.issue(issue_request("grace@example.com"))
    assert len(fake.requests) == 2
    for request in fake.requests:
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
    make_client: Callable[..., CredlyClient], fake: FakeCredly
) -> None:
    client = make_client(timeout=httpx.Timeout(None, read=12.0))
    client.get_organization()
    assert fake.requests[0].extensions["timeout"] == {
        "connect": 5.0,
        "read": 12.0,
        "write": 30.0,
        "pool": 30.0,
    }


def test_wrong_token_is_invalid_token_and_not_retried(
    make_client: Callable[..., CredlyClient], fake: FakeCredly, sleeps: list[float]
) -> None:
    client = make_client(token=SecretStr("wrong-token"))
    with pytest.raises(E.InvalidToken) as info:
        client.get_organization()
    assert info.value.status == 401
    assert info.value.message == "Unauthorized"
    assert info.value.path == ORG_PATH
    assert len(fake.requests) == 1 and sleeps == []


def test_from_settings_uses_org_url_and_token(fake: FakeCredly, tmp_path: Any) -> None:
    settings = load_settings(
        env="sandbox",
        org_id=ORG,
        api_token=TOKEN,
        api_url=BASE,
        secrets_path=tmp_path / "none.toml",
        environ={},
    )
    with CredlyClient.from_settings(settings, transport=_transport(fake)) as client:
        assert client.get_organization()["name"] == "Example Academy"
        assert client.org_id == ORG and client.base_url == BASE
    assert fake.requests[0].headers["Authorization"] == BASIC


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
    make_client: Callable[..., CredlyClient], fake: FakeCredly, sleeps: list[float]
) -> None:
    seen: list[float] = []
    client = make_client(on_rate_limited=seen.append)
    fake.fail("GET", "", "429", retry_after="7")
    assert client.get_organization()["id"] == ORG
    assert sleeps == [7.0]
    assert seen == [7.0]
    assert len(fake.requests) == 2


def test_get_429_with_http_date_retry_after(
    client: CredlyClient, fake: FakeCredly, sleeps: list[float]
) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=20)
    fake.fail("GET", "", "429", retry_after=soon.strftime("%a, %d %b %Y %H:%M:%S GMT"))
    client.get_organization()
    assert len(sleeps) == 1 and 15.0 <= sleeps[0] <= 20.0


def test_get_429_with_garbage_retry_after_uses_backoff(
    client: CredlyClient, fake: FakeCredly, sleeps: list[float]
) -> None:
    fake.fail("GET", "", "429", retry_after="soon-ish")
    client.get_organization()
    assert len(sleeps) == 1 and 0.0 <= sleeps[0] <= 0.5


def test_get_503_then_success(client: CredlyClient, fake: FakeCredly, sleeps: list[float]) -> None:
    fake.fail("GET", "/badge_templates/.*", "503_html")
    assert client.get_template(TPL_ACTIVE).id == TPL_ACTIVE
    assert len(sleeps) == 1 and 0.0 <= sleeps[0] <= 0.5
    assert len(fake.requests) == 2


@pytest.mark.parametrize("kind", ["timeout", "connect", "connect_timeout"])
def test_get_transport_failure_then_success(
    client: CredlyClient, fake: FakeCredly, sleeps: list[float], kind: str
) -> None:
    fake.add_badge("ada@example.com")
    fake.fail("GET", "/badges", kind)
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
    fake: FakeCredly,
    sleeps: list[float],
    kind: str,
    error: type[E.CredlyError],
) -> None:
    fake.fail("GET", "", kind, times=10)
    with pytest.raises(error):
        client.get_organization()
    assert len(fake.requests) == 5
    assert len(sleeps) == 4
    windows = [0.5, 1.0, 2.0, 4.0]
    assert all(0.0 <= s <= w for s, w in zip(sleeps, windows, strict=True))


def test_max_attempts_can_be_lowered(
    make_client: Callable[..., CredlyClient], fake: FakeCredly, sleeps: list[float]
) -> None:
    client = make_client(max_attempts=2)
    fake.fail("GET", "", "500", times=5)
    with pytest.raises(E.ServerError):
        client.get_organization()
    assert len(fake.requests) == 2 and len(sleeps) == 1


def test_non_json_error_body_uses_the_reason_phrase(
    make_client: Callable[..., CredlyClient], fake: FakeCredly
) -> None:
    client = make_client(max_attempts=1)
    fake.fail("GET", "", "503_html")
    with pytest.raises(E.ServerError) as info:
        client.get_organization()
    assert info.value.status == 503
    assert info.value.message == "Service Unavailable"
    assert info.value.method == "GET" and info.value.path == ORG_PATH


def test_get_badge_unknown_is_not_found_without_retry(
    client: CredlyClient, fake: FakeCredly, sleeps: list[float]
) -> None:
    with pytest.raises(E.NotFound) as info:
        client.get_badge("nope")
    assert info.value.path == f"{ORG_PATH}/badges/nope"
    assert len(fake.requests) == 1 and sleeps == []


def test_get_badge_reads_one_badge(client: CredlyClient, fake: FakeCredly) -> None:
    stored = fake.add_badge("ada@example.com", expires_at=ISSUED + timedelta(days=365))
    badge = client.get_badge(stored["id"])
    assert badge.id == stored["id"]
    assert badge.issued_at == ISSUED
    assert badge.expires_at == ISSUED + timedelta(days=365)


# ---------------------------------------------------------------- issue: exactly once


def test_issue_sends_credly_request_format_and_false_for_no_expiry(
    client: CredlyClient, fake: FakeCredly
) -> None:
    result = client.issue(issue_request())
    assert result == IssueResult(result.badge, recovered=False, duplicate=False)
    body = json.loads(fake.requests_to("POST", "/badges")[0].content)
    assert body["issued_at"] == "2024-05-01 09:41:00 +0000"
    assert body["expires_at"] is False
    assert body["recipient_email"] == "ada@example.com"
    assert result.badge.state == "pending"
    assert fake.created == 1
    assert fake.badges[result.badge.id]["expires_at"] is None


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
    client: CredlyClient, fake: FakeCredly, sleeps: list[float], kind: str
) -> None:
    fake.fail("POST", "/badges", kind)
    result = client.issue(issue_request())
    assert result.recovered is True and result.duplicate is False
    assert fake.created == 1
    assert len(fake.requests_to("POST", "/badges")) == 1
    assert result.badge.id in fake.badges
    assert len(sleeps) == 1  # a pause before looking the result up
    lookup = fake.requests_to("GET", "/badges")[0]
    assert parse_filter(lookup.url.params["filter"]) == {
        "recipient_email_all": ["ada@example.com"],
        "badge_template_id": [TPL_ACTIVE],
    }


def test_issue_5xx_not_processed_is_resent_exactly_once(
    client: CredlyClient, fake: FakeCredly
) -> None:
    fake.fail("POST", "/badges", "500")
    result = client.issue(issue_request())
    assert result.recovered is False and result.duplicate is False
    assert len(fake.requests_to("POST", "/badges")) == 2
    assert len(fake.requests_to("GET", "/badges")) == 1  # looked before resending
    assert fake.created == 1


def test_issue_timeout_before_processing_ignores_a_revoked_badge_of_the_same_completion(
    client: CredlyClient, fake: FakeCredly
) -> None:
    fake.add_badge("ada@example.com", state="revoked")
    fake.fail("POST", "/badges", "timeout")
    result = client.issue(issue_request())
    assert result.recovered is False
    assert result.badge.state == "pending"
    assert fake.created == 1
    assert len(fake.requests_to("POST", "/badges")) == 2


@pytest.mark.parametrize("kind", ["connect", "connect_timeout"])
def test_issue_connect_error_is_resent_without_lookup(
    client: CredlyClient, fake: FakeCredly, kind: str
) -> None:
    fake.fail("POST", "/badges", kind)
    result = client.issue(issue_request())
    assert result.recovered is False
    assert len(fake.requests_to("POST", "/badges")) == 2
    assert fake.requests_to("GET", "/badges") == []
    assert fake.created == 1


def test_issue_429_waits_and_resends(
    make_client: Callable[..., CredlyClient], fake: FakeCredly, sleeps: list[float]
) -> None:
    seen: list[float] = []
    client = make_client(on_rate_limited=seen.append)
    fake.fail("POST", "/badges", "429", retry_after="3")
    client.issue(issue_request())
    assert sleeps == [3.0] and seen == [3.0]
    assert len(fake.requests_to("POST", "/badges")) == 2
    assert fake.created == 1


def test_issue_gives_up_after_max_attempts_when_nothing_is_ever_processed(
    client: CredlyClient, fake: FakeCredly, sleeps: list[float]
) -> None:
    fake.fail("POST", "/badges", "timeout", times=10)
    with pytest.raises(E.AnswerTimedOut):
        client.issue(issue_request())
    assert len(fake.requests_to("POST", "/badges")) == 5
    assert len(fake.requests_to("GET", "/badges")) == 5  # a look-up after each
    assert fake.created == 0
    assert len(sleeps) == 5


def test_issue_lookup_failure_keeps_the_outcome_unknown_and_does_not_resend(
    make_client: Callable[..., CredlyClient], fake: FakeCredly
) -> None:
    client = make_client(max_attempts=2)
    fake.fail("POST", "/badges", "timeout_after")
    fake.fail("GET", "/badges", "500", times=2)
    with pytest.raises(E.AnswerTimedOut) as info:
        client.issue(issue_request())
    assert isinstance(info.value.__cause__, E.ServerError)
    assert len(fake.requests_to("POST", "/badges")) == 1
    assert fake.created == 1


def test_issue_duplicate_of_the_same_completion_returns_the_existing_badge(
    client: CredlyClient, fake: FakeCredly
) -> None:
    existing = fake.add_badge("Ada@Example.com", state="accepted")
    result = client.issue(issue_request("ada@example.com"))
    assert result.duplicate is True and result.recovered is False
    assert result.badge.id == existing["id"]
    assert fake.created == 0
    assert len(fake.requests_to("POST", "/badges")) == 1


def test_issue_duplicate_of_a_different_badge_raises(
    client: CredlyClient, fake: FakeCredly
) -> None:
    fake.add_badge("ada@example.com", issued_at=ISSUED - timedelta(days=30))
    with pytest.raises(E.DuplicateBadge) as info:
        client.issue(issue_request())
    assert info.value.status == 422
    assert len(fake.requests_to("POST", "/badges")) == 1
    assert fake.created == 0


def test_issue_after_lost_answer_then_duplicate_is_recovered(
    client: CredlyClient, fake: FakeCredly
) -> None:
    # The first POST is processed but its answer lost, and the look-up (on a lagging index)
    # misses it; the resend is refused as a duplicate of that very badge.
    fake.fail("POST", "/badges", "timeout_after")
    original_route = fake._route
    lagging_reads = [1]

    def lagging(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and lagging_reads:
            lagging_reads.pop()
            return _json(200, {"data": [], "metadata": {"current_page": 1, "total_pages": 1}})
        return original_route(request)

    fake._route = lagging  # type: ignore[method-assign]
    result = client.issue(issue_request())
    assert result.recovered is True and result.duplicate is False
    assert fake.created == 1
    assert len(fake.requests_to("POST", "/badges")) == 2


@pytest.mark.parametrize(
    ("template_id", "word"), [(TPL_ARCHIVED, "archived"), (TPL_DRAFT, "draft")]
)
def test_issue_on_an_inactive_template_is_final(
    client: CredlyClient, fake: FakeCredly, sleeps: list[float], template_id: str, word: str
) -> None:
    with pytest.raises(E.TemplateNotIssuable, match=word):
        client.issue(issue_request(template_id=template_id))
    assert len(fake.requests) == 1 and sleeps == []


def test_issue_template_allowing_duplicates_issues_a_second_badge(
    client: CredlyClient, fake: FakeCredly
) -> None:
    fake.add_badge("ada@example.com", TPL_DUPES, ISSUED - timedelta(days=90))
    result = client.issue(issue_request(template_id=TPL_DUPES))
    assert result.duplicate is False and fake.created == 1


def test_issue_from_several_threads_creates_each_badge_once(
    client: CredlyClient, fake: FakeCredly
) -> None:
    emails = [f"student{i}@example.com" for i in range(12)]
    for _ in emails[::3]:
        fake.fail("POST", "/badges", "timeout_after")
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
    assert fake.created == len(emails)
    assert sum(r.recovered for r in results) == 4


# ---------------------------------------------------------------- pagination


def test_pagination_rebuilds_requests_with_the_original_filter_and_sort(
    make_client: Callable[..., CredlyClient], fake: FakeCredly
) -> None:
    fake.per = 2
    wanted = [fake.add_badge(f"s{i}@example.com", state="accepted") for i in range(5)]
    fake.add_badge("rejected@example.com", state="rejected")
    fake.add_badge("revoked@example.com", state="revoked")
    client = make_client()
    got = list(client.iter_badges(state=["pending", "accepted"], sort="-created_at"))
    assert [b.id for b in got] == [b["id"] for b in reversed(wanted)]
    pages = fake.requests_to("GET", "/badges")
    assert [r.url.params["page"] for r in pages] == ["1", "2", "3"]
    for r in pages:
        assert r.url.params["filter"] == "state::pending,accepted"
        assert r.url.params["sort"] == "-created_at"


def test_pagination_stops_at_total_pages(client: CredlyClient, fake: FakeCredly) -> None:
    fake.per = 3
    for i in range(6):
        fake.add_badge(f"s{i}@example.com")
    assert len(list(client.iter_badges())) == 6
    assert len(fake.requests_to("GET", "/badges")) == 2


def test_pagination_stops_on_an_empty_page_even_if_total_pages_says_more(
    client: CredlyClient, fake: FakeCredly
) -> None:
    fake.add_badge("ada@example.com")
    meta = {"current_page": 1, "total_pages": 9}
    pages = [
        _json(200, {"data": [fake.badges["badge-0001"]], "metadata": meta}),
        _json(200, {"data": [], "metadata": {**meta, "current_page": 2}}),
    ]
    fake._route = lambda request: pages.pop(0)  # type: ignore[method-assign]
    assert [b.id for b in client.iter_badges()] == ["badge-0001"]
    assert len(fake.requests) == 2


def test_badges_page_reports_page_info_and_accepts_time_filters(
    client: CredlyClient, fake: FakeCredly
) -> None:
    fake.per = 2
    for i in range(3):
        fake.add_badge(f"s{i}@example.com")
    items, info = client.badges_page(2, sort=["-issued_at", "created_at"])
    assert info == PageInfo(current_page=2, total_pages=2, total_count=3, per=2)
    assert len(items) == 1
    assert fake.requests[-1].url.params["sort"] == "-issued_at|created_at"
    # time filters: datetimes in Credly's request format, dates as YYYY-MM-DD
    fake._route = lambda request: _json(200, {"data": [], "metadata": {}})  # type: ignore[method-assign]
    items, info = client.badges_page(
        1,
        issued_at_min=datetime(2024, 1, 1, tzinfo=UTC),
        updated_at_max=date(2024, 2, 1),
        issuer_earner_id="u-1",
    )
    assert items == [] and info == PageInfo(1, 1, 0, 50)
    terms = parse_filter(fake.requests[-1].url.params["filter"])
    assert terms == {
        "issuer_earner_id": ["u-1"],
        "issued_at_min": ["2024-01-01 00:00:00 +0000"],
        "updated_at_max": ["2024-02-01"],
    }


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


def test_iter_badges_from_a_later_page(client: CredlyClient, fake: FakeCredly) -> None:
    fake.per = 2
    for i in range(5):
        fake.add_badge(f"s{i}@example.com")
    got = list(client.iter_badges(start_page=2))
    assert [b.recipient_email for b in got] == [
        "s2@example.com",
        "s3@example.com",
        "s4@example.com",
    ]


def test_find_badges_uses_recipient_email_all_and_template(
    client: CredlyClient, fake: FakeCredly
) -> None:
    mine = fake.add_badge("ada@example.com", state="revoked")
    fake.add_badge("ada@example.com", TPL_DUPES)
    fake.add_badge("bob@example.com")
    found = client.find_badges(" ada@example.com ", TPL_ACTIVE)
    assert [b.id for b in found] == [mine["id"]]
    request = fake.requests_to("GET", "/badges")[0]
    assert request.url.params["filter"] == (
        f"recipient_email_all::ada@example.com|badge_template_id::{TPL_ACTIVE}"
    )


def test_templates_list_filter_sort_and_get(client: CredlyClient, fake: FakeCredly) -> None:
    active = client.list_templates(state="active")
    assert [t.id for t in active] == [TPL_ACTIVE, TPL_DUPES]
    assert active[1].allow_duplicate_badges is True
    request = fake.requests_to("GET", "/badge_templates")[0]
    assert request.url.params["filter"] == "state::active"
    assert request.url.params["sort"] == "name"
    both = list(client.iter_templates(state=["archived", "draft"], query="template"))
    assert {t.id for t in both} == {TPL_ARCHIVED, TPL_DRAFT}
    assert all(not t.can_issue for t in both)
    tpl = client.get_template(TPL_ARCHIVED)
    assert tpl.state == "archived"
    with pytest.raises(E.NotFound):
        client.get_template("missing")


def test_unknown_response_fields_are_tolerated(client: CredlyClient, fake: FakeCredly) -> None:
    fake.add_badge("ada@example.com")
    badge = next(client.iter_badges())
    assert badge.model_extra is not None
    assert badge.model_extra["brand_new_field"] == {"added": "by Credly later"}
    tpl = client.get_template(TPL_ACTIVE)
    assert tpl.model_extra is not None and "brand_new_template_field" in tpl.model_extra
    assert client.get_organization()["brand_new"] == 1


def test_an_unreadable_badge_is_a_credly_error_without_personal_data(
    client: CredlyClient, fake: FakeCredly
) -> None:
    broken = fake.add_badge("secret.person@example.com")
    del broken["badge_template"]
    with pytest.raises(E.CredlyError, match="badge_template") as info:
        list(client.iter_badges())
    assert "secret.person" not in str(info.value)
    assert info.value.__cause__ is None


def test_a_garbled_success_body_on_get_is_retried(
    client: CredlyClient, fake: FakeCredly, sleeps: list[float]
) -> None:
    answers = [httpx.Response(200, text="<html>proxy</html>"), _ok({"id": ORG})]
    fake._route = lambda request: answers.pop(0)  # type: ignore[method-assign]
    assert client.get_organization() == {"id": ORG}
    assert len(sleeps) == 1


# ---------------------------------------------------------------- high volume


def test_high_volume_follows_the_cursor(client: CredlyClient, fake: FakeCredly) -> None:
    fake.per = 2
    for i in range(5):
        fake.add_badge(f"s{i}@example.com", state="accepted")
    fake.add_badge("gone@example.com", state="revoked")
    pages = list(
        client.high_volume_pages(
            state="accepted",
            badge_format="minimal",
            start_date=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        )
    )
    assert [len(p) for p in pages] == [2, 2, 1]
    assert all(isinstance(b, IssuedBadge) for p in pages for b in p)
    first, *rest = fake.requests
    assert first.url.params["filter"] == "state::accepted"
    assert first.url.params["badge_format"] == "minimal"
    assert first.url.params["start_date"] == "2024-01-02 03:04:05"
    assert "end_date" not in first.url.params
    # later pages are the opaque cursor URL, as given
    assert [str(r.url) for r in rest] == [
        f"{BASE}/organizations/{ORG}/high_volume_issued_badge_search?cursor=c1&badge_format=minimal",
        f"{BASE}/organizations/{ORG}/high_volume_issued_badge_search?cursor=c2&badge_format=minimal",
    ]
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
def test_high_volume_refuses_a_cursor_to_another_host(
    client: CredlyClient, fake: FakeCredly, next_base: str
) -> None:
    fake.per = 1
    fake.add_badge("a@example.com")
    fake.add_badge("b@example.com")
    fake.hv_next_base = next_base
    got: list[IssuedBadge] = []
    with pytest.raises(E.CredlyError, match="another host") as info:
        got.extend(client.iter_high_volume())
    assert [b.recipient_email for b in got] == ["a@example.com"]
    assert len(fake.requests) == 1
    assert all(r.url.host == "api.credly.test" for r in fake.requests)
    assert TOKEN not in str(info.value)


def test_high_volume_refuses_a_cursor_that_does_not_advance(
    client: CredlyClient, fake: FakeCredly
) -> None:
    fake.add_badge("a@example.com")
    same = f"{BASE}/organizations/{ORG}/high_volume_issued_badge_search?cursor=1"
    fake._route = lambda request: _json(  # type: ignore[method-assign]
        200, {"data": [fake.badges["badge-0001"]], "metadata": {"next_page_url": same}}
    )
    with pytest.raises(E.CredlyError, match="did not advance"):
        list(client.iter_high_volume())
    assert len(fake.requests) == 2


def test_high_volume_rejects_an_unknown_format(client: CredlyClient) -> None:
    with pytest.raises(ValueError, match="badge_format"):
        list(client.iter_high_volume(badge_format="full"))


# ---------------------------------------------------------------- replace


def replace_request(
    expires_at: datetime | Literal[False] | None = ISSUED + timedelta(days=730),
) -> ReplaceRequest:
    return ReplaceRequest(badge_template_id=TPL_ACTIVE, issued_at=ISSUED, expires_at=expires_at)


def test_replace_creates_the_replacement(client: CredlyClient, fake: FakeCredly) -> None:
    old = fake.add_badge(
        "ada@example.com", state="accepted", expires_at=ISSUED + timedelta(days=365)
    )
    new = client.replace(old["id"], replace_request())
    assert new.replaces_badge_id == old["id"]
    assert new.expires_at == ISSUED + timedelta(days=730)
    assert new.state == "accepted"
    assert fake.badges[old["id"]]["state"] == "replaced"
    body = json.loads(fake.requests[0].content)
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
    client: CredlyClient, fake: FakeCredly, kind: str
) -> None:
    old = fake.add_badge("ada@example.com")
    fake.fail("POST", "/badges/.*/replace", kind)
    new = client.replace(old["id"], replace_request(expires_at=False))
    assert fake.replacements == 1
    assert len(fake.requests_to("POST", f"/badges/{old['id']}/replace")) == 1
    assert new.id == fake.badges[old["id"]]["replacement_badge_id"]
    assert new.expires_at is None


def test_replace_5xx_not_processed_is_resent_once(client: CredlyClient, fake: FakeCredly) -> None:
    old = fake.add_badge("ada@example.com")
    fake.fail("POST", "/badges/.*/replace", "500")
    new = client.replace(old["id"], replace_request())
    assert fake.replacements == 1
    assert len(fake.requests_to("POST", f"/badges/{old['id']}/replace")) == 2
    assert new.replaces_badge_id == old["id"]


def test_replace_falls_back_to_search_when_get_by_id_is_missing(
    client: CredlyClient, fake: FakeCredly
) -> None:
    fake.get_by_id = False
    old = fake.add_badge("ada@example.com")
    fake.fail("POST", "/badges/.*/replace", "timeout_after")
    new = client.replace(old["id"], replace_request(), recipient_email="ada@example.com")
    assert fake.replacements == 1
    assert new.replaces_badge_id == old["id"]
    assert len(fake.requests_to("POST", f"/badges/{old['id']}/replace")) == 1


def test_replace_already_replaced_with_matching_current_badge_returns_it(
    client: CredlyClient, fake: FakeCredly
) -> None:
    old = fake.add_badge("ada@example.com")
    first = client.replace(old["id"], replace_request())
    again = client.replace(old["id"], replace_request())
    assert again.id == first.id
    assert fake.replacements == 1


def test_replace_already_replaced_with_a_different_badge_raises(
    client: CredlyClient, fake: FakeCredly
) -> None:
    old = fake.add_badge("ada@example.com")
    client.replace(old["id"], replace_request(expires_at=ISSUED + timedelta(days=100)))
    with pytest.raises(E.AlreadyReplaced) as info:
        client.replace(old["id"], replace_request())
    assert info.value.current_badge_id == fake.badges[old["id"]]["replacement_badge_id"]
    assert fake.replacements == 1


def test_replace_lost_answer_then_concurrent_replace_is_not_claimed(
    client: CredlyClient, fake: FakeCredly
) -> None:
    old = fake.add_badge("ada@example.com")
    other = ReplaceRequest(badge_template_id=TPL_ACTIVE, issued_at=ISSUED, expires_at=ISSUED)
    # Someone else replaces the badge while our request times out before being processed.
    fake._replace(old["id"], json.loads(json.dumps(replace_payload(other))))
    fake.fail("POST", "/badges/.*/replace", "timeout")
    with pytest.raises(E.AlreadyReplaced):
        client.replace(old["id"], replace_request())
    assert fake.replacements == 1


# ---------------------------------------------------------------- revoke, delete, events


def test_revoke_sends_reason_in_the_body(client: CredlyClient, fake: FakeCredly) -> None:
    badge = fake.add_badge("ada@example.com")
    revoked = client.revoke(badge["id"], " issued in error ", suppress_notification=True)
    assert revoked.state == "revoked" and revoked.revocation_reason == "issued in error"
    request = fake.requests[0]
    assert request.method == "PUT"
    assert json.loads(request.content) == {
        "reason": "issued in error",
        "suppress_revoke_notification_email": True,
    }


@pytest.mark.parametrize("reason", ["", "   "])
def test_revoke_needs_a_reason(client: CredlyClient, fake: FakeCredly, reason: str) -> None:
    with pytest.raises(ValueError, match="reason"):
        client.revoke("badge-0001", reason)
    assert fake.requests == []


def test_revoke_outcome_unknown_is_looked_up_not_resent(
    client: CredlyClient, fake: FakeCredly
) -> None:
    badge = fake.add_badge("ada@example.com")
    fake.fail("PUT", "/badges/.*/revoke", "timeout_after")
    revoked = client.revoke(badge["id"], "fraud")
    assert revoked.state == "revoked"
    assert fake.revocations == 1
    assert len(fake.requests_to("PUT", f"/badges/{badge['id']}/revoke")) == 1


def test_revoking_a_revoked_badge_is_final(client: CredlyClient, fake: FakeCredly) -> None:
    badge = fake.add_badge("ada@example.com", state="revoked")
    with pytest.raises(E.ValidationFailed, match="already been revoked"):
        client.revoke(badge["id"], "again")


def test_delete_and_delete_after_a_lost_answer(client: CredlyClient, fake: FakeCredly) -> None:
    first = fake.add_badge("ada@example.com")
    second = fake.add_badge("bob@example.com")
    client.delete(first["id"])
    assert first["id"] not in fake.badges
    fake.fail("DELETE", "/badges/.*", "timeout_after")
    client.delete(second["id"])  # resent, answered 404: the first attempt worked
    assert second["id"] not in fake.badges
    assert len(fake.requests_to("DELETE", f"/badges/{second['id']}")) == 2
    with pytest.raises(E.NotFound):
        client.delete("badge-9999")


def test_organization_and_events(client: CredlyClient) -> None:
    assert client.get_organization()["name"] == "Example Academy"
    events, info = client.list_events()
    assert events[0]["event_type"] == "badge.created"
    assert info.total_pages == 1
    assert client.get_event("ev-1")["badge"] == {"id": "b"}


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


def _raise_every_error(client: CredlyClient, fake: FakeCredly) -> list[E.CredlyError]:
    caught: list[E.CredlyError] = []
    fake.add_badge("ada@example.com", issued_at=ISSUED - timedelta(days=3))
    actions: list[Callable[[], object]] = [
        lambda: client.get_badge("nope"),  # NotFound
        lambda: client.issue(issue_request()),  # DuplicateBadge
        lambda: client.issue(issue_request(template_id=TPL_ARCHIVED)),  # TemplateNotIssuable
        lambda: client.issue(issue_request("x@example.com", template_id="missing")),  # 422
        lambda: client.revoke("badge-0001", "r") and client.revoke("badge-0001", "r"),
    ]
    for kind in ["500", "503_html", "429", "timeout", "connect", "lost_after"]:
        fake.fail("GET", "", kind, times=5)  # every attempt fails
        actions.append(client.get_organization)
    fake.fail("GET", "", "echo_token")  # a final answer: one attempt
    actions.append(client.get_organization)
    for action in actions:
        try:
            action()
        except E.CredlyError as exc:
            caught.append(exc)
    # an error answer for every remaining status in the tree
    for status in (400, 401, 403, 410, 418):
        fake._route = lambda request, s=status: _json(  # type: ignore[method-assign, misc]
            s, {"data": {"message": "no"}}
        )
        try:
            client.get_organization()
        except E.CredlyError as exc:
            caught.append(exc)
    old = fake.add_badge("z@example.com")
    return caught + _replaced_errors(client, fake, old)


def _replaced_errors(
    client: CredlyClient, fake: FakeCredly, old: dict[str, Any]
) -> list[E.CredlyError]:
    fake.__dict__.pop("_route", None)
    fake._replace(old["id"], replace_payload(replace_request(expires_at=ISSUED)))
    try:
        client.replace(old["id"], replace_request())
    except E.AlreadyReplaced as exc:
        return [exc]
    raise AssertionError("expected AlreadyReplaced")


def test_the_token_is_in_no_repr_error_or_log(
    client: CredlyClient, fake: FakeCredly, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert TOKEN not in repr(client) and TOKEN not in str(client)
    assert repr(client) == f"CredlyClient(base_url={BASE!r}, org_id={ORG!r})"
    caught = _raise_every_error(client, fake)
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
    for request in fake.requests:
        assert TOKEN not in str(request.url)

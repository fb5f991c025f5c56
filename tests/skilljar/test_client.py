"""The Skilljar client against the local Skilljar over real HTTP (and a scripted transport for
the shapes the local one does not send)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from credly_ops.logs import install_redaction
from credly_ops.models import SuccessStatus
from credly_ops.skilljar import SkilljarClient
from credly_ops.skilljar.errors import (
    ConnectFailed,
    CredentialsRejected,
    ServerError,
    Unauthorized,
    UnexpectedAnswer,
)
from tests.skilljar.conftest import CLIENT_ID, CLIENT_SECRET, FakeClock, Site, Waits

MakeClient = Callable[..., SkilljarClient]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# ------------------------------------------------------------------ tokens


def test_the_token_is_renewed_a_minute_before_it_expires(
    skilljar: Site, make_client: MakeClient
) -> None:
    skilljar.complete("ada@example.com", "crs-py")
    clock = FakeClock()
    client = make_client(clock=clock)
    assert len(client.completions().completions) == 1
    assert skilljar.world.grants == 1
    clock.offset = 3600 - 60 - 5  # five seconds before the renewal moment: the token is kept
    client.completions()
    assert skilljar.world.grants == 1
    clock.offset = 3600 - 60 + 2  # inside the last minute: a new token before the call
    client.completions()
    assert skilljar.world.grants == 2
    assert skilljar.requests("GET /v2/enrollments") == 3  # no request was refused


def test_a_skilljar_clock_far_from_ours_does_not_make_every_call_ask_for_a_token(
    skilljar: Site, make_client: MakeClient
) -> None:
    # the local Skilljar lives in March: its tokens' exp is long past by our clock
    skilljar.control("clock", {"now": "2026-03-01T12:00:00Z", "frozen": True})
    client = make_client()
    for _ in range(3):
        client.completions()
    assert skilljar.world.grants == 1


def test_a_401_gets_one_new_token_and_one_more_try(skilljar: Site, make_client: MakeClient) -> None:
    skilljar.complete("ada@example.com", "crs-py")
    client = make_client()
    client.completions()
    assert skilljar.control("tokens/expire")["expired"] == 1
    pull = client.completions()
    assert [c.completion.email for c in pull.completions] == ["ada@example.com"]
    assert skilljar.world.grants == 2
    assert skilljar.requests("GET /v2/enrollments") == 3


def test_a_second_401_with_a_fresh_token_is_raised_not_looped(
    skilljar: Site, make_client: MakeClient
) -> None:
    skilljar.control("faults", {"queue": [{"status": 401, "count": 5, "path": "/v2/enrollments"}]})
    client = make_client()
    with pytest.raises(Unauthorized):
        client.completions()
    assert skilljar.world.grants == 2
    assert skilljar.requests("GET /v2/enrollments") == 2


@pytest.mark.parametrize("status", [400, 401, 403])
def test_a_refused_grant_says_the_credentials_are_wrong_and_is_asked_once(
    skilljar: Site, make_client: MakeClient, status: int
) -> None:
    skilljar.control("faults", {"queue": [{"status": status, "count": 9, "path": "/v2/auth"}]})
    waits = Waits()
    client = make_client(sleep=waits)
    with pytest.raises(CredentialsRejected) as caught:
        client.completions()
    assert caught.value.status == status
    assert "wrong or was rotated" in str(caught.value)
    assert skilljar.requests("POST /v2/auth/token") == 1
    assert skilljar.requests("GET /v2/enrollments") == 0
    assert waits.seconds == []
    # the next call of the same client does not ask again with the refused values
    with pytest.raises(CredentialsRejected):
        list(client.courses())
    assert skilljar.requests("POST /v2/auth/token") == 1


def test_a_wrong_secret_is_refused_by_skilljar_and_never_shown(
    skilljar: Site, make_client: MakeClient
) -> None:
    wrong = "sj-WRONG-secret-value-123456"
    client = make_client(client_secret=wrong)
    with pytest.raises(CredentialsRejected) as caught:
        list(client.courses())
    assert wrong not in str(caught.value)
    assert skilljar.requests("POST /v2/auth/token") == 1


def test_a_grant_answered_429_is_waited_for(skilljar: Site, make_client: MakeClient) -> None:
    skilljar.control(
        "faults", {"queue": [{"status": 429, "retry_after": "3", "path": "/v2/auth/token"}]}
    )
    waits = Waits()
    client = make_client(sleep=waits)
    assert client.course_titles()["crs-py"] == "Python Foundations"
    assert waits.seconds == [3.0]
    assert skilljar.world.grants == 1


# ------------------------------------------------------------------ pagination and filters


def test_pages_are_walked_by_opaque_cursor(skilljar: Site, make_client: MakeClient) -> None:
    for n in range(7):
        skilljar.complete(f"student{n}@example.com", "crs-py")
    pull = make_client().completions(page_size=3)
    assert pull.pages == 3
    assert sorted(c.completion.email for c in pull.completions) == [
        f"student{n}@example.com" for n in range(7)
    ]


def test_a_page_size_above_100_is_capped(skilljar: Site, make_client: MakeClient) -> None:
    for n in range(150):
        skilljar.world.add_enrollment(
            email=f"s{n}@example.com", course_id="crs-py", completed_at=T0 + timedelta(minutes=n)
        )
    pull = make_client().completions(page_size=500)
    assert pull.pages == 2
    assert len(pull.completions) == 150


def test_the_filters_reach_skilljar(skilljar: Site, make_client: MakeClient) -> None:
    world = skilljar.world
    for email, course, days, domain in [
        ("a@example.com", "crs-py", 0, "one.example.com"),
        ("b@example.com", "crs-py", 2, "one.example.com"),
        ("B@example.com", "crs-cloud", 4, "two.example.com"),
        ("c@example.com", "crs-cloud", 6, "two.example.com"),
    ]:
        world.add_enrollment(
            email=email,
            course_id=course,
            completed_at=T0 + timedelta(days=days),
            domain_name=domain,
        )
    world.add_enrollment(email="d@example.com", course_id="crs-py")  # in progress
    client = make_client()

    def emails(**filters: Any) -> list[str]:
        return sorted(c.completion.email.lower() for c in client.completions(**filters).completions)

    assert emails() == ["a@example.com", "b@example.com", "b@example.com", "c@example.com"]
    assert emails(completed_gte=T0 + timedelta(days=2)) == [
        "b@example.com",
        "b@example.com",
        "c@example.com",
    ]
    assert emails(completed_lte=T0 + timedelta(days=2)) == ["a@example.com", "b@example.com"]
    assert emails(completed_gte=T0 + timedelta(days=1), completed_lte=T0 + timedelta(days=5)) == [
        "b@example.com",
        "b@example.com",
    ]
    assert emails(course_id="crs-cloud") == ["b@example.com", "c@example.com"]
    assert emails(email="b@example.com") == ["b@example.com", "b@example.com"]
    assert emails(domain="two.example.com") == ["b@example.com", "c@example.com"]
    restricted = make_client(domain="one.example.com")
    assert len(restricted.completions().completions) == 2


def test_a_back_dated_completion_is_caught_by_the_overlap_and_the_mark_is_the_largest(
    skilljar: Site, make_client: MakeClient
) -> None:
    world = skilljar.world
    world.add_enrollment(email="late@example.com", course_id="crs-py", completed_at=T0)
    world.add_enrollment(
        email="early@example.com", course_id="crs-py", completed_at=T0 - timedelta(days=1)
    )
    client = make_client()
    first = client.completions()
    # enrollment order is not completed_at order: the mark is the largest, not the last row's
    assert first.high_water == T0
    skilljar.complete("backdated@example.com", "crs-py", completed_at=iso(T0 - timedelta(days=2)))
    assert first.high_water is not None
    missed = client.completions(completed_gte=first.high_water)
    assert [c.completion.email for c in missed.completions] == ["late@example.com"]
    overlap = client.completions(completed_gte=first.high_water - timedelta(days=3))
    assert "backdated@example.com" in {c.completion.email for c in overlap.completions}


def test_a_retake_is_a_new_completion_of_the_same_enrollment(
    skilljar: Site, make_client: MakeClient
) -> None:
    first = skilljar.complete("ada@example.com", "crs-py", completed_at=iso(T0))
    client = make_client()
    before = client.completions().completions
    skilljar.complete(
        "ada@example.com",
        "crs-py",
        enrollment_id=first["enrollment_id"],
        completed_at=iso(T0 + timedelta(days=30)),
    )
    after = client.completions().completions
    assert before[0].enrollment_id == after[0].enrollment_id
    assert before[0].key != after[0].key
    assert after[0].completion.completed_at == T0 + timedelta(days=30)


# ------------------------------------------------------------------ what a completion says


def test_completions_carry_student_course_status_and_score(
    skilljar: Site, make_client: MakeClient
) -> None:
    world = skilljar.world
    passed = world.add_enrollment(
        email="Ada@Example.com",
        first_name="Ada",
        last_name="Lovelace",
        course_id="crs-py",
        completed_at=T0,
        success_status="PASSED",
        score=91.5,
    )
    no_score = world.add_enrollment(email="b@example.com", course_id="crs-cloud", completed_at=T0)
    failed = world.add_enrollment(
        email="c@example.com", course_id="crs-py", completed_at=T0, success_status="FAILED"
    )
    by_id = {c.enrollment_id: c.completion for c in make_client().completions().completions}
    ada = by_id[passed.id]
    assert (ada.email, ada.first_name, ada.last_name) == ("Ada@Example.com", "Ada", "Lovelace")
    assert (ada.course_id, ada.course_title) == ("crs-py", "Python Foundations")
    assert (ada.completed_at, ada.status, ada.score) == (T0, SuccessStatus.PASSED, 91.5)
    assert by_id[no_score.id].status is SuccessStatus.PASSED  # null success_status = passed
    assert by_id[no_score.id].score is None
    assert by_id[failed.id].status is SuccessStatus.FAILED


def test_singular_and_plural_included_types_give_the_same_completions(
    skilljar: Site, make_client: MakeClient
) -> None:
    skilljar.complete("ada@example.com", "crs-py", first_name="Ada")
    client = make_client()
    plural = client.completions().completions
    skilljar.control("types", {"singular": True})
    singular = client.completions().completions
    assert plural == singular
    assert singular[0].completion.course_title == "Python Foundations"
    assert singular[0].completion.first_name == "Ada"


def scripted(pages: list[dict[str, Any]], seen: list[httpx.Request]) -> httpx.MockTransport:
    """A tiny Skilljar: a token, then ``pages`` in order, whatever the cursor says."""
    exp = int(time.time()) + 3600

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/v2/auth/token":
            return httpx.Response(200, json={"access_token": f"a.{exp}.c", "expires_in": 3600})
        index = sum(1 for r in seen if r.url.path != "/v2/auth/token") - 1
        return httpx.Response(200, json=pages[min(index, len(pages) - 1)])

    return httpx.MockTransport(handler)


def test_included_records_are_matched_by_relationship_in_any_spelling() -> None:
    page = {
        "data": [
            {
                "type": "enrollments",
                "id": 101,
                "attributes": {"completed_at": "2026-03-01T12:00:00Z", "success_status": None},
                "relationships": {
                    "student": {"data": {"type": "Student", "id": "s1"}},
                    "course": {"data": {"id": "c1"}},
                },
                "meta": {"unknown": True},
            },
            {
                "type": "enrollments",
                "id": "102",
                "attributes": {
                    "progress_status": "completed",
                    "completed_at": "2026-03-02T12:00:00Z",
                    "success_status": "passed",
                    "score": "88",
                    "brand_new_field": [1, 2],
                },
                "relationships": {
                    "students": {"data": {"type": "students", "id": "s2"}},
                    "course": {"data": {"type": "courses", "id": "c-missing"}},
                },
            },
            {
                "type": "enrollments",
                "id": "103",
                "attributes": {"completed_at": "2026-03-03T12:00:00+00:00"},
                "relationships": {"student": {"data": {"type": "student", "id": "s3"}}},
            },
        ],
        "included": [
            {"type": "Student", "id": "s1", "attributes": {"email": "one@example.com"}},
            {
                "type": "students",
                "id": "s2",
                "attributes": {"email_address": "two@example.com", "firstName": "Two"},
            },
            {"type": "course", "id": "c1", "attributes": {"title": "Course One"}},
            {"type": "users", "id": "s3", "attributes": {"email": "three@example.com"}},
            "not a record",
        ],
        "has_more": False,
    }
    seen: list[httpx.Request] = []
    with SkilljarClient(
        api_url="https://skilljar.test",
        client_id="c",
        client_secret="s-123456789",
        transport=scripted([page], seen),
    ) as client:
        pull = client.completions()
    by_id = {c.enrollment_id: c.completion for c in pull.completions}
    assert by_id["101"].email == "one@example.com"
    assert by_id["101"].course_title == "Course One"
    assert by_id["101"].status is SuccessStatus.PASSED
    assert by_id["102"].email == "two@example.com" and by_id["102"].first_name == "Two"
    assert (by_id["102"].course_id, by_id["102"].course_title) == ("c-missing", "")
    assert by_id["102"].score == 88.0
    assert by_id["103"].email == "three@example.com"  # the one record with that id
    query = seen[-1].url.params
    assert query["include"] == "student,course"
    assert query["filter[progress_status]"] == "completed"


def test_an_enrollment_that_cannot_be_read_is_skipped_with_its_reason() -> None:
    base = {"type": "enrollments", "relationships": {"student": {"data": {"id": "s"}}}}
    page = {
        "data": [
            {**base, "id": "bad-date", "attributes": {"completed_at": "yesterday-ish"}},
            {
                **base,
                "id": "no-student",
                "relationships": {},
                "attributes": {"completed_at": "2026-03-01T00:00:00Z"},
            },
            {
                **base,
                "id": "odd-status",
                "attributes": {
                    "completed_at": "2026-03-01T00:00:00Z",
                    "success_status": "INCOMPLETE",
                },
            },
            {**base, "id": "good", "attributes": {"completed_at": "2026-03-01T00:00:00Z"}},
        ],
        "included": [{"type": "students", "id": "s", "attributes": {"email": "s@example.com"}}],
        "has_more": False,
    }
    with SkilljarClient(
        api_url="https://skilljar.test",
        client_id="c",
        client_secret="s-123456789",
        transport=scripted([page], []),
    ) as client:
        pull = client.completions()
    assert [c.enrollment_id for c in pull.completions] == ["good"]
    assert {(s.enrollment_id, s.reason) for s in pull.skipped} == {
        ("bad-date", "unreadable"),
        ("no-student", "no_student_email"),
        ("odd-status", "unknown_success_status"),
    }


def test_a_cursor_that_repeats_stops_the_walk_with_a_clear_error() -> None:
    page = {"data": [], "has_more": True, "next_cursor": "same"}
    with (
        SkilljarClient(
            api_url="https://skilljar.test",
            client_id="c",
            client_secret="s-123456789",
            transport=scripted([page], []),
        ) as client,
        pytest.raises(UnexpectedAnswer, match="same cursor twice"),
    ):
        client.completions()


def test_the_next_link_is_followed_when_next_cursor_is_absent() -> None:
    first = {
        "data": [],
        "has_more": True,
        "links": {"next": "https://skilljar.test/v2/enrollments/?page%5Bcursor%5D=xyz%3D%3D"},
    }
    last = {"data": [], "has_more": False, "next_cursor": None}
    seen: list[httpx.Request] = []
    with SkilljarClient(
        api_url="https://skilljar.test",
        client_id="c",
        client_secret="s-123456789",
        transport=scripted([first, last], seen),
    ) as client:
        assert client.completions().pages == 2
    assert seen[-1].url.params["page[cursor]"] == "xyz=="


# ------------------------------------------------------------------ transient trouble


def test_429_with_retry_after_and_503_are_survived(skilljar: Site, make_client: MakeClient) -> None:
    skilljar.complete("ada@example.com", "crs-py")
    skilljar.control(
        "faults",
        {
            "queue": [
                {"status": 429, "retry_after": "4", "path": "/v2/enrollments"},
                {"status": 503, "count": 2, "path": "/v2/enrollments"},
            ]
        },
    )
    waits = Waits()
    pull = make_client(sleep=waits).completions()
    assert [c.completion.email for c in pull.completions] == ["ada@example.com"]
    assert waits.seconds[0] == 4.0
    assert len(waits.seconds) == 3
    assert skilljar.requests("GET /v2/enrollments") == 4


def test_server_errors_end_after_the_attempts_run_out(
    skilljar: Site, make_client: MakeClient
) -> None:
    skilljar.control("faults", {"queue": [{"status": 500, "count": 10, "path": "/v2/courses"}]})
    waits = Waits()
    with pytest.raises(ServerError):
        list(make_client(sleep=waits, max_attempts=3).courses())
    assert len(waits.seconds) == 2
    assert skilljar.requests("GET /v2/courses") == 3


def test_an_unreachable_skilljar_is_retried_then_reported() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    waits = Waits()
    with (
        SkilljarClient(
            api_url=f"http://127.0.0.1:{port}",
            client_id="c",
            client_secret="s-123456789",
            sleep=waits,
            max_attempts=2,
        ) as client,
        pytest.raises(ConnectFailed),
    ):
        client.completions()
    assert len(waits.seconds) == 1


# ------------------------------------------------------------------ secrets


def test_secrets_stay_out_of_logs_errors_and_repr(
    skilljar: Site, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    skilljar.complete("ada@example.com", "crs-py")
    skilljar.control(
        "faults",
        {
            "queue": [
                {"status": 503, "path": "/v2/enrollments"},
                {"status": 401, "count": 2, "path": "/v2/enrollments"},
            ]
        },
    )
    client = make_client()
    with pytest.raises(Unauthorized) as caught:
        client.completions()
    tokens = [t for t in skilljar.world._tokens]  # every token the local Skilljar issued
    assert tokens
    texts = [caplog.text, str(caught.value), repr(client), repr(caught.value)]
    for text in texts:
        assert CLIENT_SECRET not in text
        for token in tokens:
            assert token not in text
    assert CLIENT_ID in repr(client)


def test_the_client_secret_is_masked_in_filters_installed_before_the_client(
    skilljar: Site, make_client: MakeClient
) -> None:
    import io

    stream = io.StringIO()
    logger = logging.getLogger("credly_ops.test.skilljar_redaction")
    handler = logging.StreamHandler(stream)
    logger.handlers[:] = [handler]
    logger.propagate = False
    install_redaction([], logger)
    secret = "sj-late-secret-" + "x" * 12
    make_client(client_secret=secret)
    logger.warning("posted client_secret=%s form=%s", secret, f"client_secret={secret}")
    assert secret not in stream.getvalue()


def test_the_form_grant_is_form_encoded_and_secrets_never_in_a_url() -> None:
    seen: list[httpx.Request] = []
    page = {"data": [], "has_more": False}
    with SkilljarClient(
        api_url="https://skilljar.test/v2/",
        client_id="cid",
        client_secret="s-123456789",
        transport=scripted([page], seen),
    ) as client:
        client.completions()
    grant, listing = seen
    assert grant.method == "POST" and grant.url.path == "/v2/auth/token"
    assert grant.headers["content-type"] == "application/x-www-form-urlencoded"
    form = dict(httpx.QueryParams(grant.content.decode()))
    assert form == {
        "grant_type": "client_credentials",
        "client_id": "cid",
        "client_secret": "s-123456789",
    }
    assert listing.headers["authorization"].startswith("Bearer a.")
    for request in seen:
        assert "s-123456789" not in str(request.url)
    assert json.loads(json.dumps(dict(listing.url.params)))["page[size]"] == "100"

"""The client against the emulator over real HTTP (uvicorn on a loopback port)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from credly_ops.config import DEMO_ORG_ID
from credly_ops.credly.client import CredlyClient
from credly_ops.credly.errors import (
    AlreadyReplaced,
    DuplicateBadge,
    Forbidden,
    InvalidToken,
    NotFound,
    TemplateNotIssuable,
)
from credly_ops.models import IssueRequest, ReplaceRequest
from tests.conftest import TEST_TOKEN

T0 = datetime(2025, 6, 2, 14, 30, tzinfo=UTC)


def request(email: str = "ada@example.com", template: str = "tpl-active", **kw) -> IssueRequest:
    return IssueRequest(
        recipient_email=email,
        issued_to_first_name="Ada",
        issued_to_last_name="Lovelace",
        badge_template_id=template,
        issued_at=kw.pop("issued_at", T0),
        **kw,
    )


def control(emulator: str, path: str, body: dict) -> None:
    base = emulator.removesuffix("/v1")
    httpx.post(f"{base}/_emulator/{path}", json=body, timeout=5).raise_for_status()


def test_issue_returns_a_pending_badge_with_the_completion_date(client: CredlyClient) -> None:
    result = client.issue(request(expires_at=T0 + timedelta(days=365)))
    badge = result.badge
    assert (result.recovered, result.duplicate) == (False, False)
    assert badge.state == "pending"
    assert badge.issued_at == T0
    assert badge.expires_at == T0 + timedelta(days=365)
    assert badge.accept_badge_url and badge.accept_badge_url.endswith("/accept")
    assert client.get_badge(badge.id).id == badge.id


def test_the_same_issue_twice_is_reported_as_already_issued(client: CredlyClient, world) -> None:
    first = client.issue(request())
    again = client.issue(request())
    assert again.duplicate is True
    assert again.badge.id == first.badge.id
    assert len(world.badges_for(DEMO_ORG_ID)) == 1


def test_another_live_badge_of_the_template_is_a_duplicate_error(client: CredlyClient) -> None:
    client.issue(request())
    with pytest.raises(DuplicateBadge):
        client.issue(request(issued_at=T0 + timedelta(days=30)))


def test_templates_allowing_duplicates_issue_a_second_badge(client: CredlyClient, world) -> None:
    client.issue(request(template="tpl-dup"))
    second = client.issue(request(template="tpl-dup", issued_at=T0 + timedelta(days=30)))
    assert second.duplicate is False
    assert len(world.badges_for(DEMO_ORG_ID)) == 2


@pytest.mark.parametrize("template", ["tpl-archived", "tpl-draft"])
def test_inactive_templates_cannot_issue(client: CredlyClient, template: str) -> None:
    with pytest.raises(TemplateNotIssuable):
        client.issue(request(template=template))


def test_paging_reads_every_badge_with_the_filter_kept(client: CredlyClient, world) -> None:
    for i in range(120):
        client.issue(request(email=f"s{i}@example.com", template="tpl-active"))
    client.issue(request(email="other@example.com", template="tpl-dup"))
    seen = [b.id for b in client.iter_badges(badge_template_id="tpl-active", sort="-issued_at")]
    assert len(seen) == len(set(seen)) == 120
    one = list(client.iter_badges(recipient_email="S7@Example.com"))
    assert [b.recipient_email for b in one] == ["s7@example.com"]


def test_replace_then_replace_again_follows_the_chain(client: CredlyClient, world) -> None:
    old = client.issue(request(template="tpl-active")).badge
    renewal = ReplaceRequest(
        badge_template_id="tpl-active", issued_at=T0, expires_at=T0 + timedelta(days=730)
    )
    new = client.replace(old.id, renewal)
    assert new.replaces_badge_id == old.id
    assert new.issued_at == T0 and new.expires_at == T0 + timedelta(days=730)
    assert client.get_badge(old.id).state == "replaced"
    # the same replace again (a retry) lands on the live badge, not a second replacement
    assert client.replace(old.id, renewal).id == new.id
    other = ReplaceRequest(badge_template_id="tpl-active", issued_at=T0, expires_at=False)
    with pytest.raises(AlreadyReplaced) as info:
        client.replace(old.id, other)
    assert info.value.current_badge_id == new.id


def test_revoke_needs_a_reason_and_hides_nothing(client: CredlyClient) -> None:
    badge = client.issue(request()).badge
    with pytest.raises(ValueError):
        client.revoke(badge.id, "")
    revoked = client.revoke(badge.id, "Issued in error")
    assert revoked.state == "revoked"
    assert revoked.revocation_reason == "Issued in error"


def test_auth_failures_are_typed(emulator: str, world) -> None:
    with (
        CredlyClient(base_url=emulator, org_id=DEMO_ORG_ID, token="nope") as bad,
        pytest.raises(InvalidToken),
    ):
        bad.list_templates()
    world.add_org("other-org", "Other", "other-token")
    with (
        CredlyClient(base_url=emulator, org_id=DEMO_ORG_ID, token="other-token") as other,
        pytest.raises(Forbidden),
    ):
        other.list_templates()


def test_unknown_badge_is_not_found(client: CredlyClient) -> None:
    with pytest.raises(NotFound):
        client.get_badge("00000000-0000-4000-8000-000000000000")


def test_an_answer_lost_after_processing_is_found_not_reissued(emulator: str, world) -> None:
    control(emulator, "faults", {"timeout_rate": 1.0, "timeout_hold_s": 3, "seed": 1})
    with CredlyClient(
        base_url=emulator,
        org_id=DEMO_ORG_ID,
        token=TEST_TOKEN,
        timeout=httpx.Timeout(5.0, read=0.5),
        sleep=lambda s: None,
    ) as client:
        result = client.issue(request())
    assert result.recovered is True
    assert len(world.badges_for(DEMO_ORG_ID)) == 1
    assert result.badge.issued_at == T0


def test_server_errors_are_waited_out_without_duplicates(emulator: str, world) -> None:
    # 429s under load are covered by the 2,000-row job test, which waits for real
    control(emulator, "faults", {"fail_rate": 0.3, "seed": 7})
    waits: list[float] = []
    with CredlyClient(
        base_url=emulator,
        org_id=DEMO_ORG_ID,
        token=TEST_TOKEN,
        sleep=waits.append,
        max_attempts=12,
    ) as client:
        for i in range(40):
            client.issue(request(email=f"r{i}@example.com"))
        assert len(list(client.iter_badges())) == 40
    assert len(world.badges_for(DEMO_ORG_ID)) == 40
    assert waits  # the faults were seen and waited out


def test_the_token_never_appears_in_logs_or_errors(
    emulator: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "wrong-" + TEST_TOKEN
    with CredlyClient(base_url=emulator, org_id=DEMO_ORG_ID, token=secret) as bad:
        with pytest.raises(InvalidToken) as info:
            bad.issue(request())
        text = f"{info.value!s} {info.value!r} {bad!r}"
    assert secret not in text
    assert secret not in caplog.text

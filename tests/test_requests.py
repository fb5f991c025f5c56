"""What we send Credly to issue and to renew: every field a badge keeps, expiry said on purpose."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from credly_ops.models import (
    IssuedBadge,
    IssueRequest,
    ReplaceRequest,
    renewal_request,
    request_expiry,
)

ISSUED = datetime(2024, 5, 1, 9, 41, tzinfo=UTC)
EXPIRES = datetime(2025, 5, 1, 9, 41, tzinfo=UTC)

#: a badge as Credly returns it (full format), with every optional field the earner keeps
CREDLY_BADGE: dict[str, Any] = {
    "id": "749daf6e-4dbc-4b47-b401-b7e0477e0284",
    "state": "accepted",
    "recipient_email": "ada@example.com",
    "issued_to": "Ada King Lovelace",
    "issued_to_first_name": "Ada",
    "issued_to_middle_name": "King",
    "issued_to_last_name": "Lovelace",
    "issuer_earner_id": "u-123",
    "locale": "fr",
    "country": "United Kingdom",
    "state_or_province": "London",
    "suppress_badge_notification_email": True,
    "issued_at": "2024-05-01T09:41:00.000Z",
    "expires_at": "2024-11-01T09:41:00.000Z",
    "evidence": [
        {
            "id": "e1",
            "type": "UrlEvidence",
            "name": "Transcript",
            "description": "Final exam",
            "value": "https://example.com/t/1",
        }
    ],
    "badge_template": {"id": "tpl-1", "name": "Engines"},
    "public": True,
}


def test_a_renewal_sends_every_field_the_badge_keeps() -> None:
    """Credly's replace clears what it is not sent: the renewal carries it all over."""
    target = IssuedBadge.model_validate(CREDLY_BADGE)
    body = renewal_request(
        target, template_id="tpl-1", issued_at=target.issued_at, expires_at=EXPIRES
    ).payload()
    assert body == {
        "badge_template_id": "tpl-1",
        "issued_at": "2024-05-01 09:41:00 +0000",
        "expires_at": "2025-05-01 09:41:00 +0000",
        "issued_to_first_name": "Ada",
        "issued_to_middle_name": "King",
        "issued_to_last_name": "Lovelace",
        "issuer_earner_id": "u-123",
        "locale": "fr",
        "country_name": "United Kingdom",
        "state_or_province": "London",
        "evidence": CREDLY_BADGE["evidence"],
        "suppress_badge_notification_email": True,
    }


def test_a_renewal_of_a_bare_badge_sends_only_what_it_has() -> None:
    bare = {
        key: CREDLY_BADGE[key]
        for key in ("id", "state", "recipient_email", "issued_at", "badge_template")
    }
    target = IssuedBadge.model_validate({**bare, "issued_to_first_name": "Ada"})
    body = renewal_request(
        target,
        template_id="tpl-1",
        issued_at=ISSUED,
        expires_at=EXPIRES,
        notification_message="Your badge has been renewed",
    ).payload()
    assert body == {
        "badge_template_id": "tpl-1",
        "issued_at": "2024-05-01 09:41:00 +0000",
        "expires_at": "2025-05-01 09:41:00 +0000",
        "issued_to_first_name": "Ada",
        "suppress_badge_notification_email": False,
        "notification_message": "Your badge has been renewed",
    }


def test_a_rule_without_duration_renews_to_never_expires_not_the_template_default() -> None:
    target = IssuedBadge.model_validate(CREDLY_BADGE)
    request = renewal_request(target, template_id="tpl-1", issued_at=ISSUED, expires_at=None)
    assert request.expires_at is False
    assert request.payload()["expires_at"] is False


@pytest.mark.parametrize(
    ("engine", "sent"), [(None, False), (EXPIRES, "2025-05-01 09:41:00 +0000")]
)
def test_request_expiry_turns_the_engines_no_expiry_into_never(
    engine: datetime | None, sent: object
) -> None:
    request = IssueRequest(
        recipient_email=" ada@example.com ",
        issued_to_first_name="Ada",
        issued_to_last_name="Lovelace",
        badge_template_id="tpl-1",
        issued_at=ISSUED,
        expires_at=request_expiry(engine),
    )
    body = request.payload()
    assert body["expires_at"] == sent and type(body["expires_at"]) is type(sent)
    assert body["recipient_email"] == "ada@example.com"


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        (False, False),  # never expires
        (None, None),  # Credly applies the template's default expiry
        ("2025-05-01T09:41:00Z", "2025-05-01 09:41:00 +0000"),
    ],
)
def test_expires_at_on_a_request_means_what_credly_reads(value: object, sent: object) -> None:
    issue = IssueRequest(
        recipient_email="ada@example.com",
        issued_to_first_name="Ada",
        issued_to_last_name="Lovelace",
        badge_template_id="tpl-1",
        issued_at=ISSUED,
        expires_at=value,  # type: ignore[arg-type]
    )
    replace = ReplaceRequest(badge_template_id="tpl-1", issued_at=ISSUED, expires_at=value)  # type: ignore[arg-type]
    for body in (issue.payload(), replace.payload()):
        assert "expires_at" in body
        assert body["expires_at"] == sent and type(body["expires_at"]) is type(sent)


def test_a_request_left_without_an_expiry_never_expires() -> None:
    assert (
        ReplaceRequest(badge_template_id="tpl-1", issued_at=ISSUED).payload()["expires_at"] is False
    )


def test_true_is_not_an_expiry() -> None:
    with pytest.raises(ValidationError):
        ReplaceRequest(badge_template_id="tpl-1", issued_at=ISSUED, expires_at=True)  # type: ignore[arg-type]

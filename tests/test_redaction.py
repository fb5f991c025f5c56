from __future__ import annotations

import base64

import pytest

from credly_ops.redaction import MASK, NOT_SET, mask_secret, redact, scrub, secret_forms

TOKEN = "tok-abcdef0123456789"
BASIC = base64.b64encode(f"{TOKEN}:".encode()).decode()
BARE = base64.b64encode(TOKEN.encode()).decode()


def test_every_form_of_the_token_is_masked() -> None:
    text = f"token={TOKEN} header={BASIC} other={BARE}"
    cleaned = redact(text, secret_forms(TOKEN))
    assert cleaned == f"token={MASK} header={MASK} other={MASK}"


def test_authorization_headers_are_masked_even_for_unknown_tokens() -> None:
    cleaned = redact("{'Authorization': 'Basic Zm9vOmJhcg=='}", [])
    assert cleaned == f"{{'Authorization': 'Basic {MASK}'}}"


@pytest.mark.parametrize("form", [TOKEN, BASIC, BARE])
def test_scrub_masks_the_token_in_any_form_it_travels_in(form: str) -> None:
    assert scrub(f"Credly said: {form}!", TOKEN) == f"Credly said: {MASK}!"


def test_scrub_without_a_secret_changes_nothing() -> None:
    assert scrub("nothing to hide", "") == "nothing to hide"


@pytest.mark.parametrize(
    ("secret", "shown"), [("", NOT_SET), ("12345678", MASK), (TOKEN, MASK + "6789")]
)
def test_a_configured_token_is_shown_as_the_mask_and_at_most_its_last_four(
    secret: str, shown: str
) -> None:
    assert mask_secret(secret) == shown

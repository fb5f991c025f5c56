"""What the local Credly accepts: request bodies checked field by field, as Credly's 422s.

An issue request becomes a :class:`Badge` here (not yet stored); the duplicate rule and the
template's state are checked against the organization's current badges.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from credly_ops.emulators.credly.queries import norm
from credly_ops.emulators.credly.records import (
    LIVE_STATES,
    LOCALES,
    ApiError,
    Badge,
    OrgState,
    Template,
    invalid,
    truncate_ms,
)
from credly_ops.timeutil import parse_credly_time

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

#: required issue fields and the Rails-style label used in messages
REQUIRED_ISSUE = (
    ("recipient_email", "Recipient email"),
    ("issued_to_first_name", "Issued to first name"),
    ("issued_to_last_name", "Issued to last name"),
    ("badge_template_id", "Badge template"),
    ("issued_at", "Issued at"),
)
REQUIRED_REPLACE = (("badge_template_id", "Badge template"), ("issued_at", "Issued at"))
ORG_FIELDS = ("name", "webhook_url", "allowed_webhooks", "description", "website_url")


def blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def check_email(value: Any) -> str:
    if not isinstance(value, str) or not _EMAIL_RE.match(value.strip()):
        raise invalid("Recipient email is invalid")
    return value.strip()


def person_name(body: Mapping[str, Any], key: str, default: str) -> str:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, str) or not value.strip():
        label = key.replace("_", " ").capitalize()
        raise invalid(f"{label} is invalid")
    return value.strip()


def optional_text(body: Mapping[str, Any], key: str, default: str | None) -> str | None:
    if key not in body:
        return default
    value = body[key]
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise invalid(f"{key.replace('_', ' ').capitalize()} is invalid")
    return str(value)


def flag(body: Mapping[str, Any], key: str, default: bool) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid(f"{key.replace('_', ' ').capitalize()} must be true or false")
    return value


def body_time(value: Any, label: str) -> datetime:
    if not isinstance(value, str):
        raise invalid(f"{label} is invalid")
    try:
        return truncate_ms(parse_credly_time(value))
    except ValueError:
        raise invalid(f"{label} is invalid") from None


def expiry(body: Mapping[str, Any], template: Template, issued_at: datetime) -> datetime | None:
    """``null``/omitted: the template's default; ``false``: never; else the given time."""
    value = body.get("expires_at")
    if value is False:
        return None
    if value is None:
        days = template.default_expiration_days
        return issued_at + timedelta(days=days) if days else None
    expires_at = body_time(value, "Expires at")
    if expires_at <= issued_at:
        raise invalid("Expires at must be after issued at")
    return expires_at


def org_update(body: Any) -> dict[str, Any]:
    """The organization fields a ``PUT`` sets, each checked."""
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    update: dict[str, Any] = {}
    for key in ORG_FIELDS:
        if key not in body:
            continue
        value = body[key]
        if key == "allowed_webhooks":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise invalid("Allowed webhooks must be a list of event types")
        elif key == "webhook_url":
            if value in (None, ""):
                value = None
            elif not isinstance(value, str) or not re.match(r"^https?://\S+$", value):
                raise invalid("Webhook url is invalid")
        elif key == "name":
            if not isinstance(value, str) or not value.strip():
                raise invalid("Name can't be blank")
        elif value is not None and not isinstance(value, str):
            raise invalid(f"{key.replace('_', ' ').capitalize()} is invalid")
        update[key] = value
    return update


def issuable_template(st: OrgState, template_id: Any) -> Template:
    template = st.templates.get(str(template_id))
    if template is None:
        raise invalid("Badge template not found")
    if template.state == "archived":
        raise invalid("Badge template is archived and cannot be used to issue badges")
    if template.state != "active":
        raise invalid(f"Badge template is {template.state}, not active")
    return template


def live_duplicate(
    st: OrgState,
    template_id: str,
    email_key: str,
    earner: str | None,
    exclude: set[str],
) -> Badge | None:
    candidates = set(st.by_email.get(email_key, ()))
    if earner:
        candidates |= st.by_earner.get(earner, set())
    for bid in candidates - exclude:
        badge = st.badges[bid]
        if badge.template_id == template_id and badge.state in LIVE_STATES:
            return badge
    return None


def prepare_issue(
    st: OrgState,
    body: Any,
    now: datetime,
    taken: set[tuple[str, str]],
    new_id: Callable[[], str],
) -> Badge:
    """Validate one issue request; ``taken`` holds keys issued earlier in the same batch."""
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    missing = [label for key, label in REQUIRED_ISSUE if blank(body.get(key))]
    if missing:
        raise invalid(", ".join(f"{label} can't be blank" for label in missing))
    email = check_email(body["recipient_email"])
    first = person_name(body, "issued_to_first_name", "")
    last = person_name(body, "issued_to_last_name", "")
    issued_at = body_time(body["issued_at"], "Issued at")
    template = issuable_template(st, body["badge_template_id"])
    expires_at = expiry(body, template, issued_at)
    earner = optional_text(body, "issuer_earner_id", None)
    locale = body.get("locale") or "en"
    if locale not in LOCALES:
        raise invalid("Locale is not included in the list")
    key = norm(email)
    if not template.allow_duplicate_badges:
        clash = live_duplicate(st, template.id, key, earner, set())
        in_batch = (template.id, f"email:{key}") in taken or (
            earner is not None and (template.id, f"earner:{earner}") in taken
        )
        if clash or in_batch:
            raise invalid("Badge template has already been issued to this recipient")
    taken.add((template.id, f"email:{key}"))
    if earner is not None:
        taken.add((template.id, f"earner:{earner}"))
    auto = key in st.auto_accept
    return Badge(
        id=new_id(),
        template_id=template.id,
        recipient_email=email,
        email_key=key,
        first_name=first,
        last_name=last,
        middle_name=optional_text(body, "issued_to_middle_name", None),
        state="accepted" if auto else "pending",
        issued_at=issued_at,
        created_at=now,
        updated_at=now,
        expires_at=expires_at,
        state_updated_at=now if auto else None,
        issuer_earner_id=earner,
        suppress_badge_notification_email=flag(body, "suppress_badge_notification_email", False),
        locale=locale,
        country=optional_text(body, "country_name", None),
        state_or_province=optional_text(body, "state_or_province", None),
        evidence=evidence(body, new_id),
    )


def prepare_replacement(
    st: OrgState, old: Badge, body: Mapping[str, Any], now: datetime, new_id: Callable[[], str]
) -> Badge:
    """Validate a replace request for a live badge; the replacement, not yet stored."""
    missing = [label for key, label in REQUIRED_REPLACE if blank(body.get(key))]
    if missing:
        raise invalid(", ".join(f"{label} can't be blank" for label in missing))
    email = old.recipient_email
    new_email = body.get("recipient_email")
    if new_email is not None and norm(new_email) != old.email_key:
        if old.state != "pending":
            raise invalid("Recipient email can only be changed while a badge is pending")
        email = check_email(new_email)
    template = issuable_template(st, body.get("badge_template_id"))
    issued_at = body_time(body.get("issued_at"), "Issued at")
    expires_at = expiry(body, template, issued_at)
    earner = optional_text(body, "issuer_earner_id", old.issuer_earner_id)
    if not template.allow_duplicate_badges:
        clash = live_duplicate(st, template.id, norm(email), earner, {old.id})
        if clash:
            raise invalid("Badge template has already been issued to this recipient")
    return replace(
        old,
        id=new_id(),
        template_id=template.id,
        recipient_email=email,
        email_key=norm(email),
        first_name=person_name(body, "issued_to_first_name", old.first_name),
        last_name=person_name(body, "issued_to_last_name", old.last_name),
        middle_name=optional_text(body, "issued_to_middle_name", old.middle_name),
        issuer_earner_id=earner,
        issued_at=issued_at,
        expires_at=expires_at,
        created_at=now,
        updated_at=now,
        replaces_badge_id=old.id,
        replacement_badge_id=None,
        country=optional_text(body, "country_name", old.country),
        state_or_province=optional_text(body, "state_or_province", old.state_or_province),
        evidence=evidence(body, new_id) if "evidence" in body else list(old.evidence),
        suppress_badge_notification_email=flag(
            body, "suppress_badge_notification_email", old.suppress_badge_notification_email
        ),
    )


def evidence(body: Mapping[str, Any], new_id: Callable[[], str]) -> list[dict[str, Any]]:
    raw = body.get("evidence")
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        raise invalid("Evidence is invalid")
    return [{"id": new_id(), **e} for e in raw]

"""The local Credly's JSON: organizations, templates, badges and events as Credly shows them.

Pure functions of an organization's state; times are shown with milliseconds, like Credly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from credly_ops.emulators.credly.records import (
    API_URL,
    WEB_URL,
    Badge,
    EventRow,
    Org,
    OrgState,
    Template,
    fmt_time,
    reminder_id,
    user_id,
)


def entity_json(org: Org) -> dict[str, Any]:
    return {
        "type": "Organization",
        "id": org.id,
        "name": org.name,
        "url": f"{API_URL}/organizations/{org.id}",
        "vanity_url": f"{WEB_URL}/org/{org.vanity_slug}",
        "vanity_slug": org.vanity_slug,
        "verified": True,
    }


def org_json(org: Org) -> dict[str, Any]:
    return {
        **entity_json(org),
        "description": org.description,
        "website_url": org.website_url,
        "webhook_url": org.webhook_url,
        "allowed_webhooks": list(org.allowed_webhooks),
        "photo_url": None,
        "created_at": fmt_time(org.created_at),
        "updated_at": fmt_time(org.updated_at),
    }


def template_json(st: OrgState, t: Template, counts: Mapping[str, int]) -> dict[str, Any]:
    issued = counts.get(t.id, 0)
    return {
        "id": t.id,
        "name": t.name,
        "description": t.description,
        "state": t.state,
        "state_updated_at": None,
        "allow_duplicate_badges": t.allow_duplicate_badges,
        "public": t.public,
        "visibility": "public" if t.public else "private",
        "badges_count": issued,
        "get_issue_count": issued,
        "image": {"id": t.image_id, "url": t.image_url},
        "image_url": t.image_url,
        "url": f"{WEB_URL}/org/{st.org.vanity_slug}/badge/{t.vanity_slug}",
        "vanity_slug": t.vanity_slug,
        "owner": {**entity_json(st.org), "viewable": True, "enable_blockchain": False},
        "skills": [],
        "reporting_tags": [],
        "alignments": [],
        "recommendations": [],
        "required_badge_templates": [],
        "badge_template_activities": [],
        "cost": None,
        "level": None,
        "time_to_earn": None,
        "type_category": None,
        "certification": True,
        "recipient_type": "User",
        "criteria_url": None,
        "default_expiration_days": t.default_expiration_days,
        "created_at": fmt_time(t.created_at),
        "updated_at": fmt_time(t.updated_at),
    }


def template_ref(st: OrgState, template_id: str) -> dict[str, Any]:
    t = st.templates[template_id]
    return {
        "id": t.id,
        "name": t.name,
        "state": t.state,
        "allow_duplicate_badges": t.allow_duplicate_badges,
        "image_url": t.image_url,
        "url": f"{WEB_URL}/org/{st.org.vanity_slug}/badge/{t.vanity_slug}",
    }


def badge_minimal(st: OrgState, b: Badge) -> dict[str, Any]:
    t = st.templates[b.template_id]
    return {
        "id": b.id,
        "issued_to": f"{b.first_name} {b.last_name}".strip(),
        "issued_to_first_name": b.first_name,
        "issued_to_last_name": b.last_name,
        "issuer_earner_id": b.issuer_earner_id,
        "public": b.public,
        "recipient_email": b.recipient_email,
        "state": b.state,
        "badge_url": f"{WEB_URL}/badges/{b.id}",
        "created_at": fmt_time(b.created_at),
        "updated_at": fmt_time(b.updated_at),
        "issued_at": fmt_time(b.issued_at),
        "expires_at": fmt_time(b.expires_at),
        "state_updated_at": fmt_time(b.state_updated_at),
        "badge_template": {"id": t.id, "name": t.name},
        "user": {"id": user_id(b.email_key)},
    }


def badge_json(st: OrgState, b: Badge) -> dict[str, Any]:
    t = st.templates[b.template_id]
    template = template_ref(st, b.template_id)
    entity = entity_json(st.org)
    badge_url = f"{WEB_URL}/badges/{b.id}"
    account = user_id(b.email_key)
    issued, expires, created, updated, changed = (
        fmt_time(b.issued_at),
        fmt_time(b.expires_at),
        fmt_time(b.created_at),
        fmt_time(b.updated_at),
        fmt_time(b.state_updated_at),
    )
    return {
        "id": b.id,
        "state": b.state,
        "state_updated_at": changed,
        "state_updated_at_date": changed and changed[:10],
        "recipient_email": b.recipient_email,
        "issued_to": " ".join(p for p in (b.first_name, b.middle_name, b.last_name) if p),
        "issued_to_first_name": b.first_name,
        "issued_to_middle_name": b.middle_name,
        "issued_to_last_name": b.last_name,
        "issuer_earner_id": b.issuer_earner_id,
        "locale": b.locale,
        "public": b.public,
        "suppress_badge_notification_email": b.suppress_badge_notification_email,
        "issued_at": issued,
        "issued_at_date": issued and issued[:10],
        "expires_at": expires,
        "expires_at_date": expires and expires[:10],
        "created_at": created,
        "created_at_date": created and created[:10],
        "updated_at": updated,
        "updated_at_date": updated and updated[:10],
        "revocation_reason": b.revocation_reason,
        "replaces_badge_id": b.replaces_badge_id,
        "replacement_badge_id": b.replacement_badge_id,
        "country": b.country,
        "state_or_province": b.state_or_province,
        "image": {"id": t.image_id, "url": t.image_url},
        "image_url": t.image_url,
        "badge_url": badge_url,
        "accept_badge_url": f"{badge_url}/accept",
        "evidence": [dict(e) for e in b.evidence],
        "alignments": [],
        "badge_template": template,
        "user": {
            "id": account,
            "email": b.recipient_email,
            "first_name": b.first_name,
            "last_name": b.last_name,
            "confirmed": True,
            "photo": None,
            "photo_url": None,
            "url": f"{WEB_URL}/users/{account}",
            "current_position_name": "*****",
            "current_organization_name": "*****",
        },
        "created_by": entity,
        "issuer": {
            "summary": f"issued by {st.org.name}",
            "entities": [{"label": "Issued by", "primary": True, "entity": entity}],
        },
        "printing_enabled": False,
        "print_method": None,
    }


def event_json(st: OrgState, event: EventRow) -> dict[str, Any]:
    occurred_at, event_type, event_id, badge_id, seq = event
    snapshot: dict[str, Any] | None = None
    if seq < 0:
        event_id = reminder_id(badge_id, seq)
    if seq >= 0:
        stored = st.events_by_id.get(event_id)
        snapshot = stored.badge if stored else None
    elif badge_id in st.badges:
        snapshot = badge_json(st, st.badges[badge_id])
    return {
        "id": event_id,
        "event_type": event_type,
        "organization_id": st.org.id,
        "occurred_at": fmt_time(occurred_at),
        "badge": snapshot,
    }

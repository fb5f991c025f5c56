"""The webhook secret never reaches the cache, a log, a spool file or an answer."""

from __future__ import annotations

import json
import logging

import pytest

from credly_ops.hooks import ingest, recent_events
from credly_ops.redaction import secret_forms
from tests.hooks.conftest import HOOK_SECRET, Receiver, Site


def _appears(text: str) -> list[str]:
    return [form for form in secret_forms(HOOK_SECRET) if form in text]


def test_the_secret_is_kept_nowhere(
    skilljar: Site, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # a student whose name is the secret: the body carries it too
    done = skilljar.complete("ada@example.org", "crs-py", first_name=HOOK_SECRET)
    answers = [
        skilljar.control(
            "webhooks/deliver",
            {
                "enrollment_id": done["enrollment_id"],
                "target_url": receiver.url,
                "basic_auth_username": "skilljar",
                "basic_auth_password": HOOK_SECRET,
                "additional_headers": {"X-Webhook-Secret": HOOK_SECRET},
            },
        )
    ]
    direct = receiver.post(
        json.dumps({"event_type": "COURSE_COMPLETION", "note": HOOK_SECRET}).encode(),
        headers={"X-Webhook-Secret": HOOK_SECRET},
    )
    forged = receiver.post(b"{}", headers={"X-Webhook-Secret": HOOK_SECRET[:-1]})
    assert direct.status_code == 200 and forged.status_code == 401
    answers.append(direct.text)
    answers.append(forged.text)
    assert _appears(json.dumps(answers)) == []

    spooled = [p.read_text(encoding="utf-8") for p in receiver.spool.files()]
    assert len(spooled) == 2
    assert "ada@example.org" in spooled[0]  # the body is kept, the secret in it masked
    assert _appears("\n".join(spooled)) == []

    store = receiver.store()
    assert len(ingest(store, receiver.spool)) == 1
    with store.session() as cur:
        rows = cur.execute("SELECT * FROM webhook_events").fetchall()
        audit = cur.execute("SELECT * FROM audit").fetchall()
    assert len(rows) == 2 and any("********" in str(row) for row in rows)
    assert _appears(repr(rows) + repr(audit) + repr(recent_events(store))) == []
    assert _appears(receiver.db_path.read_bytes().decode("latin-1")) == []

    logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
    assert "spooled" in caplog.text  # the receiver does log its deliveries
    assert _appears(logged) == []

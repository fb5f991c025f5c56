"""Support actions on one student: refresh from Credly, re-issue, revoke — with permissions,
the ledger and the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from credly_ops.access import Actor, PermissionDenied, Role
from credly_ops.config import DEMO_ORG_ID
from credly_ops.credly.errors import TemplateNotIssuable
from credly_ops.demo import OTHER_ORG_ID
from credly_ops.lms import save_completions
from credly_ops.models import BadgeRule, Completion, IssueMethod, SuccessStatus
from credly_ops.profile import VERDICT_ISSUE_FAILED, VERDICT_ISSUED, load_profile
from credly_ops.rules import replace_rules
from credly_ops.support import (
    ABANDONED_AFTER,
    ERROR_INTERRUPTED,
    find_completion,
    refresh_student,
    reissue,
    revoke_badge,
)
from credly_ops.sync import sync
from credly_ops.workspace import Workspace
from tests.conftest import emulator_workspace

ADMIN = Actor("alice.admin", Role.ADMIN)
CSM = Actor("carl.csm", Role.CSM)
VIEWER = Actor("vera.viewer", Role.VIEWER)
EMAIL = "grace@example.com"
DONE = datetime(2025, 4, 2, 15, 30, 12, tzinfo=UTC)


@pytest.fixture
def ws(world, emulator: str, tmp_path: Path) -> Workspace:
    workspace = emulator_workspace(emulator, tmp_path / "support.duckdb")
    replace_rules(
        workspace.store,
        [
            BadgeRule(course_id="c1", course_title="Course One", template_id="tpl-active"),
            BadgeRule(
                course_id="c2",
                course_title="Course Two",
                template_id="tpl-dup",
                method=IssueMethod.ISSUE_OR_UPDATE,
                expiration_months=60,  # no badge here is expired yet (rule 11)
            ),
        ],
        actor=ADMIN,
    )
    with workspace.store.transaction() as cur:
        save_completions(
            cur,
            [
                Completion(
                    email="Grace@Example.com",
                    first_name="Grace",
                    last_name="Hopper",
                    course_id=course,
                    course_title=title,
                    completed_at=at,
                    status=SuccessStatus.PASSED,
                )
                for course, title, at in (
                    ("c1", "Course One", DONE),
                    ("c2", "Course Two", DONE - timedelta(days=200)),
                    ("c2", "Course Two", DONE),
                )
            ],
            source="test",
            loaded_at=DONE,
        )
    with workspace.client() as client:
        sync(client, workspace.store, full=True)
    return workspace


def audit(ws: Workspace, action: str) -> list[tuple]:
    with ws.store.session() as cur:
        return cur.execute(
            "SELECT actor, role, outcome, target, job_id, detail, occurred_at FROM audit "
            "WHERE action = ? ORDER BY id",
            [action],
        ).fetchall()


def ledger(ws: Workspace) -> list[tuple]:
    with ws.store.session() as cur:
        return cur.execute(
            "SELECT l.job_id, l.outcome, l.reason, l.status, l.badge_id, l.error_class, j.kind, "
            "j.created_by FROM ledger l JOIN jobs j ON j.id = l.job_id ORDER BY l.updated_at"
        ).fetchall()


def cached_state(ws: Workspace, badge_id: str) -> str | None:
    with ws.store.session() as cur:
        row = cur.execute("SELECT state FROM badges WHERE id = ?", [badge_id]).fetchone()
    return row[0] if row else None


def test_reissue_issues_once_with_ledger_and_audit(ws: Workspace, world) -> None:
    result = reissue(ws, CSM, " GRACE@example.com ", "c1", DONE)
    assert (result.outcome, result.reason, result.sent) == ("issue", "new_badge", True)
    badge = result.badge
    assert badge is not None and badge.issued_at == DONE
    assert world.badge_record(DEMO_ORG_ID, badge.id)["state"] == "pending"
    assert cached_state(ws, badge.id) == "pending"
    [row] = ledger(ws)
    assert row[1:] == ("issue", "new_badge", "succeeded", badge.id, None, "reissue", "carl.csm")
    [entry] = audit(ws, "badge.reissue")
    assert entry[:5] == ("carl.csm", "csm", "ok", EMAIL, row[0])
    # a second re-issue of the same completion sends nothing: the engine sees the badge
    again = reissue(ws, CSM, EMAIL, "c1", DONE)
    assert (again.outcome, again.reason, again.sent) == ("skip", "already_issued", False)
    assert sum(1 for b in world.badges_for(DEMO_ORG_ID) if b["recipient_email"] == EMAIL) == 1
    assert [r[3] for r in ledger(ws)] == ["succeeded", "skipped"]
    assert [r[2] for r in audit(ws, "badge.reissue")] == ["ok", "skipped"]
    # the preview now explains it as issued
    profile = load_profile(ws.store, EMAIL, web_url=ws.settings.web_url)
    c1 = next(e for e in profile.explanations if e.course_id == "c1")
    assert c1.verdict == VERDICT_ISSUED and c1.badge_id == badge.id


def test_reissue_renews_through_the_engine(ws: Workspace, world) -> None:
    first = reissue(ws, ADMIN, EMAIL, "c2", DONE - timedelta(days=200))
    assert first.outcome == "issue" and first.badge is not None
    renewal = reissue(ws, ADMIN, EMAIL, "c2", DONE)
    assert (renewal.outcome, renewal.reason) == ("update", "renewal")
    assert renewal.badge is not None and renewal.badge.replaces_badge_id == first.badge.id
    assert renewal.badge.issued_at == first.badge.issued_at  # an update keeps issued_at
    assert renewal.badge.expires_at == datetime(2030, 4, 2, 15, 30, 12, tzinfo=UTC)
    assert cached_state(ws, first.badge.id) == "replaced"
    assert cached_state(ws, renewal.badge.id) == "pending"


def test_a_failed_reissue_is_recorded_and_explained(ws: Workspace, world) -> None:
    # the template was archived on Credly after the last sync: the cache still says active
    world.add_template(DEMO_ORG_ID, id="tpl-active", name="Active Badge", state="archived")
    with pytest.raises(TemplateNotIssuable):
        reissue(ws, CSM, EMAIL, "c1", DONE)
    [row] = ledger(ws)
    assert (row[3], row[5]) == ("failed", "template_inactive")
    assert [r[2] for r in audit(ws, "badge.reissue")] == ["failed"]
    profile = load_profile(ws.store, EMAIL, web_url=ws.settings.web_url)
    c1 = next(e for e in profile.explanations if e.course_id == "c1")
    assert c1.verdict == VERDICT_ISSUE_FAILED and c1.can_reissue
    assert "issue failed on" in c1.sentence and "not active" in c1.sentence


def test_reissue_needs_the_issue_permission_and_a_known_completion(ws: Workspace) -> None:
    with pytest.raises(PermissionDenied):
        reissue(ws, VIEWER, EMAIL, "c1", DONE)
    assert ledger(ws) == [] and audit(ws, "badge.reissue") == []
    with pytest.raises(LookupError):
        reissue(ws, CSM, EMAIL, "c1", DONE + timedelta(seconds=1))
    assert find_completion(ws, "GRACE@example.com ", "c1", DONE.replace(microsecond=0)) is not None


def test_revoke_is_admin_only_and_audited(ws: Workspace, world) -> None:
    issued = reissue(ws, CSM, EMAIL, "c1", DONE).badge
    assert issued is not None
    for actor in (VIEWER, CSM):
        with pytest.raises(PermissionDenied):
            revoke_badge(ws, actor, issued.id, "Issued in error")
    assert world.badge_record(DEMO_ORG_ID, issued.id)["state"] == "pending"
    assert audit(ws, "badge.revoke") == []
    with pytest.raises(ValueError, match="reason"):
        revoke_badge(ws, ADMIN, issued.id, "   ")
    revoked = revoke_badge(ws, ADMIN, issued.id, " Issued in error ")
    assert revoked.state == "revoked" and revoked.revocation_reason == "Issued in error"
    assert world.badge_record(DEMO_ORG_ID, issued.id)["state"] == "revoked"
    assert cached_state(ws, issued.id) == "revoked"
    [entry] = audit(ws, "badge.revoke")
    assert entry[:4] == ("alice.admin", "admin", "ok", issued.id)
    assert "Issued in error" in entry[5] and entry[6] is not None
    profile = load_profile(ws.store, EMAIL, web_url=ws.settings.web_url)
    assert profile.badges_earned == []  # a revoked badge leaves the table
    # revoking again: Credly refuses, and the failure is audited too
    with pytest.raises(Exception, match="already been revoked"):
        revoke_badge(ws, ADMIN, issued.id, "again")
    assert [e[2] for e in audit(ws, "badge.revoke")] == ["ok", "failed"]


def test_refresh_reads_the_student_live_and_forgets_deleted_badges(ws: Workspace, world) -> None:
    base = {
        "recipient_email": EMAIL,
        "issued_to_first_name": "Grace",
        "issued_to_last_name": "Hopper",
        "state": "accepted",
        "issued_at": DONE - timedelta(days=3),
        "state_updated_at": DONE - timedelta(days=2),
    }
    world.load_badges(DEMO_ORG_ID, [{**base, "id": "fresh", "template_id": "tpl-dup"}])
    world.add_org(OTHER_ORG_ID, "Contoso Learning", "contoso-token")
    world.add_template(OTHER_ORG_ID, id="tpl-contoso", name="Contoso Certified")
    world.load_badges(OTHER_ORG_ID, [{**base, "id": "theirs", "template_id": "tpl-contoso"}])
    with ws.store.transaction() as cur:
        cur.execute(
            "INSERT INTO badges (id, template_id, recipient_email, state, issued_at, synced_at) "
            "VALUES ('deleted-on-credly', 'tpl-active', ?, 'pending', ?, ?)",
            [EMAIL, DONE.replace(tzinfo=None), DONE.replace(tzinfo=None)],
        )
    with pytest.raises(ValueError):
        refresh_student(ws, VIEWER, "   ")
    result = refresh_student(ws, VIEWER, "  Grace@Example.com")
    assert (result.email, result.badges, result.removed) == (EMAIL, 1, 1)
    assert cached_state(ws, "fresh") == "accepted"
    assert cached_state(ws, "deleted-on-credly") is None
    assert cached_state(ws, "theirs") is None  # another organization's badge never arrives
    [entry] = audit(ws, "student.refresh")
    assert entry[:4] == ("vera.viewer", "viewer", "ok", EMAIL)


class ProcessStopped(BaseException):
    """What a process killed mid-request looks like from inside: nothing after it runs."""


class StopsOnSend(httpx.HTTPTransport):
    """The real transport, except that the process "dies" on the request that sends a badge:
    before it reaches Credly (``lands=False``) or after Credly took it (``lands=True``)."""

    def __init__(self, *, lands: bool) -> None:
        super().__init__()
        self.lands = lands

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        sending = request.method == "POST" and request.url.path.endswith("/badges")
        if sending and not self.lands:
            raise ProcessStopped
        response = super().handle_request(request)
        if sending:
            response.read()
            raise ProcessStopped
        return response


def crash_on_send(ws: Workspace, monkeypatch: pytest.MonkeyPatch, *, lands: bool) -> None:
    real = ws.client
    monkeypatch.setattr(ws, "client", lambda **kw: real(transport=StopsOnSend(lands=lands), **kw))


def ledger_rows(ws: Workspace) -> list[tuple]:
    with ws.store.session() as cur:
        return cur.execute(
            "SELECT l.job_id, l.status, l.badge_id, l.error_class, j.status FROM ledger l "
            "JOIN jobs j ON j.id = l.job_id ORDER BY j.created_at, l.job_id"
        ).fetchall()


def age_jobs(ws: Workspace, by: timedelta) -> None:
    """Move every job's start back in time (the ledger's clock is the only thing that moves)."""
    with ws.store.transaction() as cur:
        cur.execute("UPDATE jobs SET started_at = started_at - ?", [by])


@pytest.mark.parametrize("lands", [False, True])
def test_a_reissue_is_in_flight_in_the_ledger_before_its_request_leaves(
    ws: Workspace, world, monkeypatch: pytest.MonkeyPatch, lands: bool
) -> None:
    with monkeypatch.context() as patch:
        crash_on_send(ws, patch, lands=lands)
        with pytest.raises(ProcessStopped):
            reissue(ws, CSM, EMAIL, "c1", DONE)
    [(job_id, status, badge_id, error_class, job_status)] = ledger_rows(ws)
    assert (status, badge_id, error_class, job_status) == ("in_flight", None, None, "running")
    on_credly = [b for b in world.badges_for(DEMO_ORG_ID) if b["recipient_email"] == EMAIL]
    assert len(on_credly) == (1 if lands else 0)

    # a re-issue soon after leaves the recent attempt alone (it may still be waiting on Credly)
    again = reissue(ws, CSM, EMAIL, "c1", DONE)
    assert ledger_rows(ws)[0][1] == "in_flight"
    assert again.outcome == ("skip" if lands else "issue")

    # once it is old enough to be abandoned, the next re-issue settles it from Credly's badges
    age_jobs(ws, ABANDONED_AFTER + timedelta(seconds=1))
    reissue(ws, CSM, EMAIL, "c1", DONE)
    first = ledger_rows(ws)[0]
    assert first[0] == job_id
    if lands:
        assert first[1:] == ("succeeded", on_credly[0]["id"], None, "done")
    else:
        assert first[1:] == ("failed", None, ERROR_INTERRUPTED, "failed")
    [settled] = audit(ws, "badge.reissue.settled")
    assert settled[:5] == ("carl.csm", "csm", "ok" if lands else "failed", EMAIL, job_id)
    # and whatever happened, the student has exactly one badge for the completion
    on_credly = [b for b in world.badges_for(DEMO_ORG_ID) if b["recipient_email"] == EMAIL]
    assert len(on_credly) == 1

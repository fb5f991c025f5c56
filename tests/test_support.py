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
from credly_ops.emulators.demo_world import OTHER_ORG_ID
from credly_ops.lms import save_completions
from credly_ops.models import BadgeRule, Completion, IssueMethod, SuccessStatus
from credly_ops.profile import VERDICT_ISSUE_FAILED, VERDICT_ISSUED, load_profile
from credly_ops.rules import replace_rules
from credly_ops.store import from_db_time
from credly_ops.support import (
    find_completion,
    refresh_student,
    reissue,
    revoke_badge,
)
from credly_ops.sync import sync
from credly_ops.timeutil import utcnow
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


def named_rows(ws: Workspace, sql: str, params: list[object] | None = None) -> list[dict]:
    """The rows of ``sql``, each a dict by column name (no reading columns by position)."""
    with ws.store.session() as cur:
        cur.execute(sql, params or [])
        names = [d[0] for d in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def pick(row: dict, *names: str) -> tuple:
    return tuple(row[name] for name in names)


def audit(ws: Workspace, action: str) -> list[dict]:
    return named_rows(
        ws,
        "SELECT actor, role, outcome, target, job_id, detail, occurred_at FROM audit "
        "WHERE action = ? ORDER BY id",
        [action],
    )


def ledger(ws: Workspace) -> list[dict]:
    return named_rows(
        ws,
        "SELECT l.job_id, l.outcome, l.reason, l.status, l.badge_id, l.error_class, j.kind, "
        "j.created_by FROM ledger l JOIN jobs j ON j.id = l.job_id ORDER BY l.updated_at",
    )


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
    assert pick(row, "outcome", "reason", "status", "badge_id", "error_class") == (
        "issue",
        "new_badge",
        "succeeded",
        badge.id,
        None,
    )
    assert pick(row, "kind", "created_by") == ("reissue", "carl.csm")
    [entry] = audit(ws, "badge.reissue")
    assert pick(entry, "actor", "role", "outcome", "target", "job_id") == (
        "carl.csm",
        "csm",
        "ok",
        EMAIL,
        row["job_id"],
    )
    # a second re-issue of the same completion sends nothing: the engine sees the badge
    again = reissue(ws, CSM, EMAIL, "c1", DONE)
    assert (again.outcome, again.reason, again.sent) == ("skip", "already_issued", False)
    assert sum(1 for b in world.badges_for(DEMO_ORG_ID) if b["recipient_email"] == EMAIL) == 1
    assert [r["status"] for r in ledger(ws)] == ["succeeded", "skipped"]
    assert [r["outcome"] for r in audit(ws, "badge.reissue")] == ["ok", "skipped"]
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
    assert pick(row, "status", "error_class") == ("failed", "template_inactive")
    assert [r["outcome"] for r in audit(ws, "badge.reissue")] == ["failed"]
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
    before = utcnow()
    revoked = revoke_badge(ws, ADMIN, issued.id, " Issued in error ")
    after = utcnow()
    assert revoked.state == "revoked" and revoked.revocation_reason == "Issued in error"
    assert world.badge_record(DEMO_ORG_ID, issued.id)["state"] == "revoked"
    assert cached_state(ws, issued.id) == "revoked"
    [entry] = audit(ws, "badge.revoke")
    assert pick(entry, "actor", "role", "outcome", "target") == (
        "alice.admin",
        "admin",
        "ok",
        issued.id,
    )
    assert "Issued in error" in entry["detail"]
    assert before <= from_db_time(entry["occurred_at"]) <= after  # the audit's own clock
    profile = load_profile(ws.store, EMAIL, web_url=ws.settings.web_url)
    assert profile.badges_earned == []  # a revoked badge leaves the table
    # revoking again: Credly refuses, and the failure is audited too
    with pytest.raises(Exception, match="already been revoked"):
        revoke_badge(ws, ADMIN, issued.id, "again")
    assert [e["outcome"] for e in audit(ws, "badge.revoke")] == ["ok", "failed"]


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
    assert pick(entry, "actor", "role", "outcome", "target") == (
        "vera.viewer",
        "viewer",
        "ok",
        EMAIL,
    )


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
    monkeypatch.setattr(
        ws, "client", lambda **kw: real(**{**kw, "transport": StopsOnSend(lands=lands)})
    )


def ledger_rows(ws: Workspace) -> list[dict]:
    return named_rows(
        ws,
        "SELECT l.job_id, l.status, l.badge_id, l.error_class, j.status AS job_status "
        "FROM ledger l JOIN jobs j ON j.id = l.job_id ORDER BY j.created_at, l.job_id",
    )


@pytest.mark.parametrize("lands", [False, True])
def test_a_reissue_is_in_flight_in_the_ledger_before_its_request_leaves(
    ws: Workspace, world, monkeypatch: pytest.MonkeyPatch, lands: bool
) -> None:
    with monkeypatch.context() as patch:
        crash_on_send(ws, patch, lands=lands)
        with pytest.raises(ProcessStopped):
            reissue(ws, CSM, EMAIL, "c1", DONE)
    [row] = ledger_rows(ws)
    job_id = row["job_id"]
    # the row was committed in flight before the request; the job is left to be resumed
    assert pick(row, "status", "badge_id", "error_class") == ("in_flight", None, None)
    assert row["job_status"] in ("running", "interrupted")
    on_credly = [b for b in world.badges_for(DEMO_ORG_ID) if b["recipient_email"] == EMAIL]
    assert len(on_credly) == (1 if lands else 0)

    # the next re-issue of the completion resumes that job: the row in flight is settled
    # from what Credly holds (its own badge when the request landed), never sent twice
    again = reissue(ws, CSM, EMAIL, "c1", DONE)
    assert again.job_id == job_id and again.sent
    [row] = ledger_rows(ws)
    assert pick(row, "status", "error_class", "job_status") == ("succeeded", None, "done")
    if lands:
        assert row["badge_id"] == on_credly[0]["id"]
    # and whatever happened, the student has exactly one badge for the completion
    on_credly = [b for b in world.badges_for(DEMO_ORG_ID) if b["recipient_email"] == EMAIL]
    assert len(on_credly) == 1

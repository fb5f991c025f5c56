"""Decisions that stay true over time: plans that go stale, two jobs over the same rows in two
real processes, and a cache file shared with readers while a job runs."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from credly_ops.access import Actor, Role
from credly_ops.config import DEMO_ORG_ID
from credly_ops.credly.client import CredlyClient
from credly_ops.issuance import create_job_from, job_report, prepare, run_job
from credly_ops.models import BadgeRule, IssueMethod
from credly_ops.rules import replace_rules
from credly_ops.store import Store
from credly_ops.sync import sync
from tests.conftest import TEST_TOKEN, emulator_workspace
from tests.issuance.test_crash import cli

pytestmark = pytest.mark.slow

CSM_A = Actor("a.csm@example.com", Role.CSM)
CSM_B = Actor("b.csm@example.com", Role.CSM)
#: recent completions: their badges' expiries lie ahead of the real now the runner decides at
T0 = (datetime.now(UTC) - timedelta(days=90)).replace(hour=8, minute=0, second=0, microsecond=0)
FAST = {"sleep": lambda _seconds: None}


def completions_csv(rows: list[tuple[str, str, datetime]]) -> bytes:
    lines = ["email,first_name,last_name,course_id,completed_at"]
    lines += [
        f"{email},Ada,Lovelace,{course},{when:%Y-%m-%d %H:%M:%S}" for email, course, when in rows
    ]
    return ("\n".join(lines) + "\n").encode()


def faults(emulator: str, **settings: float) -> None:
    httpx.post(
        emulator.removesuffix("/v1") + "/_emulator/faults", json=settings, timeout=5
    ).raise_for_status()


def live(world, email: str) -> list[dict]:
    return [
        b
        for b in world.badges_for(DEMO_ORG_ID)
        if b["recipient_email"] == email and b["state"] in ("pending", "accepted")
    ]


def test_a_plan_made_before_another_job_landed_renews_instead_of_issuing_twice(
    world, emulator: str, tmp_path: Path
) -> None:
    """CSM B plans while CSM A's job is still to run; B confirms after A finished. The template
    allows duplicates and the rule is issue_or_update: B's row must renew A's badge."""
    world.add_template(DEMO_ORG_ID, id="tpl-renew-dup", name="Renew", allow_duplicate_badges=True)
    ws = emulator_workspace(emulator, tmp_path / "cache.duckdb")
    with ws.client() as client:
        sync(client, ws.store, actor=CSM_A)
    rule = BadgeRule(
        course_id="c-1",
        template_id="tpl-renew-dup",
        method=IssueMethod.ISSUE_OR_UPDATE,
        expiration_months=12,
    )
    replace_rules(ws.store, [rule], actor=Actor("admin@example.com", Role.ADMIN))

    a = prepare(ws, CSM_A, completions_csv([("ada@example.com", "c-1", T0)]), source_name="a")
    b = prepare(
        ws,
        CSM_B,
        completions_csv([("ada@example.com", "c-1", T0 + timedelta(days=30))]),
        source_name="b",
    )
    assert [r.outcome for r in b.plan.rows] == ["issue"]  # what B was shown: nothing to renew

    run_job(ws, CSM_A, create_job_from(ws, CSM_A, a), client_options=FAST)
    job_b = create_job_from(ws, CSM_B, b)
    result = run_job(ws, CSM_B, job_b, client_options=FAST)

    assert result.outcomes["updated"] == 1 and result.outcomes["issued"] == 0
    assert result.changed_since_plan == 1
    [line] = job_report(ws.store, job_b)
    assert (line["outcome"], line["reason"], line["planned"]) == (
        "updated",
        "renewal",
        "issue / new_badge",
    )
    [badge] = live(world, "ada@example.com")  # one badge, renewed: not a second one
    assert badge["issued_at"].replace(microsecond=0) == T0
    renewed_from = T0 + timedelta(days=30)
    assert badge["expires_at"].date() == renewed_from.replace(year=renewed_from.year + 1).date()


def test_two_processes_over_overlapping_files_issue_each_completion_once(
    world, emulator: str, tmp_path: Path
) -> None:
    """Two `credly-ops issue` processes, started together, share the cache file; their files
    overlap on half the rows, on a template that allows duplicates (so Credly would accept a
    second badge: only the ledger's claims stand in the way)."""
    db = tmp_path / "cache.duckdb"
    store = Store(db)
    with CredlyClient(base_url=emulator, org_id=DEMO_ORG_ID, token=TEST_TOKEN) as client:
        sync(client, store, actor=CSM_A)
    replace_rules(
        store,
        [BadgeRule(course_id="c-1", template_id="tpl-dup")],
        actor=Actor("admin@example.com", Role.ADMIN),
    )
    rows = [(f"s{i}@example.com", "c-1", T0 + timedelta(hours=i)) for i in range(60)]
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_bytes(completions_csv(rows[:40]))
    second.write_bytes(completions_csv(list(reversed(rows[20:]))))  # the overlap, other order
    faults(emulator, latency_ms=30)

    procs = [cli(db, emulator, tmp_path, str(f), "--yes", "--json") for f in (first, second)]
    outputs = [p.communicate(timeout=240) for p in procs]
    faults(emulator)
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    results = [json.loads(out) for out, _ in outputs]
    assert results[0]["issued"] + results[1]["issued"] == 60
    assert results[0]["skipped"] + results[1]["skipped"] == 20
    on_credly = Counter(
        (b["recipient_email"], b["issued_at"].replace(microsecond=0))
        for b in world.badges_for(DEMO_ORG_ID)
    )
    assert sorted(on_credly) == sorted((email, when) for email, _, when in rows)
    assert set(on_credly.values()) == {1}  # each completion exactly once


def test_a_reader_never_waits_long_while_a_job_runs_in_another_process(
    world, emulator: str, tmp_path: Path
) -> None:
    """The job holds the cache file per unit of work: readers and a sync get their turn."""
    db = tmp_path / "cache.duckdb"
    store = Store(db)
    with CredlyClient(base_url=emulator, org_id=DEMO_ORG_ID, token=TEST_TOKEN) as client:
        sync(client, store, actor=CSM_A)
    replace_rules(
        store,
        [BadgeRule(course_id="c-1", template_id="tpl-dup")],
        actor=Actor("admin@example.com", Role.ADMIN),
    )
    rows = [(f"r{i}@example.com", "c-1", T0 + timedelta(hours=i)) for i in range(150)]
    path = tmp_path / "many.csv"
    path.write_bytes(completions_csv(rows))
    faults(emulator, latency_ms=50)
    job = cli(db, emulator, tmp_path, str(path), "--yes", "--json")
    reader = Store(db)
    waits: list[float] = []
    syncs = 0
    deadline = time.monotonic() + 180
    while job.poll() is None and time.monotonic() < deadline:
        started = time.monotonic()
        with reader.session() as cur:
            cur.execute("SELECT count(*) FROM ledger").fetchone()
        waits.append(time.monotonic() - started)
        if len(waits) % 40 == 0:  # now and then a sync, from this process, beside the job
            with CredlyClient(base_url=emulator, org_id=DEMO_ORG_ID, token=TEST_TOKEN) as c:
                sync(c, reader, actor=CSM_B)
            syncs += 1
        time.sleep(0.05)
    out, err = job.communicate(timeout=60)
    faults(emulator)
    assert job.returncode == 0, err
    assert json.loads(out)["issued"] == 150
    assert len(waits) > 20 and syncs >= 1
    worst = max(range(len(waits)), key=waits.__getitem__)
    assert max(waits) < 2.0, f"read {worst} of {len(waits)} waited {waits[worst]:.2f} s"


def test_a_revoked_completion_stays_revoked_unless_opted_in_then_is_issued_anew_once(
    world, emulator: str, tmp_path: Path
) -> None:
    """The ledger holds a success for the completion; an admin revoked that badge since. A
    re-run of the file skips it (previously_revoked); with the opt-in it is issued anew — once,
    even when the opted-in file is sent twice."""
    ws = emulator_workspace(emulator, tmp_path / "cache.duckdb")
    with ws.client() as client:
        sync(client, ws.store, actor=CSM_A)
    replace_rules(
        ws.store,
        [BadgeRule(course_id="c-1", template_id="tpl-dup", expiration_months=24)],
        actor=Actor("admin@example.com", Role.ADMIN),
    )
    data = completions_csv([("rev@example.com", "c-1", T0)])
    first = run_job(
        ws, CSM_A, create_job_from(ws, CSM_A, prepare(ws, CSM_A, data, source_name="a"))
    )
    assert first.outcomes["issued"] == 1
    [badge] = live(world, "rev@example.com")
    with ws.client() as client:
        client.revoke(badge["id"], "Issued in error")

    again = prepare(ws, CSM_A, data, source_name="again")
    assert [(r.outcome, r.reason) for r in again.plan.rows] == [("skip", "previously_revoked")]

    for _ in range(2):  # the opted-in file, sent twice: the second run finds the new badge
        opted = prepare(ws, CSM_B, data, source_name="opted", include_revoked=True)
        result = run_job(ws, CSM_B, create_job_from(ws, CSM_B, opted), client_options=FAST)
    assert result.outcomes["issued"] == 0 and result.reasons == {"already_issued": 1}
    [reissued] = live(world, "rev@example.com")
    assert reissued["id"] != badge["id"]
    assert reissued["issued_at"].replace(microsecond=0) == T0


def test_a_rate_limited_job_waits_instead_of_failing_rows(
    world, emulator: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ws = emulator_workspace(emulator, tmp_path / "cache.duckdb")
    with ws.client() as client:
        sync(client, ws.store, actor=CSM_A)
    replace_rules(
        ws.store,
        [BadgeRule(course_id="c-1", template_id="tpl-dup")],
        actor=Actor("admin@example.com", Role.ADMIN),
    )
    rows = [(f"rl{i}@example.com", "c-1", T0 + timedelta(hours=i)) for i in range(60)]
    job_id = create_job_from(ws, CSM_A, prepare(ws, CSM_A, completions_csv(rows), source_name="r"))
    faults(emulator, rate_limit_rps=15)
    # few attempts per request: before, a row throttled that often failed `rate_limited`
    caplog.set_level("WARNING")
    result = run_job(ws, CSM_A, job_id, concurrency=4, client_options={"max_attempts": 2})
    stats = httpx.get(emulator.removesuffix("/v1") + "/_emulator/stats", timeout=5).json()
    faults(emulator)
    assert result.outcomes["issued"] == 60 and result.outcomes["failed"] == 0
    assert stats["data"]["faults"].get("rate_limited", 0) > 0  # Credly did push back
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "rate-limited the job" in warnings[0]  # one summary line
    assert len(world.badges_for(DEMO_ORG_ID)) == 60

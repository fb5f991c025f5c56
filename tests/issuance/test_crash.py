"""SIGKILL a running ``credly-ops issue``, resume it, and find every badge exactly once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from credly_ops.access import Actor, Role
from credly_ops.config import DEMO_ORG_ID
from credly_ops.credly.client import CredlyClient
from credly_ops.models import BadgeRule
from credly_ops.rules import replace_rules
from credly_ops.store import Store
from credly_ops.sync import sync
from tests.conftest import TEST_TOKEN

pytestmark = pytest.mark.slow

ROWS = 240
T0 = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)
ADMIN = Actor("admin@example.com", Role.ADMIN)


def cli(db: Path, emulator: str, cwd: Path, *argv: str) -> subprocess.Popen[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(cwd),
        "CREDLY_ENV": "sandbox",
        "CREDLY_ORG_ID": DEMO_ORG_ID,
        "CREDLY_API_TOKEN": TEST_TOKEN,
        "CREDLY_API_URL": emulator,
        "CREDLY_OPS_DB": str(db),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "credly_ops.cli", "issue", *argv],
        cwd=cwd,  # no .streamlit/secrets.toml here
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_when(proc: subprocess.Popen[str], world, badges: int, timeout: float = 120) -> None:
    """SIGKILL ``proc`` as soon as the emulator holds ``badges`` badges."""
    deadline = time.monotonic() + timeout
    while len(world.badges_for(DEMO_ORG_ID)) < badges:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run did not get far enough"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL


def test_sigkill_mid_run_then_resume_issues_every_badge_exactly_once(
    world, emulator: str, tmp_path: Path
) -> None:
    db = tmp_path / "cache.duckdb"
    store = Store(db)
    with CredlyClient(base_url=emulator, org_id=DEMO_ORG_ID, token=TEST_TOKEN) as client:
        sync(client, store, actor=ADMIN)
    # a template that allows duplicates: Credly itself would accept a second badge, so only
    # the ledger stands between a resumed run and a duplicate
    replace_rules(store, [BadgeRule(course_id="c-1", template_id="tpl-dup")], actor=ADMIN)
    lines = ["email,first_name,last_name,course_id,completed_at"]
    expected = []
    for i in range(ROWS):
        when = T0 + timedelta(hours=i)
        email = f"student{i % 80}@example.com"  # three completions per student
        lines.append(f"{email},Stu,Dent,c-1,{when:%Y-%m-%d %H:%M:%S}")
        expected.append((email, when))
    file = tmp_path / "completions.csv"
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    httpx.post(
        emulator.removesuffix("/v1") + "/_emulator/faults", json={"latency_ms": 40}, timeout=5
    ).raise_for_status()

    first = cli(db, emulator, tmp_path, str(file), "--yes")
    kill_when(first, world, 40)
    said = re.search(r"job (bulk-[0-9a-z-]+)", first.communicate()[1])
    assert said, "the job id is printed before anything is sent"
    job_id = said.group(1)
    with store.session() as cur:  # the killed process let go of the cache file
        status = cur.execute("SELECT status FROM jobs WHERE id = ?", [job_id]).fetchone()
        states = dict(
            cur.execute(
                "SELECT status, count(*) FROM ledger WHERE job_id = ? GROUP BY status", [job_id]
            ).fetchall()
        )
    # what a SIGKILL leaves behind: a job still "running", rows in flight (claimed, maybe sent)
    assert status == ("running",)
    assert states.get("in_flight", 0) > 0 and states.get("planned", 0) > 0

    second = cli(db, emulator, tmp_path, "--resume", job_id)
    kill_when(second, world, 130)

    third = cli(db, emulator, tmp_path, "--resume", job_id, "--json")
    out, err = third.communicate(timeout=180)
    assert third.returncode == 0, err
    result = json.loads(out)
    assert (result["job_id"], result["issued"], result["failed"]) == (job_id, ROWS, 0)

    badges = world.badges_for(DEMO_ORG_ID)
    found = Counter((b["recipient_email"], b["issued_at"]) for b in badges)
    assert found == Counter(expected)  # every completion's badge exactly once, nothing else
    with store.session() as cur:
        ledger = cur.execute(
            "SELECT status, count(*), count(DISTINCT badge_id) FROM ledger WHERE job_id = ? "
            "GROUP BY status",
            [job_id],
        ).fetchall()
        final = cur.execute("SELECT status FROM jobs WHERE id = ?", [job_id]).fetchone()
    assert ledger == [("succeeded", ROWS, ROWS)]
    assert final == ("done",)

"""SIGKILL an automatic-issuing worker mid-cycle, start it again: every badge exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

import credly_ops
from credly_ops.config import DEMO_ORG_ID
from credly_ops.lms import save_completions
from credly_ops.timeutil import utcnow
from tests.autopilot.helpers import T0, done, rule, workspace
from tests.conftest import TEST_TOKEN

pytestmark = pytest.mark.slow

ROWS = 120
#: one cycle, as the worker runs it (the completions are already in the cache)
WORKER = """
import json
from credly_ops.access import Actor, Role
from credly_ops.autopilot import run_cycle
from credly_ops.config import load_settings
from credly_ops.workspace import Workspace

ws = Workspace(load_settings())
result = run_cycle(ws, Actor("worker", Role.ADMIN), read_completions=None)
print(json.dumps(result.as_json()))
"""


def worker(db: Path, emulator: str, cwd: Path) -> subprocess.Popen[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(cwd),
        "PYTHONPATH": str(Path(credly_ops.__file__).parent.parent),
        "CREDLY_ENV": "sandbox",
        "CREDLY_ORG_ID": DEMO_ORG_ID,
        "CREDLY_API_TOKEN": TEST_TOKEN,
        "CREDLY_API_URL": emulator,
        "CREDLY_OPS_DB": str(db),
    }
    return subprocess.Popen(
        [sys.executable, "-c", WORKER],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_worker_killed_mid_cycle_then_restarted_issues_every_badge_exactly_once(
    world, emulator: str, tmp_path: Path
) -> None:
    # a template that allows duplicates: only the ledger stands between a restart and a second
    # badge for the same completion
    ws = workspace(emulator, tmp_path, [rule("c-1", template="tpl-dup")])
    rows = [
        done(f"student{i % 40}@example.com", "c-1", T0 + timedelta(hours=i)) for i in range(ROWS)
    ]
    with ws.store.transaction() as cur:
        save_completions(cur, rows, source="skilljar", loaded_at=utcnow())
    httpx.post(
        emulator.removesuffix("/v1") + "/_emulator/faults", json={"latency_ms": 40}, timeout=5
    ).raise_for_status()

    first = worker(ws.store.path, emulator, tmp_path)
    deadline = time.monotonic() + 120
    while len(world.badges_for(DEMO_ORG_ID)) < 30:
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the cycle did not get far enough"
        time.sleep(0.005)
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    assert first.returncode == -signal.SIGKILL
    with ws.store.session() as cur:
        jobs = cur.execute("SELECT id, status FROM jobs WHERE kind = 'automatic'").fetchall()
        states = dict(cur.execute("SELECT status, count(*) FROM ledger GROUP BY status").fetchall())
    assert [status for _, status in jobs] == ["running"]  # what a SIGKILL leaves behind
    assert states.get("planned", 0) > 0

    second = worker(ws.store.path, emulator, tmp_path)
    out, err = second.communicate(timeout=180)
    assert second.returncode == 0, err
    result = json.loads(out)
    assert (result["decided"], result["failed"], result["paused"]) == (0, 0, False)

    found = Counter((b["recipient_email"], b["issued_at"]) for b in world.badges_for(DEMO_ORG_ID))
    assert found == Counter((c.email, c.completed_at) for c in rows)
    with ws.store.session() as cur:
        ledger = cur.execute(
            "SELECT status, count(*), count(DISTINCT badge_id) FROM ledger GROUP BY status"
        ).fetchall()
        decisions = cur.execute(
            "SELECT count(*), count(DISTINCT completion_id) FROM autopilot_decisions"
        ).fetchone()
        final = cur.execute("SELECT status FROM jobs WHERE id = ?", [jobs[0][0]]).fetchone()
    assert ledger == [("succeeded", ROWS, ROWS)]
    assert decisions == (ROWS, ROWS)  # each completion decided once, across the two processes
    assert final == ("done",)

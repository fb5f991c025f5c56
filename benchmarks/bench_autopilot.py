"""Automatic-issuing benchmark: a backlog of 10,000 new Skilljar completions in one cycle.

Prints one JSON object.

The cache holds 10,000 Skilljar completions no cycle has decided (as after an outage, or the
first cycle after going live), one rule per course; the Credly emulator runs in its own
process with 50 ms added latency. One :func:`~credly_ops.autopilot.run_cycle` at concurrency
4 — the Credly sync, the decisions (one ``automatic`` job) and every send through the runner,
behind the rails (the cap raised to the backlog: the default 500 per hour would pause the
cycle at 500, which is the cap doing its job) — is timed against the ideal rows × latency ÷
concurrency (125 s). Target: within 1.3× of ideal, like bulk issue. ``decide_seconds`` is the
time from the start of the cycle to the job's creation (sync + decisions).

``python benchmarks/bench_autopilot.py [ROWS]`` (default 10,000).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROWS = 10_000
LATENCY_MS = 50.0
CONCURRENCY = 4
COURSES = 10
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def bench_backlog(rows: int) -> dict[str, object]:
    from benchmarks._emulator_process import TEMPLATE_ID, EmulatorProcess
    from credly_ops.access import Actor, Role
    from credly_ops.autopilot import run_cycle, set_cap
    from credly_ops.config import DEMO_API_TOKEN, DEMO_ORG_ID, load_settings
    from credly_ops.lms import save_completions
    from credly_ops.models import BadgeRule, Completion
    from credly_ops.rules import replace_rules
    from credly_ops.timeutil import utcnow
    from credly_ops.workspace import Workspace

    admin = Actor("bench", Role.ADMIN)
    completions = [
        Completion(
            email=f"learner{i}@example.com",
            first_name="Ada",
            last_name=f"Lovelace{i}",
            course_id=f"course-{i % COURSES}",
            completed_at=T0 + timedelta(minutes=i),
        )
        for i in range(rows)
    ]
    with (
        EmulatorProcess(0, latency_ms=LATENCY_MS) as emulator,
        tempfile.TemporaryDirectory() as tmp,
    ):
        settings = load_settings(
            env="sandbox",
            org_id=DEMO_ORG_ID,
            api_token=DEMO_API_TOKEN,
            api_url=f"{emulator.url}/v1",
            db=Path(tmp) / "bench.duckdb",
            secrets_path=Path(tmp) / "no-secrets.toml",
            environ={},
        )
        ws = Workspace(settings)
        rules = [
            BadgeRule(course_id=f"course-{c}", template_id=TEMPLATE_ID, active_from=T0)
            for c in range(COURSES)
        ]
        replace_rules(ws.store, rules, actor=admin)
        set_cap(ws.store, admin, max(rows, 1))
        with ws.store.transaction() as cur:
            save_completions(cur, completions, source="skilljar", loaded_at=utcnow())
        started = time.perf_counter()
        result = run_cycle(ws, admin, read_completions=None, concurrency=CONCURRENCY)
        seconds = time.perf_counter() - started
        with ws.store.session() as cur:
            row = cur.execute(
                "SELECT min(created_at), (SELECT min(started_at) FROM autopilot_cycles) "
                "FROM jobs WHERE kind = 'automatic'"
            ).fetchone()
    decide = (row[0] - row[1]).total_seconds() if row and row[0] and row[1] else None
    ideal = rows * LATENCY_MS / 1000 / CONCURRENCY
    return {
        "rows": rows,
        "latency_ms": LATENCY_MS,
        "concurrency": CONCURRENCY,
        "issued": result.issued,
        "failed": result.failed,
        "paused": result.paused,
        "decide_seconds": None if decide is None else round(decide, 3),
        "cycle_seconds": round(seconds, 3),
        "ideal_seconds": round(ideal, 3),
        "cycle_vs_ideal": round(seconds / ideal, 3),
    }


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else ROWS
    out: dict[str, object] = {"benchmark": "autopilot"}
    out.update(bench_backlog(rows))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

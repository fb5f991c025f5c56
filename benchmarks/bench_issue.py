"""Bulk-issue benchmark: planning a 100,000-row file, and issuing 1,000 badges.

Prints one JSON object.

* **Planning** = read the CSV bytes (``read_completions``) + ``plan()`` in bulk mode against 20
  badge rules and 20,000 existing badges of the same students: the median of 5 runs, each in a
  fresh subprocess. Peak memory is reported two ways: ``plan_peak_rss_mb`` is the subprocess's
  ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` (the whole process: interpreter, imported
  libraries, the file's bytes and the plan), ``plan_peak_traced_mb`` the ``tracemalloc`` peak of
  the read + plan alone (Python allocations made by that work; a separate run, since tracing
  slows allocation). Targets: under 3 s and 300 MB. The same children time the floor any
  reader pays, decoding the bytes and splitting them with the ``csv`` module, the cycle
  collector paused as the reader pauses it (``plan_floor_seconds_median``); ``plan_vs_floor``
  is the ratio of the two medians, which moves less than either time on a noisy machine.
* **Issuing** = ``run_job`` of a 1,000-row job (every row a new badge) against the emulator in
  its own process with 50 ms added latency, at concurrency 4, reported as a ratio to the ideal
  time rows × latency ÷ concurrency (12.5 s). Target: within 1.3× of ideal.
"""

from __future__ import annotations

import csv
import gc
import io
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PLAN_ROWS = 100_000
ISSUE_ROWS = 1_000
LATENCY_MS = 50.0
CONCURRENCY = 4
COURSES = 20
EXISTING_BADGES = 20_000
T0 = datetime(2023, 1, 1, 9, 0, tzinfo=UTC)


def completion_file(rows: int, *, courses: int = COURSES) -> bytes:
    """A Skilljar-like export: header aliases, US dates, a pass/fail column."""
    lines = ["Student Email,First Name,Last Name,Published Course ID,Date Completed,Success Status"]
    for i in range(rows):
        when = T0 + timedelta(minutes=7 * i)
        status = "FAILED" if i % 23 == 0 else "PASSED"
        lines.append(
            f"student{i % (rows // 2 or 1)}@example.com,Stu,Dent{i},course-{i % courses},"
            f"{when:%m/%d/%Y %H:%M},{status}"
        )
    return ("\n".join(lines) + "\n").encode("utf-8")


def _plan_child(rows: int, *, traced: bool) -> None:
    """One planning run (in a subprocess): prints its seconds (and the traced peak)."""
    import tracemalloc

    from credly_ops.completions import read_completions
    from credly_ops.issuance.plan import plan
    from credly_ops.models import BadgeRule, BadgeTemplate, IssuedBadge, TemplateRef

    data = completion_file(rows)
    rules = {
        f"course-{c}": BadgeRule(
            course_id=f"course-{c}",
            template_id=f"tpl-{c % 5}",
            method=("issue", "update", "issue_or_update")[c % 3],
            expiration_months=12 if c % 2 else 0,
        )
        for c in range(COURSES)
    }
    templates = {
        f"tpl-{t}": BadgeTemplate(id=f"tpl-{t}", name=f"T{t}", allow_duplicate_badges=t == 0)
        for t in range(5)
    }
    badges: dict[str, list[IssuedBadge]] = {}
    for i in range(EXISTING_BADGES):
        email = f"student{i}@example.com"
        badges.setdefault(email, []).append(
            IssuedBadge.model_construct(
                id=f"b-{i}",
                state="accepted" if i % 2 else "pending",
                recipient_email=email,
                issued_at=T0 - timedelta(days=i % 300),
                expires_at=None,
                badge_template=TemplateRef.model_construct(id=f"tpl-{i % 5}", name=""),
            )
        )
    now = datetime(2030, 1, 1, tzinfo=UTC)
    floor = 0.0
    if not traced:  # the floor first, so its memory is gone before the measured run
        gc.disable()  # as the reader does while it reads
        started = time.perf_counter()
        split = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
        floor = time.perf_counter() - started
        gc.enable()
        assert len(split) == rows + 1
        del split
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    file = read_completions(data, now=now)
    read = time.perf_counter() - started
    decided = plan(file.completions, rules, templates, badges, now=now, mode="bulk")
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if traced else 0
    tracemalloc.stop()
    assert len(decided.rows) == rows
    print(json.dumps({"seconds": seconds, "read": read, "floor": floor, "traced_peak": peak}))


def _child(flag: str, rows: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, flag, str(rows)], check=True, capture_output=True, text=True
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def bench_planning(rows: int) -> dict[str, float]:
    runs = [_child("--plan-untraced-child", rows) for _ in range(5)]
    rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # before the traced run
    traced = _child("--plan-child", rows)
    seconds = statistics.median(run["seconds"] for run in runs)
    floor = statistics.median(run["floor"] for run in runs)
    return {
        "plan_rows": rows,
        "plan_seconds_median": round(seconds, 3),
        "plan_seconds_all": sorted(round(run["seconds"], 3) for run in runs),
        "plan_read_seconds_median": round(statistics.median(run["read"] for run in runs), 3),
        "plan_floor_seconds_median": round(floor, 3),
        "plan_vs_floor": round(seconds / floor, 2),
        "plan_seconds_traced": round(traced["seconds"], 3),
        "plan_peak_rss_mb": round(rss_kb / 1024, 1),
        "plan_peak_traced_mb": round(traced["traced_peak"] / 1024 / 1024, 1),
    }


def bench_issuing(rows: int) -> dict[str, float]:
    from benchmarks._emulator_process import TEMPLATE_ID, EmulatorProcess
    from credly_ops.access import Actor, Role
    from credly_ops.config import DEMO_API_TOKEN, DEMO_ORG_ID, load_settings
    from credly_ops.issuance import create_job_from, prepare, run_job
    from credly_ops.models import BadgeRule
    from credly_ops.rules import replace_rules
    from credly_ops.workspace import Workspace

    admin = Actor("bench", Role.ADMIN)
    lines = ["email,first_name,last_name,course_id,completed_at"]
    lines += [
        f"issue{i}@example.com,Ada,Lovelace{i},bench-course,"
        f"{(T0 + timedelta(hours=i)):%Y-%m-%d %H:%M:%S}"
        for i in range(rows)
    ]
    data = ("\n".join(lines) + "\n").encode()
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
        replace_rules(
            ws.store, [BadgeRule(course_id="bench-course", template_id=TEMPLATE_ID)], actor=admin
        )
        prepared = prepare(ws, admin, data, source_name="bench.csv")
        assert prepared.to_send == rows, prepared.plan.reasons()
        job_id = create_job_from(ws, admin, prepared)
        started = time.perf_counter()
        result = run_job(ws, admin, job_id, concurrency=CONCURRENCY)
        seconds = time.perf_counter() - started
    ideal = rows * LATENCY_MS / 1000 / CONCURRENCY
    return {
        "issue_rows": rows,
        "issue_latency_ms": LATENCY_MS,
        "issue_concurrency": CONCURRENCY,
        "issue_issued": result.outcomes["issued"],
        "issue_failed": result.outcomes["failed"],
        "issue_seconds": round(seconds, 3),
        "issue_ideal_seconds": round(ideal, 3),
        "issue_vs_ideal": round(seconds / ideal, 3),
    }


def main() -> None:
    out: dict[str, object] = {"benchmark": "issue"}
    out.update(bench_planning(PLAN_ROWS))
    out.update(bench_issuing(ISSUE_ROWS))
    out["targets"] = {"plan_seconds": 3.0, "plan_peak_mb": 300, "issue_vs_ideal": 1.3}
    out["peak_memory_method"] = (
        "plan_peak_rss_mb: getrusage(RUSAGE_CHILDREN).ru_maxrss of the planning subprocesses "
        "(whole process); plan_peak_traced_mb: tracemalloc peak of read + plan"
    )
    print(json.dumps(out))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] in ("--plan-child", "--plan-untraced-child"):
        _plan_child(int(sys.argv[2]), traced=sys.argv[1] == "--plan-child")
    else:
        main()

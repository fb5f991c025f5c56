"""Sharing the cache file: a long CLI job, a cron sync and the app's reads, side by side.

Prints one JSON object.

A 5,000-row ``credly-ops issue`` job runs in its own process against the emulator (its own
process, 50 ms added latency, concurrency 4). Meanwhile a ``credly-ops sync`` process starts
every 5 s, and this process reads the cache the way the pages do (the funnel's summary and a
student's profile) in a loop. Reported: how long the job took against the ideal (rows × latency
÷ concurrency), every sync's exit code and time, and how long each read waited for the file —
the longest and the median. Target: the longest wait under 2 s, every sync and read succeeded.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._emulator_process import EmulatorProcess

ROWS = 5_000
LATENCY_MS = 50.0
CONCURRENCY = 4
SYNC_EVERY = 5.0
T0 = datetime(2023, 1, 1, 9, 0, tzinfo=UTC)


def main() -> None:
    from credly_ops.access import Actor, Role
    from credly_ops.config import DEMO_API_TOKEN, DEMO_ORG_ID
    from credly_ops.credly.client import CredlyClient
    from credly_ops.funnel import FunnelFilter, summary
    from credly_ops.models import BadgeRule
    from credly_ops.profile import load_profile
    from credly_ops.rules import replace_rules
    from credly_ops.store import CacheBusy, Store
    from credly_ops.sync import sync

    admin = Actor("bench@example.com", Role.ADMIN)
    with (
        EmulatorProcess(0, latency_ms=LATENCY_MS) as emulator,
        tempfile.TemporaryDirectory() as tmp,
    ):
        api = f"{emulator.url}/v1"
        db = Path(tmp) / "cache.duckdb"
        store = Store(db)
        with CredlyClient(base_url=api, org_id=DEMO_ORG_ID, token=DEMO_API_TOKEN) as client:
            sync(client, store, actor=admin)
        replace_rules(store, [BadgeRule(course_id="c-1", template_id="bench-dup")], actor=admin)
        lines = ["email,first_name,last_name,course_id,completed_at"]
        for i in range(ROWS):
            when = T0 + timedelta(minutes=i)
            lines.append(f"s{i}@example.com,Stu,Dent,c-1,{when:%Y-%m-%d %H:%M:%S}")
        path = Path(tmp) / "completions.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CREDLY_")},
            "CREDLY_ENV": "sandbox",
            "CREDLY_ORG_ID": DEMO_ORG_ID,
            "CREDLY_API_TOKEN": DEMO_API_TOKEN,
            "CREDLY_API_URL": api,
            "CREDLY_OPS_DB": str(db),
        }
        command = [sys.executable, "-m", "credly_ops.cli"]
        started = time.perf_counter()
        job = subprocess.Popen(
            [*command, "issue", str(path), "--yes", "--json", "--concurrency", str(CONCURRENCY)],
            cwd=tmp,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        waits: list[float] = []
        busy = 0
        syncs: list[tuple[int, float]] = []
        running_sync: tuple[subprocess.Popen[str], float] | None = None
        next_sync = time.monotonic() + SYNC_EVERY
        flt = FunnelFilter()
        while job.poll() is None:
            t = time.perf_counter()
            try:
                summary(store, flt)
                load_profile(store, f"s{len(waits) % ROWS}@example.com", web_url="https://x")
            except CacheBusy:
                busy += 1
            waits.append(time.perf_counter() - t)
            if running_sync is not None and running_sync[0].poll() is not None:
                proc, at = running_sync
                syncs.append((proc.returncode, time.monotonic() - at))
                running_sync = None
            if running_sync is None and time.monotonic() >= next_sync:
                proc = subprocess.Popen(
                    [*command, "sync", "--json"],
                    cwd=tmp,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
                running_sync = (proc, time.monotonic())
                next_sync = time.monotonic() + SYNC_EVERY
            time.sleep(0.1)
        seconds = time.perf_counter() - started
        out, err = job.communicate()
        if running_sync is not None:
            running_sync[0].wait(120)
            syncs.append((running_sync[0].returncode, time.monotonic() - running_sync[1]))
        result = json.loads(out) if job.returncode in (0, 1) and out.strip() else {"error": err}
    ideal = ROWS * LATENCY_MS / 1000 / CONCURRENCY
    print(
        json.dumps(
            {
                "rows": ROWS,
                "job_exit_code": job.returncode,
                "issued": result.get("issued"),
                "failed": result.get("failed"),
                "job_seconds": round(seconds, 1),
                "job_vs_ideal": round(seconds / ideal, 2),
                "reads": len(waits),
                "reads_cache_busy": busy,
                "read_wait_longest_s": round(max(waits), 3) if waits else None,
                "read_wait_median_s": round(statistics.median(waits), 3) if waits else None,
                "syncs": len(syncs),
                "syncs_failed": sum(1 for code, _ in syncs if code != 0),
                "sync_seconds_longest": round(max((s for _, s in syncs), default=0.0), 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

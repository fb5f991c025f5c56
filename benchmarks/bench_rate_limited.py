"""A job against a rate-limited Credly: 500 rows at a limit of 5 requests per second.

Prints one JSON object. The emulator runs in its own process with the limit (a sliding second
that counts the requests it accepts, answering 429 with ``Retry-After`` otherwise) and 20 ms of
latency; the job runs at concurrency 4. A 429 must never fail a row, and the job's pace should
converge just under the limit. Target: at least 4.5 rows per second, no row failed.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._emulator_process import EmulatorProcess

ROWS = 500
LIMIT_RPS = 5.0
LATENCY_MS = 20.0
T0 = datetime(2023, 1, 1, 9, 0, tzinfo=UTC)


def main() -> None:
    from credly_ops.access import Actor, Role
    from credly_ops.config import DEMO_API_TOKEN, DEMO_ORG_ID, load_settings
    from credly_ops.issuance import create_job_from, prepare, run_job
    from credly_ops.models import BadgeRule
    from credly_ops.rules import replace_rules
    from credly_ops.sync import sync
    from credly_ops.workspace import Workspace

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logging.getLogger("credly_ops").addHandler(Keep(logging.DEBUG))
    logging.getLogger("credly_ops").setLevel(logging.DEBUG)
    admin = Actor("bench@example.com", Role.ADMIN)
    with (
        EmulatorProcess(0, latency_ms=LATENCY_MS, rate_limit_rps=LIMIT_RPS) as emulator,
        tempfile.TemporaryDirectory() as tmp,
    ):
        ws = Workspace(
            load_settings(
                env="sandbox",
                org_id=DEMO_ORG_ID,
                api_token=DEMO_API_TOKEN,
                api_url=f"{emulator.url}/v1",
                db=Path(tmp) / "cache.duckdb",
            )
        )
        with ws.client() as client:
            sync(client, ws.store, actor=admin)
        replace_rules(ws.store, [BadgeRule(course_id="c-1", template_id="bench-dup")], actor=admin)
        lines = ["email,first_name,last_name,course_id,completed_at"]
        for i in range(ROWS):
            lines.append(
                f"s{i}@example.com,Stu,Dent,c-1,{T0 + timedelta(minutes=i):%Y-%m-%d %H:%M}"
            )
        prepared = prepare(ws, admin, ("\n".join(lines) + "\n").encode(), source_name="f.csv")
        job_id = create_job_from(ws, admin, prepared)
        time.sleep(1.0)  # the limit's window starts empty
        started = time.perf_counter()
        result = run_job(ws, admin, job_id, concurrency=4, refresh=False)
        seconds = time.perf_counter() - started
    warnings = [r for r in records if r.levelno >= logging.WARNING]
    print(
        json.dumps(
            {
                "rows": ROWS,
                "limit_rps": LIMIT_RPS,
                "seconds": round(seconds, 1),
                "rows_per_second": round(ROWS / seconds, 2),
                "issued": result.outcomes["issued"],
                "failed": result.outcomes["failed"],
                "warning_lines": len(warnings),
                "summary": warnings[-1].getMessage() if warnings else None,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

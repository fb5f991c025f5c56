"""Completion → badge benchmark: from a Skilljar webhook delivery to the badge on Credly.

Prints one JSON object.

Everything runs as in production, on loopback: the Credly emulator in its own process (50 ms
added latency), the local Skilljar, the webhook receiver (``credly-ops hooks``' app) over a
spool beside the cache file, and the automatic issuer's loop (``credly-ops autopilot run``'s)
with its schedule at 300 s — so a badge that arrives sooner came by the webhook path: the
receiver spools the delivery, the loop sees it waiting, ingests it, reads that student's
enrollment over the API, decides and sends. For each of ``N`` completions (one every 2 s) the
clock runs from the delivery's request to the badge answering on Credly's API.

Reports ``p50_seconds``, ``p95_seconds`` and ``max_seconds`` (target: p95 under 10 s); the
poll path without a webhook is the schedule plus one cycle (``interval + ~cycle_seconds``).

``python benchmarks/bench_webhook_to_badge.py [N]`` (default 20).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

COMPLETIONS = int(sys.argv[1]) if len(sys.argv) > 1 else 20
LATENCY_MS = 50.0
INTERVAL = 300.0
SECRET = "bench-webhook-secret"
COURSE = "crs-bench"


def main() -> dict[str, object]:
    import httpx
    from pydantic import SecretStr

    from benchmarks._emulator_process import TEMPLATE_ID, EmulatorProcess
    from credly_ops.access import Actor, Role
    from credly_ops.autopilot import Wake, start_in_background
    from credly_ops.autopilot.reading import completions_step, hinted
    from credly_ops.config import DEMO_API_TOKEN, DEMO_ORG_ID, SkilljarSettings, load_settings
    from credly_ops.emulators.server import serve_in_thread
    from credly_ops.emulators.skilljar import build_world, create_app
    from credly_ops.hooks import Spool, create_hooks_app
    from credly_ops.models import BadgeRule
    from credly_ops.rules import replace_rules
    from credly_ops.skilljar import SkilljarClient
    from credly_ops.workspace import Workspace

    admin = Actor("bench", Role.ADMIN)
    world = build_world(seed=1, demo=False)
    world.add_client("bench-client", "bench-client-secret")
    world.add_course("Benchmark Course", COURSE)
    skilljar = serve_in_thread(create_app(world))
    sj_settings = SkilljarSettings(
        api_url=skilljar.url,
        client_id="bench-client",
        client_secret=SecretStr("bench-client-secret"),
        webhook_secret=SecretStr(SECRET),
    )
    latencies: list[float] = []
    with (
        EmulatorProcess(0, latency_ms=LATENCY_MS) as credly,
        tempfile.TemporaryDirectory() as tmp,
        httpx.Client(timeout=10) as http,
    ):
        settings = load_settings(
            env="sandbox",
            org_id=DEMO_ORG_ID,
            api_token=DEMO_API_TOKEN,
            api_url=f"{credly.url}/v1",
            db=Path(tmp) / "bench.duckdb",
            secrets_path=Path(tmp) / "no-secrets.toml",
            environ={},
        )
        ws = Workspace(settings)
        installed = datetime.now(UTC) - timedelta(days=1)
        replace_rules(
            ws.store,
            [BadgeRule(course_id=COURSE, template_id=TEMPLATE_ID, active_from=installed)],
            actor=admin,
        )
        receiver = serve_in_thread(
            create_hooks_app(sj_settings, Spool.beside(settings.db_path), wake=None)
        )
        reader = SkilljarClient.from_settings(sj_settings)
        thread, stop = start_in_background(
            ws,
            admin,
            interval=INTERVAL,
            read_completions=completions_step(ws, reader),
            wake=Wake(),
            hinted=hinted(ws),
        )
        time.sleep(3.0)  # the first cycle (an empty backlog) is behind us
        api = f"{credly.url}/v1/organizations/{DEMO_ORG_ID}/badges"
        auth = (DEMO_API_TOKEN, "")
        for i in range(COMPLETIONS):
            email = f"learner{i}@example.com"
            made = http.post(
                f"{skilljar.url}/_emulator/completions",
                json={
                    "email": email,
                    "first_name": "Ada",
                    "last_name": f"Lovelace{i}",
                    "course_id": COURSE,
                    "success_status": "PASSED",
                },
            ).json()
            started = time.perf_counter()
            http.post(
                f"{skilljar.url}/_emulator/webhooks/deliver",
                json={
                    "enrollment_id": made["enrollment_id"],
                    "target_url": f"{receiver.url}/hooks/skilljar",
                    "additional_headers": {"X-Webhook-Secret": SECRET},
                },
            ).raise_for_status()
            while time.perf_counter() - started < 60:
                found = http.get(
                    api, params={"filter": f"recipient_email::{email}"}, auth=auth
                ).json()
                if found.get("data"):
                    break
                time.sleep(0.1)
            latencies.append(time.perf_counter() - started)
            time.sleep(max(0.0, 2.0 - latencies[-1]))
        stop.set()
        thread.join(30)
        reader.close()
        receiver.stop()
    skilljar.stop()
    ordered = sorted(latencies)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    return {
        "benchmark": "webhook_to_badge",
        "completions": COMPLETIONS,
        "credly_latency_ms": LATENCY_MS,
        "schedule_seconds": INTERVAL,
        "p50_seconds": round(statistics.median(latencies), 2),
        "p95_seconds": round(p95, 2),
        "max_seconds": round(ordered[-1], 2),
        "target_p95_seconds": 10.0,
        "met": p95 < 10.0,
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))

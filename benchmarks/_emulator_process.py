"""Serve an emulator with N generated badges in a separate process (benchmarks only)."""

from __future__ import annotations

import multiprocessing
import socket
import time
from datetime import UTC, datetime, timedelta

import httpx

from credly_ops.config import DEMO_API_TOKEN, DEMO_ORG_ID

T0 = datetime(2024, 1, 1, tzinfo=UTC)
TEMPLATE_ID = "bench-template"


def badge_records(n: int) -> list[dict]:
    out = []
    for i in range(n):
        when = T0 + timedelta(minutes=i)
        accepted = i % 2 == 0
        out.append(
            {
                "id": f"b-{i:07d}",
                "template_id": TEMPLATE_ID,
                "recipient_email": f"student{i}@example.com",
                "issued_to_first_name": "Student",
                "issued_to_last_name": str(i),
                "state": "accepted" if accepted else "pending",
                "issued_at": when,
                "created_at": when,
                "updated_at": when + timedelta(hours=3) if accepted else when,
                "state_updated_at": when + timedelta(hours=3) if accepted else None,
            }
        )
    return out


def _serve(port: int, badges: int, latency_ms: float, rate_limit_rps: float | None) -> None:
    import uvicorn

    from credly_ops.emulators.credly import FaultConfig, World, create_app

    world = World()
    world.add_org(DEMO_ORG_ID, "Benchmark Academy", DEMO_API_TOKEN)
    world.add_template(DEMO_ORG_ID, id=TEMPLATE_ID, name="Benchmark Badge")
    world.add_template(
        DEMO_ORG_ID, id="bench-dup", name="Retake Badge", allow_duplicate_badges=True
    )
    world.load_badges(DEMO_ORG_ID, badge_records(badges))
    config = FaultConfig(latency_ms=latency_ms, rate_limit_rps=rate_limit_rps)
    app = create_app(world, faults=config)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmulatorProcess:
    def __init__(
        self, badges: int, latency_ms: float = 0.0, rate_limit_rps: float | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(self.port, badges, latency_ms, rate_limit_rps), daemon=True
        )

    def __enter__(self) -> EmulatorProcess:
        self.proc.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/_emulator/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("emulator did not start")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.join(10)

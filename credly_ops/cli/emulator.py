"""``credly-ops emulator``: serve the local Credly API emulator on its own (demos, tests)."""

from __future__ import annotations

from pathlib import Path

import click

from credly_ops.cli.exits import ExitCode


@click.command(
    "emulator",
    short_help="run the local Credly API emulator",
    help="Serve the local Credly API emulator (for demos and tests).",
)
@click.option("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
@click.option("--port", type=int, default=8765, help="port (default 8765)")
@click.option("--seed", type=click.Choice(["demo", "empty"]), default="demo", help="starting world")
@click.option("--latency-ms", type=int, default=0, help="added latency per request")
@click.option("--rate-limit", type=float, default=None, help="requests per second before 429")
@click.option("--fail-rate", type=float, default=0.0, help="share of requests answered 500/503")
@click.option("--journal", help="append-only file that keeps the world across restarts")
def command(
    host: str,
    port: int,
    seed: str,
    latency_ms: int,
    rate_limit: float | None,
    fail_rate: float,
    journal: str | None,
) -> ExitCode:
    from credly_ops.emulators.credly.app import run_emulator

    run_emulator(
        host,
        port,
        seed=seed,
        latency_ms=latency_ms,
        rate_limit=rate_limit,
        fail_rate=fail_rate,
        journal_path=Path(journal) if journal else None,
    )
    return ExitCode.OK

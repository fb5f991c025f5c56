"""THE demo world: one anchor rule for the embedded start and the standalone emulator."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from credly_ops.config import DEMO_API_TOKEN, DEMO_ORG_ID, load_settings
from credly_ops.emulators.credly import build_app
from credly_ops.emulators.demo_world import (
    DEMO_SEED,
    WORLD_FILE,
    default_anchor,
    demo_world,
    write_world_file,
)
from credly_ops.emulators.embedded import ensure_demo_emulator

ANCHOR = datetime(2025, 3, 10, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_missing_anchor_is_today_and_recorded_then_the_record_wins(tmp_path: Path) -> None:
    fresh = demo_world(tmp_path)
    assert (fresh.anchor, fresh.seed) == (default_anchor(), DEMO_SEED)
    assert json.loads((tmp_path / WORLD_FILE).read_text()) == {
        "anchor": default_anchor().isoformat(),
        "seed": DEMO_SEED,
    }
    write_world_file(tmp_path, ANCHOR, 7)
    recorded = demo_world(tmp_path)
    assert (recorded.anchor, recorded.seed) == (ANCHOR, 7)
    assert max(b["created_at"] for b in recorded.badges) <= ANCHOR
    assert {r.active_from for r in recorded.rules} <= {
        ANCHOR - timedelta(days=d) for d in (540, 400, 95)
    }
    # the LMS side is a plain list of values another emulator can load as they are
    assert recorded.completions and all(c.completed_at <= ANCHOR for c in recorded.completions)


def test_standalone_and_embedded_emulators_serve_the_same_recorded_world(tmp_path: Path) -> None:
    write_world_file(tmp_path, ANCHOR, DEMO_SEED)
    standalone = build_app("demo", data_dir=tmp_path).state.world
    expected_templates = {
        t["id"]: t["created_at"]
        for t in standalone.template_page(DEMO_ORG_ID, None, None, 0, 50)[1]
    }
    assert set(expected_templates.values()) == {"2023-02-09T00:00:00.000Z"}  # anchor - 760 d

    api_url = f"http://127.0.0.1:{free_port()}/v1"
    settings = load_settings(env="demo", api_url=api_url, db=tmp_path / "cache.duckdb")
    handle = ensure_demo_emulator(settings)
    assert handle.owned and handle.stop is not None
    try:
        with httpx.Client(base_url=api_url, auth=(DEMO_API_TOKEN, ""), timeout=10) as http:
            org = f"/organizations/{DEMO_ORG_ID}"
            templates = http.get(f"{org}/badge_templates").json()["data"]
            badges = http.get(f"{org}/badges", params={"per": 1}).json()["metadata"]
            assert {t["id"]: t["created_at"] for t in templates} == expected_templates
            assert badges["total_count"] == len(standalone.badges_for(DEMO_ORG_ID))
            # the pictures come from the emulator itself, on loopback
            picture = templates[0]["image_url"]
            assert picture.startswith(api_url.removesuffix("/v1") + "/_emulator/images/")
            assert http.get(picture).headers["content-type"].startswith("image/svg+xml")
    finally:
        handle.stop()

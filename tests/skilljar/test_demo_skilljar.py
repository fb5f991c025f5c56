"""The demo's completions live in the demo Skilljar: a read of it finds the demo cache complete."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from credly_ops.completions_sync import last_completions_read, sync_completions
from credly_ops.config import (
    DEMO_SKILLJAR_API_URL,
    DEMO_SKILLJAR_CLIENT_ID,
    DEMO_SKILLJAR_CLIENT_SECRET,
    load_settings,
)
from credly_ops.demo import load_cache
from credly_ops.emulators.demo_world import generate, write_world_file
from credly_ops.emulators.server import serve_in_thread
from credly_ops.emulators.skilljar import create_app
from credly_ops.emulators.skilljar.seeds import JOURNAL_FILE, build_demo_world, enrollment_id_for
from credly_ops.lms import completion_id
from credly_ops.skilljar import SkilljarClient
from credly_ops.store import Store
from credly_ops.workspace import Workspace


def _client(url: str) -> SkilljarClient:
    return SkilljarClient(
        api_url=url, client_id=DEMO_SKILLJAR_CLIENT_ID, client_secret=DEMO_SKILLJAR_CLIENT_SECRET
    )


def test_a_read_of_the_demo_skilljar_finds_every_demo_completion_already_cached(
    tmp_path: Path,
) -> None:
    demo = generate(students=1500, completions=2500)
    server = serve_in_thread(create_app(build_demo_world(demo)), host="127.0.0.1", port=0)
    store = Store(tmp_path / "demo.duckdb")
    load_cache(store, demo)
    try:
        with _client(server.url) as client:
            first = sync_completions(store, client)
            assert last_completions_read(store)["kind"] == "incremental"  # type: ignore[index]
            full = sync_completions(store, client, full=True)
    finally:
        server.stop()
    assert (first.new, first.completions) == (0, len(demo.completions))
    assert (full.new, full.completions) == (0, len(demo.completions))
    assert last_completions_read(store)["read"] == len(demo.completions)  # type: ignore[index]
    assert full.pages == -(-len(demo.completions) // 100)
    with store.session() as cur:
        ids = {r[0] for r in cur.execute("SELECT id FROM completions").fetchall()}
    assert ids == {completion_id(c) for c in demo.completions}


def test_a_completion_added_at_run_time_survives_a_restart(tmp_path: Path) -> None:
    demo = generate(students=500, completions=700)
    journal = tmp_path / JOURNAL_FILE
    course = demo.completions[0].course_id
    server = serve_in_thread(
        create_app(build_demo_world(demo, journal_path=journal)), host="127.0.0.1", port=0
    )
    try:
        added = httpx.post(
            f"{server.url}/_emulator/completions",
            json={"email": "new.student@example.com", "course_id": course, "first_name": "New"},
            timeout=5,
        ).json()
    finally:
        server.stop()
    again = build_demo_world(demo, journal_path=journal)
    kept = again.enrollments[added["enrollment_id"]]
    assert kept.completed_at is not None and kept.course_id == course
    assert again.students[kept.student_id].email == "new.student@example.com"
    # the seeded enrollments keep their ids on every start
    assert enrollment_id_for(demo.completions[5]) in again.enrollments
    server = serve_in_thread(create_app(again), host="127.0.0.1", port=0)
    store = Store(tmp_path / "demo.duckdb")
    load_cache(store, demo)
    try:
        with _client(server.url) as client:
            result = sync_completions(store, client)
    finally:
        server.stop()
    assert (result.new, result.completions) == (1, len(demo.completions) + 1)


def test_the_demo_workspace_reads_the_embedded_skilljar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from credly_ops.emulators.embedded import ensure_demo_skilljar

    monkeypatch.chdir(tmp_path)
    for name in ("SKILLJAR_CLIENT_ID", "SKILLJAR_CLIENT_SECRET", "SKILLJAR_API_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in ("CREDLY_ENV", "CREDLY_ORG_ID", "CREDLY_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    ws = Workspace(load_settings(db=tmp_path / "data" / "credly_ops.duckdb"))
    found = ws.skilljar_settings()
    assert found.configured and found.api_url == DEMO_SKILLJAR_API_URL  # type: ignore[union-attr]
    monkeypatch.setenv("SKILLJAR_CLIENT_ID", "real-client")
    monkeypatch.setenv("SKILLJAR_CLIENT_SECRET", "real-secret-value")
    assert ws.skilljar_settings().api_url == "https://api.skilljar.com"  # type: ignore[union-attr]

    demo = generate()
    write_world_file(ws.data_dir, demo.anchor, demo.seed)
    load_cache(ws.store, demo)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    handle = ensure_demo_skilljar(ws.data_dir, api_url=url)
    try:
        assert handle.owned
        with _client(url) as client:
            result = sync_completions(ws.store, client)
    finally:
        assert handle.stop is not None
        handle.stop()
    # the embedded Skilljar serves the demo world recorded in the data folder: the first read
    # is incremental, reads only the overlap window and finds nothing the demo cache lacks
    assert (result.new, result.completions) == (0, len(demo.completions))
    assert 1 <= result.pages <= 3


def test_a_student_finishes_a_badge_course_now_and_the_next_read_has_it(tmp_path: Path) -> None:
    import random

    from credly_ops.demo import finish_a_course_now

    demo = generate(students=500, completions=700)
    server = serve_in_thread(create_app(build_demo_world(demo)), host="127.0.0.1", port=0)
    store = Store(tmp_path / "demo.duckdb")
    load_cache(store, demo)
    try:
        done = finish_a_course_now(server.url, rng=random.Random(3))
        with _client(server.url) as client:
            result = sync_completions(store, client)
    finally:
        server.stop()
    assert result.new == 1 and done["success_status"] == "PASSED"
    rules = {r.course_id: r for r in demo.rules}
    assert done["course_id"] in rules  # a course with a badge
    with store.session() as cur:
        row = cur.execute(
            "SELECT course_id, status FROM completions WHERE email = ?", [done["email"]]
        ).fetchone()
    assert row == (done["course_id"], "passed")

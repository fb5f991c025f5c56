"""The workspace: the demo Credly starts in the background, and what needs it waits."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from credly_ops import config
from credly_ops.emulators import embedded
from credly_ops.emulators.embedded import emulator_answers
from credly_ops.workspace import Workspace


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_demo_credly_starts_in_the_background_and_the_client_waits(tmp_path: Path) -> None:
    api_url = f"http://127.0.0.1:{free_port()}/v1"
    ws = Workspace(config.load_settings(env="demo", api_url=api_url, db=tmp_path / "c.duckdb"))
    try:
        with embedded._lock:  # while this is held, no start can finish
            caller = threading.Thread(target=ws.start_demo_credly)
            caller.start()
            caller.join(10)
            assert not caller.is_alive(), "start_demo_credly waited for the start"
            assert ws.wait_for_demo_credly(timeout=0.2) is False
            assert not emulator_answers(api_url)
        assert ws.wait_for_demo_credly() is True
        assert emulator_answers(api_url)
        with ws.client() as client:
            assert client.get_organization()
    finally:
        handle = embedded._running.pop(api_url, None)
        if handle is not None and callable(handle.stop):
            handle.stop()


def test_outside_the_demo_nothing_starts_and_nothing_waits(tmp_path: Path) -> None:
    ws = Workspace(
        config.load_settings(
            env="sandbox",
            org_id="org",
            api_token="tok-0123456789",
            api_url=f"http://127.0.0.1:{free_port()}/v1",
            db=tmp_path / "c.duckdb",
        )
    )
    ws.start_demo_credly()
    assert ws.wait_for_demo_credly(timeout=0) is True
    assert ws.settings.api_url not in embedded._running

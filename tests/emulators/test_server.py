"""Serving an ASGI app on a loopback port from a thread."""

from __future__ import annotations

import httpx
import pytest

from credly_ops.emulators.credly import (
    create_app,
)
from credly_ops.emulators.server import serve_in_thread
from tests.emulators.credly.conftest import make_world


def test_serve_in_thread_starts_and_stops() -> None:
    app = create_app(make_world())
    server = serve_in_thread(app, host="127.0.0.1", port=0)
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert httpx.get(f"{server.url}/_emulator/health").status_code == 200
    server.stop()
    assert not server.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/_emulator/health", timeout=1)

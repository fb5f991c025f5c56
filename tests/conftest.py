"""Shared fixtures: hermetic settings, a cache file per test, and a real emulator on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from credly_ops import config
from credly_ops.store import Store

TEST_TOKEN = "tok-0123456789abcdef-SECRET"


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's Credly variables or secrets file."""
    for key in list(os.environ):
        if key.startswith("CREDLY_"):
            monkeypatch.delenv(key)
    monkeypatch.setattr(config, "DEFAULT_SECRETS_PATH", tmp_path / "absent-secrets.toml")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "cache.duckdb", lock_wait=0.05, lock_retries=4)


@pytest.fixture
def world():
    """An emulator world with the demo organization and a handful of templates."""
    from credly_ops.credly.emulator import World

    w = World()
    w.add_org(config.DEMO_ORG_ID, "Test Academy", TEST_TOKEN)
    w.add_template(config.DEMO_ORG_ID, id="tpl-active", name="Active Badge")
    w.add_template(
        config.DEMO_ORG_ID, id="tpl-dup", name="Retake Badge", allow_duplicate_badges=True
    )
    w.add_template(config.DEMO_ORG_ID, id="tpl-archived", name="Old Badge", state="archived")
    w.add_template(config.DEMO_ORG_ID, id="tpl-draft", name="Draft Badge", state="draft")
    return w


@pytest.fixture
def emulator(world) -> Iterator[str]:
    """The emulator served by uvicorn on a free loopback port; yields the API base URL."""
    from credly_ops.credly.emulator import create_app
    from credly_ops.credly.server import serve_in_thread

    server = serve_in_thread(create_app(world), host="127.0.0.1", port=0)
    try:
        yield f"{server.url}/v1"
    finally:
        server.stop()


@pytest.fixture
def client(emulator: str):
    from credly_ops.credly.client import CredlyClient

    with CredlyClient(base_url=emulator, org_id=config.DEMO_ORG_ID, token=TEST_TOKEN) as c:
        yield c

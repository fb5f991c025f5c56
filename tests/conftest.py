"""Shared fixtures: hermetic settings, a cache file per test, and a real emulator on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from credly_ops import config
from credly_ops.models import Environment
from credly_ops.store import CacheIdentity, Store

TEST_TOKEN = "tok-0123456789abcdef-SECRET"


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's Credly or Skilljar variables or secrets file."""
    for key in list(os.environ):
        if key.startswith(("CREDLY_", "SKILLJAR_")):
            monkeypatch.delenv(key)
    # the demo app's in-process automatic issuer is tested on its own (and in the browser
    # suite): page tests on a demo workspace do not start one behind their backs
    monkeypatch.setenv(config.DEMO_AUTOPILOT_VAR, "0")
    monkeypatch.setattr(config, "DEFAULT_SECRETS_PATH", tmp_path / "absent-secrets.toml")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "cache.duckdb", lock_wait=0.05, lock_retries=4)


@pytest.fixture
def world():
    """An emulator world with the demo organization and a handful of templates."""
    from credly_ops.emulators.credly import World

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
    from credly_ops.emulators.credly import create_app
    from credly_ops.emulators.server import serve_in_thread

    server = serve_in_thread(create_app(world), host="127.0.0.1", port=0)
    try:
        yield f"{server.url}/v1"
    finally:
        server.stop()


def emulator_workspace(api_url: str, db: Path, token: str = TEST_TOKEN):
    """A workspace for the test organization whose client talks to the emulator at
    ``api_url`` (the sandbox environment, so nothing starts a demo emulator)."""
    from credly_ops.workspace import Workspace

    return Workspace(
        config.load_settings(
            env="sandbox", org_id=config.DEMO_ORG_ID, api_token=token, api_url=api_url, db=db
        )
    )


@pytest.fixture
def client(emulator: str):
    from credly_ops.credly.client import CredlyClient

    with CredlyClient(base_url=emulator, org_id=config.DEMO_ORG_ID, token=TEST_TOKEN) as c:
        yield c


class DemoSite:
    """The demo world built once per test session: an emulator on loopback and a cache file."""

    def __init__(self, db_path: Path, api_url: str, world, demo) -> None:
        self.db_path, self.api_url, self.world, self.demo = db_path, api_url, world, demo

    def env(self, monkeypatch: pytest.MonkeyPatch, db_path: Path | None = None) -> None:
        """Point settings (and so the app) at this demo: its cache file and its emulator."""
        monkeypatch.setenv("CREDLY_ENV", "demo")
        monkeypatch.setenv("CREDLY_API_URL", self.api_url)
        monkeypatch.setenv("CREDLY_OPS_DB", str(db_path or self.db_path))

    def copy_cache(self, target: Path) -> Path:
        """A private copy of the cache for a test that changes it."""
        import shutil

        shutil.copyfile(self.db_path, target)
        return target


@pytest.fixture(scope="session")
def demo_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoSite]:
    """The full demo world (about 30,000 completions, 17,000 badges), synced into a cache.

    Read-only for tests: copy the cache (``demo_site.copy_cache``) before changing it.
    """
    from credly_ops.credly.client import CredlyClient
    from credly_ops.demo import load_cache
    from credly_ops.emulators.credly import World, create_app
    from credly_ops.emulators.credly.seeds import seed_demo
    from credly_ops.emulators.demo_world import generate
    from credly_ops.emulators.server import serve_in_thread
    from credly_ops.sync import sync

    root = tmp_path_factory.mktemp("demo")
    demo = generate()
    world = World()
    with world.unrecorded():
        seed_demo(world, demo)
    server = serve_in_thread(create_app(world), host="127.0.0.1", port=0)
    api_url = f"{server.url}/v1"
    # recorded as the demo organization's, as the app's own demo build does
    identity = CacheIdentity(Environment.DEMO.value, config.DEMO_ORG_ID, api_url)
    store = Store(root / "demo.duckdb", identity=identity)
    load_cache(store, demo)
    with CredlyClient(
        base_url=api_url, org_id=config.DEMO_ORG_ID, token=config.DEMO_API_TOKEN
    ) as client:
        sync(client, store, full=True)
    try:
        yield DemoSite(store.path, api_url, world, demo)
    finally:
        server.stop()

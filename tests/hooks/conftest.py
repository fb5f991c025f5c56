"""A receiver on a loopback port over a spool beside a cache file in tmp_path, and the local
Skilljar (tests/skilljar) that delivers to it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from credly_ops.config import SkilljarSettings
from credly_ops.emulators.server import RunningServer, serve_in_thread
from credly_ops.hooks import Spool, create_hooks_app
from credly_ops.store import Store
from tests.skilljar.conftest import CLIENT_ID, CLIENT_SECRET, Site, skilljar

__all__ = ["Receiver", "Site", "skilljar"]

HOOK_SECRET = "whsec-SECRET-7f3a9c2e41b8"


def hook_settings(url: str = "http://127.0.0.1:9", secret: str | None = HOOK_SECRET):
    return SkilljarSettings(
        api_url=url,
        client_id=CLIENT_ID,
        client_secret=SecretStr(CLIENT_SECRET),
        webhook_secret=SecretStr(secret) if secret else None,
    )


@dataclass
class Receiver:
    """A running receiver: its spool, the cache beside it, and how often it woke the issuer."""

    server: RunningServer
    spool: Spool
    db_path: Path
    wakes: list[int] = field(default_factory=list)
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))

    @property
    def url(self) -> str:
        return f"{self.server.url}/hooks/skilljar"

    def store(self, **kwargs: object) -> Store:
        options: dict[str, object] = {"lock_wait": 0.05, "lock_retries": 4, **kwargs}
        return Store(self.db_path, **options)

    def post(self, content: bytes, **kwargs: object) -> httpx.Response:
        return self.http.post(self.url, content=content, **kwargs)


def start_receiver(tmp_path: Path, settings: object) -> Receiver:
    db_path = tmp_path / "cache.duckdb"
    spool = Spool.beside(db_path)
    wakes: list[int] = []
    app = create_hooks_app(settings, spool, wake=lambda: wakes.append(1))
    return Receiver(serve_in_thread(app), spool, db_path, wakes)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    r = start_receiver(tmp_path, hook_settings())
    try:
        yield r
    finally:
        r.http.close()
        r.server.stop()

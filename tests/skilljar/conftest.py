"""The local Skilljar on a loopback port, and clients that record their waits."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from credly_ops.emulators.server import RunningServer, serve_in_thread
from credly_ops.emulators.skilljar import SkilljarWorld, build_world, create_app
from credly_ops.skilljar import SkilljarClient

CLIENT_ID = "test-client"
CLIENT_SECRET = "sj-SECRET-0123456789-abcdef"
API_KEY = "sj-api-key-SECRET-42"


@dataclass
class Site:
    """A running local Skilljar: its world, its URL, and a control-surface helper."""

    world: SkilljarWorld
    server: RunningServer
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))

    @property
    def url(self) -> str:
        return self.server.url

    def control(self, path: str, body: Any = None, *, expect: int | None = None) -> Any:
        answer = self.http.post(f"{self.url}/_emulator/{path}", json=body)
        if expect is not None:
            assert answer.status_code == expect, answer.text
        else:
            assert answer.is_success, answer.text
        return answer.json()

    def complete(self, email: str, course_id: str, **extra: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.control(
            "completions", {"email": email, "course_id": course_id, **extra}
        )
        return result

    def requests(self, key: str) -> int:
        stats = self.http.get(f"{self.url}/_emulator/stats").json()
        return int(stats["requests"].get(key, 0))


@pytest.fixture
def skilljar() -> Iterator[Site]:
    world = build_world(seed=7, demo=False)
    world.add_client(CLIENT_ID, CLIENT_SECRET)
    world.add_api_key(API_KEY)
    world.add_course("Python Foundations", "crs-py")
    world.add_course("Cloud Practitioner", "crs-cloud")
    server = serve_in_thread(create_app(world))
    site = Site(world, server)
    try:
        yield site
    finally:
        site.http.close()
        server.stop()


@dataclass
class Waits:
    """The client's sleeps, recorded instead of slept."""

    seconds: list[float] = field(default_factory=list)

    def __call__(self, value: float) -> None:
        self.seconds.append(value)


@dataclass
class FakeClock:
    """Epoch seconds for the client: real time plus an offset the test moves."""

    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def make_client(skilljar: Site) -> Iterator[Callable[..., SkilljarClient]]:
    made: list[SkilljarClient] = []

    def make(**kwargs: Any) -> SkilljarClient:
        options: dict[str, Any] = {
            "api_url": skilljar.url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "sleep": Waits(),
        }
        options.update(kwargs)
        client = SkilljarClient(**options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()

"""The embedded demo Credly: the emulator, seeded with the demo world, on a loopback port.

In the ``demo`` environment every process that needs Credly calls :func:`ensure_demo_emulator`.
If an emulator already answers at the configured address (the app's, say, while a cron sync
runs), it is used; otherwise this process starts one in a background thread, seeded with the
same deterministic world and the journal of everything done to it since, so the demo keeps its
state across restarts and processes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from credly_ops.config import Settings

_lock = threading.Lock()
_running: dict[str, EmbeddedEmulator] = {}


@dataclass
class EmbeddedEmulator:
    base_url: str
    owned: bool  # started by this process
    stop: object = None


def _health_url(api_url: str) -> str:
    parts = urlsplit(api_url)
    return f"{parts.scheme}://{parts.netloc}/_emulator/health"


def emulator_answers(api_url: str, timeout: float = 0.5) -> bool:
    try:
        response = httpx.get(_health_url(api_url), timeout=timeout)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def ensure_demo_emulator(settings: Settings) -> EmbeddedEmulator:
    """Make sure the demo emulator answers at ``settings.api_url``; start it here if not."""
    if not settings.is_demo:
        raise ValueError("the embedded emulator serves the demo environment only")
    with _lock:
        known = _running.get(settings.api_url)
        if known is not None:
            return known
        if emulator_answers(settings.api_url):
            handle = EmbeddedEmulator(settings.api_url, owned=False)
        else:
            handle = _start(settings)
        _running[settings.api_url] = handle
        return handle


def _start(settings: Settings) -> EmbeddedEmulator:
    from credly_ops.credly.emulator import create_app
    from credly_ops.credly.emulator_world import World
    from credly_ops.credly.server import serve_in_thread
    from credly_ops.demo import (
        JOURNAL_FILE,
        generate,
        read_world_file,
        seed_world,
        write_world_file,
    )

    data_dir = Path(settings.db_path).parent
    recorded = read_world_file(data_dir)
    if recorded is None:
        demo = generate()
        write_world_file(data_dir, demo.anchor, demo.seed)
    else:
        anchor, seed = recorded
        demo = generate(anchor, seed=seed)
    parts = urlsplit(settings.api_url)
    host = parts.hostname or "127.0.0.1"
    world = World(journal_path=data_dir / JOURNAL_FILE)
    with world.unrecorded():
        seed_world(world, demo, image_base=f"{parts.scheme}://{parts.netloc}")
    world.replay_journal()
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("the demo emulator only listens on a loopback address")
    try:
        server = serve_in_thread(create_app(world), host=host, port=parts.port or 8765)
    except OSError:
        # another process won the race for the port: use its emulator
        if emulator_answers(settings.api_url, timeout=2.0):
            return EmbeddedEmulator(settings.api_url, owned=False)
        raise
    return EmbeddedEmulator(settings.api_url, owned=True, stop=server.stop)

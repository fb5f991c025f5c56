"""The embedded demo Credly and Skilljar: the emulators, seeded with the demo world, on loopback
ports.

In the ``demo`` environment every process that needs Credly calls :func:`ensure_demo_emulator`.
If an emulator already answers at the configured address (the app's, say, while a cron sync
runs), it is used; otherwise this process starts one in a background thread, seeded with the
same deterministic world and the journal of everything done to it since, so the demo keeps its
state across restarts and processes.  :func:`ensure_demo_skilljar` does the same for the demo
Skilljar (the demo's completions, read by the completions sync) at
:data:`~credly_ops.config.DEMO_SKILLJAR_API_URL`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from credly_ops.config import DEMO_SKILLJAR_API_URL, Settings

_lock = threading.Lock()
_running: dict[str, EmbeddedEmulator] = {}


@dataclass
class EmbeddedEmulator:
    base_url: str
    owned: bool  # started by this process
    stop: Callable[[], None] | None = None  # set when this process owns the server


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
    from credly_ops.emulators.credly.app import build_world, create_app
    from credly_ops.emulators.demo_world import JOURNAL_FILE
    from credly_ops.emulators.server import serve_in_thread
    from credly_ops.loopback import LOOPBACK_HOSTS

    parts = urlsplit(settings.api_url)
    host = parts.hostname or "127.0.0.1"
    if host not in LOOPBACK_HOSTS:
        raise ValueError("the demo emulator only listens on a loopback address")
    data_dir = Path(settings.db_path).parent
    world = build_world(
        "demo",
        journal_path=data_dir / JOURNAL_FILE,
        data_dir=data_dir,
        image_base=f"{parts.scheme}://{parts.netloc}",
    )
    try:
        server = serve_in_thread(create_app(world), host=host, port=parts.port or 8765)
    except OSError:
        # another process won the race for the port: use its emulator
        if emulator_answers(settings.api_url, timeout=2.0):
            return EmbeddedEmulator(settings.api_url, owned=False)
        raise
    return EmbeddedEmulator(settings.api_url, owned=True, stop=server.stop)


def ensure_demo_skilljar(data_dir: Path, api_url: str = DEMO_SKILLJAR_API_URL) -> EmbeddedEmulator:
    """Make sure the demo Skilljar answers at ``api_url``; start it here (seeded with the demo
    world of ``data_dir`` and its Skilljar journal) if not."""
    with _lock:
        known = _running.get(api_url)
        if known is not None:
            return known
        if emulator_answers(api_url):
            handle = EmbeddedEmulator(api_url, owned=False)
        else:
            handle = _start_skilljar(data_dir, api_url)
        _running[api_url] = handle
        return handle


def _start_skilljar(data_dir: Path, api_url: str) -> EmbeddedEmulator:
    from credly_ops.emulators.demo_world import demo_world
    from credly_ops.emulators.server import serve_in_thread
    from credly_ops.emulators.skilljar.app import create_app
    from credly_ops.emulators.skilljar.seeds import JOURNAL_FILE, build_demo_world
    from credly_ops.loopback import LOOPBACK_HOSTS

    parts = urlsplit(api_url)
    host = parts.hostname or "127.0.0.1"
    if host not in LOOPBACK_HOSTS:
        raise ValueError("the demo Skilljar only listens on a loopback address")
    world = build_demo_world(demo_world(data_dir), journal_path=data_dir / JOURNAL_FILE)
    try:
        server = serve_in_thread(create_app(world), host=host, port=parts.port or 8767)
    except OSError:
        # another process won the race for the port: use its Skilljar
        if emulator_answers(api_url, timeout=2.0):
            return EmbeddedEmulator(api_url, owned=False)
        raise
    return EmbeddedEmulator(api_url, owned=True, stop=server.stop)

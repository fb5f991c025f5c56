"""The end-to-end suite: the real app (``serve.py``: ``streamlit run``, as ``make run`` starts
it) on a free loopback port against the demo world, driven by Playwright in Debian's Chromium
(``/usr/bin/chromium``; no browser is ever downloaded).  Without Chromium these tests skip and
say why; CI installs it first.

A screenshot of every failing test lands in ``tests/e2e/artifacts/``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = os.environ.get("CREDLY_OPS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, seconds: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {seconds:.0f} s")


class LiveApp:
    def __init__(self, url: str, env: dict[str, str], data: Path) -> None:
        self.url, self.env, self.data = url, env, data


def start_app(
    tmp: Path,
    extra_env: dict[str, str] | None = None,
    *,
    cwd: Path = ROOT,
    port: int | None = None,
) -> tuple[LiveApp, subprocess.Popen[bytes]]:
    """Build the demo into ``tmp`` and serve the app from ``cwd``, whose ``.streamlit/`` holds
    the config and secrets it runs with."""
    emulator_port, app_port = free_port(), port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREDLY_", "SKILLJAR_"))}
    env.update(
        {
            "CREDLY_ENV": "demo",
            "CREDLY_API_URL": f"http://127.0.0.1:{emulator_port}/v1",
            # the demo Skilljar on a port of its own too (no clash with a `make run` nearby)
            "SKILLJAR_API_URL": f"http://127.0.0.1:{free_port()}",
            "CREDLY_OPS_DB": str(tmp / "credly_ops.duckdb"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra_env or {})
    build = subprocess.run(
        [sys.executable, "-m", "credly_ops.cli", "demo", "--if-absent"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    log = (tmp / "streamlit.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "serve.py"),  # what `make run` runs: `streamlit run streamlit_app.py`
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(app_port),
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{app_port}"
    wait_for(f"{url}/_stcore/health", 90, proc)
    return LiveApp(url, env, tmp), proc


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install it with `apt-get install chromium`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="session")
def live_app(tmp_path_factory: pytest.TempPathFactory, browser) -> Iterator[LiveApp]:
    app, proc = start_app(tmp_path_factory.mktemp("e2e"))
    try:
        yield app
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


#: the app's own navigation in the sidebar (``ui.navigation``); Streamlit's is switched off
NAVIGATION = ".st-key-navigation"


def navigation(page):
    return page.locator(NAVIGATION)


def open_app(page, url: str) -> None:
    """Open the app and wait for its navigation and the end of the script's run."""
    page.goto(url)
    navigation(page).get_by_role("link").first.wait_for()
    wait_idle(page)


def go_to(page, title: str) -> None:
    """Open a page through the sidebar's navigation and wait for its heading."""
    navigation(page).get_by_role("link", name=title, exact=False).filter(
        has_text=title
    ).first.click()
    page.get_by_role("heading", name=title).first.wait_for()
    wait_idle(page)


#: the script is not running and the browser is connected.  Streamlit marks a run's state on
#: its root element as soon as the browser asks for a run (a click, a page change), so this
#: never mistakes "not started yet" for "finished" (its "Running…" widget shows only after
#: half a second, which is why waiting for that widget to go away could pass too early).
IDLE = (
    "[data-testid=stApp][data-test-script-state=notRunning][data-test-connection-state=CONNECTED]"
)


def wait_idle(page, timeout: float = 60_000) -> None:
    """Wait until Streamlit has finished running the script."""
    page.wait_for_selector(IDLE, state="attached", timeout=timeout)

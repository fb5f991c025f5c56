"""First-paint benchmark: from the start of ``make run``'s server (``python serve.py``, which is
``streamlit run streamlit_app.py`` with the first paint's imports warmed up) to the navigation
on screen.

Each run serves the app on a fresh copy of a demo data folder (the demo world is built once,
before any timing, as ``make run`` does before it serves), so the workspace and the embedded
demo Credly start from nothing, exactly as on a fresh ``make run``.  Headless Chromium
(Debian's ``/usr/bin/chromium``, the browser suite's launch arguments) opens the app as soon as
the server answers, and the clock stops when the sidebar shows the real navigation ("Funnel").

Prints one JSON object with medians over the runs of:

* ``first_paint_seconds``: process start to the navigation visible (target: 2 s);
* ``server_up_seconds``: process start to ``/_stcore/health`` answering, the floor that
  Streamlit's own start costs, and ``after_server_up_seconds``, the difference (the health
  check is one plain HTTP/1.0 request on a socket every 20 ms: light enough not to take the
  CPU from the server it waits for, as a new TLS-ready HTTP client each time did);
* ``raw_page_list_seen``: in how many runs Streamlit's automatic list of ``pages/`` (lower-case
  file names) appeared in the sidebar at any moment (must be 0).

Pass the number of runs as the first argument (default 5).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
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
TARGET_SECONDS = 2.0

#: records the label of every sidebar link, from the first response on (textContent, icons
#: left out: cheap enough not to slow the page it watches)
WATCH_SIDEBAR = """
window.__sidebarLinks = [];
new MutationObserver(() => {
  document.querySelectorAll('[data-testid="stSidebar"] a').forEach((a) => {
    const copy = a.cloneNode(true);
    copy.querySelectorAll('[data-testid="stIconMaterial"]').forEach((icon) => icon.remove());
    const text = copy.textContent.trim();
    if (!window.__sidebarLinks.includes(text)) window.__sidebarLinks.push(text);
  });
}).observe(document, {subtree: true, childList: true});
"""
#: the real navigation: a sidebar link titled "Funnel" (the raw list says "funnel")
NAVIGATION_VISIBLE = """
() => [...document.querySelectorAll('[data-testid="stSidebar"] a')]
  .some(a => a.innerText.includes('Funnel') && a.getBoundingClientRect().height > 0)
"""
#: Streamlit's automatic list of pages/ (the file names, lower-case)
RAW_NAMES = ("streamlit app", "audit", "bulk issue", "funnel", "settings", "student preview")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthy(port: int) -> bool:
    """Whether the server on ``port`` answers its health check with 200."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"GET /_stcore/health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            return conn.recv(32).split(b" ")[1:2] == [b"200"]
    except (OSError, IndexError):
        return False


def demo_env(data: Path, emulator_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDLY_")}
    env.update(
        CREDLY_ENV="demo",
        CREDLY_API_URL=f"http://127.0.0.1:{emulator_port}/v1",
        CREDLY_OPS_DB=str(data / "credly_ops.duckdb"),
        PYTHONUNBUFFERED="1",
    )
    return env


def build_demo(data: Path) -> None:
    data.mkdir(parents=True)
    subprocess.run(
        [sys.executable, "-m", "credly_ops.cli", "demo", "--if-absent"],
        cwd=ROOT,
        env=demo_env(data, free_port()),
        check=True,
        capture_output=True,
        timeout=300,
    )


def one_run(browser, template: Path, data: Path) -> dict[str, float | bool]:
    shutil.copytree(template, data)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (data / "streamlit.log").open("wb")
    started = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "serve.py"),  # what `make run` runs
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env=demo_env(data, free_port()),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()  # the browser is open before the server starts, as a user's is
    page.add_init_script(WATCH_SIDEBAR)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {proc.returncode}; see {log.name}")
            if time.perf_counter() - started > 90:
                raise RuntimeError("the server did not answer within 90 s")
            if healthy(port):
                break
            time.sleep(0.02)
        server_up = time.perf_counter() - started
        page.goto(url)
        page.wait_for_function(NAVIGATION_VISIBLE, timeout=60_000, polling="raf")
        first_paint = time.perf_counter() - started
        links = page.evaluate("window.__sidebarLinks")
    finally:
        context.close()
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    raw_seen = any(name in links for name in RAW_NAMES)
    return {"first_paint": first_paint, "server_up": server_up, "raw_seen": raw_seen}


def main() -> None:
    if not Path(CHROMIUM).exists():
        sys.exit(f"no Chromium at {CHROMIUM}: install it with `apt-get install chromium`")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        template = Path(tmp) / "demo"
        build_demo(template)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        runs = [one_run(browser, template, Path(tmp) / f"run{i}") for i in range(RUNS)]
        browser.close()
    first_paint = statistics.median(float(r["first_paint"]) for r in runs)
    server_up = statistics.median(float(r["server_up"]) for r in runs)
    print(
        json.dumps(
            {
                "benchmark": "first_paint",
                "runs": RUNS,
                "first_paint_seconds": round(first_paint, 3),
                "first_paint_max_seconds": round(max(float(r["first_paint"]) for r in runs), 3),
                "server_up_seconds": round(server_up, 3),
                "after_server_up_seconds": round(first_paint - server_up, 3),
                "target_seconds": TARGET_SECONDS,
                "raw_page_list_seen": sum(bool(r["raw_seen"]) for r in runs),
            }
        )
    )


if __name__ == "__main__":
    main()

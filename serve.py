"""Serve the app as ``make run`` does: ``streamlit run streamlit_app.py`` (same arguments, same
``.streamlit/config.toml``), with what the first page needs before its navigation imported
while Streamlit's server starts and the browser loads the frontend.

The first script run of a fresh server otherwise starts by importing ``ui`` and the core it
leans on (settings, roles, pydantic's models), a few hundred milliseconds before the
navigation can be drawn.  Here a thread imports them once the server is up, while the browser
loads and starts Streamlit's frontend (the Python process is idle then), and the script run
finds them loaded.  Not earlier: during the server's own start the import would only delay it
(same interpreter, same CPU).  And only that: the workspace's and the pages' heavy imports
(pandas, DuckDB, Plotly) would compete with the first paint, so they load after the
navigation is on screen, as they do under plain ``streamlit run``.

    python serve.py [streamlit run options…]   e.g. --server.port 8502
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

APP = Path(__file__).resolve().parent / "streamlit_app.py"

#: what the first script run imports before ``ui.navigation`` draws the navigation
BEFORE_NAVIGATION = ("ui",)


#: how long the warm-up waits for the server before importing anyway
SERVER_START_LIMIT_SECONDS = 10.0


def server_started() -> bool:
    """Whether Streamlit's runtime has started (it does so as its server starts listening)."""
    from streamlit.runtime import Runtime, RuntimeState

    return Runtime.exists() and Runtime.instance().state is not RuntimeState.INITIAL


def warm_up(
    modules: tuple[str, ...] = BEFORE_NAVIGATION,
    *,
    ready: Callable[[], bool] = server_started,
    limit: float = SERVER_START_LIMIT_SECONDS,
) -> None:
    """Once ``ready()`` (or after ``limit`` seconds), import ``modules``; a failure is left for
    the script run to report, on the page, as it would without the warm-up."""
    deadline = time.monotonic() + limit
    while not ready() and time.monotonic() < deadline:
        time.sleep(0.01)
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # the app's own run raises it again, on the page, where it is read
            return


def main(argv: list[str]) -> None:
    # Streamlit first, whole and on this thread: its import looks at which libraries are
    # already loaded (its Plotly theme checks for pandas) and must never meet a half-imported one
    from streamlit.web import cli

    if str(APP.parent) not in sys.path:  # where the script run finds ``ui`` too
        sys.path.insert(0, str(APP.parent))
    threading.Thread(target=warm_up, name="warm-up", daemon=True).start()
    sys.argv = ["streamlit", "run", str(APP), *argv]
    cli.main()


if __name__ == "__main__":
    main(sys.argv[1:])

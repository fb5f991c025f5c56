"""The last health report, refreshed in the background.

The app's sidebar shows one line of health on every page, and must never wait for Credly or
Skilljar to draw it.  A :class:`HealthMonitor` keeps the latest report; :meth:`latest` returns
it at once (``None`` before the first run) and, when it is older than ``max_age``, starts one
refresh in a background thread.  The Health page waits for a fresh one with :meth:`refresh`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from credly_ops.health.gather import HealthReport

log = logging.getLogger(__name__)


class HealthMonitor:
    def __init__(self, run: Callable[[], HealthReport], *, max_age: float = 300.0) -> None:
        self._run = run
        self.max_age = max_age
        self._lock = threading.Lock()
        self._report: HealthReport | None = None
        self._at = 0.0
        self._thread: threading.Thread | None = None

    def latest(self) -> HealthReport | None:
        """The latest report, without waiting; a stale or missing one is refreshed meanwhile."""
        with self._lock:
            report, stale = self._report, time.monotonic() - self._at > self.max_age
        if report is None or stale:
            self.refresh_in_background()
        return report

    def refresh_in_background(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._refresh, name="health", daemon=True)
            self._thread.start()

    def refresh(self, *, timeout: float | None = None) -> HealthReport | None:
        """Run the checks now (or wait for the run under way) and return the report."""
        self.refresh_in_background()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            return self._report

    def _refresh(self) -> None:
        try:
            report = self._run()
        except Exception:
            log.exception("the health checks did not run")
            return
        with self._lock:
            self._report, self._at = report, time.monotonic()

"""The worker: cycles every ``interval`` seconds until told to stop, woken sooner by a hint.

``autopilot run`` (without ``--once``) and the demo's worker thread call :func:`run_forever`.
A webhook hint (:mod:`credly_ops.hooks`) calls :meth:`Wake.set`, and the next cycle starts
at once instead of at the end of the interval. ``stop`` (SIGTERM, SIGINT) is honoured between
units of work: the cycle in hand stops sending after the requests in flight (the rows left stay
decided and are sent by the next start) and records what it did. The worker's heartbeat (every
:data:`~credly_ops.ledger.HEARTBEAT_SECONDS`, in a thread of its own, cycles included) is what
``autopilot status`` and the page call the live worker, with its next cycle's time.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from credly_ops import ledger
from credly_ops.access import Actor
from credly_ops.autopilot import records
from credly_ops.autopilot.cycle import CycleResult, CycleUnavailable, run_cycle
from credly_ops.timeutil import utcnow
from credly_ops.workspace import Workspace

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL = 300.0
#: how often the waiting loop looks at ``stop`` and the wake-up
POLL_SECONDS = 0.25
#: how long a process's exit waits for its worker to finish the requests in flight
STOP_WAIT_SECONDS = 15.0


class Wake:
    """A wake-up call for the worker (``threading.Event``-like): :meth:`set` by a hint, waited
    on by the loop; each wait that sees it clears it."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        woken = self._event.wait(timeout)
        if woken:
            self._event.clear()
        return woken


class Heartbeat:
    """This process's worker heartbeat, beaten by a thread until :meth:`close`."""

    def __init__(self, ws: Workspace, every: float = ledger.HEARTBEAT_SECONDS) -> None:
        self._ws, self._every = ws, every
        self._done = threading.Event()
        self.next_cycle_at: Any = None
        self.beat()
        self._thread = threading.Thread(target=self._run, name="autopilot-beat", daemon=True)
        self._thread.start()

    def beat(self, *, stopped: bool = False) -> None:
        try:
            records.beat(self._ws.store, next_cycle_at=self.next_cycle_at, stopped=stopped)
        except Exception as exc:  # a busy cache misses one beat; the next one comes
            logger.debug("autopilot heartbeat not written (%s)", type(exc).__name__)

    def _run(self) -> None:
        while not self._done.wait(self._every):
            self.beat()

    def close(self) -> None:
        self._done.set()
        self._thread.join()
        self.beat(stopped=True)


def run_forever(
    ws: Workspace,
    actor: Actor,
    *,
    interval: float,
    shadow: bool | None,
    read_completions: Callable[[], int] | None,
    wake: Wake,
    stop: threading.Event,
    on_cycle: Callable[[CycleResult], None] | None = None,
    on_unavailable: Callable[[CycleUnavailable], None] | None = None,
    client_options: Mapping[str, Any] | None = None,
    hinted: Callable[[], bool] | None = None,
) -> None:
    """Cycle until ``stop`` is set (see the module docstring).  ``hinted`` is asked while
    waiting, so webhook deliveries spooled by another process start the next cycle sooner."""
    if interval <= 0:
        raise ValueError("the interval must be a positive number of seconds")
    beat = Heartbeat(ws)
    try:
        while not stop.is_set():
            result: CycleResult | None = None
            unavailable: CycleUnavailable | None = None
            try:
                result = run_cycle(
                    ws,
                    actor,
                    read_completions=read_completions,
                    shadow=shadow,
                    client_options=client_options,
                    halt=stop,
                )
            except CycleUnavailable as exc:
                logger.warning("automatic issuing: this cycle could not run: %s", exc)
                unavailable = exc
            except Exception:
                logger.exception("automatic issuing: the cycle stopped with an error")
            beat.next_cycle_at = utcnow() + timedelta(seconds=interval)
            beat.beat()
            if result is not None and on_cycle is not None:
                on_cycle(result)
            if unavailable is not None and on_unavailable is not None:
                on_unavailable(unavailable)
            deadline = time.monotonic() + interval
            while not stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0 or wake.wait(min(left, POLL_SECONDS)):
                    break
                if hinted is not None and hinted():
                    break
    finally:
        beat.close()


def start_in_background(
    ws: Workspace,
    actor: Actor,
    *,
    interval: float,
    read_completions: Callable[[], int] | None,
    wake: Wake,
    shadow: bool | None = None,
    hinted: Callable[[], bool] | None = None,
) -> tuple[threading.Thread, threading.Event]:
    """:func:`run_forever` in a daemon thread of this process (the demo's worker); returns the
    thread and the event that stops it."""
    stop = threading.Event()
    thread = threading.Thread(
        target=run_forever,
        args=(ws, actor),
        kwargs={
            "interval": interval,
            "shadow": shadow,
            "read_completions": read_completions,
            "wake": wake,
            "stop": stop,
            "hinted": hinted,
        },
        name="autopilot-worker",
        daemon=True,
    )
    thread.start()
    atexit.register(_stop_and_wait, thread, stop)
    return thread, stop


def _stop_and_wait(thread: threading.Thread, stop: threading.Event) -> None:
    """At the process's exit: stop after the requests in flight, rather than be cut down
    inside the cache file."""
    stop.set()
    thread.join(timeout=STOP_WAIT_SECONDS)

"""Automatic issuing: Skilljar completions in, badges out, unattended — the integration itself.

What lives where:

- ``state.py``: running or paused (why, since when, by whom), shadow or live, the cap — in
  the cache's ``settings`` table, every change audited;
- ``rails.py``: the cap on issues per hour and the error-rate breaker (pure rules, and the
  valve the runner asks before each send);
- ``records.py``: which completion each decision was about, the workers and their cycles;
- ``cycle.py``: one cycle (Credly sync → completions read → decide → send once → record);
- ``shadow.py``: the go-live check (shadow decisions against the badges Credly holds);
- ``status.py``: what the command line, the page and the sidebar show;
- ``loop.py``: the worker that cycles until stopped, woken sooner by a webhook hint.

Sending goes through the one runner (:mod:`credly_ops.issuance.run`): a job of kind
``automatic`` per cycle that took completions in, decided again at send time, exactly once.
"""

from credly_ops.autopilot.cycle import (
    CYCLE_KEYS,
    CycleResult,
    CycleUnavailable,
    retry_failures,
    run_cycle,
)
from credly_ops.autopilot.loop import DEFAULT_INTERVAL, Wake, run_forever, start_in_background
from credly_ops.autopilot.shadow import ShadowComparison, shadow_comparison
from credly_ops.autopilot.state import (
    DEFAULT_CAP_PER_HOUR,
    AutopilotState,
    pause,
    read_state,
    resume,
    set_cap,
    set_shadow,
)
from credly_ops.autopilot.status import (
    AutopilotStatus,
    autopilot_status,
    failures,
    recent_decisions,
)

__all__ = [
    "CYCLE_KEYS",
    "DEFAULT_CAP_PER_HOUR",
    "DEFAULT_INTERVAL",
    "AutopilotState",
    "AutopilotStatus",
    "CycleResult",
    "CycleUnavailable",
    "ShadowComparison",
    "Wake",
    "autopilot_status",
    "failures",
    "pause",
    "read_state",
    "recent_decisions",
    "resume",
    "retry_failures",
    "run_cycle",
    "run_forever",
    "set_cap",
    "set_shadow",
    "shadow_comparison",
    "start_in_background",
]

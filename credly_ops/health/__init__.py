"""Is the integration healthy?  Checks, each ``ok``, ``warn`` or ``fail`` with a sentence and
what to do, for the Health page, the sidebar's one line and ``credly-ops doctor``.

The package::

    checks.py    pure: one function per check over small values, Check, Status, overall()
    gather.py    reads Credly, Skilljar, automatic issuing, the webhook's deliveries and the
                 cache, runs every check: run_checks()
    monitor.py   the last report, refreshed in a background thread (the app's sidebar never
                 waits for the network)
"""

from credly_ops.health.checks import Check, Status, exit_code, overall
from credly_ops.health.gather import HealthReport, run_checks
from credly_ops.health.monitor import HealthMonitor

__all__ = ["Check", "HealthMonitor", "HealthReport", "Status", "exit_code", "overall", "run_checks"]

"""The renewals radar: whose badges expire next, and will they renew.

The package::

    radar.py    pure: each live badge with an expiry, its window and its renewal status; the
                per-template summary, the expiries per month, the outreach rows
    reads.py    the cache's side: live badges with an expiry, the badge rules, the completions
                of the courses those rules map

:func:`radar` (below) is what the page and ``credly-ops expiring`` call.
"""

from __future__ import annotations

from datetime import datetime

from credly_ops.renewals.radar import (
    OUTREACH_COLUMNS,
    WINDOWS,
    ExpiringBadge,
    Radar,
    RenewalStatus,
    TemplateSummary,
    build_radar,
)
from credly_ops.renewals.reads import read_radar_input
from credly_ops.store import Store
from credly_ops.timeutil import utcnow

__all__ = [
    "OUTREACH_COLUMNS",
    "WINDOWS",
    "ExpiringBadge",
    "Radar",
    "RenewalStatus",
    "TemplateSummary",
    "build_radar",
    "radar",
]


def radar(store: Store, *, now: datetime | None = None) -> Radar:
    """The radar over the cache, as of ``now`` (default: now)."""
    moment = now or utcnow()
    badges, rules, completions = read_radar_input(store, moment)
    return build_radar(badges, rules, completions, now=moment)

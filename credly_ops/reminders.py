"""Credly's pending-badge reminders: when they go out, and the phases of acceptance they mark.

Credly emails a reminder for a badge still pending one day after it was issued and again four
days after; none when the badge was issued with ``suppress_badge_notification_email``.  A badge
whose state changed exactly at a reminder moment did not get that reminder.

The reminder clock starts when Credly created the badge and sent the first email
(``created_at``), which for a badge issued at completion time equals ``issued_at``.  A backfilled
badge carries a historical ``issued_at`` but its emails go out from the day it was created, so
``created_at`` is the honest start; ``issued_at`` is the fallback when ``created_at`` is unknown.
"""

from __future__ import annotations

from datetime import datetime, timedelta

REMINDER_OFFSETS: tuple[timedelta, ...] = (timedelta(days=1), timedelta(days=4))

#: acceptance phases, by how many reminder moments had passed when a badge was accepted
PHASES: tuple[str, ...] = (
    "before_first_reminder",
    "between_reminders",
    "after_second_reminder",
)
#: each phase as a sentence says it ("accepted before the first reminder")
PHASE_LABELS: dict[str, str] = {
    "before_first_reminder": "before the first reminder",
    "between_reminders": "between the reminders",
    "after_second_reminder": "after the second reminder",
}


def reminder_moments(sent_at: datetime) -> tuple[datetime, ...]:
    return tuple(sent_at + offset for offset in REMINDER_OFFSETS)


def reminders_sent(
    *,
    sent_at: datetime,
    pending_until: datetime | None,
    now: datetime,
    suppressed: bool = False,
) -> int:
    """How many reminder moments passed while the badge was still pending.

    ``pending_until`` is when the badge left ``pending`` (accepted, rejected, revoked, replaced),
    or ``None`` while it is still pending; reminders are counted up to the earlier of it and
    ``now``.  A moment equal to ``pending_until`` does not count: the state changed first.
    """
    if suppressed:
        return 0
    moments = reminder_moments(sent_at)
    if pending_until is None or pending_until > now:
        return sum(1 for moment in moments if moment <= now)
    return sum(1 for moment in moments if moment < pending_until)


def _days(offset: timedelta) -> str:
    days = offset / timedelta(days=1)
    return f"{days:g} day" if days == 1 else f"{days:g} days"


def phase_window(phase: str) -> str:
    """When a phase lies, counted from the badge's sending: ``≤ 1 day``, ``1–4 days``,
    ``> 4 days`` (from :data:`REMINDER_OFFSETS`)."""
    first, second = REMINDER_OFFSETS[:2]
    windows = {
        PHASES[0]: f"≤ {_days(first)}",
        PHASES[1]: f"{first / timedelta(days=1):g}–{_days(second)}",
        PHASES[2]: f"> {_days(second)}",
    }
    return windows[phase]


def phase_title(phase: str) -> str:
    """A phase as a legend names it: ``Before the first reminder (≤ 1 day)``."""
    return f"{PHASE_LABELS[phase].capitalize()} ({phase_window(phase)})"

"""The English a support person reads out: days, counts, the state of a live badge, the head of
an explanation ("Completed Cloud Foundations on 3 May 2025, passed") and the sentence for a
recorded error.  Pure; no decision is taken here (that is :mod:`.explain`).
"""

from __future__ import annotations

from datetime import datetime

from credly_ops.credly import errors as credly_errors
from credly_ops.models import BadgeState, Completion, IssuedBadge, SuccessStatus
from credly_ops.profile.badges import badge_reminders, sent_at
from credly_ops.reasons import REASONS, describe


def day(moment: datetime) -> str:
    """``3 May 2025``."""
    return f"{moment.day} {moment:%B %Y}"


def short_day(moment: datetime, reference: datetime) -> str:
    """``3 May`` within the reference's year, ``3 May 2025`` otherwise."""
    return f"{moment.day} {moment:%B}" if moment.year == reference.year else day(moment)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _pending_for(badge: IssuedBadge, now: datetime) -> str:
    days = max((now - sent_at(badge)).days, 0)
    return "pending for less than a day" if days == 0 else f"pending for {_plural(days, 'day')}"


def live_badge_phrase(badge: IssuedBadge, completed_at: datetime, now: datetime) -> str:
    """ "badge issued 3 May, pending for 6 days, 2 reminders sent; accept link: …"."""
    issued = short_day(badge.issued_at, completed_at)
    parts = [f"badge issued {issued}"]
    if badge.replaces_badge_id:
        parts[0] += " (since renewed)"
    reminders = badge_reminders(badge, now)
    if badge.state == BadgeState.PENDING:
        parts.append(_pending_for(badge, now))
        if badge.suppress_badge_notification_email:
            parts.append("no reminders (notification emails suppressed)")
        else:
            parts.append(f"{_plural(reminders, 'reminder')} sent")
    else:
        accepted = badge.state_updated_at
        when = f" {short_day(accepted, completed_at)}" if accepted else ""
        if reminders == 0:
            parts.append(f"accepted{when} before any reminder")
        else:
            parts.append(f"accepted{when} after {_plural(reminders, 'reminder')}")
    text = ", ".join(parts)
    if badge.expires_at:
        text += f"; expires {day(badge.expires_at)}"
    if badge.state == BadgeState.PENDING:
        link = badge.accept_badge_url or badge.badge_url
        if link:
            text += f"; accept link: {link}"
    return text


def completion_head(completion: Completion, course: str) -> str:
    """ "Completed Cloud Foundations on 3 May 2025, passed": how every explanation starts."""
    text = f"Completed {course} on {day(completion.completed_at)}"
    if completion.status == SuccessStatus.PASSED:
        text += ", passed"
    elif completion.status == SuccessStatus.FAILED:
        text += ", failed"
    return text


def error_sentence(error_class: str | None) -> str:
    """The sentence for a recorded error: a reason code, or the name of a Credly error class."""
    if not error_class:
        return describe("credly_error")
    if error_class in REASONS:
        return describe(error_class)
    cls = getattr(credly_errors, error_class, None)
    if isinstance(cls, type) and issubclass(cls, credly_errors.CredlyError):
        return describe(cls.kind)
    return error_class

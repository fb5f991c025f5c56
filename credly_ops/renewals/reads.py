"""The radar's reads from the cache: three queries, nothing else."""

from __future__ import annotations

from datetime import datetime

from credly_ops.models import BadgeRule
from credly_ops.renewals.radar import HORIZON, RadarBadge, RadarCompletion
from credly_ops.rules import load_rules
from credly_ops.store import Store, from_db_time, to_db_time


def read_radar_input(
    store: Store, now: datetime
) -> tuple[list[RadarBadge], list[BadgeRule], list[RadarCompletion]]:
    """Live badges expiring before ``now`` + the horizon (accepted ones already expired
    included), every badge rule, and the completions of the courses those rules map, for the
    students holding those badges."""
    rules = load_rules(store)
    with store.session() as cur:
        rows = cur.execute(
            "SELECT b.id, b.template_id, coalesce(t.name, b.template_name, b.template_id), "
            "b.recipient_email, coalesce(b.first_name, ''), coalesce(b.last_name, ''), b.state, "
            "b.issued_at, b.expires_at FROM badges b LEFT JOIN templates t ON t.id = b.template_id "
            "WHERE b.state IN ('pending', 'accepted') AND b.expires_at IS NOT NULL "
            "AND b.expires_at < ?",
            [to_db_time(now + HORIZON)],
        ).fetchall()
        completions = cur.execute(
            "SELECT c.email, c.course_id, c.completed_at, c.status FROM completions c "
            "JOIN badge_rules r ON r.course_id = c.course_id "
            "WHERE lower(trim(c.email)) IN (SELECT lower(trim(recipient_email)) FROM badges "
            "WHERE state IN ('pending', 'accepted') AND expires_at IS NOT NULL "
            "AND expires_at < ?)",
            [to_db_time(now + HORIZON)],
        ).fetchall()
    badges = [
        RadarBadge(
            id=str(r[0]),
            template_id=str(r[1]),
            template_name=str(r[2]),
            email=str(r[3]),
            first_name=str(r[4]),
            last_name=str(r[5]),
            state=str(r[6]),
            issued_at=_time(r[7]),
            expires_at=_time(r[8]),
        )
        for r in rows
    ]
    done = [
        RadarCompletion(
            email=str(c[0]),
            course_id=str(c[1]),
            completed_at=_time(c[2]),
            status=None if c[3] is None else str(c[3]),
        )
        for c in completions
    ]
    return badges, rules, done


def _time(value: datetime) -> datetime:
    moment = from_db_time(value)
    assert moment is not None
    return moment

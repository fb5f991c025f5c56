"""Automatic issuing's state: running or paused (and why, since when, by whom), shadow or live,
and the cap on issues per hour — kept in the cache's ``settings`` table, every change audited.

A pause is a person's (``autopilot pause``, the Autopilot page) or a rail's (the cap, the
breaker: :mod:`credly_ops.autopilot.rails`); either way only an admin resumes. A resume also
starts the rails' count afresh: the cap's hour and the breaker's window take only what was
sent after it, so an admin who has looked and resumed is not paused again at once by the very
sends that tripped the rail.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import duckdb

from credly_ops.access import Actor, Permission, require
from credly_ops.store import Store, to_db_time, write_audit
from credly_ops.timeutil import parse_credly_time, utcnow

KEY_PAUSED = "autopilot.paused"
KEY_SHADOW = "autopilot.shadow"
KEY_CAP = "autopilot.cap_per_hour"
KEY_RESUMED_AT = "autopilot.resumed_at"

#: automatic issues (issues and renewals) allowed per hour unless an admin sets another cap
DEFAULT_CAP_PER_HOUR = 500
#: the highest cap an admin may set
MAX_CAP_PER_HOUR = 100_000


@dataclass(frozen=True)
class AutopilotState:
    """What the settings say about automatic issuing."""

    paused: bool
    pause_reason: str | None
    paused_at: datetime | None
    paused_by: str | None
    shadow: bool
    cap_per_hour: int = DEFAULT_CAP_PER_HOUR
    #: the last resume: the rails count only what was sent after it
    resumed_at: datetime | None = None

    def describe(self) -> str:
        """One sentence: running, shadow, or paused and why."""
        if self.paused:
            return f"paused: {self.pause_reason or 'no reason given'}"
        return "running in shadow mode (nothing is sent)" if self.shadow else "running"


def _get(cur: duckdb.DuckDBPyConnection, key: str) -> str | None:
    row = cur.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
    return None if row is None else row[0]


def _put(cur: duckdb.DuckDBPyConnection, key: str, value: str, actor: Actor) -> None:
    cur.execute(
        "INSERT OR REPLACE INTO settings (key, value, updated_at, updated_by) VALUES (?, ?, ?, ?)",
        [key, value, to_db_time(utcnow()), actor.name],
    )


def _time(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return parse_credly_time(text)
    except ValueError:
        return None


def state_in(cur: duckdb.DuckDBPyConnection) -> AutopilotState:
    """The state, read inside the caller's unit of work."""
    paused_text = _get(cur, KEY_PAUSED)
    paused: dict[str, object] = {}
    if paused_text:
        try:
            value = json.loads(paused_text)
        except ValueError:
            value = {"reason": "the pause record cannot be read"}
        paused = value if isinstance(value, dict) else {}
    cap_text = _get(cur, KEY_CAP)
    cap = int(cap_text) if cap_text and cap_text.isdigit() else DEFAULT_CAP_PER_HOUR
    reason = paused.get("reason")
    by = paused.get("by")
    return AutopilotState(
        paused=bool(paused_text),
        pause_reason=str(reason) if reason else None,
        paused_at=_time(paused.get("at")),
        paused_by=str(by) if by else None,
        shadow=(_get(cur, KEY_SHADOW) or "").lower() == "true",
        cap_per_hour=max(cap, 1),
        resumed_at=_time(_get(cur, KEY_RESUMED_AT)),
    )


def read_state(store: Store) -> AutopilotState:
    with store.session() as cur:
        return state_in(cur)


def pause_in(cur: duckdb.DuckDBPyConnection, actor: Actor, reason: str, *, rail: str) -> bool:
    """Pause inside the caller's unit of work (a rail's pause: no permission needed, the
    actor is whoever runs the cycle); ``False`` when it was paused already (nothing changes)."""
    if _get(cur, KEY_PAUSED):
        return False
    now = utcnow()
    record = {"reason": reason, "at": now.isoformat(), "by": actor.name, "rail": rail}
    _put(cur, KEY_PAUSED, json.dumps(record), actor)
    write_audit(
        cur,
        actor=actor,
        action="autopilot.pause",
        target="autopilot",
        outcome="ok",
        detail={"reason": reason, "by": rail},
    )
    return True


def pause(store: Store, actor: Actor, reason: str) -> None:
    """An admin pauses automatic issuing; completions wait and are issued after the resume."""
    require(actor, Permission.CHANGE_SETTINGS)
    text = " ".join(reason.split())[:300] or f"paused by {actor.name}"
    with store.transaction() as cur:
        pause_in(cur, actor, text, rail="person")


def resume(store: Store, actor: Actor) -> None:
    """An admin resumes automatic issuing (audited, with the reason it was paused for)."""
    require(actor, Permission.CHANGE_SETTINGS)
    with store.transaction() as cur:
        before = state_in(cur)
        cur.execute("DELETE FROM settings WHERE key = ?", [KEY_PAUSED])
        _put(cur, KEY_RESUMED_AT, utcnow().isoformat(), actor)
        write_audit(
            cur,
            actor=actor,
            action="autopilot.resume",
            target="autopilot",
            outcome="ok" if before.paused else "not_paused",
            detail={"was_paused_for": before.pause_reason},
        )


def set_shadow(store: Store, actor: Actor, on: bool) -> None:
    """Shadow mode on (decide and record, send nothing) or off (issue) — an admin's choice."""
    require(actor, Permission.CHANGE_SETTINGS)
    with store.transaction() as cur:
        before = state_in(cur).shadow
        _put(cur, KEY_SHADOW, "true" if on else "false", actor)
        write_audit(
            cur,
            actor=actor,
            action="autopilot.shadow",
            target="autopilot",
            outcome="ok",
            detail={"from": before, "to": on},
        )


def set_cap(store: Store, actor: Actor, per_hour: int) -> None:
    """The cap on automatic issues per hour (a whole number from 1 to 100,000)."""
    require(actor, Permission.CHANGE_SETTINGS)
    if isinstance(per_hour, bool) or not isinstance(per_hour, int):
        raise ValueError("the cap on automatic issues per hour must be a whole number")
    if not 1 <= per_hour <= MAX_CAP_PER_HOUR:
        raise ValueError(
            f"the cap on automatic issues per hour must lie between 1 and {MAX_CAP_PER_HOUR:,}"
        )
    with store.transaction() as cur:
        before = state_in(cur).cap_per_hour
        _put(cur, KEY_CAP, str(per_hour), actor)
        write_audit(
            cur,
            actor=actor,
            action="autopilot.cap",
            target="autopilot",
            outcome="ok",
            detail={"from": before, "to": per_hour},
        )


def since_resume(state: AutopilotState, moment: datetime) -> datetime:
    """The later of ``moment`` and the last resume: where the rails start counting."""
    resumed = state.resumed_at
    return max(moment, resumed) if resumed is not None else moment

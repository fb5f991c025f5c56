"""The audit trail: an append-only record of every state-changing action.

Rows are written by :func:`credly_ops.store.write_audit` inside the unit of work that made the
change; this module only reads them, for admins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from credly_ops.access import Actor, Permission, require
from credly_ops.store import Store, to_db_time

AUDIT_COLUMNS = ("occurred_at", "actor", "role", "action", "target", "job_id", "outcome", "detail")


@dataclass(frozen=True)
class AuditFilter:
    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    action: str | None = None
    limit: int = 10_000


def read_audit(store: Store, viewer: Actor, flt: AuditFilter | None = None) -> pd.DataFrame:
    """Audit rows, newest first (admins only)."""
    require(viewer, Permission.VIEW_AUDIT)
    flt = flt or AuditFilter()
    clauses: list[str] = []
    params: list[object] = []
    if flt.since is not None:
        clauses.append("occurred_at >= ?")
        params.append(to_db_time(flt.since))
    if flt.until is not None:
        clauses.append("occurred_at < ?")
        params.append(to_db_time(flt.until))
    if flt.actor:
        clauses.append("actor = ?")
        params.append(flt.actor)
    if flt.action:
        clauses.append("action LIKE ? ESCAPE '\\'")
        params.append(
            flt.action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    params.append(int(flt.limit))
    with store.session() as cur:
        return cur.execute(
            f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit{where} "
            "ORDER BY occurred_at DESC, id DESC LIMIT ?",
            params,
        ).df()


def audit_actions(store: Store) -> list[str]:
    with store.session() as cur:
        return [
            r[0] for r in cur.execute("SELECT DISTINCT action FROM audit ORDER BY 1").fetchall()
        ]

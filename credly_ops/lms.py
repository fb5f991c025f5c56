"""The LMS half of the cache: completions, from uploads, the demo or a future LMS sync.

A completion's key is a hash of (email, course, completed_at), so loading the same row twice
is an upsert, never a second row.  Saving or deleting completions brings the completion →
badge link of their students up to date (:mod:`credly_ops.links`), whatever the source.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

import duckdb
import pandas as pd

from credly_ops.links import relink
from credly_ops.models import Completion, normalize_email
from credly_ops.store import to_db_time

COMPLETION_COLUMNS = (
    "id",
    "email",
    "first_name",
    "last_name",
    "course_id",
    "course_title",
    "completed_at",
    "status",
    "score",
    "source",
    "loaded_at",
    "date_only",
)


def completion_id(c: Completion) -> str:
    """The deterministic key of a completion."""
    course = c.course_id.strip() or c.course_title.strip().lower()
    basis = "|".join([normalize_email(c.email), course, c.completed_at.astimezone(UTC).isoformat()])
    return hashlib.sha256(basis.encode()).hexdigest()[:32]


def save_completions(
    cur: duckdb.DuckDBPyConnection,
    completions: Sequence[Completion],
    *,
    source: str,
    loaded_at: datetime,
) -> int:
    """Upsert completions inside the caller's unit of work; returns how many rows were given."""
    if not completions:
        return 0
    frame = pd.DataFrame(
        [
            {
                "id": completion_id(c),
                "email": normalize_email(c.email),
                "first_name": c.first_name,
                "last_name": c.last_name,
                "course_id": c.course_id,
                "course_title": c.course_title,
                "completed_at": to_db_time(c.completed_at),
                "status": None if c.status is None else c.status.value,
                "score": c.score,
                "source": source,
                "loaded_at": to_db_time(loaded_at),
                "date_only": c.date_only is True,
            }
            for c in completions
        ],
        columns=list(COMPLETION_COLUMNS),
    )
    frame = frame.drop_duplicates(subset="id", keep="last")
    for column in ("completed_at", "loaded_at"):
        frame[column] = pd.to_datetime(frame[column])
    frame["score"] = frame["score"].astype("float64")
    columns = ", ".join(COMPLETION_COLUMNS)
    cur.register("incoming_completions", frame)
    try:
        cur.execute(
            f"INSERT OR REPLACE INTO completions ({columns}) "
            f"SELECT {columns} FROM incoming_completions"
        )
    finally:
        cur.unregister("incoming_completions")
    relink(cur, frame["email"].unique().tolist())
    return len(completions)


def delete_completions(cur: duckdb.DuckDBPyConnection, *, source: str) -> None:
    emails = [
        str(e)
        for (e,) in cur.execute(
            "SELECT DISTINCT email FROM completions WHERE source = ?", [source]
        ).fetchall()
    ]
    cur.execute("DELETE FROM completions WHERE source = ?", [source])
    relink(cur, emails)

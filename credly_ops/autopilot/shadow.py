"""The go-live check: does credly-ops, in shadow mode, agree with what was issued?

For each completion shadow mode decided (its latest shadow decision), the cache — a copy of
Credly, so of what Skilljar's own integration issued — is asked whether a matching *live* badge
exists: the same student and template, issued for that very completion (the engine's
:func:`~credly_ops.issuance.decide.carries_completion`); for a renewal, a live badge of the
template lasting at least until the renewal's expiry.

credly-ops *would have a badge* for the completion when it decided ``issue`` or ``update``, or
skipped it because the badge is already there (``already_issued``, ``already_up_to_date``).
It *agrees* when that matches what Credly holds. The differences are of two kinds:
``would_issue_no_badge`` (credly-ops would issue; Credly holds no such badge) and
``badge_but_would_skip`` (Credly holds one; credly-ops would skip it, with the reason).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from credly_ops.issuance.decide import carries_completion, lasts_at_least
from credly_ops.issuance.upload import badges_for_emails
from credly_ops.models import IssuedBadge, normalize_email
from credly_ops.store import Store, from_db_time

WOULD_ISSUE_NO_BADGE = "would_issue_no_badge"
BADGE_BUT_WOULD_SKIP = "badge_but_would_skip"
_HAS_IT = frozenset({"already_issued", "already_up_to_date"})


@dataclass(frozen=True)
class ShadowComparison:
    agree: int
    total: int
    differences: list[dict[str, Any]] = field(default_factory=list)

    def sentence(self) -> str:
        if not self.total:
            return "Shadow mode has decided no completion yet."
        return (
            f"credly-ops agrees with what was issued on {self.agree:,} of {self.total:,} "
            "completions"
        )

    def as_json(self) -> dict[str, Any]:
        return {"agree": self.agree, "total": self.total, "differences": list(self.differences)}


def _matching(
    badges: Sequence[IssuedBadge], outcome: str, reason: str, decision: dict[str, Any]
) -> IssuedBadge | None:
    template = decision["template_id"]
    completed_at = decision["completed_at"]
    for badge in badges:
        if not badge.is_live or badge.badge_template.id != template:
            continue
        if outcome == "update" or reason == "already_up_to_date":
            if reason == "already_up_to_date" or lasts_at_least(
                badge.expires_at, decision["expires_at"]
            ):
                return badge
            continue
        if completed_at is not None and carries_completion(badge.issued_at, completed_at):
            return badge
    return None


def shadow_comparison(store: Store) -> ShadowComparison:
    """Each completion's latest shadow decision against the badges the cache holds now."""
    with store.session() as cur:
        rows = cur.execute(
            "SELECT completion_id, email, course_id, template_id, completed_at, outcome, reason, "
            "expires_at, decided_at FROM autopilot_decisions WHERE shadow "
            "QUALIFY row_number() OVER (PARTITION BY completion_id ORDER BY decided_at DESC) = 1 "
            "ORDER BY completed_at, completion_id"
        ).fetchall()
    decisions = [
        {
            "completion_id": r[0],
            "email": r[1] or "",
            "course_id": r[2] or "",
            "template_id": r[3] or "",
            "completed_at": from_db_time(r[4]),
            "outcome": str(r[5]),
            "reason": str(r[6]),
            "expires_at": from_db_time(r[7]),
        }
        for r in rows
    ]
    badges = badges_for_emails(store, {d["email"] for d in decisions})
    agree = 0
    differences: list[dict[str, Any]] = []
    for d in decisions:
        outcome, reason = d["outcome"], d["reason"]
        would = outcome in ("issue", "update") or reason in _HAS_IT
        held = (
            _matching(badges.get(normalize_email(d["email"]), []), outcome, reason, d)
            if d["template_id"]
            else None
        )
        if would == (held is not None):
            agree += 1
            continue
        differences.append(
            {
                "difference": WOULD_ISSUE_NO_BADGE if would else BADGE_BUT_WOULD_SKIP,
                "email": d["email"],
                "course_id": d["course_id"],
                "template_id": d["template_id"],
                "completed_at": d["completed_at"],
                "decision": outcome,
                "reason": reason,
                "badge_id": held.id if held is not None else "",
            }
        )
    return ShadowComparison(agree, len(decisions), differences)

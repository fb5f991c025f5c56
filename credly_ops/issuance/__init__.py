"""The issuance engine's pure core: ``decide`` one completion, ``plan`` a whole upload.

Both take plain values and return values; sending a plan to Credly and recording it in the
ledger happens elsewhere, at the edge.
"""

from credly_ops.issuance.decide import (
    FLAG_BACKFILL,
    FLAG_PREVIOUSLY_REJECTED,
    FLAGS,
    INVALID_REASONS,
    ISSUE_REASONS,
    OUTCOMES,
    SKIP_REASONS,
    UPDATE_REASONS,
    BadgePool,
    BadgeView,
    Decision,
    Mode,
    Outcome,
    add_months,
    compute_expires_at,
    decide,
    decide_valid,
    invalid_reason,
    lasts_at_least,
    same_second,
    to_second,
)
from credly_ops.issuance.plan import (
    PLANNED_PREFIX,
    Plan,
    PlannedRow,
    idempotency_key,
    is_planned_id,
    plan,
    planned_badge_id,
)

__all__ = [
    "FLAGS",
    "FLAG_BACKFILL",
    "FLAG_PREVIOUSLY_REJECTED",
    "INVALID_REASONS",
    "ISSUE_REASONS",
    "OUTCOMES",
    "PLANNED_PREFIX",
    "SKIP_REASONS",
    "UPDATE_REASONS",
    "BadgePool",
    "BadgeView",
    "Decision",
    "Mode",
    "Outcome",
    "Plan",
    "PlannedRow",
    "add_months",
    "compute_expires_at",
    "decide",
    "decide_valid",
    "idempotency_key",
    "invalid_reason",
    "is_planned_id",
    "lasts_at_least",
    "plan",
    "planned_badge_id",
    "same_second",
    "to_second",
]

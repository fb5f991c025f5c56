"""Reason codes, said to people: one table, one sentence per code.

A reason code is a stable snake_case string kept in plans, ledgers and exports; pages, the
command line and reports show the sentence. Codes come from three places: the engine's
decisions (why a row is issued, updated, skipped or invalid), the runner's failures (how a
call to Credly went wrong, the ``kind`` of an error in ``credly_ops.credly.errors``) and the
flags a plan puts on a row.
"""

from __future__ import annotations

REASONS: dict[str, str] = {
    # issued or updated
    "issue": "A badge will be issued for this completion.",
    "update": "The student's badge will be renewed with a new expiration date.",
    "new_badge": "The student has no badge from this template yet, so one will be issued.",
    "retake": "The template allows duplicates, so this retake earns another badge.",
    "renewal": "The student's badge will be replaced with one that carries the new expiry.",
    # invalid input
    "bad_email": (
        "The email address is missing, is not a valid address, or holds a control character."
    ),
    "bad_date": "The completion date is missing or could not be read.",
    "no_course": "The row names neither a course id nor a course title.",
    "future_date": "The completion date is in the future.",
    "missing_name": "A badge needs the student's first and last name, and one is missing.",
    "bad_name": "A name holds a control character (such as a NUL byte) that a badge cannot carry.",
    "bad_status": "The pass/fail status is not one the reader knows (passed, failed, yes, no…).",
    "bad_score": "The score is not a number.",
    "extra_fields": "The row has more fields than the header has columns.",
    # skipped
    "no_rule": "No badge rule maps this course to a template.",
    "ambiguous_course_title": (
        "More than one badge rule has this course title; use the course id instead."
    ),
    "not_passed": "The student failed the course and the rule requires a pass.",
    "before_active_from": (
        "The course was completed before the badge was set up for it, and automatic "
        "issuing only goes forward."
    ),
    "template_inactive": "The badge template is not active (draft, archived or unknown).",
    "already_issued": (
        "A badge for this very completion has already been issued (a completion given as a "
        "date only is the same as one at any time of that day)."
    ),
    "already_has_badge": (
        "The student already holds this badge and the template does not allow duplicates."
    ),
    "no_existing_badge": (
        "The rule only updates existing badges, and the student has none from this template."
    ),
    "already_up_to_date": (
        "The student's badge already lasts at least as long as this completion would make it."
    ),
    "duplicate_row": "The same student, course and completion date appear earlier in the file.",
    "previously_rejected": (
        "The student rejected the badge of this very completion; it is only issued again when "
        "you opt in."
    ),
    "previously_revoked": (
        "An admin revoked the badge of this very completion; it is only issued again when you "
        "opt in."
    ),
    "already_expired": (
        "The badge would already be expired, so nobody is asked to accept it unless you opt in."
    ),
    "expiry_out_of_range": "The rule's expiration duration gives a date beyond the calendar.",
    # failures while sending to Credly
    "invalid_token": "Credly refused the API token: it is wrong or has been revoked.",
    "forbidden": "The API token cannot reach this Credly organization.",
    "template_archived": "Credly refused to issue: the badge template is archived.",
    "duplicate": "Credly refused: the student already holds this template's badge.",
    "already_replaced": "Credly refused: this badge has already been replaced by a newer one.",
    "rate_limited": "Credly asked us to slow down; the request will be tried again later.",
    "server_error": "Credly had an internal error.",
    "network": "Credly could not be reached over the network.",
    "sync_running": "Another process was syncing the cache for longer than a plan waits.",
    "timeout": "Credly did not answer in time.",
    "outcome_unknown": (
        "The request reached Credly but no answer came back; check Credly before sending again."
    ),
    "not_found": "Credly does not know this badge, template or organization.",
    "validation_failed": "Credly refused the request as invalid.",
    "bad_request": "Credly could not read the request.",
    "gone": "Credly says this resource no longer exists.",
    "http_error": "Credly answered with an unexpected error.",
    "credly_error": "Something went wrong while talking to Credly.",
}

#: flags a plan puts on a row, said to people
FLAGS: dict[str, str] = {
    "backfill": (
        "Completed before the badge was set up for this course; issued as a deliberate backfill."
    ),
    "previously_rejected": (
        "The student rejected the badge of this completion; issued anew as you chose."
    ),
    "previously_revoked": (
        "An admin revoked the badge of this completion; issued anew as you chose."
    ),
    "already_expired": "The badge's expiry date has already passed; sent as you chose.",
    "adds_expiry": (
        "The student's badge never expired; the update gives it the rule's expiration date."
    ),
}


def describe(code: str) -> str:
    """The sentence for a reason code, or the code itself when the table does not know it."""
    return REASONS.get(code, code)


def describe_flag(flag: str) -> str:
    """The sentence for a plan flag, or the flag itself when the table does not know it."""
    return FLAGS.get(flag, flag)

"""The Skilljar webhook receiver: authenticate, spool, wake — never decide.

A ``COURSE_COMPLETION`` webhook only makes the issuer's next read sooner (domain: "a hint,
never the truth"); the issuer reads the student's enrollment over the API before deciding.

::

    auth.py      who may deliver: Basic (any user, the secret as password) or X-Webhook-Secret
    receiver.py  the Starlette app: POST /hooks/skilljar, GET /hooks/health
    spool.py     one file per delivery beside the cache, written durably; wait_for_events
    events.py    what a body says (pure): accepted / rejected with why; the repeat key; Hint
    ingestion.py spool -> webhook_events (migration 8) -> hints once each; recent_events,
                 last_delivery
"""

from credly_ops.hooks.events import Hint, read_event
from credly_ops.hooks.ingestion import ingest, last_delivery, recent_events
from credly_ops.hooks.receiver import MAX_BODY_BYTES, create_hooks_app, webhook_secret
from credly_ops.hooks.spool import Spool, wait_for_events

__all__ = [
    "MAX_BODY_BYTES",
    "Hint",
    "Spool",
    "create_hooks_app",
    "ingest",
    "last_delivery",
    "read_event",
    "recent_events",
    "wait_for_events",
    "webhook_secret",
]

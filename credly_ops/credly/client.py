"""The Credly API client: auth, pagination, retries, typed results.

This module holds the writes and their look-ups; the client is built in layers beside it:
:mod:`credly_ops.credly.transport` (the connection, the one retry loop every request goes
through, error mapping) and :mod:`credly_ops.credly.reads` (organization, events, templates,
badges, the high-volume search); the pure parts are ``credly_ops.retry``, ``filters``,
``pacing`` and ``errors``.

One :class:`CredlyClient` speaks to one organization.  It wraps a synchronous ``httpx.Client``,
so one instance may be shared by several worker threads.

Reads are retried on anything transient (see :mod:`credly_ops.retry`).  Writes follow an
exactly-once discipline, because Credly has no idempotency key:

* the request never left (:class:`~credly_ops.credly.errors.NotSent`) or Credly answered 429:
  the write was not processed, so it is sent again;
* the outcome is unknown (timeout, lost connection, 5xx): the client first looks the result up
  (a badge with the same recipient, template and ``issued_at``; a replaced or revoked badge) and
  returns it when found; only when nothing is found is the write sent again;
* any other error answer is final and raised.

Every error is one of :mod:`credly_ops.credly.errors`.  The API token travels only in the
``Authorization`` header: never in a URL, a log record, ``repr(client)`` or an error message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from credly_ops.credly.errors import (
    AlreadyReplaced,
    DuplicateBadge,
    NotFound,
    TemplateNotIssuable,
    ValidationFailed,
)
from credly_ops.credly.reads import CredlyReads, PageInfo
from credly_ops.credly.transport import USER_AGENT, Attempts
from credly_ops.models import (
    BadgeState,
    IssuedBadge,
    IssueRequest,
    ReplaceRequest,
    normalize_email,
)
from credly_ops.timeutil import as_utc

if TYPE_CHECKING:
    from credly_ops.config import Settings

__all__ = [
    "USER_AGENT",
    "CredlyClient",
    "IssueResult",
    "PageInfo",
    "issue_payload",
    "replace_payload",
]


@dataclass(frozen=True)
class IssueResult:
    """The badge an issue call ended with, and how it was obtained.

    ``recovered``: an attempt's outcome was unknown and the badge was found by looking it up
    (this call created it).  ``duplicate``: Credly refused the issue because this very completion
    (same recipient, template and ``issued_at``) already held a live badge, which is returned.
    """

    badge: IssuedBadge
    recovered: bool = False
    duplicate: bool = False


def _same_second(a: datetime | None, b: datetime | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return as_utc(a).replace(microsecond=0) == as_utc(b).replace(microsecond=0)


def issue_payload(req: IssueRequest) -> dict[str, Any]:
    """The JSON body of ``POST /badges`` for ``req`` (:meth:`IssueRequest.payload`)."""
    return req.payload()


def replace_payload(req: ReplaceRequest) -> dict[str, Any]:
    """The JSON body of ``POST /badges/{id}/replace`` for ``req``
    (:meth:`ReplaceRequest.payload`)."""
    return req.payload()


def _matches_completion(
    badge: IssuedBadge, email: str, template_id: str, issued_at: datetime
) -> bool:
    """A live badge for this completion: same recipient, template and ``issued_at`` second."""
    return (
        badge.is_live
        and normalize_email(badge.recipient_email) == normalize_email(email)
        and badge.template_id == template_id
        and _same_second(badge.issued_at, issued_at)
    )


def _matches_replacement(badge: IssuedBadge, req: ReplaceRequest) -> bool:
    return (
        badge.template_id == req.badge_template_id
        and _same_second(badge.issued_at, req.issued_at)
        and _same_second(badge.expires_at, req.expires_at or None)
    )


class CredlyClient(CredlyReads):
    """A client for one Credly organization.

    ``token`` is the organization's API token, sent as HTTP Basic with the token as user name and
    an empty password.  ``transport`` replaces the network (tests hand in an
    ``httpx.MockTransport``); ``sleep`` and ``rng`` drive the waits between attempts;
    ``max_attempts`` overrides :data:`retry.MAX_ATTEMPTS`; ``on_rate_limited`` is called with
    the wait in seconds whenever Credly answers 429, so a job can slow all its workers down.
    With ``wait_out_rate_limits`` a 429 never uses up an attempt: a throttled request was not
    processed, so it is sent again after the wait for as long as Credly keeps throttling (a
    job's rows wait instead of failing ``rate_limited``). Retries are logged at debug level.
    """

    @classmethod
    def from_settings(cls, settings: Settings, **kw: Any) -> CredlyClient:
        """A client for the organization, token and API URL of ``settings``."""
        return cls(
            base_url=settings.api_url, org_id=settings.org_id, token=settings.api_token, **kw
        )

    def __repr__(self) -> str:
        return f"CredlyClient(base_url={self._base_url!r}, org_id={self._org_id!r})"

    # ------------------------------------------------------------------ issued badges: writes

    def issue(self, req: IssueRequest) -> IssueResult:
        """Issue one badge, exactly once.

        ``req.expires_at=None`` means *no expiry* and is sent as ``false`` (see
        :func:`issue_payload`).  After an attempt with an unknown outcome the badge is looked up
        by recipient, template and ``issued_at`` (to the second, UTC) before anything is resent.
        A 422 duplicate whose live badge is this completion's returns that badge with
        ``duplicate=True``; a duplicate of another badge raises :class:`DuplicateBadge`.  Other
        422 answers (e.g. :class:`TemplateNotIssuable`) are raised at once.
        """
        attempts = Attempts()

        def lookup() -> IssuedBadge | None:
            return self._find_completion(req.recipient_email, req.badge_template_id, req.issued_at)

        try:
            badge, recovered = self._call(
                "POST",
                self._path("badges"),
                self._badge_answer,
                json=issue_payload(req),
                recover=lookup,
                attempts=attempts,
            )
        except DuplicateBadge:
            existing = lookup()
            if existing is None:
                raise
            # After a lost answer, the "duplicate" is most likely this call's own badge.
            return IssueResult(
                existing, recovered=attempts.uncertain, duplicate=not attempts.uncertain
            )
        except ValidationFailed as exc:
            if isinstance(exc, TemplateNotIssuable | AlreadyReplaced) or not attempts.uncertain:
                raise
            # A resend after a lost answer refused in words we do not recognise: check first.
            existing = lookup()
            if existing is None:
                raise
            return IssueResult(existing, recovered=True)
        return IssueResult(badge, recovered=recovered)

    def replace(
        self, badge_id: str, req: ReplaceRequest, *, recipient_email: str | None = None
    ) -> IssuedBadge:
        """Replace a badge (Credly's only way to change its expiry), exactly once.

        ``req.expires_at=None`` means *no expiry* and is sent as ``false``.  After an unknown
        outcome the old badge is looked up (by id; with ``recipient_email`` given, by search as a
        fallback): if it is now ``replaced`` by a badge matching the request, that badge is
        returned.  :class:`AlreadyReplaced` is answered with the live badge it names when that
        badge carries the requested template, ``issued_at`` and ``expires_at``; otherwise it is
        raised.
        """
        template_id = req.badge_template_id

        def lookup() -> IssuedBadge | None:
            old = self._fetch_badge(badge_id, recipient_email, template_id)
            if old is None or old.state != BadgeState.REPLACED or not old.replacement_badge_id:
                return None
            new = self._fetch_badge(old.replacement_badge_id, recipient_email, template_id)
            return new if new is not None and _matches_replacement(new, req) else None

        try:
            badge, _ = self._call(
                "POST",
                self._path("badges", badge_id, "replace"),
                self._badge_answer,
                json=replace_payload(req),
                recover=lookup,
            )
        except AlreadyReplaced as exc:
            current_id = exc.current_badge_id
            if current_id is None:
                old = self._fetch_badge(badge_id, recipient_email, template_id)
                current_id = old.replacement_badge_id if old is not None else None
            if current_id is None:
                raise
            current = self._fetch_badge(current_id, recipient_email, template_id)
            if current is not None and _matches_replacement(current, req):
                return current
            raise
        return badge

    def revoke(
        self, badge_id: str, reason: str, suppress_notification: bool = False
    ) -> IssuedBadge:
        """Revoke a badge (``PUT /badges/{id}/revoke``); ``reason`` is required.

        After an unknown outcome the badge is looked up and returned if it is already revoked.
        """
        if not reason or not reason.strip():
            raise ValueError("a revocation reason is required")
        body = {
            "reason": reason.strip(),
            "suppress_revoke_notification_email": bool(suppress_notification),
        }
        attempts = Attempts()

        def lookup() -> IssuedBadge | None:
            badge = self._fetch_badge(badge_id, None, None)
            return badge if badge is not None and badge.state == BadgeState.REVOKED else None

        try:
            badge, _ = self._call(
                "PUT",
                self._path("badges", badge_id, "revoke"),
                self._badge_answer,
                json=body,
                recover=lookup,
                attempts=attempts,
            )
        except ValidationFailed:
            if not attempts.uncertain:
                raise
            revoked = lookup()
            if revoked is None:
                raise
            return revoked
        return badge

    def delete(self, badge_id: str) -> None:
        """Delete a badge for good (``DELETE /badges/{id}``); prefer :meth:`revoke`.

        After an unknown outcome the delete is sent again; a 404 then means the first one worked.
        """
        attempts = Attempts()
        try:
            self._call(
                "DELETE",
                self._path("badges", badge_id),
                lambda _response: None,
                recover=lambda: None,
                attempts=attempts,
            )
        except NotFound:
            if not attempts.uncertain:
                raise

    # ------------------------------------------------------------------ look-ups

    def _find_completion(
        self, email: str, template_id: str, issued_at: datetime
    ) -> IssuedBadge | None:
        for badge in self.iter_badges(
            recipient_email_all=email.strip(), badge_template_id=template_id
        ):
            if _matches_completion(badge, email, template_id, issued_at):
                return badge
        return None

    def _fetch_badge(
        self, badge_id: str, recipient_email: str | None, template_id: str | None
    ) -> IssuedBadge | None:
        """A badge by id, or by searching the recipient's badges when the id look-up 404s."""
        try:
            return self.get_badge(badge_id)
        except NotFound:
            if recipient_email is None or template_id is None:
                return None
        for badge in self.iter_badges(
            recipient_email_all=recipient_email.strip(), badge_template_id=template_id
        ):
            if badge.id == badge_id:
                return badge
        return None

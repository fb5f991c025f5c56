"""The Credly API client: auth, pagination, retries, typed results.

One piece on purpose: every endpoint goes through the one retry loop (``_call``) and the
look-up-before-resend of the writes, which need the client's state (transport, pace, attempts);
the pure parts live beside it (``credly_ops.retry``, ``filters``, ``pacing``, ``errors``).

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

import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from typing import TYPE_CHECKING, Any, TypeVar, Unpack
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from credly_ops import retry
from credly_ops.credly.errors import (
    AlreadyReplaced,
    AnswerTimedOut,
    ConnectFailed,
    ConnectionLost,
    CredlyError,
    CredlyStatusError,
    DuplicateBadge,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    TemplateNotIssuable,
    ValidationFailed,
    error_for_status,
)
from credly_ops.credly.filters import (
    BadgeListFilter,
    HighVolumeFilter,
    StrOrList,
    TimeFilter,
    badge_filter,
    build_filter,
    build_sort,
)
from credly_ops.models import (
    AuthorizationToken,
    BadgeState,
    BadgeTemplate,
    IssuedBadge,
    IssueRequest,
    ReplaceRequest,
    normalize_email,
)
from credly_ops.redaction import scrub
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

logger = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

_MESSAGE_LIMIT = 500
_HIGH_VOLUME_FORMATS = frozenset({"default", "minimal"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _package_version() -> str:
    try:
        return metadata.version("credly-ops")
    except metadata.PackageNotFoundError:
        return "dev"


USER_AGENT = f"credly-ops/{_package_version()}"


@dataclass(frozen=True)
class PageInfo:
    """Where one page of a page-based list sits in the whole list."""

    current_page: int
    total_pages: int
    total_count: int
    per: int

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any], *, requested: int, count: int) -> PageInfo:
        """Read Credly's page metadata, filling gaps from what was asked and received."""
        current = _as_int(meta.get("current_page"), requested)
        total_pages = _as_int(meta.get("total_pages"), -1)
        if total_pages < 0:
            total_pages = current + 1 if meta.get("next_page_url") else current
        return cls(
            current_page=current,
            total_pages=total_pages,
            total_count=_as_int(meta.get("total_count"), count),
            per=_as_int(meta.get("per"), 50),
        )


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


@dataclass
class _Attempts:
    """What happened to one logical call across its attempts."""

    uncertain: bool = False


def _as_int(value: Any, default: int) -> int:
    if isinstance(value, bool):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


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


def _outcome_unknown(exc: CredlyError) -> bool:
    if isinstance(exc, OutcomeUnknown):
        return True
    return isinstance(exc, CredlyStatusError) and (exc.status == 408 or exc.status >= 500)


def _search_time(value: TimeFilter | None) -> str | None:
    """``start_date``/``end_date`` of the high-volume search: ``YYYY-MM-DD HH:MM:SS`` in UTC."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return as_utc(value).strftime("%Y-%m-%d %H:%M:%S")
    return f"{value.isoformat()} 00:00:00"


def _sort_value(sort: str | Sequence[str] | None) -> str | None:
    if sort is None:
        return None
    if isinstance(sort, str):
        return sort or None
    return build_sort(sort)


def _timeouts(timeout: httpx.Timeout | None) -> httpx.Timeout:
    """The given timeouts with every unset one filled from :mod:`retry`: never unbounded."""
    given = timeout or httpx.Timeout(retry.READ_TIMEOUT, connect=retry.CONNECT_TIMEOUT)

    def pick(value: float | None, default: float) -> float:
        return default if value is None else value

    return httpx.Timeout(
        connect=pick(given.connect, retry.CONNECT_TIMEOUT),
        read=pick(given.read, retry.READ_TIMEOUT),
        write=pick(given.write, retry.READ_TIMEOUT),
        pool=pick(given.pool, retry.READ_TIMEOUT),
    )


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host.lower(), url.port or _DEFAULT_PORTS.get(url.scheme))


def _models(model: type[M], items: Any, what: str) -> list[M]:
    if not isinstance(items, list):
        raise CredlyError(f"Credly's {what} list answer has no list under 'data'")
    return [_model(model, item, what) for item in items]


def _model(model: type[M], data: Any, what: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # Field names only: the input values may hold personal data.
        fields = sorted({".".join(str(p) for p in err["loc"]) for err in exc.errors()})
        raise CredlyError(
            f"Credly answered with a {what} this client cannot read "
            f"(problem fields: {', '.join(fields[:8])})"
        ) from None


class CredlyClient:
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

    def __init__(
        self,
        *,
        base_url: str,
        org_id: str,
        token: SecretStr | str,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        max_attempts: int | None = None,
        on_rate_limited: Callable[[float], None] | None = None,
        wait_out_rate_limits: bool = False,
    ) -> None:
        split = urlsplit(base_url.strip())
        if split.scheme not in _DEFAULT_PORTS or not split.hostname:
            raise ValueError("base_url must be an absolute http(s) URL")
        if split.username is not None or split.password is not None:
            raise ValueError("base_url must not carry credentials; pass the token separately")
        if split.query or split.fragment:
            raise ValueError("base_url must not have a query or fragment")
        org = org_id.strip()
        if not org:
            raise ValueError("org_id is empty")
        secret = token if isinstance(token, SecretStr) else SecretStr(token)
        raw_token = secret.get_secret_value().strip()
        if not raw_token:
            raise ValueError("the API token is empty")
        attempts = retry.MAX_ATTEMPTS if max_attempts is None else max_attempts
        if attempts < 1:
            raise ValueError("max_attempts must be at least 1")

        self._base_url = f"{split.scheme}://{split.netloc}{split.path}".rstrip("/")
        self._org_id = org
        self._org_path = f"/organizations/{quote(org, safe='')}"
        self._token = SecretStr(raw_token)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._max_attempts = attempts
        self._on_rate_limited = on_rate_limited
        self._wait_out_rate_limits = wait_out_rate_limits
        self._http = httpx.Client(
            base_url=self._base_url + "/",
            auth=httpx.BasicAuth(raw_token, ""),
            headers={
                "Accept": "application/json",
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
            },
            timeout=_timeouts(timeout),
            transport=transport,
            follow_redirects=False,
        )
        self._base_origin = _origin(httpx.URL(self._base_url))

    @classmethod
    def from_settings(cls, settings: Settings, **kw: Any) -> CredlyClient:
        """A client for the organization, token and API URL of ``settings``."""
        return cls(
            base_url=settings.api_url, org_id=settings.org_id, token=settings.api_token, **kw
        )

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def org_id(self) -> str:
        return self._org_id

    @property
    def max_attempts(self) -> int:
        return self._max_attempts

    def __repr__(self) -> str:
        return f"CredlyClient(base_url={self._base_url!r}, org_id={self._org_id!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CredlyClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ organization & events

    def get_organization(self) -> dict[str, Any]:
        """The organization object (``GET /organizations/{org}``)."""
        return self._data_object(self._get_json(self._org_path), "organization")

    def list_events(self, page: int = 1) -> tuple[list[dict[str, Any]], PageInfo]:
        """One page of the organization's event feed."""
        envelope = self._get_json(self._path("events"), {"page": _page_number(page)})
        items = envelope.get("data")
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise CredlyError("Credly's event list answer has no list of objects under 'data'")
        return items, self._page_info(envelope, page, len(items))

    def get_event(self, event_id: str) -> dict[str, Any]:
        """One event with its badge or template (``GET /events/{id}``)."""
        return self._data_object(self._get_json(self._path("events", event_id)), "event")

    def list_authorization_tokens(self) -> list[AuthorizationToken]:
        """The organization's API tokens with their rights and ``expires_at``
        (``GET /organizations/{org}/authorization_tokens``, reference §13).  A read-only token
        may be shown a shortened list."""
        envelope = self._get_json(self._path("authorization_tokens"))
        return _models(AuthorizationToken, envelope.get("data"), "authorization token")

    # ------------------------------------------------------------------ templates

    def templates_page(
        self,
        page: int = 1,
        *,
        state: StrOrList | None = None,
        query: str | None = None,
        sort: str | Sequence[str] | None = "name",
    ) -> tuple[list[BadgeTemplate], PageInfo]:
        """One page of badge templates."""
        params = self._list_params(
            page, build_filter({"state": state, "query": query}), _sort_value(sort)
        )
        envelope = self._get_json(self._path("badge_templates"), params)
        items = _models(BadgeTemplate, envelope.get("data"), "badge template")
        return items, self._page_info(envelope, page, len(items))

    def iter_templates(
        self,
        state: StrOrList | None = None,
        query: str | None = None,
        sort: str | Sequence[str] | None = "name",
    ) -> Iterator[BadgeTemplate]:
        """Every badge template matching the filter, page after page."""
        return self._walk(lambda n: self.templates_page(n, state=state, query=query, sort=sort), 1)

    def list_templates(
        self,
        state: StrOrList | None = None,
        query: str | None = None,
        sort: str | Sequence[str] | None = "name",
    ) -> list[BadgeTemplate]:
        return list(self.iter_templates(state=state, query=query, sort=sort))

    def get_template(self, template_id: str) -> BadgeTemplate:
        envelope = self._get_json(self._path("badge_templates", template_id))
        return _model(BadgeTemplate, envelope.get("data"), "badge template")

    # ------------------------------------------------------------------ issued badges: reads

    def badges_page(
        self,
        page: int = 1,
        *,
        sort: str | Sequence[str] | None = None,
        **where: Unpack[BadgeListFilter],
    ) -> tuple[list[IssuedBadge], PageInfo]:
        """One page of issued badges matching ``where`` (:class:`BadgeListFilter`).  Times in
        filters go out as ``%Y-%m-%d %H:%M:%S %z`` (datetimes) or ``YYYY-MM-DD`` (dates)."""
        filter_text = badge_filter(where, allowed=BadgeListFilter)
        params = self._list_params(page, filter_text, _sort_value(sort))
        envelope = self._get_json(self._path("badges"), params)
        items = _models(IssuedBadge, envelope.get("data"), "issued badge")
        return items, self._page_info(envelope, page, len(items))

    def iter_badges(
        self,
        *,
        sort: str | Sequence[str] | None = None,
        start_page: int = 1,
        **where: Unpack[BadgeListFilter],
    ) -> Iterator[IssuedBadge]:
        """Every issued badge matching ``where`` (:class:`BadgeListFilter`).

        Each page request is rebuilt with the original filter and sort and ``page=n``
        (``next_page_url`` may drop them); the walk stops at ``total_pages`` or an empty page.
        """
        _page_number(start_page)
        badge_filter(where, allowed=BadgeListFilter)  # a term it does not take fails now

        def fetch(page: int) -> tuple[list[IssuedBadge], PageInfo]:
            return self.badges_page(page, sort=sort, **where)

        return self._walk(fetch, start_page)

    def get_badge(self, badge_id: str) -> IssuedBadge:
        """One issued badge by id; :class:`NotFound` when Credly does not know it."""
        envelope = self._get_json(self._path("badges", badge_id))
        return _model(IssuedBadge, envelope.get("data"), "issued badge")

    def find_badges(self, recipient_email: str, badge_template_id: str) -> list[IssuedBadge]:
        """Every badge (any state) of this template held by the recipient's Credly account.

        Uses ``recipient_email_all``, which matches any email of the earner's account.
        """
        return list(
            self.iter_badges(
                recipient_email_all=recipient_email.strip(), badge_template_id=badge_template_id
            )
        )

    def high_volume_pages(
        self,
        *,
        badge_format: str = "default",
        start_date: TimeFilter | None = None,
        end_date: TimeFilter | None = None,
        **where: Unpack[HighVolumeFilter],
    ) -> Iterator[list[IssuedBadge]]:
        """The high-volume badge search for ``where`` (:class:`HighVolumeFilter`), one list of
        badges per page (for progress reports).

        The cursor (``metadata.next_page_url``) is followed as given, with the same auth, but
        only on the API's own scheme, host and port: a cursor elsewhere raises
        :class:`CredlyError` rather than sending the token to another host.
        """
        if badge_format not in _HIGH_VOLUME_FORMATS:
            raise ValueError(f"badge_format must be one of {sorted(_HIGH_VOLUME_FORMATS)}")
        first: dict[str, str | None] = {
            "badge_format": badge_format,
            "filter": badge_filter(where, allowed=HighVolumeFilter),
            "start_date": _search_time(start_date),
            "end_date": _search_time(end_date),
        }
        params: dict[str, str] = {k: v for k, v in first.items() if v is not None}
        for data in self._high_volume_data(params):
            yield _models(IssuedBadge, data, "issued badge")

    def high_volume_id_pages(self) -> Iterator[list[str]]:
        """The id of every issued badge, one list per page of the high-volume search in its
        ``minimal`` format: the cheapest way to learn which badges Credly still has."""
        for data in self._high_volume_data({"badge_format": "minimal"}):
            if not isinstance(data, list):
                raise CredlyError("Credly's high-volume search answered without a list of badges")
            ids: list[str] = []
            for item in data:
                badge_id = item.get("id") if isinstance(item, dict) else None
                if not isinstance(badge_id, str) or not badge_id:
                    raise CredlyError("Credly's high-volume search listed a badge without an id")
                ids.append(badge_id)
            yield ids

    def _high_volume_data(self, first: dict[str, str]) -> Iterator[Any]:
        """The ``data`` of each page of the high-volume search, following its cursor."""
        params: dict[str, str] | None = first
        url = self._path("high_volume_issued_badge_search")
        while True:
            envelope = self._get_json(url, params)
            yield envelope.get("data")
            meta = envelope.get("metadata")
            next_url = meta.get("next_page_url") if isinstance(meta, dict) else None
            if not next_url:
                return
            cursor = self._check_cursor(str(next_url))
            if cursor == url:
                raise CredlyError("Credly's high-volume cursor did not advance; stopping")
            url, params = cursor, None

    def iter_high_volume(
        self,
        *,
        badge_format: str = "default",
        start_date: TimeFilter | None = None,
        end_date: TimeFilter | None = None,
        **where: Unpack[HighVolumeFilter],
    ) -> Iterator[IssuedBadge]:
        """Every badge of the high-volume search (see :meth:`high_volume_pages`)."""
        for items in self.high_volume_pages(
            badge_format=badge_format, start_date=start_date, end_date=end_date, **where
        ):
            yield from items

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
        attempts = _Attempts()

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
        attempts = _Attempts()

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
        attempts = _Attempts()
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

    # ------------------------------------------------------------------ internals: look-ups

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

    # ------------------------------------------------------------------ internals: pages

    def _walk(
        self, fetch: Callable[[int], tuple[list[M], PageInfo]], start_page: int
    ) -> Iterator[M]:
        page = start_page
        while True:
            items, info = fetch(page)
            yield from items
            if not items or info.current_page >= info.total_pages:
                return
            page = max(page, info.current_page) + 1

    def _list_params(self, page: int, filter_text: str | None, sort: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"page": _page_number(page)}
        if filter_text:
            params["filter"] = filter_text
        if sort:
            params["sort"] = sort
        return params

    @staticmethod
    def _page_info(envelope: Mapping[str, Any], requested: int, count: int) -> PageInfo:
        meta = envelope.get("metadata")
        return PageInfo.from_metadata(
            meta if isinstance(meta, dict) else {}, requested=requested, count=count
        )

    def _check_cursor(self, next_url: str) -> str:
        try:
            resolved = httpx.URL(self._base_url + "/").join(next_url)
        except httpx.InvalidURL:
            raise CredlyError("Credly's high-volume cursor is not a URL") from None
        if resolved.userinfo or _origin(resolved) != self._base_origin:
            raise CredlyError(
                "refusing to follow a high-volume cursor to another host "
                f"({resolved.scheme}://{resolved.host}); the API is at {self._base_url}"
            )
        return str(resolved)

    # ------------------------------------------------------------------ internals: HTTP

    def _path(self, *parts: str) -> str:
        return self._org_path + "".join("/" + quote(str(part), safe="") for part in parts)

    def _get_json(self, url: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        envelope, _ = self._call("GET", url, self._envelope, params=params)
        return envelope

    def _call(
        self,
        method: str,
        url: str,
        parse: Callable[[httpx.Response], T],
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        recover: Callable[[], T | None] | None = None,
        attempts: _Attempts | None = None,
    ) -> tuple[T, bool]:
        """Send with retries; ``(result, recovered)``.

        Requests that :func:`retry.should_retry` allows are resent after a backoff.  For writes,
        ``recover`` looks the result up after an unknown outcome: a found result is returned with
        ``recovered=True``; ``None`` means "not processed", and the write is sent again while
        attempts remain.
        """
        record = attempts if attempts is not None else _Attempts()
        attempt = 0
        while True:
            attempt += 1
            try:
                return parse(self._send(method, url, params=params, json=json)), False
            except CredlyError as exc:
                wait = self._wait_after(exc, attempt)
                if isinstance(exc, RateLimited) and self._wait_out_rate_limits:
                    attempt -= 1  # throttled, so not processed: the attempt is not used up
                    self._log_retry(method, url, exc, attempt + 1, wait)
                    self._sleep(wait)
                    continue
                if retry.should_retry(method, None, exc, attempt, max_attempts=self._max_attempts):
                    self._log_retry(method, url, exc, attempt, wait)
                    self._sleep(wait)
                    continue
                if recover is None or not _outcome_unknown(exc):
                    raise
                record.uncertain = True
                self._log_retry(method, url, exc, attempt, wait, looking_up=True)
                self._sleep(wait)
                try:
                    found = recover()
                except CredlyError as lookup_exc:
                    logger.warning(
                        "Credly %s %s: look-up after an unknown outcome failed (%s)",
                        method,
                        self._log_path(url),
                        lookup_exc.kind,
                    )
                    raise exc from lookup_exc
                if found is not None:
                    logger.info(
                        "Credly %s %s: found the result of an earlier attempt; not resending",
                        method,
                        self._log_path(url),
                    )
                    return found, True
                if attempt >= self._max_attempts:
                    raise

    def _wait_after(self, exc: CredlyError, attempt: int) -> float:
        retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
        wait = retry.backoff(attempt, retry_after, self._rng)
        if isinstance(exc, RateLimited) and self._on_rate_limited is not None:
            self._on_rate_limited(wait)
        return wait

    def _log_retry(
        self,
        method: str,
        url: str,
        exc: CredlyError,
        attempt: int,
        wait: float,
        *,
        looking_up: bool = False,
    ) -> None:
        logger.debug(
            "Credly %s %s: %s on attempt %d of %d; %s in %.2f s",
            method,
            self._log_path(url),
            exc.kind,
            attempt,
            self._max_attempts,
            "looking the result up" if looking_up else "retrying",
            wait,
        )

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """One attempt: the answer when it is a success, else the mapped :class:`CredlyError`."""
        request = self._http.build_request(method, url, params=params, json=json)
        path = request.url.path
        started = time.monotonic()
        try:
            response = self._http.send(request)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ProxyError) as exc:
            raise ConnectFailed(
                self._transport_message(method, path, exc, "could not connect")
            ) from exc
        except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout) as exc:
            raise AnswerTimedOut(
                self._transport_message(method, path, exc, "no answer in time")
            ) from exc
        except (
            httpx.RemoteProtocolError,
            httpx.ReadError,
            httpx.WriteError,
            httpx.DecodingError,
        ) as exc:
            raise ConnectionLost(
                self._transport_message(method, path, exc, "connection lost")
            ) from exc
        except httpx.HTTPError as exc:
            raise CredlyError(self._transport_message(method, path, exc, "request failed")) from exc
        logger.debug(
            "Credly %s %s -> %d in %.0f ms",
            method,
            path,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        if response.is_success:
            return response
        raise self._status_error(response, method, path)

    def _status_error(self, response: httpx.Response, method: str, path: str) -> CredlyStatusError:
        status = response.status_code
        fallback = response.reason_phrase or f"HTTP {status}"
        message, meta = fallback, {}
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            data = body.get("data")
            raw = data.get("message") if isinstance(data, dict) else body.get("message")
            if isinstance(raw, str) and raw.strip():
                message = raw.strip()
            if isinstance(body.get("metadata"), dict):
                meta = body["metadata"]
        retry_after = (
            retry.parse_retry_after(response.headers.get("Retry-After")) if status == 429 else None
        )
        return error_for_status(
            status,
            self._scrub(message)[:_MESSAGE_LIMIT],
            metadata=meta,
            retry_after=retry_after,
            method=method,
            path=path,
        )

    def _envelope(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            # A success answer cut short or garbled: treat it like a connection lost mid-answer.
            raise ConnectionLost(
                f"{response.request.method} {response.request.url.path}: "
                f"Credly's {response.status_code} answer is not a JSON envelope"
            )
        return body

    def _badge_answer(self, response: httpx.Response) -> IssuedBadge:
        return _model(IssuedBadge, self._envelope(response).get("data"), "issued badge")

    @staticmethod
    def _data_object(envelope: Mapping[str, Any], what: str) -> dict[str, Any]:
        data = envelope.get("data")
        if not isinstance(data, dict):
            raise CredlyError(f"Credly's {what} answer has no object under 'data'")
        return data

    def _transport_message(self, method: str, path: str, exc: httpx.HTTPError, what: str) -> str:
        detail = self._scrub(str(exc))[:200]
        return f"{method} {path}: {what} ({type(exc).__name__}{': ' + detail if detail else ''})"

    def _scrub(self, text: str) -> str:
        """``text`` with the token (raw or Basic-encoded) masked, should Credly ever echo it."""
        return scrub(text, self._token.get_secret_value())

    def _log_path(self, url: str) -> str:
        return httpx.URL(url).path if "://" in url else self._base_path() + url

    def _base_path(self) -> str:
        return httpx.URL(self._base_url).path.rstrip("/")


def _page_number(page: int) -> int:
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise ValueError("page numbers start at 1")
    return page

"""The Skilljar API client: v2 tokens, enrollments (completions) and courses.

One :class:`SkilljarClient` reads one Skilljar account over v2 (``reference/skilljar_api.md``
§2–4).  It wraps a synchronous ``httpx.Client`` with timeouts always set; a lock around the
token makes one instance safe to share between threads.

* **Tokens**: ``POST /v2/auth/token`` (client credentials, form-encoded).  A token is renewed a
  minute before its JWT ``exp`` (or its ``expires_in``, see :mod:`credly_ops.skilljar.tokens`)
  and once more when Skilljar answers 401 anyway.  A refused grant (400/401/403) raises
  :class:`~credly_ops.skilljar.errors.CredentialsRejected` at once, and again on every later
  call of the same client without asking Skilljar: the same values are never sent twice.  New
  credentials mean a new client (new settings).
* **Reads** are retried on 429 (honouring ``Retry-After``), 5xx and network trouble with the
  same pure functions and numbers as the Credly client (:mod:`credly_ops.retry`).
* **Lists** walk ``next_cursor`` while ``has_more`` (the cursor is opaque; a page size is
  capped at 100); each enrollment's student and course are matched from ``included`` by
  relationship, whatever the type names' number.

The client secret and the tokens travel only in the form body and the ``Authorization``
header: never in a URL, a log record, ``repr(client)`` or an error message.  The secret is
added to the log redaction (:func:`credly_ops.logs.protect`) when the client is made.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from importlib import metadata
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import SecretStr, ValidationError

from credly_ops import retry
from credly_ops.logs import protect
from credly_ops.skilljar.errors import (
    AnswerTimedOut,
    ConnectFailed,
    ConnectionLost,
    CredentialsRejected,
    RateLimited,
    SkilljarError,
    Unauthorized,
    UnexpectedAnswer,
    error_for_status,
)
from credly_ops.skilljar.models import (
    CompletionPull,
    Course,
    Enrollment,
    Included,
    Resource,
    SkilljarCompletion,
    SkippedEnrollment,
    completion_from,
)
from credly_ops.skilljar.tokens import renew_at
from credly_ops.timeutil import as_utc

if TYPE_CHECKING:
    from credly_ops.config import SkilljarSettings

__all__ = ["MAX_PAGE_SIZE", "SkilljarClient", "format_filter_time"]

logger = logging.getLogger(__name__)

#: Skilljar's largest page; a larger request is capped (by Skilljar too)
MAX_PAGE_SIZE = 100
_MESSAGE_LIMIT = 300
_GRANT_REFUSED = frozenset({400, 401, 403})


def _version() -> str:
    try:
        return metadata.version("credly-ops")
    except metadata.PackageNotFoundError:
        return "0"


def format_filter_time(value: datetime) -> str:
    """ISO-8601 UTC as the ``filter[completed_gte]`` family takes it: ``2026-05-01T09:41:00Z``."""
    moment = as_utc(value)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


class SkilljarClient:
    """Reads completions and courses from one Skilljar account over the v2 API.

    ``transport`` replaces the network (tests hand an ``httpx.MockTransport``); ``sleep``,
    ``clock`` (epoch seconds) and ``rng`` make waits and token renewal testable.
    ``max_attempts`` overrides :data:`credly_ops.retry.MAX_ATTEMPTS`.
    """

    def __init__(
        self,
        *,
        api_url: str,
        client_id: str,
        client_secret: str | SecretStr,
        domain: str | None = None,
        timeout: httpx.Timeout | None = None,
        transport: httpx.BaseTransport | None = None,
        max_attempts: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        secret = client_secret if isinstance(client_secret, SecretStr) else SecretStr(client_secret)
        if not client_id.strip() or not secret.get_secret_value().strip():
            raise ValueError("a Skilljar client needs a client id and a client secret")
        protect(secret.get_secret_value())
        root = api_url.rstrip("/")
        if root.endswith(("/v1", "/v2")):
            root = root[:-3]
        self._root = root
        self._client_id = client_id.strip()
        self._secret = secret
        self.domain = domain.strip() if domain and domain.strip() else None
        self._max_attempts = retry.MAX_ATTEMPTS if max_attempts is None else max(1, max_attempts)
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._token_lock = threading.Lock()
        self._token: SecretStr | None = None
        self._renew_at = 0.0
        self._refused: CredentialsRejected | None = None
        #: how many tokens this client was granted (for tests and the status page)
        self.grants = 0
        self._http = httpx.Client(
            timeout=timeout or httpx.Timeout(retry.READ_TIMEOUT, connect=retry.CONNECT_TIMEOUT),
            transport=transport,
            headers={
                "Accept": "application/vnd.api+json, application/json",
                "User-Agent": f"credly-ops/{_version()}",
            },
            follow_redirects=False,
        )

    @classmethod
    def from_settings(cls, settings: SkilljarSettings, **kwargs: Any) -> SkilljarClient:
        return cls(
            api_url=settings.api_url,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            domain=settings.domain,
            **kwargs,
        )

    @property
    def api_url(self) -> str:
        """The API root this client reads (without ``/v1`` or ``/v2``)."""
        return self._root

    def __repr__(self) -> str:
        return f"SkilljarClient(api_url={self._root!r}, client_id={self._client_id!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SkilljarClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reads

    def enrollments(
        self,
        *,
        completed_gte: datetime | None = None,
        completed_lte: datetime | None = None,
        course_id: str | None = None,
        email: str | None = None,
        student_id: str | None = None,
        domain: str | None = None,
        active: bool | None = None,
        progress_status: str | None = "completed",
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[Enrollment | SkippedEnrollment]:
        """Every matching enrollment, its student and course resolved; one that cannot be read
        comes as a :class:`SkippedEnrollment` (``unreadable``) rather than stopping the walk.

        ``domain`` defaults to the client's; the filters are reference §4's.
        """
        params = self._enrollment_filters(
            completed_gte=completed_gte,
            completed_lte=completed_lte,
            course_id=course_id,
            email=email,
            student_id=student_id,
            domain=domain,
            active=active,
            progress_status=progress_status,
        )
        return self._read_enrollments(params, page_size, _Pages())

    def _enrollment_filters(
        self,
        *,
        completed_gte: datetime | None = None,
        completed_lte: datetime | None = None,
        course_id: str | None = None,
        email: str | None = None,
        student_id: str | None = None,
        domain: str | None = None,
        active: bool | None = None,
        progress_status: str | None = "completed",
    ) -> dict[str, str]:
        params: dict[str, str] = {"include": "student,course"}
        if progress_status:
            params["filter[progress_status]"] = progress_status
        if completed_gte is not None:
            params["filter[completed_gte]"] = format_filter_time(completed_gte)
        if completed_lte is not None:
            params["filter[completed_lte]"] = format_filter_time(completed_lte)
        if course_id:
            params["filter[course.id]"] = course_id
        if email:
            params["filter[student.email]"] = email.strip()
        if student_id:
            params["filter[student.id]"] = student_id
        chosen_domain = domain or self.domain
        if chosen_domain:
            params["filter[domains]"] = chosen_domain
        if active is not None:
            params["filter[active]"] = "true" if active else "false"
        return params

    def _read_enrollments(
        self, params: Mapping[str, str], page_size: int, pages: _Pages
    ) -> Iterator[Enrollment | SkippedEnrollment]:
        for record, included in self._walk("/v2/enrollments/", params, page_size, pages):
            try:
                yield Enrollment.from_resource(record, included)
            except (ValidationError, ValueError, TypeError) as exc:
                logger.warning(
                    "Skilljar enrollment %s is unreadable (%s); skipped",
                    record.id,
                    type(exc).__name__,
                )
                yield SkippedEnrollment(record.id, "unreadable")

    def completion_pages(
        self,
        *,
        completed_gte: datetime | None = None,
        completed_lte: datetime | None = None,
        course_id: str | None = None,
        email: str | None = None,
        domain: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[CompletionPull]:
        """The completed enrollments one page at a time, each page as a :class:`CompletionPull`
        (``pages`` 1, its own high-water mark), so a caller can store a page before the next
        is read.  Same filters and semantics as :meth:`completions`."""
        params = self._enrollment_filters(
            completed_gte=completed_gte,
            completed_lte=completed_lte,
            course_id=course_id,
            email=email,
            domain=domain,
        )
        for records, included in self._walk_pages("/v2/enrollments/", params, page_size):
            found: dict[tuple[str, datetime], SkilljarCompletion] = {}
            skipped: list[SkippedEnrollment] = []
            high_water: datetime | None = None
            for record in records:
                try:
                    item = Enrollment.from_resource(record, included)
                except (ValidationError, ValueError, TypeError) as exc:
                    logger.warning(
                        "Skilljar enrollment %s is unreadable (%s); skipped",
                        record.id,
                        type(exc).__name__,
                    )
                    skipped.append(SkippedEnrollment(record.id, "unreadable"))
                    continue
                if item.completed_at is not None and (
                    high_water is None or item.completed_at > high_water
                ):
                    high_water = item.completed_at
                made = completion_from(item)
                if isinstance(made, SkippedEnrollment):
                    skipped.append(made)
                else:
                    found[made.key] = made
            yield CompletionPull(
                completions=tuple(found.values()),
                skipped=tuple(skipped),
                high_water=high_water,
                pages=1,
            )

    def completions(
        self,
        *,
        completed_gte: datetime | None = None,
        completed_lte: datetime | None = None,
        course_id: str | None = None,
        email: str | None = None,
        domain: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> CompletionPull:
        """The completed enrollments as the product's completions (``success_status`` null
        counts as passed), what was skipped and why, and the high-water mark over every row."""
        found: dict[tuple[str, datetime], SkilljarCompletion] = {}
        skipped: list[SkippedEnrollment] = []
        high_water: datetime | None = None
        pages = _Pages()
        params = self._enrollment_filters(
            completed_gte=completed_gte,
            completed_lte=completed_lte,
            course_id=course_id,
            email=email,
            domain=domain,
        )
        for item in self._read_enrollments(params, page_size, pages):
            if isinstance(item, SkippedEnrollment):
                skipped.append(item)
                continue
            if item.completed_at is not None and (
                high_water is None or item.completed_at > high_water
            ):
                high_water = item.completed_at
            made = completion_from(item)
            if isinstance(made, SkippedEnrollment):
                skipped.append(made)
            else:
                found[made.key] = made
        return CompletionPull(
            completions=tuple(found.values()),
            skipped=tuple(skipped),
            high_water=high_water,
            pages=pages.count,
        )

    def courses(
        self, *, title: str | None = None, page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[Course]:
        """Every course (``filter[title]`` when given)."""
        params = {"filter[title]": title} if title else {}
        for record, _ in self._walk("/v2/courses/", params, page_size, _Pages()):
            yield Course.from_resource(record)

    def course_titles(self) -> dict[str, str]:
        """Course id → title, for the rules editor."""
        return {course.id: course.title for course in self.courses()}

    # ------------------------------------------------------------------ pagination

    def _walk(
        self, path: str, params: Mapping[str, str], page_size: int, pages: _Pages
    ) -> Iterator[tuple[Resource, Included]]:
        for records, included in self._walk_pages(path, params, page_size, pages):
            for record in records:
                yield record, included

    def _walk_pages(
        self,
        path: str,
        params: Mapping[str, str],
        page_size: int,
        pages: _Pages | None = None,
    ) -> Iterator[tuple[list[Resource], Included]]:
        pages = pages if pages is not None else _Pages()
        size = min(max(int(page_size), 1), MAX_PAGE_SIZE)
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            query = {**params, "page[size]": str(size)}
            if cursor is not None:
                query["page[cursor]"] = cursor
            body = self._get(path, query)
            pages.count += 1
            data = body.get("data")
            if not isinstance(data, list):
                raise UnexpectedAnswer(f"GET {path}: Skilljar's answer has no list under 'data'")
            raw_included = body.get("included")
            included = Included(_resources(raw_included if isinstance(raw_included, list) else []))
            yield list(_resources(data)), included
            cursor = _next_cursor(body)
            if cursor is None:
                return
            if cursor in seen:
                raise UnexpectedAnswer(f"GET {path}: Skilljar sent the same cursor twice")
            seen.add(cursor)

    # ------------------------------------------------------------------ tokens

    def _bearer(self) -> str:
        with self._token_lock:
            if self._refused is not None:
                # the same values were refused already: asking again would only repeat it
                raise self._refused
            if self._token is None or self._clock() >= self._renew_at:
                try:
                    self._grant()
                except CredentialsRejected as exc:
                    self._refused = exc
                    raise
            assert self._token is not None
            return self._token.get_secret_value()

    def _drop_token(self, used: str) -> None:
        with self._token_lock:
            if self._token is not None and self._token.get_secret_value() == used:
                self._token = None

    def _grant(self) -> None:
        url = f"{self._root}/v2/auth/token"
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._secret.get_secret_value(),
        }
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._send("POST", url, data=form)
                break
            except CredentialsRejected:
                raise
            except SkilljarError as exc:
                # A grant changes nothing on Skilljar's side, so it is retried like a read.
                if not retry.should_retry(
                    "GET", None, exc, attempt, max_attempts=self._max_attempts
                ):
                    raise
                self._pause("POST", "/v2/auth/token", exc, attempt)
        body = _json_object(response, "/v2/auth/token")
        token = body.get("access_token")
        if not isinstance(token, str) or not token.strip():
            raise UnexpectedAnswer("POST /v2/auth/token: Skilljar's answer has no access_token")
        now = self._clock()
        self._token = SecretStr(token.strip())
        self._renew_at = renew_at(token.strip(), body.get("expires_in"), now)
        self.grants += 1
        logger.info("Skilljar token granted; renewing in %.0f s", max(self._renew_at - now, 0.0))

    # ------------------------------------------------------------------ HTTP

    def _get(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        url = self._root + path
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            token = self._bearer()
            try:
                response = self._send(
                    "GET", url, params=params, headers={"Authorization": f"Bearer {token}"}
                )
                return _json_object(response, path)
            except Unauthorized:
                if refreshed:
                    raise
                # the token expired early or was revoked: one fresh token, one more try
                refreshed = True
                self._drop_token(token)
                attempt -= 1
                logger.info("Skilljar GET %s: 401 with a current token; asking for a new one", path)
            except SkilljarError as exc:
                if not retry.should_retry(
                    "GET", None, exc, attempt, max_attempts=self._max_attempts
                ):
                    raise
                self._pause("GET", path, exc, attempt)

    def _pause(self, method: str, path: str, exc: SkilljarError, attempt: int) -> None:
        retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
        wait = retry.backoff(attempt, retry_after, self._rng)
        logger.warning(
            "Skilljar %s %s: %s on attempt %d of %d; retrying in %.2f s",
            method,
            path,
            exc.kind,
            attempt,
            self._max_attempts,
            wait,
        )
        self._sleep(wait)

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One attempt: the answer when it is a success, else the mapped :class:`SkilljarError`."""
        request = self._http.build_request(method, url, params=params, data=data, headers=headers)
        path = request.url.path
        try:
            response = self._http.send(request)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ProxyError) as exc:
            raise ConnectFailed(
                self._transport_message(method, path, exc, "could not connect")
            ) from None
        except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout) as exc:
            raise AnswerTimedOut(
                self._transport_message(method, path, exc, "no answer in time")
            ) from None
        except (
            httpx.RemoteProtocolError,
            httpx.ReadError,
            httpx.WriteError,
            httpx.DecodingError,
        ) as exc:
            raise ConnectionLost(
                self._transport_message(method, path, exc, "connection lost")
            ) from None
        except httpx.HTTPError as exc:
            raise SkilljarError(
                self._transport_message(method, path, exc, "request failed")
            ) from None
        logger.debug("Skilljar %s %s -> %d", method, path, response.status_code)
        if response.is_success:
            return response
        status = response.status_code
        message = self._scrub(_error_text(response))[:_MESSAGE_LIMIT]
        if path.endswith("/auth/token") and status in _GRANT_REFUSED:
            raise CredentialsRejected(
                f"HTTP {status}: {message}", status=status, method=method, path=path
            )
        retry_after = (
            retry.parse_retry_after(response.headers.get("Retry-After")) if status == 429 else None
        )
        raise error_for_status(status, message, retry_after=retry_after, method=method, path=path)

    def _transport_message(self, method: str, path: str, exc: httpx.HTTPError, what: str) -> str:
        detail = self._scrub(str(exc))[:200]
        return f"{method} {path}: {what} ({type(exc).__name__}{': ' + detail if detail else ''})"

    def _scrub(self, text: str) -> str:
        """``text`` with the client secret and the current token masked, should they be echoed."""
        secrets = [self._secret.get_secret_value()]
        if self._token is not None:
            secrets.append(self._token.get_secret_value())
        for secret in secrets:
            if secret:
                text = text.replace(secret, "***")
        return text


# ---------------------------------------------------------------------- envelope helpers


class _Pages:
    """How many pages one walk read."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


def _json_object(response: httpx.Response, path: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        # a success answer cut short or garbled: like a connection lost mid-answer
        raise ConnectionLost(
            f"{response.request.method} {path}: Skilljar's {response.status_code} answer is not "
            "a JSON object"
        )
    return body


def _resources(items: list[Any]) -> Iterator[Resource]:
    for item in items:
        if not isinstance(item, dict):
            continue
        try:
            yield Resource.model_validate(item)
        except ValidationError:
            logger.warning("Skilljar sent a record without an id; ignored")


def _next_cursor(body: Mapping[str, Any]) -> str | None:
    """The cursor of the next page, or ``None`` at the end (``has_more`` false, or no cursor).

    The cursor is opaque: taken from ``next_cursor``, else from the ``page[cursor]`` of
    ``links.next``; never built or parsed.
    """
    if body.get("has_more") is False:
        return None
    cursor = body.get("next_cursor")
    if isinstance(cursor, int) and not isinstance(cursor, bool):
        cursor = str(cursor)
    if isinstance(cursor, str) and cursor:
        return cursor
    links = body.get("links")
    following = links.get("next") if isinstance(links, dict) else None
    if isinstance(following, str) and following:
        try:
            value: str | None = httpx.URL(following).params.get("page[cursor]")
        except httpx.InvalidURL:
            value = None
        if value:
            return str(value)
    if body.get("has_more") is True:
        logger.warning("Skilljar said has_more without a cursor; stopping the walk here")
    return None


def _error_text(response: httpx.Response) -> str:
    """Skilljar's words for an error: JSON:API ``errors[0].detail``/``title``, a ``detail`` or
    ``error_description``, else the reason phrase."""
    fallback = response.reason_phrase or f"HTTP {response.status_code}"
    try:
        body = response.json()
    except ValueError:
        return fallback
    if not isinstance(body, dict):
        return fallback
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        for key in ("detail", "title"):
            value = errors[0].get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    for key in ("error_description", "detail", "message", "error"):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return fallback

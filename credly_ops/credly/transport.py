"""The connection to one Credly organization: the URL and token checks, the httpx client, and
the one retry loop every request goes through (``CredlyTransport._call``), with its error
mapping and its token scrubbing.

:class:`~credly_ops.credly.client.CredlyClient` is built on it; the retry numbers and
decisions are :mod:`credly_ops.retry`, the errors :mod:`credly_ops.credly.errors`.  The API
token travels only in the ``Authorization`` header: never in a URL, a log record, a ``repr`` or
an error message.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Self, TypeVar
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from credly_ops import retry
from credly_ops.credly.errors import (
    AnswerTimedOut,
    ConnectFailed,
    ConnectionLost,
    CredlyError,
    CredlyStatusError,
    OutcomeUnknown,
    RateLimited,
    error_for_status,
)
from credly_ops.models import IssuedBadge
from credly_ops.redaction import scrub

#: the records keep the name they always had (log filters and docs name the client)
logger = logging.getLogger("credly_ops.credly.client")

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

_MESSAGE_LIMIT = 500
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _package_version() -> str:
    try:
        return metadata.version("credly-ops")
    except metadata.PackageNotFoundError:
        return "dev"


USER_AGENT = f"credly-ops/{_package_version()}"


@dataclass
class Attempts:
    """What happened to one logical call across its attempts."""

    uncertain: bool = False


def outcome_unknown(exc: CredlyError) -> bool:
    if isinstance(exc, OutcomeUnknown):
        return True
    return isinstance(exc, CredlyStatusError) and (exc.status == 408 or exc.status >= 500)


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


def origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host.lower(), url.port or _DEFAULT_PORTS.get(url.scheme))


def read_models(model: type[M], items: Any, what: str) -> list[M]:
    if not isinstance(items, list):
        raise CredlyError(f"Credly's {what} list answer has no list under 'data'")
    return [read_model(model, item, what) for item in items]


def read_model(model: type[M], data: Any, what: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # Field names only: the input values may hold personal data.
        fields = sorted({".".join(str(p) for p in err["loc"]) for err in exc.errors()})
        raise CredlyError(
            f"Credly answered with a {what} this client cannot read "
            f"(problem fields: {', '.join(fields[:8])})"
        ) from None


class CredlyTransport:
    """Requests to one organization's API, each with retries (see
    :class:`~credly_ops.credly.client.CredlyClient` for the arguments)."""

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
        self._base_origin = origin(httpx.URL(self._base_url))

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

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ requests

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
        attempts: Attempts | None = None,
    ) -> tuple[T, bool]:
        """Send with retries; ``(result, recovered)``.

        Requests that :func:`retry.should_retry` allows are resent after a backoff.  For writes,
        ``recover`` looks the result up after an unknown outcome: a found result is returned with
        ``recovered=True``; ``None`` means "not processed", and the write is sent again while
        attempts remain.
        """
        record = attempts if attempts is not None else Attempts()
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
                if recover is None or not outcome_unknown(exc):
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
        return read_model(IssuedBadge, self._envelope(response).get("data"), "issued badge")

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

    def _check_cursor(self, next_url: str) -> str:
        try:
            resolved = httpx.URL(self._base_url + "/").join(next_url)
        except httpx.InvalidURL:
            raise CredlyError("Credly's high-volume cursor is not a URL") from None
        if resolved.userinfo or origin(resolved) != self._base_origin:
            raise CredlyError(
                "refusing to follow a high-volume cursor to another host "
                f"({resolved.scheme}://{resolved.host}); the API is at {self._base_url}"
            )
        return str(resolved)

"""What the client reads from Credly: the organization and its events, badge templates,
issued badges (page by page, or through the high-volume search and its cursor), each answer
checked into the typed models of :mod:`credly_ops.models`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Unpack

from credly_ops.credly.errors import CredlyError
from credly_ops.credly.filters import (
    BadgeListFilter,
    HighVolumeFilter,
    StrOrList,
    TimeFilter,
    badge_filter,
    build_filter,
    build_sort,
)
from credly_ops.credly.transport import CredlyTransport, M, read_model, read_models
from credly_ops.models import AuthorizationToken, BadgeTemplate, IssuedBadge
from credly_ops.timeutil import as_utc

_HIGH_VOLUME_FORMATS = frozenset({"default", "minimal"})


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


def _as_int(value: Any, default: int) -> int:
    if isinstance(value, bool):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


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


def _page_number(page: int) -> int:
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise ValueError("page numbers start at 1")
    return page


class CredlyReads(CredlyTransport):
    """The reads of :class:`~credly_ops.credly.client.CredlyClient`."""

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

    # ------------------------------------------------------------------ templates

    def list_authorization_tokens(self) -> list[AuthorizationToken]:
        """The organization's API tokens with their rights and ``expires_at``
        (``GET /organizations/{org}/authorization_tokens``, reference §13).  A read-only token
        may be shown a shortened list."""
        envelope = self._get_json(self._path("authorization_tokens"))
        return read_models(AuthorizationToken, envelope.get("data"), "authorization token")

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
        items = read_models(BadgeTemplate, envelope.get("data"), "badge template")
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
        return read_model(BadgeTemplate, envelope.get("data"), "badge template")

    # ------------------------------------------------------------------ issued badges

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
        items = read_models(IssuedBadge, envelope.get("data"), "issued badge")
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
        return read_model(IssuedBadge, envelope.get("data"), "issued badge")

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
            yield read_models(IssuedBadge, data, "issued badge")

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

    # ------------------------------------------------------------------ pages

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

"""The state of the local Credly: every organization, its templates, badges and events.

Pure Python, no HTTP: the routes in ``routes.py`` translate requests into calls on a
:class:`World` and :class:`ApiError` into Credly's error envelope.  Everything here follows
``credly_api.md``; where Credly's behaviour is unknown the choice is written next to the code.

Every mutation is one :class:`Change` (the badges it writes, the ids it deletes, the events it
emits, an auto-accept or organization update), built first and then applied by one function.
The same function replays the journal, so a replayed world equals the one that wrote it.
Queries and their caches live in ``queries.py``, the JSON shapes in ``rendering.py``, request
checks in ``validation.py``.
"""

from __future__ import annotations

import threading
import uuid
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from credly_ops.credly.filters import parse_sort
from credly_ops.emulators.credly.journal import Journal
from credly_ops.emulators.credly.queries import (
    QueryCache,
    parse_badge_filter,
    parse_badge_sort,
    parse_terms,
    sort_templates,
    template_matches,
)
from credly_ops.emulators.credly.records import (
    BADGE_STATES,
    IMAGE_HOST,
    LIVE_STATES,
    TEMPLATE_STATES,
    ApiError,
    Badge,
    Change,
    Clock,
    Event,
    Org,
    OrgState,
    Template,
    badge_from_record,
    event_row,
    fmt_time,
    invalid,
    slugify,
    stable_uuid,
    truncate_ms,
)
from credly_ops.emulators.credly.rendering import (
    badge_json,
    badge_minimal,
    event_json,
    org_json,
    template_json,
)
from credly_ops.emulators.credly.tokens import TokenBook
from credly_ops.emulators.credly.validation import (
    blank,
    org_update,
    prepare_issue,
    prepare_replacement,
)


class World:
    """Every organization the local Credly knows, behind one lock."""

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        journal_path: Path | None = None,
        id_factory: Callable[[], str] | None = None,
    ) -> None:
        self.clock = clock or Clock()
        self.journal_path = journal_path
        self._new_id = id_factory or (lambda: str(uuid.uuid4()))
        self._lock = threading.RLock()
        self._orgs: dict[str, OrgState] = {}
        self._tokens: dict[str, str] = {}
        #: every token's record: rights and expiry (``GET …/authorization_tokens``)
        self.token_book = TokenBook()
        self.queries = QueryCache()
        self._event_seq = 0
        self._journal = Journal(journal_path) if journal_path is not None else None
        self._listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self._quiet = 0
        #: hits and misses of the query caches (the same counter ``queries.stats`` keeps)
        self.cache_stats: Counter[str] = self.queries.stats

    # ---- construction (seeding) -------------------------------------------------------

    def add_org(self, org_id: str, name: str, token: str, vanity_slug: str | None = None) -> None:
        now = self.clock.now()
        with self._lock:
            if org_id in self._orgs:
                raise ValueError(f"organization {org_id} already exists")
            org = Org(org_id, name, vanity_slug or slugify(name), now, now)
            self._orgs[org_id] = OrgState(org)
            self.add_token(org_id, token)

    def add_token(
        self,
        org_id: str,
        token: str,
        *,
        name: str | None = None,
        expires_at: datetime | None = None,
        write_enabled: bool = True,
    ) -> None:
        """A token for the organization; it expires 180 days from now unless told."""
        with self._lock:
            self._state(org_id)
            owner = self._tokens.get(token)
            if owner not in (None, org_id):
                raise ValueError("token already belongs to another organization")
            self._tokens[token] = org_id
            self.token_book.add(
                org_id,
                token,
                self.clock.now(),
                name=name,
                expires_at=expires_at,
                write_enabled=write_enabled,
            )

    def add_template(
        self,
        org_id: str,
        *,
        id: str,
        name: str,
        state: str = "active",
        allow_duplicate_badges: bool = False,
        description: str = "",
        image_url: str | None = None,
        default_expiration_days: int | None = None,
        created_at: datetime | None = None,
    ) -> dict[str, Any]:
        if state not in TEMPLATE_STATES:
            raise ValueError(f"template state must be one of {TEMPLATE_STATES}")
        when = truncate_ms(created_at) if created_at else self.clock.now()
        with self._lock:
            st = self._state(org_id)
            template = Template(
                id=id,
                org_id=org_id,
                name=name,
                state=state,
                allow_duplicate_badges=allow_duplicate_badges,
                description=description,
                image_url=image_url or f"{IMAGE_HOST}/images/{id}/image.png",
                default_expiration_days=default_expiration_days,
                created_at=when,
                updated_at=when,
                vanity_slug=slugify(name),
                image_id=stable_uuid(f"image:{id}"),
            )
            st.templates[id] = template
            st.version += 1
            return template_json(st, template, {})

    def load_badges(self, org_id: str, records: Iterable[Mapping[str, Any]]) -> int:
        """Bulk load without events or journal; returns how many badges were stored."""
        count = 0
        with self._lock:
            st = self._state(org_id)
            for record in records:
                badge = badge_from_record(record)
                if badge.state not in BADGE_STATES:
                    raise ValueError(f"badge {badge.id}: unknown state {badge.state!r}")
                if badge.template_id not in st.templates:
                    raise ValueError(f"badge {badge.id}: unknown template {badge.template_id}")
                self._put(st, badge)
                count += 1
            st.version += 1
        return count

    def set_auto_accept(
        self, org_id: str, email: str, enabled: bool = True, *, record: bool = False
    ) -> None:
        """The earner turned Auto-Accept on (or off) for this organization.

        Seeding calls this directly and nothing is recorded; the control endpoint passes
        ``record=True`` so the setting is journalled like any change made through the API.
        """
        change = Change("auto_accept", org_id, auto_accept=(email.strip().lower(), enabled))
        with self._lock:
            self._state(org_id)
            if record:
                self._commit(change)
            else:
                self._apply(change)

    @contextmanager
    def unrecorded(self) -> Iterator[None]:
        """Seed inside this block: changes made here are neither journalled nor announced."""
        with self._lock:
            self._quiet += 1
            try:
                yield
            finally:
                self._quiet -= 1

    def add_listener(self, listener: Callable[[str, dict[str, Any]], None]) -> None:
        """``listener(org_id, thin_event)`` is called for every event a change emits."""
        self._listeners.append(listener)

    # ---- reading back ------------------------------------------------------------------

    def org_ids(self) -> list[str]:
        with self._lock:
            return list(self._orgs)

    def org_for_token(self, token: str) -> str | None:
        with self._lock:
            return self._tokens.get(token)

    def has_org(self, org_id: str) -> bool:
        with self._lock:
            return org_id in self._orgs

    def badges_for(self, org_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [b.as_dict() for b in self._state(org_id).badges.values()]

    def badge_record(self, org_id: str, badge_id: str) -> dict[str, Any] | None:
        with self._lock:
            badge = self._state(org_id).badges.get(badge_id)
            return badge.as_dict() if badge else None

    def webhook_target(self, org_id: str) -> tuple[str | None, list[str]]:
        """Where this organization's webhooks go, and which event types it allows (all if [])."""
        with self._lock:
            org = self._state(org_id).org
            return org.webhook_url, list(org.allowed_webhooks)

    def version(self, org_id: str) -> int:
        with self._lock:
            return self._state(org_id).version

    def counters(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {oid: dict(st.counters) for oid, st in self._orgs.items()}

    def badge_counts(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {
                oid: dict(Counter(b.state for b in st.badges.values()))
                for oid, st in self._orgs.items()
            }

    # ---- organizations -----------------------------------------------------------------

    def org_json(self, org_id: str) -> dict[str, Any]:
        with self._lock:
            return org_json(self._state(org_id).org)

    def update_org(self, org_id: str, body: Any) -> dict[str, Any]:
        update = org_update(body)
        with self._lock:
            self._state(org_id)
            now = self.clock.now()
            self._commit(Change("org_update", org_id, org_update=update, org_updated_at=now))
            return self.org_json(org_id)

    # ---- templates ---------------------------------------------------------------------

    def template_json(self, org_id: str, template_id: str) -> dict[str, Any]:
        with self._lock:
            st = self._state(org_id)
            template = st.templates.get(template_id)
            if template is None:
                raise ApiError(404, "Badge template not found")
            return template_json(st, template, self.queries.template_counts(st))

    def set_template_state(self, org_id: str, template_id: str, state: str) -> dict[str, Any]:
        """An admin on Credly archives, drafts or re-activates a template (not journalled:
        templates are seeded, not written through the API)."""
        if state not in TEMPLATE_STATES:
            raise ApiError(400, f"state must be one of {', '.join(TEMPLATE_STATES)}")
        with self._lock:
            st = self._state(org_id)
            template = st.templates.get(template_id)
            if template is None:
                raise ApiError(404, "Badge template not found")
            st.templates[template_id] = replace(template, state=state, updated_at=self.clock.now())
            st.version += 1
        return self.template_json(org_id, template_id)

    def template_page(
        self, org_id: str, filter_text: str | None, sort_text: str | None, offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        terms = parse_terms(filter_text)
        spec = parse_sort(sort_text)
        with self._lock:
            st = self._state(org_id)
            counts = self.queries.template_counts(st)
            items = [t for t in st.templates.values() if template_matches(t, terms)]
            sort_templates(items, spec, counts)
            page = items[offset : offset + limit]
            return len(items), [template_json(st, t, counts) for t in page]

    # ---- badges: reading ---------------------------------------------------------------

    def badge_json(self, org_id: str, badge_id: str) -> dict[str, Any]:
        with self._lock:
            st = self._state(org_id)
            badge = st.badges.get(badge_id)
            if badge is None:
                raise ApiError(404, "Badge not found")
            return badge_json(st, badge)

    def badge_page(
        self, org_id: str, filter_text: str | None, sort_text: str | None, offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        terms = parse_badge_filter(filter_text)
        spec = parse_badge_sort(sort_text)
        with self._lock:
            st = self._state(org_id)
            ordered = self.queries.query(st, terms, spec)
            page = ordered[offset : offset + limit]
            return len(ordered), [badge_json(st, b) for b in page]

    def high_volume_page(
        self,
        org_id: str,
        filter_text: str | None,
        *,
        after: tuple[datetime, str] | None,
        limit: int,
        badge_format: str = "default",
    ) -> tuple[list[dict[str, Any]], tuple[datetime, str] | None]:
        """Badges in (created_at, id) order after the cursor key; the next key or None."""
        terms = parse_badge_filter(filter_text)
        with self._lock:
            st = self._state(org_id)
            ordered = self.queries.query(st, terms, (("created_at", False),))
            start = 0
            if after is not None:
                start = bisect_right(ordered, after, key=lambda b: (b.created_at, b.id))
            page = ordered[start : start + limit]
            render = badge_minimal if badge_format == "minimal" else badge_json
            items = [render(st, b) for b in page]
            more = start + limit < len(ordered)
            last = page[-1] if page else None
            return items, ((last.created_at, last.id) if more and last else None)

    # ---- badges: writing ---------------------------------------------------------------

    def issue(self, org_id: str, body: Any) -> dict[str, Any]:
        with self._lock:
            st = self._state(org_id)
            now = self.clock.now()
            badge = prepare_issue(st, body, now, set(), self._new_id)
            change = Change("issue", org_id, badges=[badge])
            self._issue_events(change, badge, now)
            self._commit(change)
            return badge_json(st, st.badges[badge.id])

    def issue_batch(self, org_id: str, body: Any) -> list[dict[str, Any]]:
        """All or nothing: one invalid entry refuses the batch, naming every bad index."""
        if not isinstance(body, dict) or not isinstance(body.get("badges"), list):
            raise ApiError(400, "Request body must be an object with a 'badges' list")
        entries: list[Any] = body["badges"]
        if not entries:
            raise invalid("Badges can't be blank")
        with self._lock:
            st = self._state(org_id)
            now = self.clock.now()
            taken: set[tuple[str, str]] = set()
            prepared: list[Badge] = []
            errors: list[dict[str, Any]] = []
            for index, entry in enumerate(entries):
                try:
                    prepared.append(prepare_issue(st, entry, now, taken, self._new_id))
                except ApiError as exc:
                    errors.append({"index": index, "message": exc.message})
            if errors:
                first = errors[0]
                raise ApiError(
                    422, f"{first['message']} (badge {first['index']})", {"errors": errors}
                )
            change = Change("issue_batch", org_id, badges=prepared)
            for badge in prepared:
                self._issue_events(change, badge, now)
            self._commit(change)
            return [badge_json(st, st.badges[b.id]) for b in prepared]

    def replace(self, org_id: str, badge_id: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "Request body must be a JSON object")
        with self._lock:
            st = self._state(org_id)
            old = self._existing(st, badge_id)
            if old.state == "replaced":
                raise invalid(
                    "This badge cannot be replaced because it has already been replaced.",
                    current_badge_id=self._chain_end(st, old),
                )
            if old.state not in LIVE_STATES:
                raise invalid(f"This badge cannot be replaced because it has been {old.state}.")
            now = self.clock.now()
            new = prepare_replacement(st, old, body, now, self._new_id)
            retired = replace(
                old,
                state="replaced",
                replacement_badge_id=new.id,
                state_updated_at=now,
                updated_at=now,
            )
            change = Change("replace", org_id, badges=[retired, new])
            change.events.append((self._new_id(), "badge.state.changed", now, old.id))
            change.events.append((self._new_id(), "badge.created", now, new.id))
            self._commit(change)
            return badge_json(st, st.badges[new.id])

    def revoke(
        self, org_id: str, badge_id: str, reason: Any, suppress_email: bool = False
    ) -> dict[str, Any]:
        with self._lock:
            st = self._state(org_id)
            badge = self._existing(st, badge_id)
            if blank(reason) or not isinstance(reason, str):
                raise invalid("Reason can't be blank")
            if badge.state == "revoked":
                raise invalid("This badge has already been revoked.")
            if badge.state == "replaced":
                raise invalid(
                    "This badge cannot be revoked because it has been replaced.",
                    current_badge_id=self._chain_end(st, badge),
                )
            now = self.clock.now()
            revoked = replace(
                badge,
                state="revoked",
                revocation_reason=reason.strip(),
                state_updated_at=now,
                updated_at=now,
            )
            change = Change("revoke", org_id, badges=[revoked])
            change.events.append((self._new_id(), "badge.state.changed", now, badge.id))
            self._commit(change)
            return badge_json(st, st.badges[badge.id])

    def delete(self, org_id: str, badge_id: str) -> None:
        with self._lock:
            st = self._state(org_id)
            self._existing(st, badge_id)
            change = Change("delete", org_id, deleted=[badge_id])
            change.events.append((self._new_id(), "badge.deleted", self.clock.now(), badge_id))
            self._commit(change)

    def earner_action(self, org_id: str, badge_id: str, action: str) -> dict[str, Any]:
        """What the earner does on Credly's site: ``accept`` or ``reject`` a pending badge."""
        target = {"accept": "accepted", "reject": "rejected"}.get(action)
        if target is None:
            raise ApiError(404, f"Unknown earner action {action[:20]!r}")
        with self._lock:
            st = self._state(org_id)
            badge = self._existing(st, badge_id)
            if badge.state != "pending":
                raise invalid(f"Only a pending badge can be {target}; this one is {badge.state}")
            now = self.clock.now()
            moved = replace(badge, state=target, state_updated_at=now, updated_at=now)
            change = Change(action, org_id, badges=[moved])
            change.events.append((self._new_id(), "badge.state.changed", now, badge.id))
            self._commit(change)
            return badge_json(st, st.badges[badge.id])

    # ---- events ------------------------------------------------------------------------

    def event_page(
        self, org_id: str, filter_text: str | None, sort_text: str | None, offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        terms = parse_terms(filter_text)
        unknown = [k for k in terms if k not in ("event_type", "badge_id")]
        if unknown:
            raise ApiError(400, f"Invalid filter key {unknown[0][:40]!r}")
        spec = parse_sort(sort_text)
        if any(key != "occurred_at" for key, _ in spec) or len(spec) > 1:
            raise ApiError(400, "Events sort by occurred_at only")
        descending = bool(spec and spec[0][1])
        with self._lock:
            st = self._state(org_id)
            timeline = self.queries.timeline(st, self.clock.now())
            types = set(terms.get("event_type", [])) or None
            badge_ids = set(terms.get("badge_id", [])) or None
            if types or badge_ids:
                timeline = [
                    e
                    for e in timeline
                    if (types is None or e[1] in types) and (badge_ids is None or e[3] in badge_ids)
                ]
            if descending:
                timeline = timeline[::-1]
            page = timeline[offset : offset + limit]
            return len(timeline), [event_json(st, e) for e in page]

    def event_json(self, org_id: str, event_id: str) -> dict[str, Any]:
        with self._lock:
            st = self._state(org_id)
            stored = st.events_by_id.get(event_id)
            if stored is not None:
                return event_json(st, event_row(stored))
            row = self.queries.reminder_by_id(st).get(event_id)
            if row is None or row[0] > self.clock.now():
                raise ApiError(404, "Event not found")
            return event_json(st, row)

    # ---- journal -----------------------------------------------------------------------

    def replay_journal(self) -> int:
        """Re-apply the journal on top of this (freshly seeded) world; returns the entries."""
        if self._journal is None:
            return 0
        applied = 0
        with self._lock:
            for change in self._journal.changes():
                self._apply(change)
                applied += 1
        return applied

    def close(self) -> None:
        with self._lock:
            if self._journal is not None:
                self._journal.close()

    # ---- internals ---------------------------------------------------------------------

    def _state(self, org_id: str) -> OrgState:
        st = self._orgs.get(org_id)
        if st is None:
            raise ApiError(404, "Organization not found")
        return st

    def _existing(self, st: OrgState, badge_id: str) -> Badge:
        badge = st.badges.get(badge_id)
        if badge is None:
            raise ApiError(404, "Badge not found")
        return badge

    def _chain_end(self, st: OrgState, badge: Badge) -> str:
        """The live end of a replacement chain (the last badge still present)."""
        current, seen = badge, {badge.id}
        while current.replacement_badge_id and current.replacement_badge_id not in seen:
            following = st.badges.get(current.replacement_badge_id)
            if following is None:
                return current.replacement_badge_id
            seen.add(following.id)
            current = following
        return current.id

    def _put(self, st: OrgState, badge: Badge) -> None:
        old = st.badges.get(badge.id)
        if old is not None:
            index_remove(st.by_email, old.email_key, old.id)
            index_remove(st.by_earner, old.issuer_earner_id, old.id)
        st.badges[badge.id] = badge
        index_add(st.by_email, badge.email_key, badge.id)
        index_add(st.by_earner, badge.issuer_earner_id, badge.id)

    def _remove(self, st: OrgState, badge_id: str) -> None:
        old = st.badges.pop(badge_id, None)
        if old is not None:
            index_remove(st.by_email, old.email_key, old.id)
            index_remove(st.by_earner, old.issuer_earner_id, old.id)

    def _commit(self, change: Change) -> None:
        st = self._apply(change)
        if self._quiet:
            return
        st.counters[change.op] += 1
        if change.op in ("issue", "issue_batch"):
            st.counters["badges_issued"] += len(change.badges)
        if self._journal is not None:
            self._journal.append(change)
        for event_id, event_type, at, _badge_id in change.events:
            thin = {
                "id": event_id,
                "organization_id": change.org_id,
                "event_type": event_type,
                "occurred_at": fmt_time(at),
            }
            for listener in self._listeners:
                listener(change.org_id, thin)

    def _apply(self, change: Change) -> OrgState:
        st = self._state(change.org_id)
        if change.org_update:
            for key, value in change.org_update.items():
                setattr(st.org, key, value)
            st.org.updated_at = change.org_updated_at or st.org.updated_at
        if change.auto_accept:
            email, enabled = change.auto_accept
            if enabled:
                st.auto_accept.add(email)
            else:
                st.auto_accept.discard(email)
        before = {bid: badge_json(st, st.badges[bid]) for bid in change.deleted if bid in st.badges}
        for badge in change.badges:
            if badge.template_id not in st.templates:
                raise ValueError(f"badge {badge.id}: unknown template {badge.template_id}")
            self._put(st, badge)
        for bid in change.deleted:
            self._remove(st, bid)
        for event_id, event_type, at, badge_id in change.events:
            snapshot = before.get(badge_id)
            if snapshot is None and badge_id in st.badges:
                snapshot = badge_json(st, st.badges[badge_id])
            self._event_seq += 1
            event = Event(event_id, event_type, at, badge_id, self._event_seq, snapshot)
            st.events.append(event)
            st.events_by_id[event_id] = event
        st.version += 1
        return st

    def _issue_events(self, change: Change, badge: Badge, now: datetime) -> None:
        change.events.append((self._new_id(), "badge.created", now, badge.id))
        if badge.state == "accepted":
            change.events.append((self._new_id(), "badge.state.changed", now, badge.id))


def index_add(index: dict[str, set[str]], key: str | None, badge_id: str) -> None:
    if key:
        index.setdefault(key, set()).add(badge_id)


def index_remove(index: dict[str, set[str]], key: str | None, badge_id: str) -> None:
    if key and key in index:
        index[key].discard(badge_id)
        if not index[key]:
            del index[key]

"""The local Credly's authorization tokens: what ``GET …/authorization_tokens`` lists.

Credly's tokens are time-boxed (180 days, reference §13) and carry read / write / delete rights.
The emulator keeps one record per token it knows: a stable id, a name, the rights and
``expires_at`` (180 days after the token was added, unless told otherwise).  The listing never
shows a token's value.  A read-only token sees a shortened list: only itself.

The emulator lists the expiry but does not refuse an expired token: tests that move the clock
far ahead keep working, and the product only needs to read the date.  Expiry changes made
through the control surface are not journalled (a restart starts from the seed again).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from credly_ops.emulators.credly.records import ApiError, fmt_time, stable_uuid, truncate_ms

#: how long a Credly authorization token lives (reference §13)
TOKEN_LIFETIME = timedelta(days=180)


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str
    org_id: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    read_enabled: bool = True
    write_enabled: bool = True
    delete_enabled: bool = True

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": f"{self.name} (credly-ops emulator)",
            "read_enabled": self.read_enabled,
            "write_enabled": self.write_enabled,
            "delete_enabled": self.delete_enabled,
            "created_at": fmt_time(self.created_at),
            "expires_at": fmt_time(self.expires_at),
        }


class TokenBook:
    """Every token's record, by token value; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, TokenRecord] = {}

    def add(
        self,
        org_id: str,
        token: str,
        now: datetime,
        *,
        name: str | None = None,
        expires_at: datetime | None = None,
        write_enabled: bool = True,
    ) -> TokenRecord:
        record = TokenRecord(
            id=stable_uuid(f"authorization-token:{org_id}:{token}"),
            org_id=org_id,
            name=name or f"API token {len(self.for_org(org_id)) + 1}",
            created_at=truncate_ms(now),
            expires_at=truncate_ms(expires_at or now + TOKEN_LIFETIME),
            write_enabled=write_enabled,
            delete_enabled=write_enabled,
        )
        with self._lock:
            self._records[token] = record
        return record

    def for_org(self, org_id: str) -> list[TokenRecord]:
        """The organization's tokens, in the order they were added."""
        with self._lock:
            return [r for r in self._records.values() if r.org_id == org_id]

    def listing(self, org_id: str, token: str) -> list[dict[str, Any]]:
        """What the token ``token`` is shown: every token of the organization, or only itself
        when it is read-only."""
        with self._lock:
            own = self._records.get(token)
        if own is not None and not own.write_enabled:
            return [own.as_json()]
        return [r.as_json() for r in self.for_org(org_id)]

    def set_expiry(self, org_id: str, token_id: str, expires_at: datetime | None) -> TokenRecord:
        """Move one token's expiry (the control surface)."""
        moment = None if expires_at is None else truncate_ms(expires_at)
        return self._change(org_id, token_id, expires_at=moment)

    def rename(self, org_id: str, token_id: str, name: str) -> TokenRecord:
        return self._change(org_id, token_id, name=name)

    def _change(self, org_id: str, token_id: str, **fields: Any) -> TokenRecord:
        with self._lock:
            for value, record in self._records.items():
                if record.org_id == org_id and record.id == token_id:
                    changed = replace(record, **fields)
                    self._records[value] = changed
                    return changed
        raise ApiError(404, "Authorization token not found")

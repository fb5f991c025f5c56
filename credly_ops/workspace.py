"""One configured organization and its cache: what the app and the CLI both act on."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from credly_ops.config import DEFAULT_DB_DIR, Settings
from credly_ops.credly.client import CredlyClient
from credly_ops.store import CacheIdentity, Store


def cache_identity(settings: Settings) -> CacheIdentity:
    """The organization a process configured with ``settings`` may keep in its cache."""
    return CacheIdentity(settings.env.value, settings.org_id, settings.api_url)


@dataclass
class Workspace:
    settings: Settings
    store: Store = field(init=False)

    def __post_init__(self) -> None:
        path = Path(self.settings.db_path)
        self.store = Store(
            path,
            identity=cache_identity(self.settings),
            create_folder=path.parent == DEFAULT_DB_DIR,
        )

    @property
    def data_dir(self) -> Path:
        return Path(self.settings.db_path).parent

    def status(self) -> dict[str, Any]:
        """What ``credly-ops status`` prints: the configuration (token masked), the organization
        the cache records, and the sync history's health (``last_sync``,
        ``last_sync_finished``, ``unfinished_sync``, ``sync_warning``, ``last_reconcile``)."""
        from credly_ops.sync_history import sync_health

        info: dict[str, Any] = dict(self.settings.describe())
        recorded = self.store.recorded_identity()
        info["cache_organization"] = None if recorded is None else asdict(recorded)
        info.update(sync_health(self.store).as_json())
        return info

    def client(self, **kw: Any) -> CredlyClient:
        """A client for the configured organization (starting the demo emulator if needed).

        The cache is opened first: a process configured for another organization than the
        cache's stops here, before anything is sent to Credly."""
        self.store.recorded_identity()
        if self.settings.is_demo:
            from credly_ops.emulators.embedded import ensure_demo_emulator

            ensure_demo_emulator(self.settings)
        return CredlyClient.from_settings(self.settings, **kw)

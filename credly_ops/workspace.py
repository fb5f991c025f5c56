"""One configured organization and its cache: what the app and the CLI both act on."""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from credly_ops.config import (
    DEFAULT_DB_DIR,
    ConfigError,
    Settings,
    SkilljarNotConfigured,
    SkilljarSettings,
    demo_skilljar_settings,
    load_skilljar_settings,
)
from credly_ops.credly.client import CredlyClient
from credly_ops.skilljar import SkilljarClient
from credly_ops.store import CacheIdentity, Store


def cache_identity(settings: Settings) -> CacheIdentity:
    """The organization a process configured with ``settings`` may keep in its cache."""
    return CacheIdentity(settings.env.value, settings.org_id, settings.api_url)


log = logging.getLogger(__name__)


class SkilljarMissing(ConfigError):
    """Skilljar is not configured (outside the demo): nothing can be read from it."""

    def __init__(self, missing: SkilljarNotConfigured) -> None:
        super().__init__(
            f"Skilljar is not configured: set {' and '.join(missing.missing)} "
            "(the [skilljar] table of .streamlit/secrets.toml, or the environment)"
        )


@dataclass
class Workspace:
    settings: Settings
    store: Store = field(init=False)
    _demo_credly: threading.Thread | None = field(init=False, default=None, repr=False)
    _demo_credly_lock: threading.Lock = field(init=False, default_factory=threading.Lock)

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
        ``last_sync_finished``, ``unfinished_sync``, ``sync_warning``, ``last_reconcile``), and
        the last read of Skilljar completions (``last_completions_read``)."""
        from credly_ops.completions_sync import last_completions_read
        from credly_ops.sync_history import sync_health

        info: dict[str, Any] = dict(self.settings.describe())
        recorded = self.store.recorded_identity()
        info["cache_organization"] = None if recorded is None else asdict(recorded)
        info.update(sync_health(self.store).as_json())
        info["last_completions_read"] = last_completions_read(self.store)
        return info

    def client(self, **kw: Any) -> CredlyClient:
        """A client for the configured organization (starting the demo emulator if needed;
        if it is starting in the background, this waits for it).

        The cache is opened first: a process configured for another organization than the
        cache's stops here, before anything is sent to Credly."""
        self.store.recorded_identity()
        if self.settings.is_demo:
            from credly_ops.emulators.embedded import ensure_demo_emulator

            ensure_demo_emulator(self.settings)
        return CredlyClient.from_settings(self.settings, **kw)

    def skilljar_settings(self) -> SkilljarSettings | SkilljarNotConfigured:
        """The configured Skilljar; in the demo environment with none configured, the embedded
        demo Skilljar's."""
        found = load_skilljar_settings()
        if isinstance(found, SkilljarNotConfigured) and self.settings.is_demo:
            return demo_skilljar_settings()
        return found

    def skilljar_client(self, **kw: Any) -> SkilljarClient:
        """A client for the configured Skilljar (starting the demo Skilljar when it is the one);
        :class:`SkilljarMissing` when none is configured.  The cache is opened first, like
        :meth:`client`."""
        settings = self.skilljar_settings()
        if isinstance(settings, SkilljarNotConfigured):
            raise SkilljarMissing(settings)
        self.store.recorded_identity()
        if self.settings.is_demo and settings == demo_skilljar_settings():
            from credly_ops.emulators.embedded import ensure_demo_skilljar

            ensure_demo_skilljar(self.data_dir, settings.api_url)
        return SkilljarClient.from_settings(settings, **kw)

    def start_demo_credly(self) -> None:
        """In the demo, start the embedded Credly in a background thread, once, and return at
        once: nothing waits for it but what needs it (:meth:`client`, and
        :meth:`wait_for_demo_credly`).  Outside the demo this does nothing."""
        if not self.settings.is_demo:
            return
        with self._demo_credly_lock:
            if self._demo_credly is None:
                self._demo_credly = threading.Thread(
                    target=self._start_demo_credly, name="demo-credly", daemon=True
                )
                self._demo_credly.start()

    def wait_for_demo_credly(self, timeout: float | None = None) -> bool:
        """Whether the demo Credly's start is over, waiting up to ``timeout`` seconds (``None``:
        until it is).  True outside the demo.  A start that failed is over too: the next
        :meth:`client` tries again and raises the reason."""
        if not self.settings.is_demo:
            return True
        self.start_demo_credly()
        assert self._demo_credly is not None
        self._demo_credly.join(timeout)
        return not self._demo_credly.is_alive()

    def _start_demo_credly(self) -> None:
        from credly_ops.emulators.embedded import ensure_demo_emulator

        try:
            ensure_demo_emulator(self.settings)
        except Exception:
            log.exception("the demo Credly did not start; the next use of it tries again")

"""One configured organization and its cache: what the app and the CLI both act on."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from credly_ops.config import Settings
from credly_ops.credly.client import CredlyClient
from credly_ops.store import Store


@dataclass
class Workspace:
    settings: Settings
    store: Store = field(init=False)

    def __post_init__(self) -> None:
        self.store = Store(self.settings.db_path)

    @property
    def data_dir(self) -> Path:
        return Path(self.settings.db_path).parent

    def client(self, **kw: Any) -> CredlyClient:
        """A client for the configured organization (starting the demo emulator if needed)."""
        if self.settings.is_demo:
            from credly_ops.emulators.embedded import ensure_demo_emulator

            ensure_demo_emulator(self.settings)
        return CredlyClient.from_settings(self.settings, **kw)

"""What every command is handed: the run's cache file and who acts."""

from __future__ import annotations

from dataclasses import dataclass

import click

from credly_ops.access import Actor
from credly_ops.config import Settings, load_settings
from credly_ops.workspace import Workspace


@dataclass(frozen=True)
class CommandLine:
    """One run of ``credly-ops``: ``--db`` as given, and the actor it records in the audit
    trail (:func:`credly_ops.access.command_line_actor`, made once per run)."""

    db: str | None
    actor: Actor

    def settings(self) -> Settings:
        return load_settings(db=self.db)

    def workspace(self, settings: Settings | None = None) -> Workspace:
        return Workspace(self.settings() if settings is None else settings)


#: a command's first parameter is the :class:`CommandLine`
pass_command_line = click.make_pass_decorator(CommandLine)

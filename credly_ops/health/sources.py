"""Checks whose data lives in modules built elsewhere (automatic issuing, the webhook): a small
registry, so the run includes each only when its data source module exists.

A source is the module whose data the check reads (``credly_ops.autopilot``,
``credly_ops.hooks``) and a reader: a function of the :class:`HealthContext` that reads that
data and returns the :class:`~credly_ops.health.checks.Check`, through the pure functions
:func:`~credly_ops.health.checks.check_autopilot` and
:func:`~credly_ops.health.checks.check_webhook`.  Wiring one is one call, made where the module
is imported (its own package, or here once its reading API is settled)::

    register(Source("credly_ops.autopilot", lambda ctx: check_autopilot(
        paused=..., reason=..., lag=...)))

Until then nothing is registered and the run leaves those checks out.  A reader that raises
becomes a ``warn`` check naming the error class, never a failed run.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from credly_ops.health.checks import Check, Status

if TYPE_CHECKING:
    from credly_ops.workspace import Workspace


@dataclass(frozen=True)
class HealthContext:
    """What a reader is handed: the workspace (settings and cache) and the run's moment."""

    workspace: Workspace
    now: datetime


@dataclass(frozen=True)
class Source:
    module: str
    read: Callable[[HealthContext], Check]
    name: str = ""  # the check's name, for the warning when the reader fails


_SOURCES: list[Source] = []


def register(source: Source) -> None:
    """Add a source (once per module: a second registration replaces the first)."""
    _SOURCES[:] = [s for s in _SOURCES if s.module != source.module]
    _SOURCES.append(source)


def registered() -> tuple[Source, ...]:
    return tuple(_SOURCES)


def module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def optional_checks(ctx: HealthContext, sources: tuple[Source, ...] | None = None) -> list[Check]:
    """The checks of the registered sources whose module exists."""
    checks: list[Check] = []
    for source in registered() if sources is None else sources:
        if not module_exists(source.module):
            continue
        try:
            checks.append(source.read(ctx))
        except Exception as exc:  # a reader's bug must not hide every other check
            checks.append(
                Check(
                    source.name or source.module.rsplit(".", 1)[-1],
                    Status.WARN,
                    f"Could not be checked: {type(exc).__name__}.",
                    "See the log of the process that runs the check.",
                )
            )
    return checks

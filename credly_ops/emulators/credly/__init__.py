"""The local Credly, split by concern.

``records`` (plain data, ids, times) → ``queries`` (filters, sorts, paging windows, caches) →
``rendering`` (Credly's JSON) and ``validation`` (request bodies) → ``state`` (the
:class:`World`: organizations, templates, badges, events, the journal and its replay) →
``routes`` (``/v1``) and ``control`` (``/_emulator/``) with ``faults``, ``stats`` and
``webhooks`` → ``app`` (``create_app``, ``build_world``, ``run_emulator``); ``seeds`` holds the
worlds it starts from.
"""

from credly_ops.emulators.credly.app import build_app, build_world, create_app, run_emulator
from credly_ops.emulators.credly.faults import FaultConfig, Faults
from credly_ops.emulators.credly.records import ApiError, Clock
from credly_ops.emulators.credly.state import World

__all__ = [
    "ApiError",
    "Clock",
    "FaultConfig",
    "Faults",
    "World",
    "build_app",
    "build_world",
    "create_app",
    "run_emulator",
]

"""How ``credly-ops`` ends: the exit codes, and which error ends a command with which.

=====  ==============================================================================
code   meaning
=====  ==============================================================================
0      the work was done
1      the work ran but something failed (rows failed, Credly refused, the cache was busy,
       the student is unknown); running again, or resuming, may finish it
2      the input, the options or the configuration are unusable; nothing was attempted
=====  ==============================================================================

A command returns its :class:`ExitCode`.  An error in :data:`FAILURES` that escapes a command
needs no handling there: :func:`credly_ops.cli.main` says it in one sentence and returns its
code.  Any other error is a bug and is raised as such.
"""

from __future__ import annotations

from enum import IntEnum

from credly_ops.access import PermissionDenied
from credly_ops.config import ConfigError
from credly_ops.credly.errors import CredlyError
from credly_ops.issuance.jobs import JobBusy, JobNotFound
from credly_ops.store import CacheBusy


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    UNUSABLE = 2


#: an error that may escape a command, its exit code, and what is said before its message
FAILURES: tuple[tuple[type[Exception], ExitCode, str], ...] = (
    (ConfigError, ExitCode.UNUSABLE, "configuration: "),
    (PermissionDenied, ExitCode.UNUSABLE, ""),
    (JobNotFound, ExitCode.UNUSABLE, ""),
    (CacheBusy, ExitCode.FAILED, ""),
    (JobBusy, ExitCode.FAILED, ""),
    (CredlyError, ExitCode.FAILED, ""),
)
HANDLED: tuple[type[Exception], ...] = tuple(error for error, _, _ in FAILURES)


def failure(exc: Exception) -> tuple[ExitCode, str]:
    """The exit code for an error in :data:`FAILURES`, and the sentence that says it."""
    for error, code, label in FAILURES:
        if isinstance(exc, error):
            return code, f"{label}{exc}"
    raise LookupError(f"{type(exc).__name__} has no exit code") from exc

"""Who may do what.  Checked inside credly_ops itself, so no page or command can bypass it.

=========  =====================================================================
role       may
=========  =====================================================================
viewer     see the funnel and student previews, sync the cache
csm        also bulk-issue and re-issue a single badge
admin      also revoke badges, change settings and badge rules, read the audit trail
=========  =====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from credly_ops.config import cli_actor


class Role(StrEnum):
    VIEWER = "viewer"
    CSM = "csm"
    ADMIN = "admin"


class Permission(StrEnum):
    VIEW = "view"
    SYNC = "sync"
    ISSUE = "issue"
    REVOKE = "revoke"
    CHANGE_SETTINGS = "change_settings"
    VIEW_AUDIT = "view_audit"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.VIEW, Permission.SYNC}),
    Role.CSM: frozenset({Permission.VIEW, Permission.SYNC, Permission.ISSUE}),
    Role.ADMIN: frozenset(Permission),
}


class PermissionDenied(PermissionError):
    """The actor's role does not allow the action."""

    def __init__(self, actor: Actor, permission: Permission) -> None:
        self.actor, self.permission = actor, permission
        super().__init__(
            f"{actor.name} ({actor.role.value}) may not {permission.value.replace('_', ' ')}"
        )


@dataclass(frozen=True)
class Actor:
    """Someone acting through the app or the command line, as the audit trail names them."""

    name: str
    role: Role

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]


def require(actor: Actor, permission: Permission) -> None:
    if not actor.can(permission):
        raise PermissionDenied(actor, permission)


def command_line_actor() -> Actor:
    """The command line acts as a local administrator, named ``cli:<os user>``."""
    return Actor(cli_actor(), Role.ADMIN)


#: the app without sign-in configured: one local user on 127.0.0.1
LOCAL_ACTOR = Actor("local", Role.ADMIN)
#: background work the product does on its own (scheduled syncs, demo builds)
SYSTEM_ACTOR = Actor("system", Role.ADMIN)

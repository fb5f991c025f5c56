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

from collections.abc import Mapping
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


# -- sign-in configuration ---------------------------------------------------------------------

#: keys an ``[auth]`` section needs for Streamlit's OIDC sign-in (in it, or in a provider table)
AUTH_SHARED_KEYS = ("redirect_uri", "cookie_secret")
AUTH_PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url")


class AuthConfigError(ValueError):
    """The ``[auth]`` or ``[roles]`` section cannot be used; names the key, never a value."""


@dataclass(frozen=True)
class AccessPolicy:
    """How the app decides who may use it.

    ``sign_in`` is False in local mode (no ``[auth]`` section): one local user on 127.0.0.1
    with every permission.  With ``[auth]``, every user signs in and gets the highest role
    whose ``[roles]`` list matches their email (exact address, ``@domain`` or ``*@domain``);
    a signed-in user no list matches has no access.
    """

    sign_in: bool
    provider: str | None
    roles: dict[Role, tuple[str, ...]]
    #: ``[auth] accept_missing_email_verified = true``: the provider verifies every email it
    #: sends but does not say so (Microsoft Entra ID sends no ``email_verified`` by default)
    accept_missing_email_verified: bool = False

    def role_for(self, email: str | None) -> Role | None:
        if not self.sign_in:
            return Role.ADMIN
        if not email:
            return None
        address = email.strip().lower()
        domain = address.rpartition("@")[2]
        for role in (Role.ADMIN, Role.CSM, Role.VIEWER):
            for pattern in self.roles.get(role, ()):
                p = pattern.strip().lower()
                if p == address or p in (f"@{domain}", f"*@{domain}"):
                    return role
        return None


@dataclass(frozen=True)
class SignInDecision:
    """What a signed-in user gets: a role, or none and the reason, said to them."""

    email: str
    role: Role | None
    reason: str = ""


#: the ID token's claims that decide a role: the email, and the provider's word that it is
#: the user's (OpenID Connect Core, section 5.1)
EMAIL_CLAIM = "email"
EMAIL_VERIFIED_CLAIM = "email_verified"


def email_is_verified(claims: Mapping[str, object], *, accept_missing: bool) -> bool | None:
    """The provider's ``email_verified`` claim, read strictly: ``True`` (or the string
    ``"true"``, which some providers send) is verified; ``False`` or anything else is not.
    A missing claim is ``None`` unless the policy accepts it (then verified)."""
    if EMAIL_VERIFIED_CLAIM not in claims or claims[EMAIL_VERIFIED_CLAIM] is None:
        return True if accept_missing else None
    value = claims[EMAIL_VERIFIED_CLAIM]
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() == "true"


def decide_sign_in(policy: AccessPolicy, claims: Mapping[str, object]) -> SignInDecision:
    """The role a signed-in user gets from their ID token's claims.

    Only a verified ``email`` gets a role: ``email_verified`` must say so.  A token without
    that claim gets no role, unless ``[auth] accept_missing_email_verified = true`` says this
    provider verifies every email it sends.  An explicit ``email_verified: false`` is refused
    whatever the setting.  Then the highest role whose ``[roles]`` list matches the email.
    """
    raw = claims.get(EMAIL_CLAIM)
    email = raw.strip() if isinstance(raw, str) else ""
    if not email:
        return SignInDecision(
            "", None, "Your sign-in did not include an email address, so no role can match it."
        )
    verified = email_is_verified(claims, accept_missing=policy.accept_missing_email_verified)
    if verified is None:
        return SignInDecision(
            email,
            None,
            f"Your identity provider did not say whether {email} is verified (the "
            f"{EMAIL_VERIFIED_CLAIM} claim is missing), and credly-ops gives roles to verified "
            "emails only. An administrator can accept this provider's emails as verified with "
            "accept_missing_email_verified = true in [auth].",
        )
    if not verified:
        return SignInDecision(
            email,
            None,
            f"Your identity provider says {email} is not verified, so it gets no role. "
            "Verify the address with your provider, then sign in again.",
        )
    role = policy.role_for(email)
    if role is None:
        return SignInDecision(
            email, None, f"{email} has no role in credly-ops. Ask an administrator to add you."
        )
    return SignInDecision(email, role)


def access_policy(secrets: dict[str, object]) -> AccessPolicy:
    """Read ``[auth]`` and ``[roles]`` from the secrets file's contents; never a half state:
    an ``[auth]`` section that lacks a required key is an error, not local mode."""
    auth = secrets.get("auth")
    roles_section = secrets.get("roles", {})
    if not isinstance(roles_section, dict):
        raise AuthConfigError("[roles] must be a table of role = [emails or @domains]")
    roles: dict[Role, tuple[str, ...]] = {}
    for key, value in roles_section.items():
        try:
            role = Role(str(key).lower())
        except ValueError:
            allowed = ", ".join(r.value for r in Role)
            raise AuthConfigError(f"[roles] {key!r} is not a role ({allowed})") from None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise AuthConfigError(f"[roles] {role.value} must be a list of emails or @domains")
        roles[role] = tuple(value)
    if auth is None:
        return AccessPolicy(sign_in=False, provider=None, roles=roles)
    if not isinstance(auth, dict):
        raise AuthConfigError("[auth] must be a table")
    missing = [k for k in AUTH_SHARED_KEYS if not auth.get(k)]
    providers = {k: v for k, v in auth.items() if isinstance(v, dict)}
    provider: str | None = None
    if providers:
        provider, table = next(iter(providers.items()))
        missing += [f"{provider}.{k}" for k in AUTH_PROVIDER_KEYS if not table.get(k)]
    else:
        missing += [k for k in AUTH_PROVIDER_KEYS if not auth.get(k)]
    if missing:
        raise AuthConfigError(f"[auth] is incomplete: missing {', '.join(missing)}")
    if not roles:
        raise AuthConfigError("[auth] is set but [roles] names nobody: no one could sign in")
    accept_missing = auth.get("accept_missing_email_verified", False)
    if not isinstance(accept_missing, bool):
        raise AuthConfigError("[auth] accept_missing_email_verified must be true or false")
    return AccessPolicy(
        sign_in=True,
        provider=provider,
        roles=roles,
        accept_missing_email_verified=accept_missing,
    )

"""The loopback addresses: where the app serves without sign-in, and the only places the Credly
emulator (demo and tests) listens."""

from __future__ import annotations

LOOPBACK_HOSTS: frozenset[str] = frozenset({"127.0.0.1", "localhost", "::1"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address or a URL's host name) is one of :data:`LOOPBACK_HOSTS`."""
    return host.strip().lower() in LOOPBACK_HOSTS

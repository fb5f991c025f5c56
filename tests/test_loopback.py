from __future__ import annotations

import pytest

from credly_ops.loopback import is_loopback


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", " LOCALHOST "])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "", "::", "192.168.1.10", "localhost.example.com", "example.com"]
)
def test_every_other_address_is_not_loopback(host: str) -> None:
    assert not is_loopback(host)

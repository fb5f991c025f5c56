from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from credly_ops.timeutil import ago

NOW = datetime(2025, 5, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("before", "said"),
    [
        (timedelta(seconds=0), "just now"),
        (timedelta(seconds=89), "just now"),
        (timedelta(seconds=90), "2 min ago"),
        (timedelta(minutes=12), "12 min ago"),
        (timedelta(seconds=5399), "90 min ago"),
        (timedelta(seconds=5400), "2 h ago"),
        (timedelta(hours=47, minutes=59), "48 h ago"),
        (timedelta(hours=48), "2 days ago"),
        (timedelta(days=30), "30 days ago"),
        (-timedelta(hours=3), "just now"),  # a clock ahead of ours is not "-3 h ago"
    ],
)
def test_how_long_ago(before: timedelta, said: str) -> None:
    assert ago(NOW - before, NOW) == said


def test_never_synced() -> None:
    assert ago(None, NOW) == "never"


def test_now_defaults_to_the_clock() -> None:
    assert ago(datetime.now(UTC) - timedelta(minutes=10)) == "10 min ago"

"""The job-wide pace learned from 429 answers, on a fake clock."""

from __future__ import annotations

import itertools

import pytest

from credly_ops.credly.pacing import MARGIN, RELAX, RELAX_AFTER_SECONDS, WIDEN, RatePacer


class Clock:
    def __init__(self) -> None:
        self.t = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def pacer() -> tuple[RatePacer, Clock]:
    clock = Clock()
    return RatePacer(clock=clock, sleep=clock.sleep), clock


def test_an_unthrottled_job_is_not_paced() -> None:
    p, clock = pacer()
    for _ in range(50):
        p.wait_turn()
        p.answered()
    assert clock.slept == [] and p.requests_per_second() is None and p.slowdowns == 0


def test_a_429_holds_every_request_for_its_retry_after() -> None:
    p, clock = pacer()
    p.defer(1.0)
    p.defer(0.2)  # a shorter wait never shortens the hold
    start = clock.t
    p.wait_turn()
    assert clock.t - start == pytest.approx(1.0) and max(clock.slept) <= 0.25
    assert p.slowdowns == 2 and p.waited == pytest.approx(1.0)


def test_the_pace_is_what_the_limit_let_through_in_the_last_second() -> None:
    p, clock = pacer()
    for _ in range(5):  # five answers within the second before the 429
        p.answered()
        clock.t += 0.1
    p.defer(1.0)
    assert p.interval == pytest.approx(MARGIN / 5)
    clock.t += 1.0
    starts = []
    for _ in range(6):
        p.wait_turn()
        starts.append(clock.t)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps == pytest.approx([MARGIN / 5] * 5)  # never more than the limit in a second


def test_throttled_answers_to_requests_sent_before_the_hold_do_not_slow_it_again() -> None:
    p, _ = pacer()
    for _ in range(4):
        p.answered()
    p.defer(1.0)
    first = p.interval
    p.defer(1.0)  # the other requests that were in flight come back 429 too
    assert p.interval == first


def test_a_429_despite_the_pace_widens_it_and_a_long_calm_narrows_it() -> None:
    p, clock = pacer()
    for _ in range(4):
        p.answered()
    p.defer(1.0)
    first = p.interval
    clock.t += 2.0
    p.answered()  # one answer in the last second: it says nothing about the limit
    p.defer(1.0)  # the pace was still a little too fast
    assert p.interval == pytest.approx(first * WIDEN)
    widened = p.interval
    clock.t += RELAX_AFTER_SECONDS + 0.1
    p.answered()
    assert p.interval == pytest.approx(widened * RELAX)

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from credly_ops import charts, funnel, reminders
from credly_ops.reminders import PHASE_LABELS, PHASES, phase_title, phase_window
from credly_ops.store import Store


def test_every_phase_has_a_label_and_a_title_naming_its_window() -> None:
    assert set(PHASE_LABELS) == set(PHASES)
    assert [phase_title(p) for p in PHASES] == [
        "Before the first reminder (≤ 1 day)",
        "Between the reminders (1–4 days)",
        "After the second reminder (> 4 days)",
    ]


def test_the_windows_follow_the_reminder_moments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reminders, "REMINDER_OFFSETS", (timedelta(days=2), timedelta(days=7)))
    assert [phase_window(p) for p in PHASES] == ["≤ 2 days", "2–7 days", "> 7 days"]


def test_the_time_to_accept_legend_names_each_phase_with_its_window(tmp_path: Path) -> None:
    store = Store(tmp_path / "empty.duckdb")
    flt = funnel.FunnelFilter()
    histogram = funnel.time_to_accept_histogram(store, flt)
    figure = charts.time_to_accept_figure(histogram, funnel.summary(store, flt))
    assert [trace.name for trace in figure.data] == [phase_title(p) for p in PHASES]

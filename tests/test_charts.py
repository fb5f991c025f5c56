"""The funnel's figures, built without Streamlit from the demo world's report."""

from __future__ import annotations

from credly_ops import charts, funnel
from credly_ops.funnel import FunnelFilter
from credly_ops.store import Store

OKABE_ITO = {"#0072B2", "#56B4E9", "#009E73", "#E69F00", "#D55E00", "#CC79A7", "#666666"}


def test_every_figure_is_titled_labelled_and_colour_blind_safe(demo_site) -> None:
    report = funnel.full_report(Store(demo_site.db_path), FunnelFilter())
    result = report.summary
    pending = report.by_template[report.by_template["pending"] > 0]
    figures = {
        "funnel": charts.funnel_figure(result),
        "pending": charts.pending_figure(pending),
        "time": charts.time_to_accept_figure(report.time_to_accept, result),
        "cohorts": charts.cohort_figure(report.cohorts),
        "over_time": charts.over_time_figure(report.over_time),
        "exits": charts.exits_figure(result),
    }
    for name, fig in figures.items():
        assert fig.layout.title.text, name
        if name not in ("funnel", "exits"):
            assert fig.layout.yaxis.title.text and "(" in fig.layout.yaxis.title.text, name
        colours: set[str] = set()
        for trace in fig.data:
            colour = getattr(trace.marker, "color", None) if hasattr(trace, "marker") else None
            if isinstance(colour, str):
                colours.add(colour)
            elif colour is not None:
                colours.update(c for c in colour if isinstance(c, str))
        assert colours <= OKABE_ITO, (name, colours - OKABE_ITO)
    # the funnel's stages are the summary's numbers
    assert list(figures["funnel"].data[0].x) == [
        result.completions,
        result.eligible,
        result.issued,
        result.accepted,
    ]
    # pending bars add up to the pending badges
    stacked = sum(sum(trace.y) for trace in figures["pending"].data)
    assert stacked == result.pending


def test_hours_are_shown_as_hours() -> None:
    assert charts.hours_text(None) == "–"
    assert charts.hours_text(1234.56) == "1,234.6 h"

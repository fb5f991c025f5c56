"""The funnel page's default read: the summary and every table, in one unit of work."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

from credly_ops.funnel.breakdowns import breakdown
from credly_ops.funnel.filter import FunnelFilter
from credly_ops.funnel.measures import FunnelSummary, summary
from credly_ops.funnel.prepare import prepare
from credly_ops.funnel.sql import Source, cursor
from credly_ops.funnel.tables import acceptance_over_time, cohorts, time_to_accept_histogram


@dataclass(frozen=True)
class FunnelReport:
    """A summary and every table the funnel page draws by default, for one filter."""

    summary: FunnelSummary
    by_course: pd.DataFrame
    by_template: pd.DataFrame
    cohorts: pd.DataFrame
    time_to_accept: pd.DataFrame
    over_time: pd.DataFrame


def full_report(source: Source, flt: FunnelFilter) -> FunnelReport:
    """The summary and every table the funnel page shows by default, in one unit of work."""
    with cursor(source) as cur:
        resolved = prepare(cur, flt)
        return FunnelReport(
            summary=replace(summary(cur, resolved), filter=flt),
            by_course=breakdown(cur, resolved, "course"),
            by_template=breakdown(cur, resolved, "template"),
            cohorts=cohorts(cur, resolved),
            time_to_accept=time_to_accept_histogram(cur, resolved),
            over_time=acceptance_over_time(cur, resolved),
        )

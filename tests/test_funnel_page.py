"""The funnel page on the demo world: every chart, no exception, and the same numbers as the
command line and an independent pandas computation over the same tables."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.io as pio
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import ui
from credly_ops import cli, funnel, timeutil
from credly_ops.reminders import REMINDER_OFFSETS, reminders_sent
from credly_ops.store import Store, from_db_time

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "funnel.py")
CHART_TITLES = (
    "Funnel",
    "Pending badges by reminders sent",
    "Time to accept",
    "Acceptance by issue-month cohort",
    "Acceptance rate at each sync",
    "Side exits",
)


@pytest.fixture
def now(demo_site, monkeypatch: pytest.MonkeyPatch) -> Iterator[datetime]:
    """The demo cache, a fixed "now" for pending badges, and fresh page caches."""
    moment = demo_site.demo.anchor + timedelta(hours=6)
    demo_site.env(monkeypatch)
    monkeypatch.setattr(timeutil, "utcnow", lambda: moment)
    ui.workspace.clear()
    st.cache_data.clear()
    yield moment
    ui.workspace.clear()
    st.cache_data.clear()


def run_page(**widgets: object) -> AppTest:
    app = AppTest.from_file(PAGE, default_timeout=120)
    app.run()
    for key, value in widgets.items():
        widget = app.selectbox(key=key) if key != "funnel_domain" else app.text_input(key=key)
        widget.set_value(value).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def metrics(app: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def number(text: str) -> int:
    return int(text.replace(",", ""))


def charts(app: AppTest) -> dict[str, object]:
    out = {}
    for element in app.get("plotly_chart"):
        figure = pio.from_json(element.proto.spec)
        title = figure.layout.title.text
        out[next(t for t in CHART_TITLES if title.startswith(t))] = figure
    return out


def values(data: object) -> list[float]:
    """A trace's numbers, whether plain or as Plotly's base64 typed array."""
    if isinstance(data, dict) and "bdata" in data:
        raw = base64.b64decode(data["bdata"])
        return np.frombuffer(raw, dtype=np.dtype(data["dtype"])).tolist()
    return list(data)  # type: ignore[call-overload]


def pending_split(app: AppTest) -> dict[str, int]:
    figure = charts(app)["Pending badges by reminders sent"]
    return {trace.name.split()[0]: int(sum(values(trace.y))) for trace in figure.data}


def test_page_renders_every_chart_without_exceptions(now: datetime) -> None:
    app = run_page()
    assert not app.error
    found = charts(app)
    assert set(found) == set(CHART_TITLES)
    for title, figure in found.items():
        assert figure.data, title
        if title != "Funnel":
            layout = figure.layout
            axis_titles = [layout.xaxis.title.text, layout.yaxis.title.text]
            assert any(axis_titles), title  # labelled axes
    config = json.loads(app.get("plotly_chart")[0].proto.config)
    assert config["toImageButtonOptions"]["format"] == "png"
    labels = metrics(app)
    assert {"Completions", "Eligible", "Issued", "Accepted", "Acceptance rate"} <= set(labels)
    # the default period has a previous period to compare with
    assert next(m for m in app.metric if m.label == "Issued").delta
    assert len(app.dataframe) == 1
    assert [b.proto.label for b in app.get("download_button")] == [
        "Download these numbers (CSV)",
        "Download this table (CSV)",
    ]


def _add_months(moment: pd.Timestamp, months: int) -> pd.Timestamp:
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, moment.days_in_month))


def _expiry(moment: pd.Timestamp, months: object, days: object) -> pd.Timestamp | None:
    months, days = int(months or 0), int(days or 0)  # type: ignore[call-overload]
    if not months and not days:
        return None
    return (_add_months(moment, months) if months else moment) + pd.Timedelta(days=days)


def _independent(db_path: Path, now: datetime) -> dict[str, object]:
    """The headline numbers computed with pandas straight from the tables, by the definitions
    in docs/funnel.md (not from the link table)."""
    store = Store(db_path)
    with store.session() as cur:
        badges = cur.execute("SELECT * FROM badges").df()
        completions = cur.execute("SELECT * FROM completions").df()
        rules = cur.execute("SELECT * FROM badge_rules").df()
        templates = cur.execute("SELECT * FROM templates").df()
        ledger = cur.execute("SELECT * FROM ledger").df()

    merged = completions.merge(rules, on="course_id", how="left", suffixes=("", "_rule"))
    has_rule = merged["template_id"].notna()
    passed = (merged["status"] != "failed") | ~merged["require_pass"].fillna(True).astype(bool)
    on_time = merged["active_from"].isna() | (merged["completed_at"] >= merged["active_from"])
    merged["eligible"] = has_rule & passed & on_time
    active = set(templates.loc[templates["state"] == "active", "id"])

    by_id = badges.set_index("id")
    parent = by_id["replaces_badge_id"].where(by_id["replaces_badge_id"].isin(by_id.index))
    root = pd.Series(by_id.index, index=by_id.index)
    while True:  # climb one link at a time until every badge points at its chain's root
        up = parent.reindex(root.values).values
        moved = pd.notna(up)
        if not moved.any():
            break
        root = root.where(~moved, up)
    by_id["root"] = root
    ends = by_id[~by_id.index.isin(by_id["replaces_badge_id"].dropna())]
    chains = ends.assign(
        end_id=ends.index,
        issued=by_id.loc[ends["root"], "issued_at"].values,
        sent=by_id.loc[ends["root"], "created_at"]
        .fillna(by_id.loc[ends["root"], "issued_at"])
        .values,
        email=by_id.loc[ends["root"], "recipient_email"].values,
        template=by_id.loc[ends["root"], "template_id"].values,
    ).set_index("root")

    # which chain carries each completion: the same second, or the same UTC day for a
    # date-only completion or a badge issued at midnight; a live chain first, then the latest
    second = merged["completed_at"].dt.floor("s")
    candidates = merged.assign(second=second, day=second.dt.floor("D")).merge(
        chains.reset_index()
        .drop(columns=["template_id"])
        .rename(columns={"template": "template_id"})
        .assign(
            chain_second=lambda c: c["issued"].dt.floor("s"),
            day=lambda c: c["issued"].dt.floor("s").dt.floor("D"),
            live=lambda c: c["state"].isin(["pending", "accepted"]),
        )[["root", "email", "template_id", "day", "chain_second", "live", "sent"]],
        on=["email", "template_id", "day"],
    )
    carries = (candidates["chain_second"] == candidates["second"]) | (
        candidates["date_only"].fillna(False).astype(bool)
        | (candidates["chain_second"] == candidates["day"])
    )
    direct = (
        candidates[carries]
        .sort_values(["live", "sent", "root"], ascending=False)
        .drop_duplicates("id")
        .sort_values(["course_id", "id"])
        .drop_duplicates("root")
        .set_index("id")["root"]
    )
    merged["root"] = merged["id"].map(direct)

    # renewals: the ledger's update that succeeded, or a live replacement with this expiry
    latest = ledger.sort_values(["updated_at", "job_id", "row_no"]).groupby("key").tail(1)
    latest = latest.assign(second=latest["completed_at"].dt.floor("s"))
    keyed = (
        merged.assign(second=second)
        .merge(
            latest[["email", "template_id", "second", "outcome", "status", "reason", "badge_id"]],
            on=["email", "template_id", "second"],
            how="left",
            suffixes=("", "_ledger"),
        )
        .drop_duplicates("id")
    )
    member_root = by_id["root"]
    replacements = by_id[
        by_id["replaces_badge_id"].notna() & by_id["state"].isin(["pending", "accepted"])
    ]
    renewed_root: dict[str, str] = {}
    for row in keyed[keyed["root"].isna() & keyed["template_id"].notna()].itertuples():
        updated = row.outcome == "update" and row.status_ledger == "succeeded"
        if updated and row.badge_id in by_id.index:
            renewed_root[row.id] = member_root[row.badge_id]
            continue
        if row.method not in ("update", "issue_or_update"):
            continue
        expiry = _expiry(row.completed_at, row.expiration_months, row.expiration_days)
        if expiry is None:
            continue
        found = replacements[
            (replacements["recipient_email"] == row.email)
            & (replacements["template_id"] == row.template_id)
            & (replacements["expires_at"].dt.floor("s") == expiry.floor("s"))
            & (replacements["issued_at"] < row.completed_at)
        ]
        if len(found):
            newest = found.assign(at=found["created_at"].fillna(found["issued_at"]))
            renewed_root[row.id] = member_root[newest.sort_values("at").index[-1]]
    merged["root"] = merged["root"].fillna(merged["id"].map(renewed_root))
    linked = merged[merged["root"].notna()]
    got = chains.loc[linked["root"]]

    accepted = got[got["state"] == "accepted"]
    accepted_at = accepted["state_updated_at"].fillna(accepted["updated_at"])
    hours = ((accepted_at - accepted["sent"]).dt.total_seconds() / 3600).clip(lower=0)
    phase = sum(
        (accepted_at > accepted["sent"] + pd.Timedelta(offset)).astype(int)
        for offset in REMINDER_OFFSETS
    )

    naive_now = now.replace(tzinfo=None)
    ended = chains[chains["state"] == "accepted"]
    chain_accepted = ended["state_updated_at"].fillna(ended["updated_at"])

    def badge_reminders(row: pd.Series) -> int:
        sent = row["created_at"] if pd.notna(row["created_at"]) else row["issued_at"]
        until = None
        if row["state"] != "pending":
            until = row["state_updated_at"]
            if pd.isna(until):
                until = row["updated_at"] if pd.notna(row["updated_at"]) else sent
            cap = chain_accepted.get(row["root"])
            if cap is not None and pd.notna(cap):
                until = min(until, cap)
        return reminders_sent(
            sent_at=from_db_time(pd.Timestamp(sent).to_pydatetime()),
            pending_until=None
            if until is None
            else from_db_time(pd.Timestamp(until).to_pydatetime()),
            now=from_db_time(naive_now),
            suppressed=bool(row["suppress_notification"]),
        )

    per_badge = by_id.apply(badge_reminders, axis=1)
    per_chain = per_badge.groupby(by_id["root"]).sum()
    pending = got[got["state"] == "pending"]
    pending_counts = per_badge.reindex(pending["end_id"]).value_counts()
    unlinked = merged[merged["root"].isna() & merged["eligible"]]
    unlinked = unlinked[unlinked["template_id"].isin(active)]
    failed_ids = set(keyed.loc[keyed["status_ledger"] == "failed", "id"])
    outside = chains[~chains.index.isin(merged["root"].dropna())]
    return {
        "completions": len(completions),
        "eligible": int(merged["eligible"].sum()),
        "issued": len(got),
        "accepted": len(accepted),
        "pending": len(pending),
        "pending_by_reminders": {str(n): int(pending_counts.get(n, 0)) for n in (0, 1, 2)},
        "rejected": int((got["state"] == "rejected").sum()),
        "revoked": int((got["state"] == "revoked").sum()),
        "failed": int(unlinked["id"].isin(failed_ids).sum()),
        "reminders_sent": int(per_chain.reindex(linked["root"]).sum()),
        "acceptance_rate": len(accepted) / len(got),
        "accepted_before_first_reminder": int((phase == 0).sum()),
        "accepted_between_reminders": int((phase == 1).sum()),
        "accepted_after_second_reminder": int((phase >= 2).sum()),
        "median_hours_to_accept": float(hours.median()),
        "renewed": len(renewed_root),
        "issued_outside": len(outside),
        "accepted_outside": int((outside["state"] == "accepted").sum()),
    }


def test_page_cli_and_pandas_agree_on_the_demo_world(
    now: datetime, demo_site, capsys: pytest.CaptureFixture[str]
) -> None:
    app = run_page(funnel_period="All time")
    shown = metrics(app)

    assert cli.main(["funnel", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = _independent(demo_site.db_path, now)

    counts = {
        "completions": "Completions",
        "eligible": "Eligible",
        "issued": "Issued",
        "accepted": "Accepted",
        "pending": "Pending",
        "rejected": "Rejected",
        "revoked": "Revoked",
        "failed": "Failed to issue",
        "reminders_sent": "Reminders sent",
        "accepted_before_first_reminder": "Accepted before 1st reminder",
        "accepted_between_reminders": "Accepted between reminders",
        "accepted_after_second_reminder": "Accepted after 2nd reminder",
    }
    for key, label in counts.items():
        assert number(shown[label]) == printed[key] == expected[key], key
    assert printed["pending_by_reminders"] == expected["pending_by_reminders"]
    assert pending_split(app) == expected["pending_by_reminders"]
    assert printed["acceptance_rate"] == pytest.approx(expected["acceptance_rate"], abs=1e-6)
    assert shown["Acceptance rate"] == f"{expected['acceptance_rate']:.1%}"
    assert printed["median_hours_to_accept"] == pytest.approx(
        expected["median_hours_to_accept"], abs=0.01
    )
    assert shown["Median time to accept"] == f"{expected['median_hours_to_accept']:,.1f} h"
    assert printed["issued"] > 10_000
    assert expected["renewed"] > 0 and expected["issued_outside"] > 0  # the demo has both
    for key in ("renewed", "issued_outside", "accepted_outside"):
        assert printed[key] == expected[key], key
    assert number(shown["Issued outside credly-ops"]) == expected["issued_outside"]
    # the funnel chart draws the same stages
    stages = charts(app)["Funnel"].data[0]
    assert [int(v) for v in values(stages.x)] == [
        expected["completions"],
        expected["eligible"],
        expected["issued"],
        expected["accepted"],
    ]


def test_a_course_filter_matches_the_command_line(
    now: datetime, demo_site, capsys: pytest.CaptureFixture[str]
) -> None:
    course = demo_site.demo.rules[0]
    app = run_page(funnel_period="All time", funnel_course=course.course_id)
    assert cli.main(["funnel", "--json", "--course", course.course_id]) == 0
    printed = json.loads(capsys.readouterr().out)
    shown = metrics(app)
    assert number(shown["Issued"]) == printed["issued"] > 0
    assert number(shown["Completions"]) == printed["completions"]
    assert number(shown["Accepted"]) == printed["accepted"]
    assert pending_split(app) == printed["pending_by_reminders"]


def test_click_through_from_a_course_to_its_students(now: datetime) -> None:
    app = run_page(funnel_period="All time")
    table = app.dataframe[0].value
    row = next(i for i, name in enumerate(table["name"]) if "Cloud Foundations" in name)
    picker = next(s for s in app.selectbox if s.label == "Show the students of")
    picker.set_value(row).run()
    assert not app.exception
    people = app.dataframe[1].value
    assert len(people) == table.loc[row, "completions"]
    assert set(people["course_title"]) == {"Cloud Foundations"}
    assert (people["badge_state"].notna()).sum() == table.loc[row, "issued"]
    buttons = [b.proto.label for b in app.get("download_button")]
    assert buttons == [
        "Download these numbers (CSV)",
        "Download this table (CSV)",
        "Download the students (CSV)",
    ]


def test_laggards_are_marked_and_the_table_is_sorted_by_acceptance(
    now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # below the overall rate is enough
    monkeypatch.setattr("credly_ops.funnel.breakdowns.LAGGARD_MARGIN", 0.0)
    app = run_page(funnel_period="All time")
    table = app.dataframe[0].value
    rates = table["acceptance_rate"].dropna().tolist()
    assert rates == sorted(rates)
    overall = 100 * table["accepted"].sum() / table["issued"].sum()
    behind = (table["acceptance_rate"] < overall) & (table["issued"] >= funnel.LAGGARD_MIN_ISSUED)
    assert behind.any()
    assert table.loc[behind, "flag"].eq("⚠ laggard").all()
    assert table.loc[~behind, "flag"].eq("").all()
    app.radio(key="funnel_dimension").set_value("Per email domain").run()
    assert not app.exception
    assert "acme.com" in set(app.dataframe[0].value["name"])


def test_filters_that_match_nothing_say_so(now: datetime) -> None:
    app = run_page(funnel_period="All time", funnel_domain="nobody.example")
    assert any("Nothing matches these filters" in i.value for i in app.info)
    assert not app.get("plotly_chart")


def test_an_empty_cache_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CREDLY_ENV", "demo")
    monkeypatch.setenv("CREDLY_OPS_DB", str(tmp_path / "empty.duckdb"))
    ui.workspace.clear()
    st.cache_data.clear()
    try:
        app = AppTest.from_file(PAGE, default_timeout=60)
        app.run()
    finally:
        ui.workspace.clear()
        st.cache_data.clear()
    assert not app.exception
    message = " ".join(i.value for i in app.info)
    assert re.search(r"No completions yet — upload some on \*\*Bulk issue\*\*", message)
    assert "Sync now" in message
    assert not app.metric

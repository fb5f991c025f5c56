"""The renewals radar: windows, expired-but-accepted, renewal statuses, the chart, the outreach
CSV and ``credly-ops expiring`` — on a small cache with one badge per case."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from credly_ops.access import SYSTEM_ACTOR
from credly_ops.charts import expiries_figure
from credly_ops.exports import read_csv_report
from credly_ops.lms import save_completions
from credly_ops.models import BadgeRule, Completion, IssueMethod, SuccessStatus
from credly_ops.renewals import RenewalStatus, build_radar, radar
from credly_ops.renewals.radar import RadarBadge, RadarCompletion
from credly_ops.rules import replace_rules
from credly_ops.store import Store, to_db_time

NOW = datetime(2026, 6, 15, 12, tzinfo=UTC)
RENEWAL = "crs-renew"  # issue_or_update, 12 months
RECERT = "crs-recert"  # update, 12 months, same template as RENEWAL
ONCE = "crs-once"  # issue, 12 months
RULES = [
    BadgeRule(
        course_id=RENEWAL,
        course_title="Data Essentials",
        template_id="tpl-data",
        template_name="Data Essentials",
        method=IssueMethod.ISSUE_OR_UPDATE,
        expiration_months=12,
    ),
    BadgeRule(
        course_id=RECERT,
        course_title="Data Recertification",
        template_id="tpl-data",
        template_name="Data Essentials",
        method=IssueMethod.UPDATE,
        expiration_months=12,
    ),
    BadgeRule(
        course_id=ONCE,
        course_title="Safety Basics",
        template_id="tpl-safety",
        template_name="Safety Basics",
        method=IssueMethod.ISSUE,
        expiration_months=12,
    ),
]


def badge(n: str, template: str, state: str, expires_in_days: float, **kw) -> RadarBadge:
    expires = NOW + timedelta(days=expires_in_days)
    return RadarBadge(
        id=f"b-{n}",
        template_id=template,
        template_name={"tpl-data": "Data Essentials", "tpl-safety": "Safety Basics"}[template],
        email=kw.get("email", f"{n}@example.com"),
        first_name=kw.get("first", n.title()),
        last_name="Doe",
        state=state,
        issued_at=expires - timedelta(days=365),
        expires_at=expires,
    )


def done(email: str, course: str, days_ago: float, status: str | None = "passed"):
    return RadarCompletion(email, course, NOW - timedelta(days=days_ago), status)


#: one badge per case (days until expiry), and the completions that decide its status
BADGES = [
    badge("renews", "tpl-data", "accepted", 10),  # newer passed completion, update rule
    badge("recert", "tpl-data", "pending", 45),  # newer passed completion on the update course
    badge("failed", "tpl-data", "accepted", 20),  # newer completion that failed: enrolled again
    badge("issueonly", "tpl-safety", "accepted", 50),  # newer completion, issue rule: again
    badge("quiet", "tpl-safety", "accepted", 80),  # nothing newer
    badge("late", "tpl-data", "accepted", -3),  # expired but still accepted
    badge("latepending", "tpl-data", "pending", -3),  # expired, never accepted: not listed
    badge("far", "tpl-safety", "accepted", 200),  # later than 90 days: in the chart only
    badge("gone", "tpl-safety", "revoked", 5),  # not live
    badge("applied", "tpl-data", "accepted", 15),  # its newer completion is already applied
]
COMPLETIONS = [
    done("RENEWS@example.com ", RENEWAL, 2),  # emails match as the engine matches them
    done("recert@example.com", RECERT, 1, None),  # no status counts as passed
    done("failed@example.com", RENEWAL, 4, "failed"),
    done("issueonly@example.com", ONCE, 3),
    done("quiet@example.com", ONCE, 400),  # older than the badge
    # completed 350 days ago: its expiry (in 15 days) is the badge's own, so nothing changes
    done("applied@example.com", RENEWAL, 350),
]


def statuses(result) -> dict[str, RenewalStatus]:
    return {b.badge_id: b.renewal for b in result.badges}


def test_each_badge_gets_its_renewal_status() -> None:
    result = build_radar(BADGES, RULES, COMPLETIONS, now=NOW)
    assert statuses(result) == {
        "b-renews": RenewalStatus.RENEWS_BY_RULE,
        "b-recert": RenewalStatus.RENEWS_BY_RULE,
        "b-failed": RenewalStatus.ENROLLED_AGAIN,
        "b-issueonly": RenewalStatus.ENROLLED_AGAIN,
        "b-quiet": RenewalStatus.NOTHING,
        "b-late": RenewalStatus.NOTHING,
        "b-far": RenewalStatus.NOTHING,
        "b-applied": RenewalStatus.NOTHING,
    }


def test_a_failed_completion_renews_when_the_rule_does_not_require_a_pass() -> None:
    lenient = [r.model_copy(update={"require_pass": False}) for r in RULES]
    result = build_radar(BADGES, lenient, COMPLETIONS, now=NOW)
    assert statuses(result)["b-failed"] is RenewalStatus.RENEWS_BY_RULE


def test_windows_and_expired_accepted_per_template() -> None:
    result = build_radar(BADGES, RULES, COMPLETIONS, now=NOW)
    lines = {s.template_id: s.as_json() for s in result.by_template()}
    data, safety = lines["tpl-data"], lines["tpl-safety"]
    assert (data["within_30_days"], data["within_60_days"], data["within_90_days"]) == (3, 4, 4)
    assert data["expired_accepted"] == 1
    assert data["course"] == "Data Essentials, Data Recertification"
    assert (data["renews_by_rule"], data["enrolled_again"], data["nothing"]) == (2, 1, 2)
    assert (safety["within_30_days"], safety["within_60_days"], safety["within_90_days"]) == (
        0,
        1,
        2,
    )
    assert (safety["enrolled_again"], safety["nothing"], safety["expired_accepted"]) == (1, 1, 0)
    assert [b.badge_id for b in result.expiring(30)] == ["b-renews", "b-applied", "b-failed"]
    assert [b.badge_id for b in result.expired_accepted()] == ["b-late"]


def test_expiries_per_month_for_the_next_twelve_months() -> None:
    result = build_radar(BADGES, RULES, COMPLETIONS, now=NOW)
    months = result.per_month()
    assert len(months) == 12 and months[0][0] == "2026-06" and months[-1][0] == "2027-05"
    counts = dict(months)
    # June 15 + 10 and + 15 days; July: +20, +45 (Jul 30); August: +50, +80 (Sep 3)
    assert counts["2026-06"] == 2 and counts["2026-07"] == 2
    assert counts["2026-08"] == 1 and counts["2026-09"] == 1
    assert counts["2027-01"] == 1  # the one 200 days away
    assert sum(counts.values()) == 7  # the expired and the revoked ones are not counted
    figure = expiries_figure(months)
    assert list(figure.data[0].y) == [n for _, n in months]
    assert "month" in figure.layout.xaxis.title.text


def load_cache(store: Store) -> None:
    """The fixture in a real cache file: badges, rules and completions as sync and upload
    write them."""
    replace_rules(store, RULES, actor=SYSTEM_ACTOR)
    with store.transaction() as cur:
        for b in BADGES:
            cur.execute(
                "INSERT INTO badges (id, template_id, template_name, recipient_email, first_name,"
                " last_name, state, issued_at, expires_at, synced_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    b.id,
                    b.template_id,
                    b.template_name,
                    b.email,
                    b.first_name,
                    b.last_name,
                    b.state,
                    to_db_time(b.issued_at),
                    to_db_time(b.expires_at),
                    to_db_time(NOW),
                ],
            )
        # a name a spreadsheet would run as a formula
        cur.execute("UPDATE badges SET first_name = '=HYPERLINK(1)' WHERE id = 'b-quiet'")
        save_completions(
            cur,
            [
                Completion(
                    email=c.email,
                    first_name="",
                    last_name="",
                    course_id=c.course_id,
                    completed_at=c.completed_at,
                    status=None if c.status is None else SuccessStatus(c.status),
                )
                for c in COMPLETIONS
            ],
            source="upload",
            loaded_at=NOW,
        )


def test_the_radar_reads_the_cache(store: Store) -> None:
    load_cache(store)
    result = radar(store, now=NOW)
    assert statuses(result) == statuses(build_radar(BADGES, RULES, COMPLETIONS, now=NOW))


def test_expiring_command_json_and_outreach_csv(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from credly_ops.cli import main

    load_cache(store)
    monkeypatch.setenv("CREDLY_OPS_DB", str(store.path))
    monkeypatch.setattr("credly_ops.renewals.utcnow", lambda: NOW)
    out_csv = tmp_path / "outreach.csv"
    assert main(["expiring", "--days", "30", "--json", "--csv", str(out_csv)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {
        "as_of",
        "days",
        "templates",
        "expiring",
        "expired_accepted",
        "per_month",
        "badges",
    }
    assert out["days"] == 30 and out["expiring"] == 3 and out["expired_accepted"] == 1
    assert [b["email"] for b in out["badges"]] == [
        "late@example.com",
        "renews@example.com",
        "applied@example.com",
        "failed@example.com",
    ]
    rows = read_csv_report(out_csv.read_bytes())
    assert list(rows[0])[:5] == ["email", "first_name", "last_name", "template", "course"]
    assert [(r["email"], r["renewal_status"]) for r in rows][1] == (
        "renews@example.com",
        "renews_by_rule",
    )
    assert main(["expiring", "--days", "90", "--csv", str(out_csv)]) == 0
    quiet = next(r for r in read_csv_report(out_csv.read_bytes()) if r["email"].startswith("q"))
    assert quiet["first_name"] == "'=HYPERLINK(1)"  # Excel-safe, like every export
    text = capsys.readouterr().out
    assert "Data Essentials (Data Essentials, Data Recertification): 3 within 30 days" in text

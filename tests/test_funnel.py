"""The funnel measures against numbers worked out by hand on a small world.

The world (all times UTC, ``NOW`` = 2024-06-30 12:00):

=====  ===============  ========  ===================================  ==========================
badge  recipient        template  from completion / story              state (reminders sent)
=====  ===============  ========  ===================================  ==========================
b1     a@acme.com       T_A       c1  C1 06-01 10:00                    accepted +2 h (0)
b2     b@acme.com       T_A       c2  C1 06-01 11:00                    accepted exactly +1 day (0)
b3     c@globex.com     T_A       c3  C1 06-01 12:00                    accepted +2 days (1)
b4     d@globex.com     T_A       c4  C1 06-01 13:00                    accepted exactly +4 days (1)
b5     e@gmail.com      T_A       c5  C1 06-01 14:00                    accepted +10 days (2)
b6     f@gmail.com      T_A       c6  C1 06-01 10:00, suppressed        pending (0)
b7     g@acme.com       T_A       c7  C1 06-29 13:00                    pending, 23 h old (0)
b8     h@acme.com       T_A       c8  C1 06-28 00:00                    pending, 2.5 days old (1)
b9     i@acme.com       T_B       c9  C2 06-10, *failed* (no pass       pending (2)
                                      required by C2)
b10    j@acme.com       T_B       c10 C2 06-05                          revoked at +2.5 days (1)
b11    k@globex.com     T_B       c11 C2 06-05                          rejected at +5 days (2)
b12    l@acme.com       T_K       c12 C3 03-01 09:00, accepted 15:00,   replaced 05-01 by b13
                                      renewed by c13 C4 05-01 08:00       (0: accepted first)
b13    l@acme.com       T_K       replacement of b12                    accepted, keeps 15:00 (0)
b14    m@acme.com       T_K       c14 C3 04-01                          replaced 04-10 by b15 (2)
b15    m@acme.com       T_K       replacement (c15 C4 04-10)            pending since 04-10 (2)
b16    n@hooli.com      T_A       none: issued by hand in 2023          accepted +5 h (0)
b17    s@acme.com       T_X       c21 C5 2023-06-01, backfilled:        accepted 1 h after it was
                                      created 2024-06-15 10:00            created (0)
=====  ===============  ========  ===================================  ==========================

Completions without a badge: c17 (C1, failed), c18 (C1, before C1's active_from), c19 (C9, no
rule), c20 (C5, eligible but T_X is archived), c22 (C1, eligible, not issued yet).  The rules:
C1→T_A (pass required, active from 2024-01-01), C2→T_B (no pass required), C3→T_K and
C4→T_K (one shared template), C5→T_X (archived).  The ledger: K1 failed then succeeded, K2
failed, K3 skipped ``already_has_badge``, K4 skipped ``no_rule`` (already derived).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from credly_ops import funnel
from credly_ops.access import SYSTEM_ACTOR
from credly_ops.funnel import FunnelError, FunnelFilter
from credly_ops.lms import save_completions
from credly_ops.models import (
    BadgeRule,
    BadgeTemplate,
    Completion,
    IssuedBadge,
    SuccessStatus,
    TemplateRef,
)
from credly_ops.reminders import reminders_sent
from credly_ops.rules import replace_rules
from credly_ops.store import Store, from_db_time, to_db_time
from credly_ops.sync import upsert_badges, upsert_templates

NOW = datetime(2024, 6, 30, 12, tzinfo=UTC)
T0 = datetime(2024, 6, 1, 10, tzinfo=UTC)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
NAMES = {"T_A": "Alpha", "T_B": "Beta", "T_K": "Kube", "T_X": "Retired"}


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@dataclass
class World:
    store: Store
    flt: FunnelFilter


def _badge(
    id: str,
    email: str,
    template: str,
    issued: datetime,
    state: str,
    changed: datetime | None = None,
    *,
    created: datetime | None = None,
    suppressed: bool = False,
    replaces: str | None = None,
    replacement: str | None = None,
    expires: datetime | None = None,
) -> IssuedBadge:
    return IssuedBadge(
        id=id,
        state=state,
        recipient_email=email,
        issued_to_first_name="First",
        issued_to_last_name="Last",
        issued_at=issued,
        created_at=created or issued,
        state_updated_at=changed,
        updated_at=changed or created or issued,
        badge_template=TemplateRef(id=template, name=NAMES[template]),
        suppress_badge_notification_email=suppressed,
        replaces_badge_id=replaces,
        replacement_badge_id=replacement,
        expires_at=expires,
    )


BADGES = [
    _badge("b1", "a@acme.com", "T_A", T0, "accepted", T0 + 2 * HOUR),
    _badge("b2", "b@acme.com", "T_A", T0 + HOUR, "accepted", T0 + HOUR + DAY),
    _badge("b3", "c@globex.com", "T_A", T0 + 2 * HOUR, "accepted", T0 + 2 * HOUR + 2 * DAY),
    _badge("b4", "d@globex.com", "T_A", T0 + 3 * HOUR, "accepted", T0 + 3 * HOUR + 4 * DAY),
    _badge("b5", "e@gmail.com", "T_A", T0 + 4 * HOUR, "accepted", T0 + 4 * HOUR + 10 * DAY),
    _badge("b6", "f@gmail.com", "T_A", T0, "pending", suppressed=True),
    _badge("b7", "g@acme.com", "T_A", at(2024, 6, 29, 13), "pending"),
    _badge("b8", "h@acme.com", "T_A", at(2024, 6, 28), "pending"),
    _badge("b9", "i@acme.com", "T_B", at(2024, 6, 10), "pending"),
    _badge("b10", "j@acme.com", "T_B", at(2024, 6, 5), "revoked", at(2024, 6, 7, 12)),
    _badge("b11", "k@globex.com", "T_B", at(2024, 6, 5), "rejected", at(2024, 6, 10)),
    _badge(
        "b12",
        "l@acme.com",
        "T_K",
        at(2024, 3, 1, 9),
        "replaced",
        at(2024, 5, 1, 8),
        replacement="b13",
    ),
    _badge(
        "b13",
        "l@acme.com",
        "T_K",
        at(2024, 3, 1, 9),
        "accepted",
        at(2024, 3, 1, 15),
        created=at(2024, 5, 1, 8),
        replaces="b12",
        expires=at(2025, 5, 1, 8),  # c13 + C4's 12 months: the renewal c13 made
    ),
    _badge(
        "b14",
        "m@acme.com",
        "T_K",
        at(2024, 4, 1),
        "replaced",
        at(2024, 4, 10),
        replacement="b15",
    ),
    _badge(
        "b15",
        "m@acme.com",
        "T_K",
        at(2024, 4, 1),
        "pending",
        created=at(2024, 4, 10),
        replaces="b14",
        expires=at(2025, 4, 10),  # c15 + 12 months
    ),
    _badge("b16", "n@hooli.com", "T_A", at(2023, 6, 1), "accepted", at(2023, 6, 1, 5)),
    _badge(
        "b17",
        "s@acme.com",
        "T_X",
        at(2023, 6, 1),
        "accepted",
        at(2024, 6, 15, 11),
        created=at(2024, 6, 15, 10),
    ),
]
HAND_REMINDERS = {
    "b1": 0,
    "b2": 0,
    "b3": 1,
    "b4": 1,
    "b5": 2,
    "b6": 0,
    "b7": 0,
    "b8": 1,
    "b9": 2,
    "b10": 1,
    "b11": 2,
    "b12": 0,
    "b13": 0,
    "b14": 2,
    "b15": 2,
    "b16": 0,
    "b17": 0,
}


def _completion(
    email: str, course: str, when: datetime, status: SuccessStatus | None = SuccessStatus.PASSED
) -> Completion:
    return Completion(
        email=email,
        first_name="First",
        last_name="Last",
        course_id=course,
        course_title=f"Course {course}",
        completed_at=when,
        status=status,
    )


FAILED = SuccessStatus.FAILED
COMPLETIONS = [
    _completion("a@acme.com", "C1", T0),  # c1
    _completion("b@acme.com", "C1", T0 + HOUR),  # c2
    _completion("c@globex.com", "C1", T0 + 2 * HOUR),  # c3
    _completion("d@globex.com", "C1", T0 + 3 * HOUR),  # c4
    _completion("e@gmail.com", "C1", T0 + 4 * HOUR),  # c5
    _completion("f@gmail.com", "C1", T0),  # c6
    _completion("g@acme.com", "C1", at(2024, 6, 29, 13)),  # c7
    _completion("h@acme.com", "C1", at(2024, 6, 28)),  # c8
    _completion("i@acme.com", "C2", at(2024, 6, 10), FAILED),  # c9
    _completion("j@acme.com", "C2", at(2024, 6, 5)),  # c10
    _completion("k@globex.com", "C2", at(2024, 6, 5), None),  # c11
    _completion("l@acme.com", "C3", at(2024, 3, 1, 9)),  # c12
    _completion("l@acme.com", "C4", at(2024, 5, 1, 8)),  # c13
    _completion("m@acme.com", "C3", at(2024, 4, 1)),  # c14
    _completion("m@acme.com", "C4", at(2024, 4, 10)),  # c15
    _completion("o@acme.com", "C1", at(2024, 6, 2), FAILED),  # c17
    _completion("p@acme.com", "C1", at(2023, 12, 1)),  # c18
    _completion("q@acme.com", "C9", at(2024, 6, 3)),  # c19
    _completion("r@acme.com", "C5", at(2024, 6, 4)),  # c20
    _completion("s@acme.com", "C5", at(2023, 6, 1)),  # c21
    _completion("t@acme.com", "C1", at(2024, 6, 20)),  # c22
]
RULES = [
    BadgeRule(course_id="C1", course_title="Course C1", template_id="T_A",
              active_from=at(2024, 1, 1)),
    BadgeRule(course_id="C2", course_title="Course C2", template_id="T_B", require_pass=False),
    BadgeRule(course_id="C3", course_title="Course C3", template_id="T_K"),
    BadgeRule(course_id="C4", course_title="Course C4", template_id="T_K", method="update",
              expiration_months=12),
    BadgeRule(course_id="C5", course_title="Course C5", template_id="T_X",
              active_from=at(2023, 1, 1)),
]  # fmt: skip
LEDGER = [
    # key, row, status, outcome, reason, email, course, template, completed_at, updated_at
    ("K1", 1, "failed", "issue", "new_badge", "x@acme.com", "C1", "T_A", at(2024, 6, 12)),
    ("K1", 2, "succeeded", "issue", "new_badge", "x@acme.com", "C1", "T_A", at(2024, 6, 12)),
    ("K2", 3, "failed", "issue", "new_badge", "t@acme.com", "C1", "T_A", at(2024, 6, 20)),
    ("K3", 4, "planned", "skip", "already_has_badge", "v@globex.com", "C2", "T_B",
     at(2024, 6, 16)),
    ("K4", 5, "planned", "skip", "no_rule", "w@acme.com", "C9", None, at(2024, 6, 17)),
]  # fmt: skip


def build_world(path: Path) -> Store:
    store = Store(path)
    with store.transaction() as cur:
        upsert_templates(
            cur,
            [
                BadgeTemplate(id=tid, name=name, state="archived" if tid == "T_X" else "active")
                for tid, name in NAMES.items()
            ],
            synced_at=NOW,
        )
        upsert_badges(cur, BADGES, synced_at=NOW)
        save_completions(cur, COMPLETIONS, source="test", loaded_at=NOW)
        for n, (key, row, status, outcome, reason, email, course, tid, done) in enumerate(LEDGER):
            cur.execute(
                "INSERT INTO ledger (job_id, row_no, key, email, course_id, completed_at, "
                "template_id, outcome, reason, status, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    "job-1",
                    row,
                    key,
                    email,
                    course,
                    to_db_time(done),
                    tid,
                    outcome,
                    reason,
                    status,
                    to_db_time(done + timedelta(minutes=n)),
                ],
            )
        for sync_id, taken, rows in (
            (1, at(2024, 6, 1), [("T_A", "accepted", 3), ("T_A", "pending", 3)]),
            (
                2,
                at(2024, 6, 15),
                [
                    ("T_A", "accepted", 5),
                    ("T_A", "pending", 2),
                    ("T_A", "replaced", 1),
                    ("T_B", "pending", 2),
                ],
            ),
        ):
            for tid, state, count in rows:
                cur.execute(
                    "INSERT INTO badge_snapshots VALUES (?, ?, ?, ?, ?)",
                    [sync_id, to_db_time(taken), tid, state, count],
                )
    replace_rules(store, RULES, actor=SYSTEM_ACTOR)
    return store


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    store = build_world(tmp_path_factory.mktemp("funnel") / "world.duckdb")
    yield World(store, FunnelFilter(now=NOW))


def f(world: World, **kw: object) -> FunnelFilter:
    return FunnelFilter(now=NOW, **kw)  # type: ignore[arg-type]


# -- reminders: SQL == credly_ops.reminders, badge by badge ------------------------------------


def test_reminders_per_badge_match_hand_counts(world: World) -> None:
    frame = funnel.badge_reminders(world.store, world.flt)
    assert dict(zip(frame["id"], frame["reminders"].astype(int), strict=True)) == HAND_REMINDERS
    roots = dict(zip(frame["id"], frame["root_id"], strict=True))
    assert roots["b13"] == "b12" and roots["b15"] == "b14" and roots["b1"] == "b1"


def _python_reminders(badges: pd.DataFrame, now: datetime) -> dict[str, int]:
    """``reminders_sent`` for every badge row, fed the way the funnel documents it."""
    rows = badges.set_index("id").to_dict("index")
    root: dict[str, str] = {}
    for badge_id in rows:
        cursor = badge_id
        while rows[cursor]["replaces_badge_id"] in rows:
            cursor = rows[cursor]["replaces_badge_id"]
        root[badge_id] = cursor
    ends: dict[str, dict] = {}
    for badge_id, row in rows.items():
        if (
            not isinstance(row["replacement_badge_id"], str)
            or row["replacement_badge_id"] not in rows
        ):
            ends[root[badge_id]] = row

    def ts(value: object) -> datetime | None:
        return None if pd.isna(value) else from_db_time(pd.Timestamp(value).to_pydatetime())

    out = {}
    for badge_id, row in rows.items():
        end = ends[root[badge_id]]
        chain_accepted = (
            ts(end["state_updated_at"]) or ts(end["updated_at"])
            if end["state"] == "accepted"
            else None
        )
        sent = ts(row["created_at"]) or ts(row["issued_at"])
        assert sent is not None
        until = None
        if row["state"] != "pending":
            until = ts(row["state_updated_at"]) or ts(row["updated_at"]) or sent
            if chain_accepted is not None:
                until = min(until, chain_accepted)
        out[badge_id] = reminders_sent(
            sent_at=sent,
            pending_until=until,
            now=now,
            suppressed=bool(row["suppress_notification"]),
        )
    return out


def test_reminders_sql_equals_reminders_sent_on_every_fixture_badge(world: World) -> None:
    with world.store.session() as cur:
        badges = cur.execute("SELECT * FROM badges").df()
    expected = _python_reminders(badges, NOW)
    assert expected == HAND_REMINDERS  # the reference itself agrees with the hand counts
    for now in (NOW, at(2024, 6, 2, 10), at(2024, 6, 5, 14), at(2024, 4, 12)):
        frame = funnel.badge_reminders(world.store, FunnelFilter(now=now))
        got = dict(zip(frame["id"], frame["reminders"].astype(int), strict=True))
        assert got == _python_reminders(badges, now), now


def test_reminders_sql_equals_reminders_sent_on_the_demo_world(demo_site) -> None:
    store = Store(demo_site.db_path)
    with store.session() as cur:
        badges = cur.execute("SELECT * FROM badges").df()
    now = from_db_time(pd.Timestamp(badges["updated_at"].max()).to_pydatetime()) + 3 * HOUR
    frame = funnel.badge_reminders(store, FunnelFilter(now=now))
    got = dict(zip(frame["id"], frame["reminders"].astype(int), strict=True))
    expected = _python_reminders(badges, now)
    assert len(got) == len(badges) > 10_000
    assert got == expected
    assert sum(got.values()) > 0 and any(badges["replaces_badge_id"].notna())


# -- headline numbers --------------------------------------------------------------------------


def test_summary_on_the_whole_world(world: World) -> None:
    result = funnel.summary(world.store, world.flt).as_json()
    assert result["completions"] == 21
    assert result["eligible"] == 18
    # the badges of completions: c12 issued b12 (now b13), c13 renewed it, c14 issued b14
    # (now b15), c15 renewed it — each completion once; b16 came from no known completion
    assert result["issued"] == 16
    assert result["renewed"] == 2
    assert (result["issued_outside"], result["accepted_outside"]) == (1, 1)
    assert result["outside_acceptance_rate"] == 1.0
    assert result["blocked_retakes"] == 0
    assert result["accepted"] == 8  # c1–c5, c12, c13, c21
    assert result["pending"] == 6
    assert result["pending_by_reminders"] == {"0": 2, "1": 1, "2": 3}
    assert result["rejected"] == 1
    assert result["revoked"] == 1
    assert result["failed"] == 1  # c22 (K2); K1's rows are for no cached completion
    assert result["skipped"] == {
        "before_active_from": 1,
        "no_rule": 1,  # c19 only: the ledger's no_rule row is derived, not counted twice
        "not_passed": 1,
        "template_inactive": 1,  # c20; c21 got its badge before T_X was archived
    }
    assert result["reminders_sent"] == 18  # b14 + b15's four, for c14 and for c15
    assert result["reminders_per_badge"] == round(18 / 16, 4)
    assert result["acceptance_rate"] == round(8 / 16, 6)
    assert result["accepted_before_first_reminder"] == 5
    assert result["accepted_between_reminders"] == 2
    assert result["accepted_after_second_reminder"] == 1
    # hours 1, 2, 6, 6, 24, 48, 96, 240
    assert result["median_hours_to_accept"] == 15.0
    assert result["p90_hours_to_accept"] == pytest.approx(96 + 0.3 * 144)
    assert result["as_of"] == NOW.isoformat()


def test_each_measure_alone_matches_the_summary(world: World) -> None:
    flt = world.flt
    assert funnel.completion_counts(world.store, flt) == funnel.CompletionCounts(21, 18)
    assert funnel.badge_states(world.store, flt) == funnel.BadgeStates(16, 8, 6, 1, 1)
    assert funnel.pending_by_reminders(world.store, flt) == {"0": 2, "1": 1, "2": 3}
    assert funnel.acceptance_rate(world.store, flt) == pytest.approx(8 / 16)
    timing = funnel.time_to_accept(world.store, flt)
    assert (timing.accepted, timing.median_hours) == (8, 15.0)
    assert funnel.acceptance_by_reminders(world.store, flt) == {
        "before_first_reminder": 5,
        "between_reminders": 2,
        "after_second_reminder": 1,
    }
    reminders = funnel.reminders_total(world.store, flt)
    assert (reminders.total, reminders.badges) == (18, 16)
    assert funnel.renewed(world.store, flt) == 2
    assert funnel.issued_outside(world.store, flt) == funnel.IssuedOutside(1, 1)
    assert funnel.blocked_retakes(world.store, flt) == 0
    assert funnel.failed_to_issue(world.store, flt) == 1
    assert funnel.skipped_by_reason(world.store, flt)["template_inactive"] == 1


def test_measures_share_one_preparation_in_a_unit_of_work(world: World) -> None:
    with world.store.session() as cur:
        first = funnel.prepare(cur, FunnelFilter())
        assert first.now is not None
        again = funnel.prepare(cur, FunnelFilter())
        assert again.now == first.now  # "now" is fixed for the unit of work
        assert funnel.badge_states(cur, FunnelFilter()).issued == 16
        assert funnel.badge_states(cur, f(world, course_id="C2")).issued == 3
        assert funnel.badge_states(cur, FunnelFilter()).issued == 16


def test_pending_badges_look_different_at_another_now(world: World) -> None:
    # b7 is issued after this moment (the cache is what it is) and b8's first reminder is
    # due at 06-29 00:00: neither has had one
    earlier = FunnelFilter(now=at(2024, 6, 28, 12))
    # (b15 is pending for two completions: c14 issued its chain, c15 renewed it)
    assert funnel.pending_by_reminders(world.store, earlier) == {"0": 3, "1": 0, "2": 3}
    # b7 has had one (06-30 13:00), b8 both (06-29 and 07-02)
    later = FunnelFilter(now=at(2024, 7, 3))
    assert funnel.pending_by_reminders(world.store, later) == {"0": 1, "1": 1, "2": 4}


# -- filters -----------------------------------------------------------------------------------


def test_course_filter_counts_only_badges_from_that_course(world: World) -> None:
    c1 = funnel.summary(world.store, f(world, course_id="C1"))
    assert (c1.completions, c1.eligible, c1.issued, c1.accepted) == (11, 9, 8, 5)
    assert c1.pending_by_reminders == {"0": 2, "1": 1, "2": 0}
    assert c1.failed == 1
    assert c1.skipped == {"before_active_from": 1, "not_passed": 1}
    c4 = funnel.summary(world.store, f(world, course_id="C4"))
    # the recertification course renewed the C3 badges: each renewal is its completion's badge
    assert (c4.completions, c4.eligible, c4.issued, c4.renewed) == (2, 2, 2, 2)
    assert (c4.accepted, c4.pending) == (1, 1) and c4.median_hours_to_accept == 6.0
    c9 = funnel.summary(world.store, f(world, course_id="C9"))
    assert (c9.completions, c9.eligible, c9.issued, c9.skipped) == (1, 0, 0, {"no_rule": 1})


def test_template_filter_counts_badges_not_from_a_completion_apart(world: World) -> None:
    ta = funnel.summary(world.store, f(world, template_id="T_A"))
    assert (ta.completions, ta.eligible, ta.issued, ta.accepted) == (11, 9, 8, 5)
    assert (ta.issued_outside, ta.accepted_outside) == (1, 1)  # b16
    tk = funnel.summary(world.store, f(world, template_id="T_K"))
    assert (tk.completions, tk.issued, tk.accepted, tk.pending, tk.reminders_sent) == (
        4,
        4,
        2,
        2,
        8,
    )


def test_domain_filter(world: World) -> None:
    acme = funnel.summary(world.store, f(world, domain="@ACME.com"))
    assert (acme.completions, acme.issued, acme.accepted) == (16, 11, 5)
    assert funnel.summary(world.store, f(world, domain="example.org")).issued == 0


def test_date_range_by_completion_and_by_issue(world: World) -> None:
    june = f(world, since=date(2024, 6, 1), until=date(2024, 6, 30))
    by_completion = funnel.summary(world.store, june)
    assert (by_completion.completions, by_completion.issued, by_completion.accepted) == (15, 11, 5)
    assert by_completion.failed == 1 and "already_has_badge" not in by_completion.skipped
    by_issue = funnel.summary(
        world.store, f(world, since=date(2024, 6, 1), until=date(2024, 6, 30), by="issue")
    )
    # b17 carries a 2023 issued_at but was created (sent) in June
    assert (by_issue.completions, by_issue.issued, by_issue.accepted) == (15, 12, 6)
    one_day = funnel.summary(world.store, f(world, since=date(2024, 6, 5), until=date(2024, 6, 5)))
    assert (one_day.completions, one_day.issued, one_day.rejected, one_day.revoked) == (2, 2, 1, 1)


def test_previous_period_has_equal_length() -> None:
    june = FunnelFilter(since=date(2024, 6, 1), until=date(2024, 6, 30), course_id="C1")
    before = june.previous()
    assert before is not None
    assert (before.since, before.until, before.course_id) == (
        date(2024, 5, 2),
        date(2024, 5, 31),
        "C1",
    )
    open_ended = FunnelFilter(since=date(2024, 6, 21), now=NOW).previous()
    assert open_ended is not None and (open_ended.since, open_ended.until) == (
        date(2024, 6, 11),
        date(2024, 6, 20),
    )
    assert FunnelFilter().previous() is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"by": "sync"}, "by must be"),
        ({"since": date(2024, 2, 1), "until": date(2024, 1, 1)}, "is after"),
        ({"since": "2024-01-01"}, "must be a date"),
    ],
)
def test_bad_filters_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(FunnelError, match=message):
        FunnelFilter(**kwargs)


def test_blank_filter_fields_mean_no_filter() -> None:
    assert FunnelFilter(course_id="  ", template_id="", domain=" @ ") == FunnelFilter()


# -- tables ------------------------------------------------------------------------------------


def _rows(frame: pd.DataFrame, key: str) -> dict[object, dict]:
    return {
        (None if pd.isna(k) else k): row
        for k, row in zip(frame[key], frame.to_dict("records"), strict=True)
    }


def test_breakdown_by_course(world: World) -> None:
    frame = funnel.breakdown(world.store, world.flt, "course")
    assert list(frame.columns[:4]) == ["course_id", "course_title", "template_id", "template_name"]
    courses = _rows(frame[frame["course_id"].notna()], "course_id")
    c1, c2, c3, c4, c5, c9 = (courses[c] for c in ("C1", "C2", "C3", "C4", "C5", "C9"))
    assert (c1["completions"], c1["eligible"], c1["issued"], c1["accepted"]) == (11, 9, 8, 5)
    assert (c1["pending_0"], c1["pending_1"], c1["pending_2"], c1["failed"]) == (2, 1, 0, 1)
    assert c1["template_name"] == "Alpha" and c1["acceptance_rate"] == pytest.approx(5 / 8)
    assert (c2["issued"], c2["accepted"], c2["rejected"], c2["revoked"]) == (3, 0, 1, 1)
    assert c2["acceptance_rate"] == 0.0
    assert (c3["issued"], c3["accepted"], c3["pending_2"], c3["reminders_sent"]) == (2, 1, 1, 4)
    # c13 and c15 renewed the C3 badges: each renewal is issued once, for its completion
    assert (c4["completions"], c4["issued"], c4["accepted"]) == (2, 2, 1)
    assert (c5["completions"], c5["eligible"], c5["issued"], c5["accepted"]) == (2, 2, 1, 1)
    assert c9["eligible"] == 0 and pd.isna(c9["template_id"])
    orphans = frame[frame["course_id"].isna()]
    assert orphans[["template_id", "issued", "accepted"]].values.tolist() == [["T_A", 1, 1]]
    assert pd.isna(orphans["course_title"].iloc[0])
    assert frame["issued"].sum() == 17 and frame["completions"].sum() == 21  # 16 + b16
    # sorted by acceptance rate, lowest first; courses that issued nothing last
    rates = frame["acceptance_rate"].dropna().tolist()
    assert rates == sorted(rates) and pd.isna(frame["acceptance_rate"].iloc[-1])


def test_breakdown_by_template_and_domain(world: World) -> None:
    templates = _rows(funnel.breakdown(world.store, world.flt, "template"), "template_id")
    # only the badges of completions: b16 (issued outside) is on the course breakdown's own row
    assert (templates["T_A"]["completions"], templates["T_A"]["issued"]) == (11, 8)
    assert templates["T_A"]["median_hours_to_accept"] == 48.0  # 2, 24, 48, 96, 240
    assert (templates["T_K"]["completions"], templates["T_K"]["issued"]) == (4, 4)
    assert templates[None]["completions"] == 1  # c19, no rule
    assert templates["T_X"]["template_name"] == "Retired"
    domains = _rows(funnel.breakdown(world.store, world.flt, "domain"), "domain")
    assert (domains["acme.com"]["completions"], domains["acme.com"]["issued"]) == (16, 11)
    assert "hooli.com" not in domains  # b16 only: issued outside
    assert domains["acme.com"]["failed"] == 1
    assert sum(d["issued"] for d in domains.values()) == 16


def test_laggards_are_flagged(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = funnel.breakdown(world.store, world.flt, "course")
    assert not frame["laggard"].any()  # no course issued the minimum of 20 badges
    monkeypatch.setattr("credly_ops.funnel.breakdowns.LAGGARD_MIN_ISSUED", 2)
    frame = funnel.breakdown(world.store, world.flt, "course")
    assert frame.loc[frame["laggard"], "course_id"].tolist() == ["C2"]  # 0 % vs 53 % overall


def test_cohorts_by_issue_month(world: World) -> None:
    frame = funnel.cohorts(world.store, world.flt)
    months = {
        m.strftime("%Y-%m"): row
        for m, row in zip(frame["month"], frame.to_dict("records"), strict=True)
    }
    # c13 renewed b12 in May; b16 (no known completion) is not in a cohort
    assert sorted(months) == ["2023-06", "2024-03", "2024-04", "2024-05", "2024-06"]
    june = months["2024-06"]
    assert (june["issued"], june["accepted"], june["pending"]) == (11, 5, 4)
    assert june["acceptance_rate"] == pytest.approx(5 / 11)
    assert (months["2023-06"]["issued"], months["2023-06"]["accepted"]) == (1, 1)
    by_issue = funnel.cohorts(world.store, f(world, by="issue"))
    assert by_issue["issued"].sum() == 16
    assert by_issue.loc[by_issue["month"] == pd.Timestamp("2024-06-01"), "issued"].item() == 12


def test_time_to_accept_histogram(world: World) -> None:
    frame = funnel.time_to_accept_histogram(world.store, world.flt)
    # hours 1 | 2, 6, 6 | 24 | 48 | 96 | - | 240 (b16's 5 h is issued outside)
    assert frame["badges"].tolist() == [1, 3, 1, 1, 1, 0, 1, 0, 0]
    # 24 h exactly sits in the bin before the first reminder, 96 h before the second
    assert frame.loc[frame["bin"] == "6–24 h", "phase"].item() == "before_first_reminder"
    assert frame.loc[frame["bin"] == "2–4 days", "phase"].item() == "between_reminders"
    by_phase = frame.groupby("phase")["badges"].sum().to_dict()
    assert by_phase == {
        "before_first_reminder": 5,
        "between_reminders": 2,
        "after_second_reminder": 1,
    }


def test_acceptance_over_time_from_snapshots(world: World) -> None:
    frame = funnel.acceptance_over_time(world.store, world.flt)
    assert frame[["issued", "accepted", "pending"]].values.tolist() == [[6, 3, 3], [9, 5, 4]]
    assert frame["acceptance_rate"].tolist() == pytest.approx([0.5, 5 / 9])
    only_a = funnel.acceptance_over_time(world.store, f(world, course_id="C1"))
    assert only_a["issued"].tolist() == [6, 7]
    later = funnel.acceptance_over_time(world.store, f(world, since=date(2024, 6, 10)))
    assert later["issued"].tolist() == [9]


def test_students_of_a_course(world: World) -> None:
    frame = funnel.students(world.store, f(world, course_id="C1"))
    assert list(frame.columns) == list(funnel.STUDENT_COLUMNS)
    outcomes = dict(zip(frame["email"], frame["outcome"], strict=True))
    assert len(frame) == 11
    assert outcomes["o@acme.com"] == "not_passed"
    assert outcomes["p@acme.com"] == "before_active_from"
    assert outcomes["t@acme.com"] == "failed"  # K2
    assert outcomes["b@acme.com"] == "issued"
    row = frame[frame["email"] == "b@acme.com"].iloc[0]
    assert (row["badge_id"], row["badge_state"], row["hours_to_accept"]) == ("b2", "accepted", 24)
    assert frame["completed_at"].is_monotonic_decreasing
    kube = funnel.students(world.store, f(world, course_id="C3"))
    chain = kube[kube["email"] == "l@acme.com"].iloc[0]
    assert (chain["badge_id"], chain["badge_state"], chain["reminders_sent"]) == (
        "b13",
        "accepted",
        0,
    )
    recert = funnel.students(world.store, f(world, course_id="C4"))
    renewal = recert[recert["email"] == "l@acme.com"].iloc[0]
    assert (renewal["outcome"], renewal["badge_id"], renewal["badge_state"]) == (
        "renewed",
        "b13",
        "accepted",
    )
    alpha = funnel.students(world.store, f(world, template_id="T_A"), limit=100)
    assert alpha.loc[alpha["email"] == "n@hooli.com", "outcome"].item() == "not_from_a_completion"
    assert len(funnel.students(world.store, world.flt, limit=3)) == 3


def test_filter_options(world: World) -> None:
    options = funnel.filter_options(world.store, domains=True)
    assert [c for c, _ in options.courses] == ["C1", "C2", "C3", "C4", "C5", "C9"]
    assert dict(options.templates)["T_X"] == "Retired"
    assert options.domains[0] == "acme.com" and "hooli.com" in options.domains
    assert funnel.filter_options(world.store).domains == []
    assert funnel.cache_counts(world.store) == (21, 17)


def test_full_report_and_summary_rows(world: World) -> None:
    report = funnel.full_report(world.store, world.flt)
    assert (report.summary.issued, report.summary.issued_outside) == (16, 1)
    assert report.by_course["issued"].sum() == 17  # with b16's own row
    assert report.by_template["issued"].sum() == 16
    assert report.cohorts["issued"].sum() == 16
    rows = {r["measure"]: r["value"] for r in funnel.summary_rows(report.summary)}
    assert rows["pending_by_reminders.2"] == 3 and rows["filter.by"] == "completion"


def test_empty_cache(tmp_path: Path) -> None:
    store = Store(tmp_path / "empty.duckdb")
    result = funnel.summary(store, FunnelFilter(now=NOW))
    assert (result.completions, result.issued, result.failed) == (0, 0, 0)
    assert result.acceptance_rate is None and result.median_hours_to_accept is None
    assert result.pending_by_reminders == {"0": 0, "1": 0, "2": 0}
    report = funnel.full_report(store, FunnelFilter(now=NOW))
    assert report.by_course.empty and report.cohorts.empty and report.over_time.empty
    assert report.time_to_accept["badges"].sum() == 0
    assert funnel.students(store, FunnelFilter(now=NOW)).empty
    assert funnel.filter_options(store, domains=True) == funnel.FilterOptions()
    assert funnel.cache_counts(store) == (0, 0)


def test_a_badge_linked_by_course_title_and_duplicate_keys_count_once(tmp_path: Path) -> None:
    """A completion loaded twice (once with its course id, once by title only) and two
    courses sharing a template at the same second still make one issued badge."""
    store = Store(tmp_path / "dupes.duckdb")
    when = at(2024, 5, 1, 12)
    with store.transaction() as cur:
        upsert_templates(cur, [BadgeTemplate(id="T_K", name="Kube")], synced_at=NOW)
        upsert_badges(
            cur, [_badge("z1", "z@acme.com", "T_K", when, "accepted", when + HOUR)], synced_at=NOW
        )
        twice = [
            _completion("z@acme.com", "C3", when),
            Completion(email="Z@acme.com", course_title="course c3", completed_at=when),
            _completion("z@acme.com", "C4", when),
        ]
        save_completions(cur, twice, source="test", loaded_at=NOW)
    replace_rules(store, RULES, actor=SYSTEM_ACTOR)
    result = funnel.summary(store, FunnelFilter(now=NOW))
    assert (result.completions, result.issued, result.accepted) == (3, 1, 1)
    courses = _rows(funnel.breakdown(store, FunnelFilter(now=NOW), "course"), "course_id")
    assert courses["C3"]["completions"] == 2 and courses["C3"]["issued"] == 1
    assert courses["C4"]["issued"] == 0


def test_a_title_two_rules_share_is_ambiguous(tmp_path: Path) -> None:
    store = Store(tmp_path / "titles.duckdb")
    when = at(2024, 5, 1, 12)
    with store.transaction() as cur:
        upsert_templates(cur, [BadgeTemplate(id="T_A", name="Alpha")], synced_at=NOW)
        save_completions(
            cur,
            [
                Completion(email="y@acme.com", course_title=" SHARED title ", completed_at=when),
                Completion(email="y@acme.com", course_title="Only One", completed_at=when),
            ],
            source="test",
            loaded_at=NOW,
        )
    replace_rules(
        store,
        [
            BadgeRule(course_id="S1", course_title="Shared Title", template_id="T_A"),
            BadgeRule(course_id="S2", course_title="shared title", template_id="T_A"),
            BadgeRule(course_id="O1", course_title="Only one", template_id="T_A"),
        ],
        actor=SYSTEM_ACTOR,
    )
    result = funnel.summary(store, FunnelFilter(now=NOW))
    assert (result.completions, result.eligible) == (2, 1)
    assert result.skipped == {"ambiguous_course_title": 1}
    courses = _rows(funnel.breakdown(store, FunnelFilter(now=NOW), "course"), "course_id")
    assert courses["O1"]["eligible"] == 1  # found by its title
    assert courses["SHARED title"]["eligible"] == 0 and pd.isna(
        courses["SHARED title"]["template_id"]
    )


def test_the_command_line_report(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    from credly_ops import cli

    args = ["--db", str(world.store.path), "funnel", "--course", "C1", "--since", "2024-06-01"]
    assert cli.main([*args, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["completions"], printed["issued"], printed["failed"]) == (10, 8, 1)
    assert printed["filter"]["course_id"] == "C1" and printed["filter"]["since"] == "2024-06-01"
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    assert "course C1" in text and "failed to issue" in text
    assert re.search(r"issued\s+8 ", text) and "acceptance rate 62.5%" in text
    assert "not_passed: The student failed the course" in text
    bad = [
        "--db",
        str(world.store.path),
        "funnel",
        "--since",
        "2024-02-01",
        "--until",
        "2024-01-01",
    ]
    assert cli.main(bad) == 2
    assert "is after" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["--db", str(world.store.path), "funnel", "--since", "June"])

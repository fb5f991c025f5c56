"""Skilljar completions into the cache: real HTTP to the local Skilljar, real DuckDB files."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from credly_ops.access import SYSTEM_ACTOR
from credly_ops.completions_sync import (
    SETTING_OVERLAP_DAYS,
    CompletionsRead,
    OtherSkilljarAccount,
    high_water_mark,
    last_completions_read,
    read_student_completions,
    sync_completions,
)
from credly_ops.config import ConfigError
from credly_ops.skilljar import SkilljarClient
from credly_ops.store import Store
from tests.skilljar.conftest import CLIENT_SECRET, Site

NOW = datetime.now(UTC).replace(microsecond=0)


def _store(tmp_path: Path) -> Store:
    return Store(tmp_path / "cache.duckdb")


def _rows(store: Store) -> list[tuple[str, str, datetime, str | None]]:
    with store.session() as cur:
        return [
            (str(r[0]), str(r[1]), r[2], r[3])
            for r in cur.execute(
                "SELECT email, course_id, completed_at, status FROM completions "
                "WHERE source = 'skilljar' ORDER BY completed_at, email"
            ).fetchall()
        ]


def _complete(site: Site, email: str, when: datetime, course: str = "crs-py", **kw: object) -> str:
    e = site.world.add_enrollment(
        email=email, course_id=course, completed_at=when, success_status="PASSED", **kw
    )
    return e.id


def _seed_spread(site: Site) -> None:
    """Ten completions, one a day from 10 days ago to 1 day ago."""
    for day in range(1, 11):
        _complete(site, f"student{day}@example.com", NOW - timedelta(days=day))


def test_first_read_is_full_and_stores_every_completion_once(
    skilljar: Site, make_client: Callable[..., SkilljarClient], tmp_path: Path
) -> None:
    _seed_spread(skilljar)
    skilljar.world.add_enrollment(email="late@example.com", course_id="crs-py")  # not completed
    store = _store(tmp_path)
    result = sync_completions(store, make_client())
    assert (result.completions, result.new, result.pages) == (10, 10, 1)
    assert result.high_water == NOW - timedelta(days=1)
    assert set(result.as_json()) == {"completions", "new", "pages", "seconds"}
    assert last_completions_read(store)["kind"] == "full"  # type: ignore[index]
    assert len(_rows(store)) == 10
    assert {r[3] for r in _rows(store)} == {"passed"}


def test_incremental_read_asks_only_for_new_completions_and_the_overlap(
    skilljar: Site, make_client: Callable[..., SkilljarClient], tmp_path: Path
) -> None:
    _seed_spread(skilljar)
    store = _store(tmp_path)
    client = make_client()
    sync_completions(store, client)
    _complete(skilljar, "fresh1@example.com", NOW)
    _complete(skilljar, "fresh2@example.com", NOW - timedelta(hours=2))
    result = sync_completions(store, client)
    assert (result.new, result.completions) == (2, 12)
    last = last_completions_read(store)
    assert last is not None and last["kind"] == "incremental"
    # mark was 1 day ago, overlap 3 days: rows of days 1..4 re-read, plus the two new ones
    assert last["since"] == NOW - timedelta(days=1) - timedelta(days=3)
    assert last["read"] == 2 + 4
    assert result.high_water == NOW


def test_a_back_dated_completion_inside_the_overlap_is_picked_up_once(
    skilljar: Site, make_client: Callable[..., SkilljarClient], tmp_path: Path
) -> None:
    _seed_spread(skilljar)
    store = _store(tmp_path)
    client = make_client()
    sync_completions(store, client)
    # an admin marks a student complete by hand, dated two days before the latest completion
    _complete(skilljar, "backdated@example.com", NOW - timedelta(days=3))
    assert sync_completions(store, client).new == 1
    again = sync_completions(store, client)
    assert (again.new, again.completions) == (0, 11)
    assert sum(1 for r in _rows(store) if r[0] == "backdated@example.com") == 1


def test_a_completion_back_dated_past_the_overlap_needs_a_full_read(
    skilljar: Site, make_client: Callable[..., SkilljarClient], tmp_path: Path
) -> None:
    _seed_spread(skilljar)
    store = _store(tmp_path)
    client = make_client()
    sync_completions(store, client)
    _complete(skilljar, "ancient@example.com", NOW - timedelta(days=30))
    assert sync_completions(store, client).new == 0
    full = sync_completions(store, client, full=True)
    assert (full.new, full.completions) == (1, 11)
    # a wider overlap, given by the caller, reaches it too
    _complete(skilljar, "older@example.com", NOW - timedelta(days=20))
    assert sync_completions(store, client, overlap=timedelta(days=25)).new == 1


def test_the_overlap_comes_from_the_cache_setting(
    skilljar: Site, make_client: Callable[..., SkilljarClient], tmp_path: Path
) -> None:
    _seed_spread(skilljar)
    store = _store(tmp_path)
    client = make_client()
    sync_completions(store, client)
    store.set_setting(SETTING_OVERLAP_DAYS, "0", actor=SYSTEM_ACTOR)
    _complete(skilljar, "inside3days@example.com", NOW - timedelta(days=2))
    assert sync_completions(store, client).new == 0  # no overlap: missed
    store.set_setting(SETTING_OVERLAP_DAYS, "soon", actor=SYSTEM_ACTOR)
    with pytest.raises(ConfigError, match=SETTING_OVERLAP_DAYS):
        sync_completions(store, client)


def test_a_re_read_never_duplicates_and_a_retake_is_a_second_completion(
    skilljar: Site, make_client: Callable[..., SkilljarClient], tmp_path: Path
) -> None:
    _seed_spread(skilljar)
    store = _store(tmp_path)
    client = make_client()
    first = sync_completions(store, client, full=True)
    second = sync_completions(store, client, full=True)
    assert (second.new, second.completions) == (0, first.completions)
    # the same enrollment completed again later (a retake): keyed by (enrollment, completed_at)
    enrollment = next(iter(skilljar.world.enrollments))
    skilljar.world.complete(enrollment, NOW + timedelta(minutes=5), "PASSED", 99.0)
    third = sync_completions(store, client)
    assert (third.new, third.completions) == (1, 11)


def test_high_water_is_the_largest_completion_whatever_the_order(
    skilljar: Site, make_client: Callable[..., SkilljarClient], tmp_path: Path
) -> None:
    # enrollment order is not completion order: the latest completion comes first
    _complete(skilljar, "newest@example.com", NOW)
    for n in range(150):
        _complete(skilljar, f"s{n}@example.com", NOW - timedelta(days=40, minutes=n))
    store = _store(tmp_path)
    result = sync_completions(store, make_client())
    assert result.pages == 2 and result.new == 151
    assert high_water_mark(store) == NOW


def test_token_expiry_mid_read_and_429_503_are_survived(
    skilljar: Site, make_client: Callable[..., SkilljarClient], tmp_path: Path
) -> None:
    for n in range(250):
        _complete(skilljar, f"s{n}@example.com", NOW - timedelta(minutes=n))
    skilljar.control(
        "faults",
        {
            "queue": [
                {"status": 429, "count": 1, "path": "/v2/enrollments", "retry_after": "1"},
                {"status": 503, "count": 2, "path": "/v2/enrollments"},
            ]
        },
    )
    client = make_client()
    pages_seen: list[int] = []

    def expire_after_first_page(read: int, _message: str) -> None:
        pages_seen.append(read)
        if len(pages_seen) == 1:
            skilljar.control("tokens/expire")

    store = _store(tmp_path)
    result = sync_completions(store, client, progress=expire_after_first_page)
    assert (result.new, result.pages) == (250, 3)
    assert client.grants == 2  # one more token after the expiry
    assert skilljar.control("faults", {})["injected"] == 3
    assert len(_rows(store)) == 250


def test_a_read_that_fails_is_recorded_and_keeps_the_pages_it_stored(
    skilljar: Site, make_client: Callable[..., SkilljarClient], tmp_path: Path
) -> None:
    for n in range(150):
        _complete(skilljar, f"s{n}@example.com", NOW - timedelta(minutes=n))
    store = _store(tmp_path)
    client = make_client(max_attempts=1)

    def break_the_second_page(read: int, _message: str) -> None:
        skilljar.control("faults", {"queue": [{"status": 503, "count": 5}]})

    with pytest.raises(Exception, match="503"):
        sync_completions(store, client, progress=break_the_second_page)
    last = last_completions_read(store)
    assert last is not None and last["status"] == "failed" and last["pages"] == 1
    assert len(_rows(store)) == 100
    assert high_water_mark(store) is None  # the mark moves only with a finished read
    with store.session() as cur:
        audited = cur.execute(
            "SELECT outcome, detail FROM audit WHERE action = 'completions.read'"
        ).fetchall()
    assert audited == [("failed", '{"error": "ServerError"}')]
    skilljar.control("faults", {"clear": True})
    assert sync_completions(store, client).new == 50


def test_another_skilljar_account_is_refused_before_reading(
    skilljar: Site, make_client: Callable[..., SkilljarClient], tmp_path: Path
) -> None:
    _seed_spread(skilljar)
    store = _store(tmp_path)
    sync_completions(store, make_client())
    before = skilljar.requests("GET /v2/enrollments")
    other = make_client(api_url=skilljar.url.replace("127.0.0.1", "localhost"))
    with pytest.raises(OtherSkilljarAccount, match="one cache reads one Skilljar account"):
        sync_completions(store, other)
    with pytest.raises(OtherSkilljarAccount):
        sync_completions(store, make_client(domain="academy.example.com"))
    assert skilljar.requests("GET /v2/enrollments") == before


def test_a_student_read_takes_only_that_students_course(
    skilljar: Site, make_client: Callable[..., SkilljarClient], tmp_path: Path
) -> None:
    _seed_spread(skilljar)
    _complete(skilljar, "hint@example.com", NOW, course="crs-py")
    _complete(skilljar, "hint@example.com", NOW, course="crs-cloud")
    store = _store(tmp_path)
    client = make_client()
    result = read_student_completions(store, client, email="Hint@Example.com", course_id="crs-py")
    assert isinstance(result, CompletionsRead)
    assert (result.new, result.completions) == (1, 1)
    assert _rows(store)[0][:2] == ("hint@example.com", "crs-py")
    assert high_water_mark(store) is None  # a hint's read is not the incremental read's mark
    assert sync_completions(store, client).new == 11


def test_no_secret_reaches_the_cache(
    skilljar: Site, make_client: Callable[..., SkilljarClient], tmp_path: Path
) -> None:
    _seed_spread(skilljar)
    store = _store(tmp_path)
    sync_completions(store, make_client())
    with pytest.raises(Exception, match="wrong or was rotated"):
        sync_completions(store, make_client(client_secret="sj-wrong-SECRET-987654"))
    tokens = list(skilljar.world._tokens)
    assert tokens
    with store.session() as cur:
        tables = [r[0] for r in cur.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        text = " ".join(
            str(row) for table in tables for row in cur.execute(f"SELECT * FROM {table}").fetchall()
        )
    for secret in (CLIENT_SECRET, "sj-wrong-SECRET-987654", *tokens):
        assert secret not in text
    assert "CredentialsRejected" in text  # the failure is recorded, without the secret

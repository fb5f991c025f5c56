"""One cache, one organization: a cache records whose it is and refuses everyone else."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from credly_ops import config, timeutil
from credly_ops.access import Actor, Role
from credly_ops.cli import main
from credly_ops.config import ConfigError, default_db_path, load_settings
from credly_ops.store import (
    CacheIdentity,
    CacheOfAnotherOrganization,
    Store,
    write_audit,
)
from credly_ops.workspace import Workspace, cache_identity
from tests.conftest import TEST_TOKEN

ORG_A = config.DEMO_ORG_ID
ORG_B = "0b0b0b0b-2222-4bbb-8bbb-000000000b0b"
TOKEN_B = "tok-org-b-0000-SECRET-B"
ADMIN = Actor("tester", Role.ADMIN)

A = CacheIdentity("sandbox", ORG_A, "https://sandbox-api.credly.com/v1")
B = CacheIdentity("production", ORG_B, "https://api.credly.com/v1")


def table_digest(path: Path) -> dict[str, str]:
    """A digest of every row of every table, read without any identity check."""
    out = {}
    with Store(path).session() as cur:
        names = [
            r[0]
            for r in cur.execute(
                "SELECT table_name FROM information_schema.tables ORDER BY 1"
            ).fetchall()
        ]
        for name in names:
            rows = cur.execute(f"SELECT * FROM {name} ORDER BY ALL").fetchall()
            out[name] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return out


def test_first_use_records_the_organization_and_another_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cache.duckdb"
    Store(path, identity=A).set_setting("integration_name", "ACME", actor=ADMIN)
    assert Store(path).recorded_identity() == A
    before = table_digest(path)

    other = Store(path, identity=B)
    with pytest.raises(CacheOfAnotherOrganization) as info:
        other.get_setting("integration_name")
    message = str(info.value)
    assert isinstance(info.value, ConfigError)
    assert f"sandbox organization {ORG_A}" in message
    assert f"production organization {ORG_B}" in message
    assert "CREDLY_OPS_DB" in message
    assert str(default_db_path("production", ORG_B)) in message
    assert message.count(". ") == 0  # one sentence
    # refused again on every use, and nothing of A's was touched
    with pytest.raises(CacheOfAnotherOrganization):
        other.set_setting("integration_name", "B's", actor=ADMIN)
    assert table_digest(path) == before
    # no audit row for a silent first claim of an empty cache
    with Store(path).session() as cur:
        assert cur.execute(
            "SELECT count(*) FROM audit WHERE action = 'cache.adopt'"
        ).fetchone() == (0,)


def test_the_same_organization_through_another_url_is_the_same_cache(tmp_path: Path) -> None:
    path = tmp_path / "cache.duckdb"
    Store(path, identity=A).get_setting("x")
    proxied = CacheIdentity(A.environment, A.organization_id, "http://127.0.0.1:9/v1")
    assert Store(path, identity=proxied).get_setting("x", "default") == "default"
    # the same org id in another environment is another organization
    with pytest.raises(CacheOfAnotherOrganization):
        Store(path, identity=CacheIdentity("production", ORG_A, B.api_url)).get_setting("x")


def test_a_legacy_cache_with_data_adopts_its_first_organization_with_an_audit_row(
    tmp_path: Path,
) -> None:
    path = tmp_path / "legacy.duckdb"
    legacy = Store(path)  # written before identities were recorded
    with legacy.transaction() as cur:
        write_audit(cur, actor=ADMIN, action="issue.run", outcome="ok", target="job-1")
    legacy.set_setting("integration_name", "ACME", actor=ADMIN)
    assert legacy.recorded_identity() is None

    assert Store(path, identity=A).get_setting("integration_name") == "ACME"
    assert Store(path).recorded_identity() == A
    with Store(path).session() as cur:
        rows = cur.execute(
            "SELECT actor, target, detail FROM audit WHERE action = 'cache.adopt'"
        ).fetchall()
        how = cur.execute("SELECT how FROM cache_identity").fetchone()
    assert how == ("adopted",)
    assert len(rows) == 1
    actor, target, detail = rows[0]
    assert (actor, target) == ("system", ORG_A)
    detail = json.loads(detail)
    assert detail["environment"] == "sandbox"
    assert detail["rows"]["audit"] == 2 and detail["rows"]["settings"] == 1
    # from then on it is A's
    with pytest.raises(CacheOfAnotherOrganization):
        Store(path, identity=B).get_setting("integration_name")


@pytest.mark.parametrize(
    ("env", "org", "expected"),
    [
        ("sandbox", ORG_B, f"data/sandbox-{ORG_B}.duckdb"),
        ("production", ORG_B, f"data/production-{ORG_B}.duckdb"),
        ("production", "../../etc/passwd", "data/production-_.._etc_passwd.duckdb"),
        ("demo", config.DEMO_ORG_ID, "data/credly_ops.duckdb"),
    ],
)
def test_the_default_cache_file_is_one_per_environment_and_organization(
    env: str, org: str, expected: str
) -> None:
    assert default_db_path(env, org) == Path(expected)
    environ = {"CREDLY_ENV": env, "CREDLY_ORG_ID": org, "CREDLY_API_TOKEN": TEST_TOKEN}
    assert load_settings(environ=environ).db_path == Path(expected)
    # a named file still wins
    named = {**environ, "CREDLY_OPS_DB": "/srv/cache.duckdb"}
    assert load_settings(environ=named).db_path == Path("/srv/cache.duckdb")
    assert load_settings(db="x.duckdb", environ=named).db_path == Path("x.duckdb")


# -- the whole command line, against the emulator with two organizations ---------------------


class RequestLog:
    """ASGI wrapper that notes each request's path and the token it carried."""

    def __init__(self, app) -> None:
        self.app = app
        self.requests: list[tuple[str, str]] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            header = dict(scope["headers"]).get(b"authorization", b"").decode()
            token = ""
            if header.startswith("Basic "):
                token = base64.b64decode(header[6:]).decode().split(":", 1)[0]
            self.requests.append((scope["path"], token))
        await self.app(scope, receive, send)


@pytest.fixture
def two_orgs(world) -> Iterator[tuple[str, RequestLog]]:
    from credly_ops.emulators.credly import create_app
    from credly_ops.emulators.server import serve_in_thread

    world.add_org(ORG_B, "Org B", TOKEN_B)
    world.add_template(ORG_B, id="tpl-b", name="B Badge")
    t0 = datetime(2025, 1, 6, 9, tzinfo=UTC)
    world.load_badges(
        ORG_A,
        [
            {
                "id": f"a-{i}",
                "template_id": "tpl-active",
                "recipient_email": f"s{i}@example.com",
                "state": "accepted" if i % 2 else "pending",
                "issued_at": t0 + timedelta(days=i),
                "updated_at": t0 + timedelta(days=i),
            }
            for i in range(8)
        ],
    )
    log = RequestLog(create_app(world))
    server = serve_in_thread(log, host="127.0.0.1", port=0)
    try:
        yield f"{server.url}/v1", log
    finally:
        server.stop()


def configure(monkeypatch: pytest.MonkeyPatch, api: str, org: str, token: str, db=None) -> None:
    monkeypatch.setenv("CREDLY_ENV", "sandbox")
    monkeypatch.setenv("CREDLY_ORG_ID", org)
    monkeypatch.setenv("CREDLY_API_TOKEN", token)
    monkeypatch.setenv("CREDLY_API_URL", api)
    if db is None:
        monkeypatch.delenv("CREDLY_OPS_DB", raising=False)
    else:
        monkeypatch.setenv("CREDLY_OPS_DB", str(db))


def test_another_organization_on_the_same_file_is_refused_by_every_command(
    two_orgs, world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    api, log = two_orgs
    db = tmp_path / "shared.duckdb"
    completions = tmp_path / "completions.csv"
    completions.write_text(
        "email,first_name,last_name,course_id,completed_at\n"
        "new@example.com,New,Student,course-1,2025-02-01\n",
        encoding="utf-8",
    )
    configure(monkeypatch, api, ORG_A, TEST_TOKEN, db)
    assert main(["sync"]) == 0
    capsys.readouterr()
    frozen = datetime(2025, 6, 1, 12, tzinfo=UTC)  # the funnel's "as of" is now
    with monkeypatch.context() as m:
        m.setattr(timeutil, "utcnow", lambda: frozen)
        assert main(["funnel", "--json"]) == 0
    funnel_a = capsys.readouterr().out
    # no completions in this cache: all 8 badges were issued outside credly-ops
    assert (json.loads(funnel_a)["issued"], json.loads(funnel_a)["issued_outside"]) == (0, 8)
    before = table_digest(db)
    badges_b = world.badge_counts().get(ORG_B, {})
    log.requests.clear()

    configure(monkeypatch, api, ORG_B, TOKEN_B, db)
    commands = [
        ["sync"],
        ["sync", "--full"],
        ["funnel", "--json"],
        ["issue", str(completions), "--dry-run"],
        ["issue", str(completions), "--yes"],
        ["student", "s1@example.com"],
        ["rules", "export"],
        ["status"],
        ["audit"],
    ]
    for command in commands:
        assert main(command) == 2, command
        captured = capsys.readouterr()
        assert f"sandbox organization {ORG_A}" in captured.err, command
        assert f"sandbox organization {ORG_B}" in captured.err, command
        assert "CREDLY_OPS_DB" in captured.err, command
        assert "Traceback" not in captured.err
        assert TOKEN_B not in captured.err + captured.out
        assert TEST_TOKEN not in captured.err + captured.out

    # nothing was sent to organization B, not even a read with its token
    assert not [r for r in log.requests if ORG_B in r[0] or r[1] == TOKEN_B]
    assert world.badge_counts().get(ORG_B, {}) == badges_b
    assert table_digest(db) == before

    configure(monkeypatch, api, ORG_A, TEST_TOKEN, db)
    with monkeypatch.context() as m:
        m.setattr(timeutil, "utcnow", lambda: frozen)
        assert main(["funnel", "--json"]) == 0
    assert capsys.readouterr().out == funnel_a


def test_another_organization_without_a_named_file_gets_its_own_default_file(
    two_orgs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    api, _ = two_orgs
    monkeypatch.chdir(tmp_path)
    configure(monkeypatch, api, ORG_A, TEST_TOKEN)
    assert main(["sync"]) == 0
    capsys.readouterr()
    own_a = tmp_path / "data" / f"sandbox-{ORG_A}.duckdb"
    assert own_a.is_file()
    before = table_digest(own_a)

    configure(monkeypatch, api, ORG_B, TOKEN_B)
    assert main(["sync", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["templates"] == 1
    assert Store(own_a).recorded_identity() == CacheIdentity("sandbox", ORG_A, api)
    own_b = tmp_path / "data" / f"sandbox-{ORG_B}.duckdb"
    assert Store(own_b).recorded_identity() == CacheIdentity("sandbox", ORG_B, api)
    with Store(own_b).session() as cur:
        assert cur.execute("SELECT id FROM templates").fetchall() == [("tpl-b",)]
    assert table_digest(own_a) == before


def test_the_workspace_checks_the_cache_before_building_a_client(two_orgs, tmp_path: Path) -> None:
    api, log = two_orgs
    db = tmp_path / "c.duckdb"
    settings_a = load_settings(
        env="sandbox", org_id=ORG_A, api_token=TEST_TOKEN, api_url=api, db=db
    )
    Workspace(settings_a).store.get_setting("x")
    assert Store(db).recorded_identity() == cache_identity(settings_a)
    settings_b = load_settings(env="sandbox", org_id=ORG_B, api_token=TOKEN_B, api_url=api, db=db)
    with pytest.raises(CacheOfAnotherOrganization):
        Workspace(settings_b).client()
    assert log.requests == []


def test_status_names_the_cache_organization_and_the_sync_health(two_orgs, tmp_path: Path) -> None:
    api, _ = two_orgs
    settings = load_settings(
        env="sandbox", org_id=ORG_A, api_token=TEST_TOKEN, api_url=api, db=tmp_path / "c.duckdb"
    )
    ws = Workspace(settings)
    before = ws.status()
    assert before["cache_organization"] == {
        "environment": "sandbox",
        "organization_id": ORG_A,
        "api_url": api,
    }
    assert before["last_sync"] is None and before["last_sync_finished"] is True
    assert before["last_reconcile"] is None
    from credly_ops.sync import sync

    with ws.client() as client:
        sync(client, ws.store)
    after = ws.status()
    assert after["last_sync"]["badges"] == 8
    assert after["sync_warning"] is None
    assert TEST_TOKEN not in json.dumps(after, default=str)

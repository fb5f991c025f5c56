"""Rules' ``automatic`` column: the editor's checks, ``rules import`` and ``rules export``."""

from __future__ import annotations

from pathlib import Path

from credly_ops.cli import main
from credly_ops.rules import check_rules, load_rules, read_rules_csv, replace_rules, rules_csv
from credly_ops.store import Store
from tests.autopilot.helpers import ADMIN, rule

HEADER = "course_id,template_id,automatic\n"


def test_automatic_is_true_when_absent_false_when_said_and_an_error_otherwise() -> None:
    without = check_rules(read_rules_csv(b"course_id,template_id\nc-1,tpl-active\n"), {})
    assert without.ok and without.rules[0].automatic is True
    said = check_rules(
        read_rules_csv((HEADER + "c-1,tpl-active,false\nc-2,tpl-active,TRUE\n").encode()), {}
    )
    assert [r.automatic for r in said.rules] == [False, True]
    bad = check_rules(
        read_rules_csv((HEADER + "c-1,tpl-active,true\nc-2,tpl-active,sometimes\n").encode()),
        {},
        first_row=2,
    )
    assert not bad.ok
    assert [str(p) for p in bad.errors] == ["row 3, automatic: 'sometimes' is not true or false"]


def test_the_column_is_stored_and_round_trips_through_export(store: Store) -> None:
    replace_rules(store, [rule("c-1"), rule("c-2", automatic=False)], actor=ADMIN)
    rules = load_rules(store)
    assert {r.course_id: r.automatic for r in rules} == {"c-1": True, "c-2": False}
    rows = read_rules_csv(rules_csv(rules))
    assert {r["course_id"]: r["automatic"] for r in rows} == {"c-1": "true", "c-2": "false"}
    again = check_rules(rows, {})
    assert again.ok and again.rules == rules


def test_rules_import_names_the_row_and_field_of_a_bad_automatic_value(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("CREDLY_OPS_DB", str(tmp_path / "c.duckdb"))
    good = tmp_path / "good.csv"
    good.write_text(HEADER + "c-1,tpl-active,false\n", encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "c-1,tpl-active,maybe\n", encoding="utf-8")
    assert main(["rules", "import", str(bad)]) == 2
    assert "row 2, automatic: 'maybe' is not true or false" in capsys.readouterr().err
    assert main(["rules", "import", str(good)]) == 0
    out = tmp_path / "out.csv"
    assert main(["rules", "export", str(out)]) == 0
    text = out.read_text(encoding="utf-8-sig")
    assert text.splitlines()[0].endswith(",automatic") and text.splitlines()[1].endswith(",false")

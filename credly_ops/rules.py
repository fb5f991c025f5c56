"""Badge rules: one course → one badge template.  Stored in the cache, edited in Settings,
imported and exported as CSV.

Validation separates **errors** (nothing is saved: an unknown method, a negative duration, a
missing course or template, the same course twice) from **warnings** (saved, but worth a look:
a template id the cache has never seen, a template that is not active).

``active_from`` is the moment the badge was installed on the course: automatic issuing goes
forward from it. A rule saved by a person (the Settings editor, ``credly-ops rules import``)
always has one (:func:`settle_active_from`): left blank, it is the moment the rule is saved,
unless the rule set already has a rule for the same course and template, whose
``active_from`` it keeps (that badge was installed then; saving the editor again or
re-importing a file never moves it). The export writes it, so a file round-trips. A rule
saved by code with no ``active_from`` has no going-forward limit.

``automatic`` (``true`` by default; a file without the column means ``true``) says whether
automatic issuing (:mod:`credly_ops.autopilot`) issues the rule's completions; ``false`` makes
the rule manual-only: its completions are left to bulk issue, never decided automatically.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from credly_ops.access import Actor, Permission, require
from credly_ops.links import rebuild
from credly_ops.models import BadgeRule, BadgeTemplate, IssueMethod
from credly_ops.store import Store, from_db_time, to_db_time, write_audit
from credly_ops.timeutil import parse_credly_time, utcnow

RULE_COLUMNS = (
    "course_id",
    "course_title",
    "template_id",
    "method",
    "expiration_months",
    "expiration_days",
    "require_pass",
    "active_from",
    "automatic",
)
_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}


@dataclass(frozen=True)
class RuleProblem:
    row: int  # 1-based position in the rule list (CSV: the file row, header = 1)
    field: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.field}: {self.message}"


@dataclass
class RuleCheck:
    rules: list[BadgeRule] = field(default_factory=list)
    errors: list[RuleProblem] = field(default_factory=list)
    warnings: list[RuleProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def parse_rule(
    values: Mapping[str, object], row: int
) -> tuple[BadgeRule | None, list[RuleProblem]]:
    """One rule from loosely typed values (a CSV row or an editor row)."""
    problems: list[RuleProblem] = []

    def text(key: str) -> str:
        value = values.get(key)
        return "" if value is None or value != value else str(value).strip()  # NaN-safe

    method_text = text("method").lower() or IssueMethod.ISSUE.value
    if method_text not in {m.value for m in IssueMethod}:
        allowed = ", ".join(m.value for m in IssueMethod)
        problems.append(RuleProblem(row, "method", f"{method_text!r} is not one of {allowed}"))
    durations: dict[str, int] = {}
    for key in ("expiration_months", "expiration_days"):
        raw = text(key)
        try:
            number = int(float(raw)) if raw else 0
        except ValueError:
            problems.append(RuleProblem(row, key, f"{raw!r} is not a whole number"))
            continue
        if number < 0:
            problems.append(RuleProblem(row, key, "must not be negative"))
        durations[key] = number
    require_text = text("require_pass").lower()
    require_pass = True
    if require_text in _FALSE:
        require_pass = False
    elif require_text and require_text not in _TRUE:
        problems.append(RuleProblem(row, "require_pass", f"{require_text!r} is not true or false"))
    automatic_text = text("automatic").lower()
    automatic = True
    if automatic_text in _FALSE:
        automatic = False
    elif automatic_text and automatic_text not in _TRUE:
        problems.append(RuleProblem(row, "automatic", f"{automatic_text!r} is not true or false"))
    active_from: datetime | None = None
    raw_from = values.get("active_from")
    if isinstance(raw_from, datetime):
        active_from = raw_from
    elif text("active_from"):
        try:
            active_from = parse_credly_time(text("active_from"))
        except ValueError:
            problems.append(
                RuleProblem(row, "active_from", f"{text('active_from')!r} is not a date")
            )
    if not text("course_id"):
        problems.append(RuleProblem(row, "course_id", "is required"))
    if not text("template_id"):
        problems.append(RuleProblem(row, "template_id", "is required"))
    if problems:
        return None, problems
    try:
        rule = BadgeRule(
            course_id=text("course_id"),
            course_title=text("course_title"),
            template_id=text("template_id"),
            template_name=text("template_name"),
            method=IssueMethod(method_text),
            expiration_months=durations.get("expiration_months", 0),
            expiration_days=durations.get("expiration_days", 0),
            require_pass=require_pass,
            active_from=active_from,
            automatic=automatic,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = str(first["loc"][0]) if first.get("loc") else "rule"
        return None, [RuleProblem(row, where, first["msg"])]
    return rule, []


def check_rules(
    rows: Sequence[Mapping[str, object]],
    templates: Mapping[str, BadgeTemplate],
    *,
    first_row: int = 1,
) -> RuleCheck:
    """Validate a whole rule set against the synced templates."""
    result = RuleCheck()
    seen: dict[str, int] = {}
    for offset, values in enumerate(rows):
        row = first_row + offset
        rule, problems = parse_rule(values, row)
        result.errors.extend(problems)
        if rule is None:
            continue
        if rule.course_id in seen:
            result.errors.append(
                RuleProblem(
                    row,
                    "course_id",
                    f"course {rule.course_id!r} already has a rule "
                    f"(row {seen[rule.course_id]}); one course maps to one template",
                )
            )
            continue
        seen[rule.course_id] = row
        template = templates.get(rule.template_id)
        if template is None:
            result.warnings.append(
                RuleProblem(
                    row,
                    "template_id",
                    f"{rule.template_id!r} is not among the synced "
                    "templates; sync, or check the id",
                )
            )
        else:
            if not template.can_issue:
                result.warnings.append(
                    RuleProblem(
                        row,
                        "template_id",
                        f"template {template.name!r} is "
                        f"{template.state}: completions will be skipped until it is active",
                    )
                )
            if not rule.template_name:
                rule = rule.model_copy(update={"template_name": template.name})
        result.rules.append(rule)
    return result


def read_rules_csv(data: bytes) -> list[dict[str, str]]:
    """CSV bytes → rows keyed by the rule columns (header names are case-insensitive)."""
    text = data.decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None:
        return []
    names = [n.strip().lower().replace(" ", "_") for n in reader.fieldnames]
    missing = [c for c in ("course_id", "template_id") if c not in names]
    if missing:
        raise ValueError(f"rules file has no {', '.join(missing)} column")
    reader.fieldnames = names
    return [{k: v for k, v in row.items() if k is not None} for row in reader]


def rules_csv(rules: Sequence[BadgeRule]) -> bytes:
    from credly_ops.exports import to_csv_bytes

    return to_csv_bytes([rule_row(r) for r in rules], columns=RULE_COLUMNS)


def rule_row(rule: BadgeRule) -> dict[str, object]:
    return {
        "course_id": rule.course_id,
        "course_title": rule.course_title,
        "template_id": rule.template_id,
        "method": rule.method.value,
        "expiration_months": rule.expiration_months,
        "expiration_days": rule.expiration_days,
        "require_pass": "true" if rule.require_pass else "false",
        "active_from": rule.active_from.isoformat() if rule.active_from else "",
        "automatic": "true" if rule.automatic else "false",
    }


def settle_active_from(
    rules: Sequence[BadgeRule],
    installed: Mapping[tuple[str, str], datetime | None],
    *,
    saved_at: datetime,
) -> list[BadgeRule]:
    """``rules`` as they are saved: each without an ``active_from`` takes the one of the rule
    already saved for the same (course id, template id) in ``installed`` (the badge was
    installed on the course then), or else ``saved_at``, the moment of this save. A rule that
    names its ``active_from`` keeps it."""
    settled: list[BadgeRule] = []
    for rule in rules:
        if rule.active_from is None:
            since = installed.get((rule.course_id, rule.template_id)) or saved_at
            rule = rule.model_copy(update={"active_from": since})
        settled.append(rule)
    return settled


def load_rules(store: Store) -> list[BadgeRule]:
    with store.session() as cur:
        rows = cur.execute(
            "SELECT course_id, course_title, template_id, template_name, method, "
            "expiration_months, expiration_days, require_pass, active_from, "
            "coalesce(automatic, TRUE) FROM badge_rules ORDER BY course_title, course_id"
        ).fetchall()
    return [
        BadgeRule(
            course_id=r[0],
            course_title=r[1] or "",
            template_id=r[2],
            template_name=r[3] or "",
            method=IssueMethod(r[4]),
            expiration_months=r[5],
            expiration_days=r[6],
            require_pass=r[7],
            active_from=from_db_time(r[8]),
            automatic=bool(r[9]),
        )
        for r in rows
    ]


def load_templates(store: Store) -> dict[str, BadgeTemplate]:
    with store.session() as cur:
        rows = cur.execute(
            "SELECT id, name, state, allow_duplicate_badges, image_url, url FROM templates"
        ).fetchall()
    return {
        r[0]: BadgeTemplate(
            id=r[0], name=r[1], state=r[2], allow_duplicate_badges=r[3], image_url=r[4], url=r[5]
        )
        for r in rows
    }


def replace_rules(
    store: Store, rules: Sequence[BadgeRule], *, actor: Actor, fill_active_from: bool = False
) -> list[BadgeRule]:
    """Make ``rules`` the whole rule set (admins only), in one unit of work, with an audit row.

    With ``fill_active_from`` (the editor's save and ``rules import``) a rule without an
    ``active_from`` gets one (:func:`settle_active_from`): the ``active_from`` of the saved
    rule for the same course and template, which it keeps because that badge was installed
    then, or else the moment of this save. Returns the rules as saved.
    """
    require(actor, Permission.CHANGE_SETTINGS)
    saved_at = utcnow()
    now = to_db_time(saved_at)
    with store.transaction() as cur:
        installed = {
            (course_id, template_id): from_db_time(active_from)
            for course_id, template_id, active_from in cur.execute(
                "SELECT course_id, template_id, active_from FROM badge_rules"
            ).fetchall()
        }
        if fill_active_from:
            rules = settle_active_from(rules, installed, saved_at=saved_at)
        before = len(installed)
        cur.execute("DELETE FROM badge_rules")
        for rule in rules:
            cur.execute(
                "INSERT INTO badge_rules (course_id, course_title, template_id, template_name, "
                "method, expiration_months, expiration_days, require_pass, active_from, "
                "automatic, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    rule.course_id,
                    rule.course_title,
                    rule.template_id,
                    rule.template_name,
                    rule.method.value,
                    rule.expiration_months,
                    rule.expiration_days,
                    rule.require_pass,
                    to_db_time(rule.active_from),
                    rule.automatic,
                    now,
                    actor.name,
                ],
            )
        rebuild(cur)  # a rule decides every completion of its course
        write_audit(
            cur,
            actor=actor,
            action="rules.replace",
            target="badge_rules",
            outcome="ok",
            detail={"before": before, "after": len(rules)},
        )
    return list(rules)

"""The Settings page's checks: is the Credly organization reachable with this token, and do
the badge rules name templates that organization really has.

:func:`check_connection` asks Credly for the organization's badge templates and reports how
many it found, by state, or the exact error (its class, its stable ``kind`` and Credly's
message) — never the token. :func:`save_rules` validates a whole rule set against the synced
templates and saves it only when there is no error: on the Settings page a template the
organization does not have is an error, not a warning, since nothing could ever be issued
from it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from credly_ops.access import Actor, Permission, require
from credly_ops.credly.errors import CredlyError
from credly_ops.models import BadgeTemplate
from credly_ops.redaction import scrub
from credly_ops.rules import RuleCheck, RuleProblem, check_rules, load_templates, replace_rules
from credly_ops.workspace import Workspace


@dataclass(frozen=True)
class ConnectionReport:
    """The answer to "can we reach our Credly organization?"."""

    ok: bool
    environment: str
    organization: str
    api_url: str
    templates: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    error_class: str | None = None
    error_kind: str | None = None
    error_message: str | None = None
    seconds: float = 0.0

    @property
    def summary(self) -> str:
        if self.ok:
            if not self.templates:
                return "Connected: the organization has no badge templates yet."
            states = ", ".join(f"{n} {state}" for state, n in sorted(self.by_state.items()))
            noun = "template" if self.templates == 1 else "templates"
            return f"Connected: {self.templates} badge {noun} found ({states})."
        return f"Connection failed: {self.error_class}: {self.error_message}"

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "environment": self.environment,
            "organization": self.organization,
            "api_url": self.api_url,
            "templates": self.templates,
            "by_state": dict(self.by_state),
            "error_class": self.error_class,
            "error_kind": self.error_kind,
            "error_message": self.error_message,
            "seconds": round(self.seconds, 3),
        }


def check_connection(
    ws: Workspace, *, clock: Callable[[], float] = time.perf_counter
) -> ConnectionReport:
    """Call Credly's template list for the configured organization and report what came back."""
    settings = ws.settings
    secret = settings.api_token.get_secret_value()
    base: dict[str, Any] = {
        "environment": settings.env.value,
        "organization": settings.org_id,
        "api_url": settings.api_url,
    }
    started = clock()
    try:
        with ws.client() as client:
            templates = client.list_templates()
    except (CredlyError, ValueError, OSError) as exc:
        kind = exc.kind if isinstance(exc, CredlyError) else None
        return ConnectionReport(
            ok=False,
            error_class=type(exc).__name__,
            error_kind=kind,
            error_message=scrub(str(exc), secret),
            seconds=clock() - started,
            **base,
        )
    states = Counter(str(t.state) for t in templates)
    return ConnectionReport(
        ok=True, templates=len(templates), by_state=dict(states), seconds=clock() - started, **base
    )


def check_rule_rows(
    rows: Sequence[Mapping[str, object]],
    templates: Mapping[str, BadgeTemplate],
    *,
    first_row: int = 1,
) -> RuleCheck:
    """:func:`credly_ops.rules.check_rules`, where a template id the synced organization does
    not have is an error naming the row and the field (and the rule is not kept)."""
    check = check_rules(rows, templates, first_row=first_row)
    unknown: dict[int, str] = {}
    for offset, values in enumerate(rows):
        raw = values.get("template_id")
        text = "" if raw is None or raw != raw else str(raw).strip()  # NaN-safe
        if text and text not in templates:
            unknown[first_row + offset] = text
    if not unknown:
        return check
    errors = list(check.errors)
    for row, template_id in sorted(unknown.items()):
        if any(e.row == row and e.field == "template_id" for e in errors):
            continue
        errors.append(
            RuleProblem(
                row,
                "template_id",
                f"unknown template {template_id!r}: the organization has no such badge template "
                "(sync, or check the id)",
            )
        )
    errors.sort(key=lambda p: p.row)
    warnings = [w for w in check.warnings if not (w.field == "template_id" and w.row in unknown)]
    rules = [r for r in check.rules if r.template_id in templates]
    return RuleCheck(rules=rules, errors=errors, warnings=warnings)


def save_rules(
    ws: Workspace,
    rows: Sequence[Mapping[str, object]],
    *,
    actor: Actor,
    first_row: int = 1,
) -> RuleCheck:
    """Validate ``rows`` against the synced templates and, when there is no error, make them the
    whole rule set (admins only; audited by :func:`~credly_ops.rules.replace_rules`).

    With any error nothing is saved and nothing is audited; the check says why, row by row.
    """
    require(actor, Permission.CHANGE_SETTINGS)
    check = check_rule_rows(rows, load_templates(ws.store), first_row=first_row)
    if check.ok:
        replace_rules(ws.store, check.rules, actor=actor, fill_active_from=True)
    return check

"""Settings: the Credly connection, the badge rules, the "Badges Earned" table and the sync."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

import ui
from credly_ops.access import Permission, PermissionDenied
from credly_ops.connection import check_connection, save_rules
from credly_ops.models import BadgeTemplate, IssueMethod
from credly_ops.profile import badges_table_enabled
from credly_ops.rules import RuleCheck, load_rules, load_templates, read_rules_csv, rules_csv
from credly_ops.store import SETTING_BADGES_TABLE_ENABLED, SETTING_INTEGRATION_NAME, CacheBusy
from credly_ops.sync import last_sync

actor = ui.require(Permission.CHANGE_SETTINGS)
st.title("Settings")
ws = ui.workspace()
notice = st.session_state.pop("settings_notice", None)
if notice:
    st.success(notice, icon=":material/check_circle:")
version = st.session_state.setdefault("settings_version", 0)


def saved(message: str) -> None:
    """Say so after the rerun, and start the editors afresh from what is stored."""
    st.session_state["settings_notice"] = message
    st.session_state["settings_version"] = version + 1
    st.cache_data.clear()
    st.rerun()


def show_check(check: RuleCheck) -> None:
    if check.errors:
        st.error(
            "Nothing was saved. Fix these and save again:\n"
            + "\n".join(f"- {problem}" for problem in check.errors),
            icon=":material/error:",
        )
    if check.warnings:
        st.warning(
            "Worth a look:\n" + "\n".join(f"- {problem}" for problem in check.warnings),
            icon=":material/warning:",
        )


try:
    integration_name = ws.store.get_setting(SETTING_INTEGRATION_NAME) or ""
    table_on = badges_table_enabled(ws.store)
    templates = load_templates(ws.store)
    rules = load_rules(ws.store)
    sync_info = last_sync(ws.store)
except CacheBusy as exc:
    st.error(str(exc))
    st.stop()

# -- the Credly integration --------------------------------------------------------------------
st.subheader("Credly integration")
with st.form(f"integration-{version}"):
    name = st.text_input(
        "Integration name",
        value=integration_name,
        placeholder="ACME Corporation Credly Integration",
    )
    if st.form_submit_button("Save name"):
        try:
            ws.store.set_setting(SETTING_INTEGRATION_NAME, name.strip(), actor=actor)
        except PermissionDenied as exc:
            st.error(str(exc))
        else:
            saved("Integration name saved.")

facts = ws.settings.describe()
st.dataframe(
    pd.DataFrame(
        {
            "Setting": ["Environment", "Organization ID", "API", "API token", "Cache file"],
            "Value": [
                facts["environment"],
                facts["organization"],
                facts["api_url"],
                facts["token"],
                facts["database"],
            ],
        }
    ),
    hide_index=True,
    width="stretch",
)
st.caption(
    "The organization, token and environment are read from `.streamlit/secrets.toml` "
    '(`[credly]` with `env = "sandbox"` or `"production"`, `org_id`, `api_token`) or from the '
    "environment variables `CREDLY_ENV`, `CREDLY_ORG_ID` and `CREDLY_API_TOKEN`, then the app "
    "is restarted. The token is a secret: it is shown masked and never stored in the cache. "
    "Sandbox credentials come from sandbox.credly.com; swap in the production ones to go live."
)
if st.button("Test connection", icon=":material/lan:"):
    with st.spinner("Asking Credly for the organization's badge templates…"):
        report = check_connection(ws)
    if report.ok:
        st.success(report.summary, icon=":material/check_circle:")
    else:
        st.error(report.summary, icon=":material/error:")

# -- the "Badges Earned" table -----------------------------------------------------------------
st.subheader('"Badges Earned" table')
choice = st.toggle(
    'Show the "Badges Earned" table on student profiles',
    value=table_on,
    key=f"badges-table-{version}",
    help="When on, a student with at least one badge sees the table above their Registrations.",
)
if choice != table_on:
    try:
        ws.store.set_setting(
            SETTING_BADGES_TABLE_ENABLED, "true" if choice else "false", actor=actor
        )
    except PermissionDenied as exc:
        st.error(str(exc))
    else:
        saved(f'"Badges Earned" table turned {"on" if choice else "off"}.')

# -- badge rules -------------------------------------------------------------------------------
st.subheader("Badge rules")
st.caption(
    "One course → one badge template. Templates come from the last sync; only active ones can "
    "issue. Every change is checked before it is saved, and nothing is saved while a row has "
    "an error."
)


def template_labels(all_templates: dict[str, BadgeTemplate], used: set[str]) -> dict[str, str]:
    """Label shown in the editor → template id: active templates by name, plus the templates
    the current rules use (their state said)."""
    shown = [t for t in all_templates.values() if t.can_issue or t.id in used]
    names = [t.name for t in shown]
    labels: dict[str, str] = {}
    for t in sorted(shown, key=lambda t: (t.name.casefold(), t.id)):
        label = t.name if names.count(t.name) == 1 else f"{t.name} ({t.id[:8]})"
        if not t.can_issue:
            label = f"{label} ({t.state})"
        labels[label] = t.id
    for template_id in sorted(used - set(all_templates)):
        labels[template_id] = template_id
    return labels


ids_by_label = template_labels(templates, {r.template_id for r in rules})
label_by_id = {v: k for k, v in ids_by_label.items()}
if not templates:
    st.warning("No templates in the cache yet: sync first, then map courses to templates.")

frame = pd.DataFrame(
    [
        {
            "course_id": r.course_id,
            "course_title": r.course_title,
            "template": label_by_id.get(r.template_id, r.template_id),
            "method": r.method.value,
            "expiration_months": r.expiration_months,
            "expiration_days": r.expiration_days,
            "require_pass": r.require_pass,
            "active_from": (
                r.active_from.astimezone(UTC).replace(tzinfo=None) if r.active_from else None
            ),
            "automatic": r.automatic,
        }
        for r in rules
    ],
    columns=[
        "course_id",
        "course_title",
        "template",
        "method",
        "expiration_months",
        "expiration_days",
        "require_pass",
        "active_from",
        "automatic",
    ],
)
frame["active_from"] = pd.to_datetime(frame["active_from"])
edited = st.data_editor(
    frame,
    key=f"rules-editor-{version}",
    num_rows="dynamic",
    hide_index=True,
    width="stretch",
    column_config={
        "course_id": st.column_config.TextColumn("Course ID", required=True),
        "course_title": st.column_config.TextColumn("Course title"),
        "template": st.column_config.SelectboxColumn(
            "Badge template", options=list(ids_by_label), required=True
        ),
        "method": st.column_config.SelectboxColumn(
            "Method", options=[m.value for m in IssueMethod], default=IssueMethod.ISSUE.value
        ),
        "expiration_months": st.column_config.NumberColumn(
            "Expires after (months)", min_value=0, step=1, default=0
        ),
        "expiration_days": st.column_config.NumberColumn(
            "… and days", min_value=0, step=1, default=0
        ),
        "require_pass": st.column_config.CheckboxColumn("Require pass", default=True),
        "active_from": st.column_config.DatetimeColumn(
            "Active from (UTC)", help="Completions before this moment are not issued automatically"
        ),
        "automatic": st.column_config.CheckboxColumn(
            "Automatic",
            default=True,
            help="Issued by automatic issuing; clear it to leave the course to bulk issue",
        ),
    },
)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or value == ""


def rule_values(record: dict[str, Any]) -> dict[str, object]:
    """An editor row in the shape the rule checks read."""
    moment = record.get("active_from")
    label = record.get("template")
    require_pass = record.get("require_pass")
    automatic = record.get("automatic")
    return {
        "course_id": record.get("course_id"),
        "course_title": record.get("course_title"),
        "template_id": "" if _blank(label) else ids_by_label.get(str(label), str(label)),
        "method": record.get("method"),
        "expiration_months": record.get("expiration_months"),
        "expiration_days": record.get("expiration_days"),
        "require_pass": "false" if require_pass is False else "true",
        "active_from": None if moment is None or pd.isna(moment) else pd.Timestamp(moment),
        "automatic": "false" if automatic is False else "true",
    }


if st.button("Save rules", type="primary", icon=":material/save:"):
    records = [r for r in edited.to_dict("records") if not all(_blank(v) for v in r.values())]
    try:
        check = save_rules(ws, [rule_values(r) for r in records], actor=actor)
    except (PermissionDenied, CacheBusy) as exc:
        st.error(str(exc))
    else:
        show_check(check)
        if check.ok:
            saved(f"Saved {len(check.rules)} badge rules.")

left, right = st.columns(2)
with left:
    upload = st.file_uploader(
        "Import rules from CSV",
        type=["csv"],
        key=f"rules-upload-{version}",
        help="Columns: course_id, course_title, template_id, method, expiration_months, "
        "expiration_days, require_pass, active_from, automatic (true when absent). The file "
        "replaces every rule.",
    )
    if upload is not None and st.button("Replace the rules with this file"):
        try:
            check = save_rules(ws, read_rules_csv(upload.getvalue()), actor=actor, first_row=2)
        except (ValueError, UnicodeDecodeError) as exc:
            st.error(f"{upload.name}: {exc}")
        except (PermissionDenied, CacheBusy) as exc:
            st.error(str(exc))
        else:
            show_check(check)
            if check.ok:
                saved(f"Imported {len(check.rules)} badge rules from {upload.name}.")
with right:
    st.download_button(
        "Export rules as CSV",
        data=rules_csv(rules),
        file_name="badge_rules.csv",
        mime="text/csv",
        icon=":material/download:",
    )

# -- sync --------------------------------------------------------------------------------------
st.subheader("Sync with Credly")
if sync_info is None:
    st.write("The cache has never been synced: use **Sync now** in the sidebar.")
else:
    st.write(
        f"Last sync **{ui.ago(sync_info['finished_at'])}** ({sync_info['kind']}): "
        f"{sync_info['templates']} templates, {sync_info['badges']:,} badges, "
        f"{sync_info['changed']:,} changed."
    )
st.caption(
    "To keep the cache fresh without the app, schedule the command line with cron, e.g. every "
    "15 minutes (incremental) and a full sync each night:"
)
root = Path.cwd()
st.code(
    f"*/15 * * * * cd {root} && .venv/bin/credly-ops sync >> data/sync.log 2>&1\n"
    f"30 2 * * * cd {root} && .venv/bin/credly-ops sync --full >> data/sync.log 2>&1",
    language="bash",
)

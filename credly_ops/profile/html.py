"""The student's profile as they see it, as HTML: the "Badges Earned" table, the "Registrations"
table, the header around them and the CSS (:data:`PREVIEW_CSS`).  Every value is escaped; links
are absolute http(s) only (:func:`safe_url`).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from urllib.parse import urlsplit

from credly_ops.profile.phrases import day
from credly_ops.profile.values import BadgeEarnedRow, Registration, StudentProfile

_SAFE_SCHEMES = frozenset({"http", "https"})


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def safe_url(url: str | None) -> str:
    """``url`` when it is an absolute http(s) address, else ``""`` (never a script URL)."""
    if not url:
        return ""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return ""
    return url.strip() if parts.scheme.lower() in _SAFE_SCHEMES and parts.netloc else ""


PREVIEW_CSS = """
<style>
.co-profile{font-family:"Helvetica Neue",Helvetica,Arial,sans-serif;color:#1f2933;
  border:1px solid #d9dee4;border-radius:8px;padding:24px 28px;background:#fff;max-width:960px}
.co-profile h2{font-size:1.5rem;margin:0 0 2px 0;font-weight:600}
.co-profile .co-email{color:#5f6b7a;margin:0 0 20px 0;font-size:.95rem}
.co-profile h3{font-size:1.1rem;margin:22px 0 8px 0;font-weight:600}
.co-profile table{border-collapse:collapse;width:100%;font-size:.92rem}
.co-profile th{text-align:left;font-weight:600;color:#5f6b7a;border-bottom:2px solid #e4e7eb;
  padding:8px 10px}
.co-profile td{border-bottom:1px solid #eef0f3;padding:8px 10px;vertical-align:middle}
.co-profile img.co-badge{display:inline-block;width:44px;height:44px;object-fit:contain;
  vertical-align:middle;overflow:hidden;font-size:0;background:#eef2f7;border-radius:6px}
.co-profile a.co-accept{background:#0b6bcb;color:#fff;border-radius:4px;padding:5px 14px;
  text-decoration:none;font-weight:600}
.co-profile a.co-view{color:#0b6bcb;text-decoration:none;font-weight:600}
.co-profile .co-empty{color:#5f6b7a}
</style>
"""


def badges_earned_html(rows: Sequence[BadgeEarnedRow]) -> str:
    """The "Badges Earned" table; ``""`` when there is no row (the table does not appear)."""
    if not rows:
        return ""
    body = []
    for r in rows:
        image = safe_url(r.image_url)
        img = f'<img class="co-badge" src="{_e(image)}" alt="{_e(r.name)}">' if image else ""
        link = safe_url(r.link_url)
        css = "co-accept" if r.is_pending else "co-view"
        action = (
            f'<a class="{css}" href="{_e(link)}" target="_blank" rel="noopener noreferrer">'
            f"{_e(r.link_label)}</a>"
            if link
            else _e(r.link_label)
        )
        expires = day(r.expires_at) if r.expires_at else "Never"
        body.append(
            f'<tr data-badge-id="{_e(r.badge_id)}" data-state="{_e(r.state)}">'
            f"<td>{img}</td><td>{_e(r.name)}</td><td>{_e(day(r.issued_at))}</td>"
            f"<td>{_e(expires)}</td><td>{action}</td></tr>"
        )
    return (
        '<section class="co-badges-earned"><h3>Badges Earned</h3><table>'
        "<thead><tr><th></th><th>Badge</th><th>Issued</th><th>Expires</th><th></th></tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></section>"
    )


def registrations_html(registrations: Sequence[Registration]) -> str:
    """The "Registrations" table of the student's courses."""
    if not registrations:
        rows = '<tr><td colspan="4" class="co-empty">No registrations.</td></tr>'
    else:
        rows = "".join(
            f"<tr><td>{_e(r.course_title)}</td><td>Completed</td>"
            f"<td>{_e(day(r.completed_at))}</td>"
            f"<td>{_e(r.result)}{_e(f' ({r.score:g})') if r.score is not None else ''}</td></tr>"
            for r in registrations
        )
    return (
        '<section class="co-registrations"><h3>Registrations</h3><table>'
        "<thead><tr><th>Course</th><th>Status</th><th>Completed</th><th>Result</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


def preview_html(profile: StudentProfile) -> str:
    """The student's profile as they see it: header, "Badges Earned" (when it appears), then
    "Registrations". Every value is escaped; links are http(s) only."""
    name = profile.name
    table = badges_earned_html(profile.badges_earned) if profile.shows_table else ""
    return (
        f'{PREVIEW_CSS}<div class="co-profile" lang="en">'
        f'<h2>{_e(name)}</h2><p class="co-email">{_e(profile.email)}</p>'
        f"{table}{registrations_html(profile.registrations)}</div>"
    )

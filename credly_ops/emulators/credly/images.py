"""Badge pictures for the demo: the local Credly serves one per template on loopback."""

from __future__ import annotations

import html

#: the route of a template's picture on the emulator
IMAGE_PATH = "/_emulator/images/{template_id}.svg"

#: Okabe-Ito colours: distinguishable for colour-blind readers
BADGE_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")


def badge_svg(template_id: str, name: str) -> str:
    """A hexagonal badge with the template's initials, its colour fixed by the template id."""
    colour = BADGE_COLOURS[sum(template_id.encode()) % len(BADGE_COLOURS)]
    initials = "".join(w[0] for w in name.split() if w[:1].isalnum())[:3].upper() or "?"
    label = html.escape(initials)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96" viewBox="0 0 96 96">'
        f'<polygon points="48,4 86,26 86,70 48,92 10,70 10,26" fill="{colour}"/>'
        '<polygon points="48,14 77,31 77,65 48,82 19,65 19,31" fill="none" stroke="#fff" '
        'stroke-width="3"/>'
        '<text x="48" y="56" font-family="Helvetica,Arial,sans-serif" font-size="24" '
        f'font-weight="700" fill="#fff" text-anchor="middle">{label}</text></svg>'
    )


def template_image_url(base_url: str, template_id: str) -> str:
    """Where the emulator at ``base_url`` (scheme and host) serves a template's picture."""
    return base_url.rstrip("/") + IMAGE_PATH.format(template_id=template_id)

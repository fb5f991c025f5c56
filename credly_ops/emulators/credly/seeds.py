"""The worlds the local Credly starts from: ``empty`` (a handful of templates) or ``demo``.

Seeding happens inside :meth:`World.unrecorded`: nothing seeded is journalled, so a journal
replayed on the same seed gives back the world that wrote it.
"""

from __future__ import annotations

from datetime import timedelta

from credly_ops.config import DEMO_API_TOKEN, DEMO_ORG_ID
from credly_ops.emulators.credly.images import template_image_url
from credly_ops.emulators.credly.records import stable_uuid
from credly_ops.emulators.credly.state import World
from credly_ops.emulators.demo_world import (
    DEMO_ORG_NAME,
    OTHER_ORG_ID,
    OTHER_ORG_NAME,
    OTHER_ORG_TOKEN,
    DemoWorld,
)

#: the empty seed's templates: (name, state, allow_duplicate_badges, default_expiration_days)
EMPTY_SEED_TEMPLATES: tuple[tuple[str, str, bool, int | None], ...] = (
    ("Python Foundations", "active", False, None),
    ("Cloud Practitioner", "active", False, 365),
    ("Workshop Attendance", "active", True, None),
    ("Data Analysis (in review)", "draft", False, None),
    ("Legacy Web Basics", "archived", False, None),
)


#: the demo's API token expires this soon after the emulator starts, so the Health page has a
#: token to warn about (warned 30 days ahead, failing at 7)
DEMO_TOKEN_EXPIRES_IN = timedelta(days=20)


def seed_empty(world: World) -> None:
    """One organization with the demo id and token, and a handful of templates."""
    world.add_org(DEMO_ORG_ID, "Demo Academy", DEMO_API_TOKEN, vanity_slug="demo-academy")
    for name, state, duplicates, days in EMPTY_SEED_TEMPLATES:
        world.add_template(
            DEMO_ORG_ID,
            id=stable_uuid(f"template:{name}"),
            name=name,
            state=state,
            allow_duplicate_badges=duplicates,
            description=f"Awarded for completing {name}.",
            default_expiration_days=days,
        )


def seed_demo(world: World, demo: DemoWorld, *, image_base: str | None = None) -> None:
    """Load the Credly side of the demo world: both organizations, templates, badges, and the
    demo token's expiry (:data:`DEMO_TOKEN_EXPIRES_IN`).

    With ``image_base`` (the emulator's own address) template pictures are served by the
    emulator, so the demo shows them with no network beyond loopback.
    """
    world.add_org(DEMO_ORG_ID, DEMO_ORG_NAME, DEMO_API_TOKEN, vanity_slug="northwind-academy")
    token = world.token_book.for_org(DEMO_ORG_ID)[0]
    world.token_book.rename(DEMO_ORG_ID, token.id, "credly-ops (demo)")
    world.token_book.set_expiry(DEMO_ORG_ID, token.id, world.clock.now() + DEMO_TOKEN_EXPIRES_IN)
    for tpl in demo.templates:
        if image_base:
            tpl = {**tpl, "image_url": template_image_url(image_base, tpl["id"])}
        world.add_template(DEMO_ORG_ID, **tpl)
    world.load_badges(DEMO_ORG_ID, demo.badges)
    for email in demo.auto_accept:
        world.set_auto_accept(DEMO_ORG_ID, email, True)
    world.add_org(OTHER_ORG_ID, OTHER_ORG_NAME, OTHER_ORG_TOKEN, vanity_slug="contoso-learning")
    for tpl in demo.other_org_templates:
        world.add_template(OTHER_ORG_ID, **tpl)
    world.load_badges(OTHER_ORG_ID, demo.other_org_badges)

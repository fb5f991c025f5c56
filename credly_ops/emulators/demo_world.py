"""THE demo world: a deterministic, realistic badge program to run everything without Credly.

One seed and one anchor day give the same world every time: ten courses mapped to templates
(one archived, one draft, one allowing duplicate badges, one installed only recently, one
renewal course that updates an existing badge), about 20,000 students and 30,000 completions
over the eighteen months before the anchor, and the badges those completions earned, with
earners who behave like real ones: some accept within hours, more after each reminder, some
have Auto-Accept on, many never accept; a few reject, a few badges are revoked; a cohort
trained on one day eleven months ago makes a wave of expiries next month; some badges
predate the integration, and a second organization issues badges to the same people (the
student preview must never show those).

:func:`generate` is pure and returns plain values: the Credly side (templates, badges,
Auto-Accept earners, the other organization) for an emulator to load, and the LMS side
(``completions``, a plain list of :class:`Completion`, and the badge ``rules``) for the cache
or an LMS emulator to load.  :func:`demo_world` is the one anchor rule every start-up uses:
the anchor recorded in ``demo_world.json`` when the data directory has one, else today's
(recorded then, so every later start agrees).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from credly_ops.emulators.demo_names import (
    COMPANY_DOMAINS,
    FIRST_NAMES,
    LAST_NAMES,
    PERSONAL_DOMAINS,
)
from credly_ops.issuance.decide import add_months
from credly_ops.models import BadgeRule, Completion, IssueMethod, SuccessStatus
from credly_ops.reminders import REMINDER_OFFSETS

DEMO_SEED = 20_240_601
DEMO_ORG_NAME = "Northwind Academy"
OTHER_ORG_ID = "0b8f0d52-3c1e-4f7e-9a55-6f0e2b1f9a10"
OTHER_ORG_NAME = "Contoso Learning"
OTHER_ORG_TOKEN = "other-org-demo-token"  # noqa: S105 - public emulator token
WORLD_FILE = "demo_world.json"
JOURNAL_FILE = "demo_credly_journal.jsonl"
#: the demo Skilljar's journal (completions added at run time), beside the Credly one
SKILLJAR_JOURNAL_FILE = "demo_skilljar_journal.jsonl"


@dataclass(frozen=True)
class CourseSpec:
    course_id: str
    title: str
    template_name: str | None  # None: the course has no badge
    template_key: str | None = None  # several courses may share one template
    template_state: str = "active"
    allow_duplicates: bool = False
    method: IssueMethod = IssueMethod.ISSUE
    months: int = 0
    days: int = 0
    installed_days_ago: int = 540  # the rule's active_from, in days before the anchor
    weight: float = 1.0  # share of completions
    fail_rate: float = 0.08


COURSES: tuple[CourseSpec, ...] = (
    CourseSpec(
        "7x1k2m9q4w8e", "Cloud Foundations", "Cloud Foundations Certified", months=24, weight=2.4
    ),
    CourseSpec(
        "3n5b7v9c1x2z",
        "Data Analytics Essentials",
        "Data Analytics Essentials",
        method=IssueMethod.ISSUE_OR_UPDATE,
        months=12,
        weight=1.6,
    ),
    CourseSpec(
        "8p6o4i2u0y9t", "Security Fundamentals", "Security Fundamentals", weight=1.5, fail_rate=0.18
    ),
    CourseSpec(
        "5r3e1w9q7a2s",
        "Kubernetes Administrator",
        "Kubernetes Administrator",
        template_key="k8s",
        months=12,
        weight=0.9,
        fail_rate=0.25,
    ),
    CourseSpec(
        "2d4f6g8h0j1k",
        "Kubernetes Administrator Recertification",
        "Kubernetes Administrator",
        template_key="k8s",
        method=IssueMethod.UPDATE,
        months=12,
        weight=0.35,
        installed_days_ago=400,
    ),
    CourseSpec(
        "9l7k5j3h1g2f",
        "Product Onboarding",
        "Product Onboarding Completed",
        allow_duplicates=True,
        weight=1.2,
        fail_rate=0.0,
    ),
    CourseSpec(
        "4m6n8b0v2c3x",
        "AI Practitioner",
        "AI Practitioner",
        months=18,
        weight=1.1,
        installed_days_ago=95,
    ),
    CourseSpec(
        "6z8x0c2v4b5n",
        "Partner Sales Accreditation (retired)",
        "Partner Sales Accreditation",
        template_state="archived",
        weight=0.4,
    ),
    CourseSpec(
        "1q3w5e7r9t0y",
        "Customer Success Basics",
        "Customer Success Basics",
        template_state="draft",
        weight=0.5,
    ),
    CourseSpec("0a9s8d7f6g5h", "Advanced SQL", "Advanced SQL", weight=0.8, fail_rate=0.35),
    CourseSpec("5t6y7u8i9o0p", "Monthly Release Walkthrough", None, weight=1.3, fail_rate=0.0),
    CourseSpec("2b3n4m5k6j7h", "Intro Webinar: Getting Started", None, weight=1.1, fail_rate=0.0),
)


@dataclass
class DemoWorld:
    anchor: datetime
    seed: int
    templates: list[dict[str, Any]] = field(default_factory=list)
    badges: list[dict[str, Any]] = field(default_factory=list)
    other_org_templates: list[dict[str, Any]] = field(default_factory=list)
    other_org_badges: list[dict[str, Any]] = field(default_factory=list)
    completions: list[Completion] = field(default_factory=list)
    rules: list[BadgeRule] = field(default_factory=list)
    auto_accept: list[str] = field(default_factory=list)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _template_id(key: str) -> str:
    digest = hashlib.sha256(f"demo-template:{key}".encode()).hexdigest()
    return str(uuid.UUID(digest[:32], version=4))


def default_anchor(today: datetime | None = None) -> datetime:
    """Midnight UTC of today: the world is the same all day."""
    now = today or datetime.now(UTC)
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _students(rng: random.Random, count: int) -> list[tuple[str, str, str]]:
    seen: set[str] = set()
    people: list[tuple[str, str, str]] = []
    while len(people) < count:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        domain = rng.choice(COMPANY_DOMAINS if rng.random() < 0.7 else PERSONAL_DOMAINS)
        local = f"{first}.{last}".lower().replace("'", "")
        email = f"{local}@{domain}"
        n = 2
        while email in seen:
            email = f"{local}{n}@{domain}"
            n += 1
        seen.add(email)
        people.append((email, first, last))
    return people


def new_student(rng: random.Random) -> tuple[str, str, str]:
    """A student who is not in the generated world yet (email, first name, last name): the
    demo's "a student finishes a course now"."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    local = f"{first}.{last}".lower().replace("'", "")
    return f"{local}.{rng.randrange(10_000, 99_999)}@{rng.choice(COMPANY_DOMAINS)}", first, last


def _accept_delay(rng: random.Random) -> timedelta | None:
    """How long an earner takes to accept; ``None`` never accepts."""
    roll = rng.random()
    first, second = REMINDER_OFFSETS
    if roll < 0.24:  # within hours of the first email
        return timedelta(minutes=rng.randint(5, int(first.total_seconds() // 60) - 5))
    if roll < 0.44:  # after the first reminder
        return first + timedelta(
            minutes=rng.randint(5, int((second - first).total_seconds() // 60))
        )
    if roll < 0.60:  # after the second reminder
        return second + timedelta(hours=rng.randint(1, 24 * 40))
    return None


def generate(
    anchor: datetime | None = None,
    *,
    seed: int = DEMO_SEED,
    students: int = 20_000,
    completions: int = 30_000,
) -> DemoWorld:
    """The whole demo world, deterministic in (anchor, seed, sizes)."""
    anchor = default_anchor(anchor)
    rng = random.Random(seed)
    world = DemoWorld(anchor=anchor, seed=seed)
    templates: dict[str, dict[str, Any]] = {}
    for spec in COURSES:
        if spec.template_name is None:
            continue
        key = spec.template_key or spec.course_id
        if key in templates:
            continue
        tid = _template_id(key)
        templates[key] = {
            "id": tid,
            "name": spec.template_name,
            "state": spec.template_state,
            "allow_duplicate_badges": spec.allow_duplicates,
            "description": f"Awarded for completing {spec.title}.",
            "image_url": f"https://images.credly.com/demo/{tid}.png",
            "created_at": anchor - timedelta(days=760),
        }
    world.templates = list(templates.values())
    for spec in COURSES:
        if spec.template_name is None:
            continue
        tpl = templates[spec.template_key or spec.course_id]
        world.rules.append(
            BadgeRule(
                course_id=spec.course_id,
                course_title=spec.title,
                template_id=tpl["id"],
                template_name=tpl["name"],
                method=spec.method,
                expiration_months=spec.months,
                expiration_days=spec.days,
                require_pass=True,
                active_from=anchor - timedelta(days=spec.installed_days_ago),
            )
        )

    people = _students(rng, students)
    cum_weights = list(itertools.accumulate(c.weight for c in COURSES))
    regulars = people[: len(people) // 3]
    window = timedelta(days=548)
    raw: list[tuple[datetime, str, str, str, CourseSpec, bool, float]] = []
    for i in range(completions):
        # every student completes at least one course; the rest are repeat learners
        email, first, last = people[i] if i < len(people) else rng.choice(regulars)
        spec = rng.choices(COURSES, cum_weights=cum_weights)[0]
        when = (
            anchor - window + timedelta(seconds=rng.randint(0, int(window.total_seconds()) - 3600))
        )
        when = when.replace(microsecond=0)
        passed = rng.random() >= spec.fail_rate
        score = round(rng.uniform(70, 100) if passed else rng.uniform(20, 69), 1)
        raw.append((when, email, first, last, spec, passed, score))
    raw.sort(key=lambda r: (r[0], r[1]))

    # one retake on the template that allows duplicates, kept explicit for the demo
    retaker = people[7]
    onboarding = next(c for c in COURSES if c.allow_duplicates)
    raw.append((anchor - timedelta(days=300), *retaker, onboarding, True, 91.0))
    raw.append((anchor - timedelta(days=30), *retaker, onboarding, True, 97.0))
    raw.sort(key=lambda r: (r[0], r[1]))
    raw.extend(_renewal_wave(seed, people, anchor))
    raw.sort(key=lambda r: (r[0], r[1]))

    auto_accept = {p[0] for p in people if rng.random() < 0.08}
    world.auto_accept = sorted(auto_accept)
    live: dict[tuple[str, str], dict[str, Any]] = {}
    rules = {r.course_id: r for r in world.rules}
    for when, email, first, last, spec, passed, score in raw:
        no_status = spec.fail_rate == 0.0
        world.completions.append(
            Completion(
                email=email,
                first_name=first,
                last_name=last,
                course_id=spec.course_id,
                course_title=spec.title,
                completed_at=when,
                status=None
                if no_status
                else (SuccessStatus.PASSED if passed else SuccessStatus.FAILED),
                score=None if no_status else score,
            )
        )
        rule = rules.get(spec.course_id)
        if rule is None or not passed or (rule.active_from and when < rule.active_from):
            continue
        tpl = templates[spec.template_key or spec.course_id]
        if tpl["state"] == "draft":
            continue
        if tpl["state"] == "archived" and when > anchor - timedelta(days=200):
            continue  # retired 200 days ago: completions since then earned nothing
        expires = _expiry(when, rule)
        holder = (email, tpl["id"])
        current = live.get(holder)
        if rule.method is IssueMethod.UPDATE and current is None:
            continue
        if current is not None and rule.method in (IssueMethod.UPDATE, IssueMethod.ISSUE_OR_UPDATE):
            world.badges.append(_replace(rng, current, when, expires))
            live[holder] = world.badges[-1]
            continue
        if current is not None and not tpl["allow_duplicate_badges"]:
            continue
        badge = _new_badge(
            rng, tpl, email, first, last, when, expires, anchor, email in auto_accept
        )
        world.badges.append(badge)
        if badge["state"] in ("pending", "accepted"):
            live[holder] = badge

    _pre_integration_badges(rng, world, templates, people, anchor)
    _other_org(rng, world, people, anchor)
    return world


#: a cohort trained on one day eleven months ago on a twelve-month badge: the wave of expiries
#: next month that the Renewals page shows
WAVE_COURSE_ID = "3n5b7v9c1x2z"  # Data Analytics Essentials (issue_or_update, 12 months)
WAVE_SIZE = 240


def _renewal_wave(
    seed: int, people: list[tuple[str, str, str]], anchor: datetime
) -> list[tuple[datetime, str, str, str, CourseSpec, bool, float]]:
    """The cohort's completions, passed, on the 10th of next month twelve months ago (its own
    random stream, so the rest of the world draws the same numbers as without it)."""
    rng = random.Random(seed + 1)
    spec = next(c for c in COURSES if c.course_id == WAVE_COURSE_ID)
    next_month = add_months(anchor.replace(day=1), 1)
    day = add_months(next_month, -12).replace(day=10, hour=9)
    cohort = rng.sample(people[len(people) // 3 :], min(WAVE_SIZE, len(people) // 3))
    return [
        (day + timedelta(minutes=rng.randint(0, 480)), *person, spec, True, 85.0)
        for person in cohort
    ]


def _expiry(when: datetime, rule: BadgeRule) -> datetime | None:
    if not rule.has_expiration:
        return None
    return add_months(when, rule.expiration_months) + timedelta(days=rule.expiration_days)


def _new_badge(
    rng: random.Random,
    tpl: dict[str, Any],
    email: str,
    first: str,
    last: str,
    when: datetime,
    expires: datetime | None,
    anchor: datetime,
    auto: bool,
) -> dict[str, Any]:
    state, changed = "pending", None
    roll = rng.random()
    if auto:
        state, changed = "accepted", when
    elif roll < 0.025:
        state, changed = "rejected", when + timedelta(hours=rng.randint(1, 200))
    else:
        delay = _accept_delay(rng)
        if delay is not None:
            state, changed = "accepted", when + delay
    if changed is not None and changed > anchor:
        state, changed = "pending", None
    if state in ("pending", "accepted") and rng.random() < 0.012:
        revoked_at = when + timedelta(days=rng.randint(1, 60))
        if revoked_at <= anchor:
            state, changed = "revoked", revoked_at
    return {
        "id": _uuid(rng),
        "template_id": tpl["id"],
        "recipient_email": email,
        "issued_to_first_name": first,
        "issued_to_last_name": last,
        "state": state,
        "issued_at": when,
        "created_at": when,
        "expires_at": expires,
        "state_updated_at": changed,
        "updated_at": changed or when,
        "suppress_badge_notification_email": rng.random() < 0.02,
        "replaces_badge_id": None,
        "replacement_badge_id": None,
        "issuer_earner_id": None,
        "revocation_reason": "Issued in error" if state == "revoked" else None,
    }


def _replace(
    rng: random.Random, old: dict[str, Any], when: datetime, expires: datetime | None
) -> dict[str, Any]:
    new = dict(old)
    new.update(
        id=_uuid(rng),
        expires_at=expires,
        created_at=when,
        updated_at=when,
        replaces_badge_id=old["id"],
        replacement_badge_id=None,
    )
    old.update(
        state="replaced", state_updated_at=when, updated_at=when, replacement_badge_id=new["id"]
    )
    return new


def _pre_integration_badges(
    rng: random.Random,
    world: DemoWorld,
    templates: dict[str, dict[str, Any]],
    people: list[tuple[str, str, str]],
    anchor: datetime,
) -> None:
    """Badges issued by hand before the LMS integration existed: no completion behind them."""
    legacy = [t for t in templates.values() if t["state"] != "draft"]
    for email, first, last in rng.sample(people, 400):
        tpl = rng.choice(legacy)
        when = anchor - timedelta(days=rng.randint(600, 740), seconds=rng.randint(0, 86_000))
        accepted = rng.random() < 0.8
        world.badges.append(
            {
                "id": _uuid(rng),
                "template_id": tpl["id"],
                "recipient_email": email,
                "issued_to_first_name": first,
                "issued_to_last_name": last,
                "state": "accepted" if accepted else "pending",
                "issued_at": when,
                "created_at": when,
                "expires_at": None,
                "state_updated_at": when + timedelta(hours=5) if accepted else None,
                "updated_at": when + timedelta(hours=5) if accepted else when,
                "suppress_badge_notification_email": False,
                "replaces_badge_id": None,
                "replacement_badge_id": None,
                "issuer_earner_id": None,
                "revocation_reason": None,
            }
        )


def _other_org(
    rng: random.Random, world: DemoWorld, people: list[tuple[str, str, str]], anchor: datetime
) -> None:
    tid = _template_id("other-org")
    world.other_org_templates = [
        {
            "id": tid,
            "name": "Contoso Certified Trainer",
            "state": "active",
            "allow_duplicate_badges": False,
            "description": "Another issuer's badge.",
            "image_url": f"https://images.credly.com/demo/{tid}.png",
            "created_at": anchor - timedelta(days=900),
        }
    ]
    for email, first, last in rng.sample(people, 300):
        when = anchor - timedelta(days=rng.randint(10, 500))
        world.other_org_badges.append(
            {
                "id": _uuid(rng),
                "template_id": tid,
                "recipient_email": email,
                "issued_to_first_name": first,
                "issued_to_last_name": last,
                "state": "accepted",
                "issued_at": when,
                "created_at": when,
                "expires_at": None,
                "state_updated_at": when + timedelta(hours=2),
                "updated_at": when + timedelta(hours=2),
                "suppress_badge_notification_email": False,
                "replaces_badge_id": None,
                "replacement_badge_id": None,
                "issuer_earner_id": None,
                "revocation_reason": None,
            }
        )


# -- loading ---------------------------------------------------------------------------------


def read_world_file(data_dir: Path) -> tuple[datetime, int] | None:
    """The anchor and seed recorded when the demo was first built, if it was."""
    path = data_dir / WORLD_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return datetime.fromisoformat(data["anchor"]), int(data["seed"])


def write_world_file(data_dir: Path, anchor: datetime, seed: int) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / WORLD_FILE).write_text(
        json.dumps({"anchor": anchor.isoformat(), "seed": seed}) + "\n", encoding="utf-8"
    )


def demo_world(data_dir: Path) -> DemoWorld:
    """The demo world of this data directory: one anchor rule for every start-up.

    The anchor and seed recorded in ``demo_world.json`` when present; otherwise today's
    anchor, recorded now so the embedded emulator, a standalone one and the cache agree.
    """
    recorded = read_world_file(data_dir)
    if recorded is not None:
        anchor, seed = recorded
        return generate(anchor, seed=seed)
    demo = generate()
    write_world_file(data_dir, demo.anchor, demo.seed)
    return demo

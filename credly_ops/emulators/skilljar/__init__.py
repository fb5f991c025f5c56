"""The local Skilljar: v2 tokens, enrollments and courses, v1 webhooks, and a control surface."""

from credly_ops.emulators.skilljar.app import build_world, create_app, run_skilljar_emulator
from credly_ops.emulators.skilljar.faults import Faults
from credly_ops.emulators.skilljar.state import (
    DEMO_API_KEY,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    SkilljarWorld,
)

__all__ = [
    "DEMO_API_KEY",
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "Faults",
    "SkilljarWorld",
    "build_world",
    "create_app",
    "run_skilljar_emulator",
]

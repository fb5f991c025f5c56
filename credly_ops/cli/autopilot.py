"""``credly-ops autopilot run | status | pause | resume``: automatic issuing.

``run [--once] [--shadow] [--interval SECONDS] [--json]`` runs cycles (Credly sync, Skilljar
completions, decide, send once, record: :mod:`credly_ops.autopilot.cycle`). With ``--once``
one cycle; ``--json`` prints ``{"completions_new", "decided", "issued", "updated", "skipped",
"failed", "reasons", "shadow", "paused"}``. Exit codes: 0 every decided row ended; 1 some
failed (the next cycle sends them again); 2 the cycle could not run — Skilljar not configured,
Credly or Skilljar unreachable, or automatic issuing paused (before the cycle, or by a rail
during it: the rows left wait for an admin's resume). Without ``--once`` it cycles every
``--interval`` seconds (default 300) until SIGTERM or SIGINT, finishing the unit of work in
hand (the requests in flight; the rows left stay decided and go with the next start);
``--json`` then prints one JSON line per cycle. ``--shadow`` decides and records without
sending, whatever the setting.

``status [--json]`` says the state, the worker, the last and next cycle, the lag and today's
counts. ``pause [--reason TEXT]`` and ``resume`` are an admin's, and audited.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

import click

from credly_ops.cli.context import CommandLine, pass_command_line
from credly_ops.cli.exits import ExitCode
from credly_ops.cli.output import error, print_json, print_json_line, say
from credly_ops.config import SkilljarSettings
from credly_ops.workspace import Workspace

if TYPE_CHECKING:
    from credly_ops.autopilot.cycle import CycleResult


@click.group(
    "autopilot",
    short_help="automatic issuing: run cycles, status, pause, resume",
    help="Automatic issuing: Skilljar completions in, badges out, exactly once, unattended.",
)
def command() -> None:
    """The group: ``run``, ``status``, ``pause`` and ``resume`` do the work."""


def completions_reader(ws: Workspace) -> Callable[[], int]:
    """The cycle's completions step (webhook hints, then the incremental read); raises
    ``CycleUnavailable`` when Skilljar is not configured."""
    from credly_ops.autopilot.cycle import CycleUnavailable
    from credly_ops.autopilot.reading import completions_step

    skilljar = ws.skilljar_settings()
    if not isinstance(skilljar, SkilljarSettings):
        raise CycleUnavailable(
            "skilljar",
            "automatic issuing is off: Skilljar is not configured "
            f"(missing {' and '.join(skilljar.missing)})",
        )
    return completions_step(ws, ws.skilljar_client())


def exit_code(result: CycleResult) -> ExitCode:
    if result.paused:
        return ExitCode.UNUSABLE
    return ExitCode.FAILED if result.failed else ExitCode.OK


def _say_cycle(result: CycleResult) -> None:
    verb = "would issue" if result.shadow else "issued"
    line = (
        f"cycle: {result.completions_new:,} new completions, {result.decided:,} decided; "
        f"{verb} {result.issued:,}, updated {result.updated:,}, skipped {result.skipped:,}, "
        f"failed {result.failed:,}"
    )
    if result.paused:
        line += f"; paused: {result.pause_reason or 'by an admin'}"
    say(line)


@command.command(
    "run",
    short_help="run automatic issuing cycles (or one, with --once)",
    help="Run automatic issuing: each cycle syncs Credly, reads new Skilljar completions, "
    "decides them with the issuing rules and sends each badge exactly once. Loops every "
    "--interval seconds until SIGTERM/SIGINT, or runs one cycle with --once.",
)
@click.option("--once", is_flag=True, help="run one cycle and exit")
@click.option("--shadow", is_flag=True, help="decide and record, send nothing (shadow mode)")
@click.option(
    "--interval",
    type=click.FloatRange(min=1.0),
    default=300.0,
    show_default=True,
    metavar="SECONDS",
    help="seconds between cycles (a webhook hint starts one sooner)",
)
@click.option("--json", "as_json", is_flag=True, help="print each cycle's result as JSON")
@pass_command_line
def run(cl: CommandLine, once: bool, shadow: bool, interval: float, as_json: bool) -> ExitCode:
    from credly_ops.autopilot import CycleUnavailable, Wake, run_cycle, run_forever
    from credly_ops.autopilot.reading import hinted

    ws = cl.workspace()
    try:
        reader = completions_reader(ws)
    except CycleUnavailable as exc:
        error(f"credly-ops autopilot run: {exc}")
        return ExitCode.UNUSABLE
    forced = True if shadow else None

    def show(result: CycleResult) -> None:
        if as_json and not once:
            print_json_line(result.as_json())
            sys.stdout.flush()
        else:
            _say_cycle(result)

    if once:
        try:
            result = run_cycle(ws, cl.actor, read_completions=reader, shadow=forced)
        except CycleUnavailable as exc:
            error(f"credly-ops autopilot run: this cycle could not run: {exc}")
            return ExitCode.UNUSABLE
        if as_json:
            print_json(result.as_json(), sort_keys=False)
        else:
            _say_cycle(result)
        return exit_code(result)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        say(
            f"credly-ops autopilot run: {signal.Signals(signum).name}: stopping after the "
            "requests in flight"
        )
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        run_forever(
            ws,
            cl.actor,
            interval=interval,
            shadow=forced,
            read_completions=reader,
            wake=Wake(),
            stop=stop,
            on_cycle=show,
            on_unavailable=lambda exc: error(f"credly-ops autopilot run: {exc}"),
            hinted=hinted(ws),
        )
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return ExitCode.OK


@command.command(
    "status",
    short_help="say whether automatic issuing runs, and what it did today",
    help="The state of automatic issuing (running, shadow, paused and why, or off and what "
    "is missing), the worker, the last and next cycle, the lag and today's counts.",
)
@click.option("--json", "as_json", is_flag=True, help="print the status as JSON")
@pass_command_line
def status(cl: CommandLine, as_json: bool) -> ExitCode:
    from credly_ops.autopilot import autopilot_status
    from credly_ops.autopilot.status import lag_text

    ws = cl.workspace()
    info = autopilot_status(ws.store, skilljar=ws.skilljar_settings())
    if as_json:
        print_json(info.as_json())
        return ExitCode.OK
    print(info.sentence())
    if info.mode == "off" and info.state.paused:
        print(f"paused as well: {info.state.pause_reason or 'no reason given'}")
    print(f"worker: {info.worker or 'none running'}")
    last = info.last_cycle_at.isoformat() if info.last_cycle_at else "never"
    following = info.next_cycle_at.isoformat() if info.next_cycle_at else "-"
    print(f"last cycle: {last} ({info.last_cycle_outcome or '-'}); next cycle: {following}")
    print(f"lag: {lag_text(info.lag_seconds)}; waiting to be sent: {info.waiting:,}")
    today = ", ".join(f"{k} {v:,}" for k, v in info.today.items())
    print(f"today: {today}")
    if info.reasons_today:
        print("reasons: " + ", ".join(f"{k} {v:,}" for k, v in info.reasons_today.items()))
    return ExitCode.OK


@command.command(
    "pause",
    short_help="pause automatic issuing (admin; audited)",
    help="Pause automatic issuing. Completions keep arriving and wait; they are issued after "
    "the resume.",
)
@click.option("--reason", default="", help="why (shown on the page, in status and the audit)")
@pass_command_line
def pause_command(cl: CommandLine, reason: str) -> ExitCode:
    from credly_ops.autopilot import pause

    pause(
        cl.workspace().store, cl.actor, reason or f"paused from the command line by {cl.actor.name}"
    )
    print("automatic issuing paused")
    return ExitCode.OK


@command.command(
    "resume",
    short_help="resume automatic issuing (admin; audited)",
    help="Resume automatic issuing; the completions that waited are issued by the next cycle. "
    "The rails count afresh from now.",
)
@pass_command_line
def resume_command(cl: CommandLine) -> ExitCode:
    from credly_ops.autopilot import read_state, resume

    store = cl.workspace().store
    was = read_state(store)
    resume(store, cl.actor)
    print(
        "automatic issuing resumed"
        if was.paused
        else "automatic issuing was not paused; nothing changed"
    )
    return ExitCode.OK

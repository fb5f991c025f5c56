"""``credly-ops``: the command line, thin over the same functions the app uses.

Every command acts as a local administrator and is recorded in the audit trail as
``cli:<os user>``.  Exit codes: 0 success, 1 the work ran but something failed, 2 the input or
configuration is unusable.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import pkgutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from credly_ops.access import command_line_actor
from credly_ops.config import ConfigError, Settings, cli_actor, load_settings
from credly_ops.credly.errors import CredlyError
from credly_ops.logs import install_redaction
from credly_ops.store import CacheBusy
from credly_ops.workspace import Workspace

EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2
ACTOR = command_line_actor()


class Progress:
    """A one-line progress display on a terminal; silent otherwise."""

    def __init__(self, stream: TextIO, label: str) -> None:
        self.stream, self.label = stream, label
        self.enabled = stream.isatty()

    def __call__(self, done: int, message: str, total: int | None = None) -> None:
        if not self.enabled:
            return
        if total:
            width = 30
            filled = int(width * min(done, total) / total)
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r{self.label} [{bar}] {done:,}/{total:,} {message[:40]:<40}")
        else:
            self.stream.write(f"\r{self.label}: {message[:60]:<60}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(db=getattr(args, "db", None), actor=cli_actor())


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str, sort_keys=True))


# -- commands --------------------------------------------------------------------------------


def cmd_sync(args: argparse.Namespace) -> int:
    from credly_ops.sync import sync

    ws = Workspace(_settings(args))
    progress = Progress(sys.stderr, "sync")
    with ws.client() as client:
        result = sync(client, ws.store, full=args.full, actor=ACTOR, progress=progress)
    progress.close()
    if args.json:
        out = result.as_json()
        out.pop("kind")
        _print_json(out)
    else:
        print(
            f"{result.kind} sync: {result.templates} templates, {result.badges:,} badges cached; "
            f"{result.changed:,} changed; {result.pages} pages in {result.seconds:.1f} s"
        )
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from credly_ops.demo import (
        demo_is_built,
        generate,
        load_cache,
        read_world_file,
        reset_demo_files,
        write_world_file,
    )
    from credly_ops.sync import sync

    settings = _settings(args)
    if not settings.is_demo and args.if_absent:
        print(f"{settings.env.value} environment: no demo world to build")
        return EXIT_OK
    if not settings.is_demo:
        print(
            "credly-ops demo: the demo needs the demo environment (no Credly org configured)",
            file=sys.stderr,
        )
        return EXIT_UNUSABLE
    ws = Workspace(settings)
    if args.fresh:
        reset_demo_files(ws.data_dir, settings.db_path)
    elif args.if_absent and demo_is_built(ws.store, ws.data_dir):
        print(f"demo world already built in {settings.db_path}")
        return EXIT_OK
    recorded = read_world_file(ws.data_dir)
    demo = generate() if recorded is None else generate(recorded[0], seed=recorded[1])
    write_world_file(ws.data_dir, demo.anchor, demo.seed)
    load_cache(ws.store, demo, actor=ACTOR)
    with ws.client() as client:
        result = sync(client, ws.store, full=True, actor=ACTOR)
    print(
        f"demo world built: {len(demo.completions):,} completions, {len(demo.rules)} badge rules, "
        f"{result.templates} templates and {result.badges:,} badges synced in "
        f"{result.seconds:.1f} s"
    )
    return EXIT_OK


def cmd_emulator(args: argparse.Namespace) -> int:
    from credly_ops.credly.emulator import run_emulator

    journal = Path(args.journal) if args.journal else None
    run_emulator(
        args.host,
        args.port,
        seed=args.seed,
        latency_ms=args.latency_ms,
        rate_limit=args.rate_limit,
        fail_rate=args.fail_rate,
        journal_path=journal,
    )
    return EXIT_OK


def cmd_rules(args: argparse.Namespace) -> int:
    from credly_ops.rules import (
        check_rules,
        load_rules,
        load_templates,
        read_rules_csv,
        replace_rules,
        rules_csv,
    )

    ws = Workspace(_settings(args))
    if args.rules_command == "export":
        data = rules_csv(load_rules(ws.store))
        if args.file:
            Path(args.file).write_bytes(data)
            print(f"wrote {args.file}")
        else:
            sys.stdout.write(data.decode("utf-8-sig"))
        return EXIT_OK
    try:
        rows = read_rules_csv(Path(args.file).read_bytes())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"credly-ops rules import: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    check = check_rules(rows, load_templates(ws.store), first_row=2)
    for warning in check.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not check.ok:
        for error in check.errors:
            print(f"error: {error}", file=sys.stderr)
        print("nothing was saved", file=sys.stderr)
        return EXIT_UNUSABLE
    replace_rules(ws.store, check.rules, actor=ACTOR, fill_active_from=True)
    print(f"imported {len(check.rules)} badge rules")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from credly_ops.sync import last_sync

    settings = _settings(args)
    ws = Workspace(settings)
    info: dict[str, Any] = dict(settings.describe())
    info["last_sync"] = last_sync(ws.store)
    _print_json(info)
    return EXIT_OK


# -- parser ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="credly-ops",
        description="Operations console for Credly badge programs: sync, bulk issue, funnel.",
    )
    parser.add_argument(
        "--db", help="DuckDB cache file (default: CREDLY_OPS_DB or data/credly_ops.duckdb)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log requests to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "sync",
        help="pull templates and issued badges from Credly into the cache",
        description="Pull templates and issued badges from Credly into the cache. "
        "Incremental by default: only what changed since the last sync.",
    )
    p.add_argument("--full", action="store_true", help="read everything, not only changes")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser(
        "demo",
        help="build the demo world (emulator + cache)",
        description="Build the deterministic demo world: completions and rules in "
        "the cache, badges in the embedded Credly emulator, then a full sync.",
    )
    p.add_argument("--if-absent", action="store_true", help="do nothing when already built")
    p.add_argument("--fresh", action="store_true", help="forget the current demo and rebuild it")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "emulator",
        help="run the local Credly API emulator",
        description="Serve the local Credly API emulator (for demos and tests).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.add_argument("--seed", choices=["demo", "empty"], default="demo", help="starting world")
    p.add_argument("--latency-ms", type=int, default=0, help="added latency per request")
    p.add_argument("--rate-limit", type=float, default=None, help="requests per second before 429")
    p.add_argument(
        "--fail-rate", type=float, default=0.0, help="share of requests answered 500/503"
    )
    p.add_argument("--journal", help="append-only file that keeps the world across restarts")
    p.set_defaults(func=cmd_emulator)

    p = sub.add_parser(
        "rules",
        help="import or export badge rules as CSV",
        description="Import or export the badge rules (course → template).",
    )
    rules_sub = p.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    pi = rules_sub.add_parser(
        "import",
        help="replace the badge rules with a CSV file",
        description="Validate a rules CSV and, when it has no errors, make "
        "it the rule set. Columns: course_id, course_title, template_id, "
        "method, expiration_months, expiration_days, require_pass, active_from.",
    )
    pi.add_argument("file", help="CSV file")
    pe = rules_sub.add_parser(
        "export",
        help="write the badge rules as CSV",
        description="Write the badge rules as CSV (to stdout without FILE).",
    )
    pe.add_argument("file", nargs="?", help="output file (default: stdout)")
    p.set_defaults(func=cmd_rules)

    p = sub.add_parser(
        "status",
        help="show the configuration (token masked) and the last sync",
        description="Show the configuration, with the token masked, and the last sync.",
    )
    p.set_defaults(func=cmd_status)

    for module in command_modules():
        module.add_parser(sub)
    return parser


def command_modules() -> list[ModuleType]:
    """Every command module in :mod:`credly_ops.commands`, in name order."""
    import credly_ops.commands as package

    names = sorted(
        m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")
    )
    return [importlib.import_module(f"{package.__name__}.{name}") for name in names]


def _guarded(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        return func(args)
    except ConfigError as exc:
        print(f"credly-ops: configuration: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    except CacheBusy as exc:
        print(f"credly-ops: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except CredlyError as exc:
        print(f"credly-ops: {exc}", file=sys.stderr)
        return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = load_settings(db=args.db)
        install_redaction([settings.api_token.get_secret_value()])
    except ConfigError:
        pass  # reported by the command itself
    return _guarded(args.func, args)


if __name__ == "__main__":
    sys.exit(main())

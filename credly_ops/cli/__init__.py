"""``credly-ops``: the command line, thin over the same functions the app uses.

Every command acts as a local administrator, recorded in the audit trail as ``cli:<os user>``
(:func:`credly_ops.access.command_line_actor`, made once per run).  Exit codes: 0 success,
1 the work ran but something failed, 2 the input or configuration is unusable
(:mod:`credly_ops.cli.exits`).

The package::

    __init__.py    the ``credly-ops`` group, its options (--db, -v), COMMANDS and main()
    __main__.py    ``python -m credly_ops.cli``
    context.py     CommandLine: the run's --db and actor, handed to every command
    exits.py       the exit codes, and which error ends a command with which
    output.py      JSON, sentences, errors, tables, progress (Rich, on a terminal only)
    audit.py autopilot.py completions.py demo.py doctor.py emulator.py expiring.py funnel.py
    hooks.py issue.py rules.py status.py student.py sync.py
                   one module per command or command group

Adding a command (there is one way):

1. Write ``credly_ops/cli/<name>.py`` defining ``command``, a ``click.command`` (or
   ``click.group``) with ``short_help`` for the list, ``help`` for its own page and help on
   every option.  Its function takes the :class:`~credly_ops.cli.context.CommandLine` first
   (``@pass_command_line``), prints through :mod:`credly_ops.cli.output` and returns an
   :class:`~credly_ops.cli.exits.ExitCode`.  Errors listed in :data:`~credly_ops.cli.exits.FAILURES`
   need no handling: :func:`main` says them and returns their code.
2. Add the module to ``COMMANDS`` below.
3. Add the command to the README's "Command line" table (``tests/test_cli.py`` checks both).

Imports point down: the commands import :mod:`context`, :mod:`exits` and :mod:`output`, never
this module; nothing outside this package imports it.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Sequence

import click

from credly_ops.access import command_line_actor
from credly_ops.cli import (
    audit,
    autopilot,
    completions,
    demo,
    doctor,
    emulator,
    expiring,
    funnel,
    hooks,
    issue,
    rules,
    status,
    student,
    sync,
)
from credly_ops.cli.context import CommandLine
from credly_ops.cli.exits import HANDLED, failure
from credly_ops.cli.output import error
from credly_ops.config import ConfigError, load_settings, load_skilljar_settings
from credly_ops.logs import install_redaction

__all__ = ["COMMANDS", "credly_ops_command", "main"]

#: every command, in the order ``credly-ops --help`` lists them
COMMANDS: tuple[click.Command, ...] = (
    sync.command,
    completions.command,
    demo.command,
    emulator.command,
    rules.command,
    status.command,
    audit.command,
    funnel.command,
    issue.command,
    student.command,
    autopilot.command,
    hooks.command,
    expiring.command,
    doctor.command,
)


class _InOrder(click.Group):
    """A group that lists its commands in the order they were added."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(
    "credly-ops",
    cls=_InOrder,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    help="Operations console for Credly badge programs: sync, bulk issue, funnel.",
)
@click.option(
    "--db",
    metavar="FILE",
    help="DuckDB cache file (default: CREDLY_OPS_DB, else one file per organization in data/: "
    "data/<env>-<org>.duckdb; the demo uses data/credly_ops.duckdb)",
)
@click.option("-v", "--verbose", is_flag=True, help="log requests to stderr")
@click.pass_context
def credly_ops_command(ctx: click.Context, db: str | None, verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = load_settings(db=db)
        install_redaction([settings.api_token.get_secret_value()])
    except ConfigError:
        pass  # said by the command that needs the settings
    with contextlib.suppress(ConfigError):  # an unusable [skilljar] is said where it is used
        install_redaction(load_skilljar_settings().secrets())
    ctx.obj = CommandLine(db=db, actor=command_line_actor())


for _command in COMMANDS:
    credly_ops_command.add_command(_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``credly-ops`` with ``argv`` (default: the process's arguments); the exit code.

    ``--help`` and a command line that cannot be parsed end in :class:`SystemExit` (0 and 2),
    after the help or the usage error is printed.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        with credly_ops_command.make_context("credly-ops", args) as ctx:
            try:
                return int(credly_ops_command.invoke(ctx))
            except HANDLED as exc:
                code, sentence = failure(exc)
                error(f"credly-ops {ctx.invoked_subcommand}: {sentence}")
                return int(code)
    except click.exceptions.Exit as exc:  # --help
        raise SystemExit(exc.exit_code) from None
    except click.ClickException as exc:  # a usage error
        exc.show()
        raise SystemExit(exc.exit_code) from None

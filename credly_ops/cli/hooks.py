"""``credly-ops hooks``: serve the Skilljar webhook receiver (:mod:`credly_ops.hooks`)."""

from __future__ import annotations

from pathlib import Path

import click

from credly_ops.cli.context import CommandLine, pass_command_line
from credly_ops.cli.exits import ExitCode
from credly_ops.cli.output import error, say
from credly_ops.config import DEFAULT_DB_DIR, load_skilljar_settings
from credly_ops.loopback import is_loopback

DEFAULT_PORT = 8766


@click.command(
    "hooks",
    short_help="receive Skilljar webhooks (automatic issuing's wake-up)",
    help="Serve POST /hooks/skilljar: a Skilljar COURSE_COMPLETION delivery that carries the "
    "webhook secret (HTTP Basic password, or the X-Webhook-Secret header) is stored in a spool "
    "folder beside the cache and answered 200 at once; anything else is answered 401. The "
    "automatic issuer takes the events from there. Needs [skilljar] webhook_secret "
    "(SKILLJAR_WEBHOOK_SECRET). Listens on loopback: put it behind the reverse proxy.",
)
@click.option("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
@click.option("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
@click.option(
    "--public",
    is_flag=True,
    help="allow a --host that is not loopback (without a reverse proxy in front; not advised)",
)
@pass_command_line
def command(cl: CommandLine, host: str, port: int, public: bool) -> ExitCode:
    import uvicorn

    from credly_ops.hooks import Spool, create_hooks_app, webhook_secret

    skilljar = load_skilljar_settings()
    if webhook_secret(skilljar) is None:
        missing = "" if skilljar.configured else " and Skilljar's client id and secret"
        error(
            "credly-ops hooks: no webhook secret is configured, so no delivery could be "
            f"authenticated; set webhook_secret in [skilljar] (SKILLJAR_WEBHOOK_SECRET){missing}."
        )
        return ExitCode.UNUSABLE
    if not is_loopback(host) and not public:
        error(
            f"credly-ops hooks: {host!r} is not a loopback address; serve on loopback behind "
            "the reverse proxy, or give --public to listen there anyway."
        )
        return ExitCode.UNUSABLE
    db_path = Path(cl.settings().db_path)
    if not db_path.parent.is_dir():
        if db_path.parent != DEFAULT_DB_DIR:
            error(f"credly-ops hooks: the cache's folder {db_path.parent} does not exist.")
            return ExitCode.UNUSABLE
        db_path.parent.mkdir(parents=True, exist_ok=True)
    spool = Spool.beside(db_path)
    say(f"receiving Skilljar webhooks on http://{host}:{port}/hooks/skilljar; spool {spool.folder}")
    uvicorn.run(
        create_hooks_app(skilljar, spool, wake=None),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
    )
    return ExitCode.OK

"""Settings: built once, immutable, passed down.  The only module that reads the environment.

Precedence, per key: explicit arguments, then the ``[credly]`` section of
``.streamlit/secrets.toml``, then environment variables (``CREDLY_ENV``, ``CREDLY_ORG_ID``,
``CREDLY_API_TOKEN``, ``CREDLY_API_URL``, ``CREDLY_OPS_DB``).  With no organization and token
configured the environment is ``demo``: the built-in emulator on a loopback port.

One cache per organization: unless a cache file is named (``--db``, ``db`` in the secrets,
``CREDLY_OPS_DB``), sandbox and production use ``data/<env>-<org_id>.duckdb``, so switching the
configuration from one organization to another never mixes their badges, rules or ledger; the
demo keeps ``data/credly_ops.duckdb``.
"""

from __future__ import annotations

import getpass
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr

from credly_ops.models import Environment

DEFAULT_DB_DIR = Path("data")
#: the demo's cache (and, before one cache per organization, everyone's)
DEFAULT_DB_PATH = DEFAULT_DB_DIR / "credly_ops.duckdb"
DEFAULT_SECRETS_PATH = Path(".streamlit/secrets.toml")
DEMO_ORG_ID = "5f6d0c61-8a8a-4a53-9c1e-0d3c1ab7de00"
DEMO_API_TOKEN = "demo-token-not-a-secret"  # noqa: S105 - the emulator's public demo token
DEMO_HOST = "127.0.0.1"
DEMO_PORT = 8765

BASE_URLS: dict[Environment, str] = {
    Environment.PRODUCTION: "https://api.credly.com/v1",
    Environment.SANDBOX: "https://sandbox-api.credly.com/v1",
    Environment.DEMO: f"http://{DEMO_HOST}:{DEMO_PORT}/v1",
}
WEB_URLS: dict[Environment, str] = {
    Environment.PRODUCTION: "https://www.credly.com",
    Environment.SANDBOX: "https://sandbox.credly.com",
    Environment.DEMO: "https://www.credly.com",
}

_ENV_VARS = {
    "env": "CREDLY_ENV",
    "org_id": "CREDLY_ORG_ID",
    "api_token": "CREDLY_API_TOKEN",
    "api_url": "CREDLY_API_URL",
    "db": "CREDLY_OPS_DB",
}


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the key, never its secret value."""


class Settings(BaseModel):
    """Everything credly_ops needs to reach one Credly organization and its cache."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True, extra="forbid")

    env: Environment
    org_id: str
    api_token: SecretStr
    api_url: str
    db_path: Path
    #: who acts, for the audit trail (the CLI uses ``cli:<os user>``)
    actor: str = "local"

    @property
    def is_demo(self) -> bool:
        return self.env is Environment.DEMO

    @property
    def web_url(self) -> str:
        return WEB_URLS[self.env]

    def describe(self) -> dict[str, str]:
        """A display-safe summary: the token only as a mask."""
        return {
            "environment": self.env.value,
            "organization": self.org_id,
            "api_url": self.api_url,
            "token": mask_secret(self.api_token.get_secret_value()),
            "database": str(self.db_path),
        }


def default_db_path(env: Environment | str, org_id: str) -> Path:
    """The cache file used when none is named: one per environment and organization."""
    environment = Environment(env)
    if environment is Environment.DEMO:
        return DEFAULT_DB_PATH
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", org_id.strip()).strip(".") or "_"
    return DEFAULT_DB_DIR / f"{environment.value}-{safe}.duckdb"


def mask_secret(secret: str) -> str:
    if not secret:
        return "(not set)"
    if len(secret) <= 8:
        return "•" * 8
    return "•" * 8 + secret[-4:]


def read_secrets_section(path: Path) -> dict[str, Any]:
    """The ``[credly]`` table of a Streamlit secrets file, or ``{}`` when there is none."""
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {type(exc).__name__}") from None
    section = data.get("credly", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [credly] must be a table")
    return section


def read_secrets_file(path: Path | None = None) -> dict[str, Any]:
    """The whole secrets file (for the app's ``[auth]`` and ``[roles]``), ``{}`` if absent."""
    path = DEFAULT_SECRETS_PATH if path is None else path
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {type(exc).__name__}") from None


def load_settings(
    *,
    env: str | None = None,
    org_id: str | None = None,
    api_token: str | None = None,
    api_url: str | None = None,
    db: str | Path | None = None,
    actor: str | None = None,
    secrets_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings: arguments win, then secrets, then the environment."""
    environ = os.environ if environ is None else environ
    secrets = read_secrets_section(DEFAULT_SECRETS_PATH if secrets_path is None else secrets_path)
    explicit = {"env": env, "org_id": org_id, "api_token": api_token, "api_url": api_url, "db": db}

    def pick(key: str) -> str | None:
        for source in (explicit.get(key), secrets.get(key), environ.get(_ENV_VARS[key])):
            if source not in (None, ""):
                return str(source)
        return None

    chosen_org, chosen_token = pick("org_id"), pick("api_token")
    env_text = pick("env")
    if env_text is None:
        environment = Environment.DEMO if not (chosen_org and chosen_token) else None
        if environment is None:
            environment = Environment.PRODUCTION
    else:
        try:
            environment = Environment(env_text.strip().lower())
        except ValueError:
            allowed = ", ".join(e.value for e in Environment)
            raise ConfigError(f"env must be one of {allowed}; got {env_text[:20]!r}") from None

    if environment is Environment.DEMO:
        chosen_org = chosen_org or DEMO_ORG_ID
        chosen_token = chosen_token or DEMO_API_TOKEN
    else:
        missing = [k for k, v in (("org_id", chosen_org), ("api_token", chosen_token)) if not v]
        if missing:
            names = " and ".join(f"{k} ({_ENV_VARS[k]})" for k in missing)
            raise ConfigError(f"the {environment.value} environment needs {names}")
    assert chosen_org is not None and chosen_token is not None
    url = (pick("api_url") or BASE_URLS[environment]).rstrip("/")
    return Settings(
        env=environment,
        org_id=chosen_org.strip(),
        api_token=SecretStr(chosen_token.strip()),
        api_url=url,
        db_path=Path(pick("db") or default_db_path(environment, chosen_org)),
        actor=actor or "local",
    )


def cli_actor() -> str:
    """How the command line is named in the audit trail: ``cli:<os user>``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"

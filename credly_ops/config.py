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
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr

from credly_ops.models import Environment
from credly_ops.redaction import mask_secret

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


DEMO_AUTOPILOT_VAR = "CREDLY_OPS_DEMO_AUTOPILOT"


def demo_autopilot_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the demo app runs automatic issuing in its own process (on unless
    ``CREDLY_OPS_DEMO_AUTOPILOT`` is ``0``, ``false``, ``no`` or ``off``)."""
    environ = os.environ if environ is None else environ
    value = environ.get(DEMO_AUTOPILOT_VAR, "").strip().lower()
    return value not in ("0", "false", "no", "off")


def default_db_path(env: Environment | str, org_id: str) -> Path:
    """The cache file used when none is named: one per environment and organization."""
    environment = Environment(env)
    if environment is Environment.DEMO:
        return DEFAULT_DB_PATH
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", org_id.strip()).strip(".") or "_"
    return DEFAULT_DB_DIR / f"{environment.value}-{safe}.duckdb"


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
    )


def cli_actor() -> str:
    """How the command line is named in the audit trail: ``cli:<os user>`` (the OS user is read
    here, with the environment; :func:`credly_ops.access.command_line_actor` makes the Actor)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"


# --------------------------------------------------------------------------- Skilljar
#
# The ``[skilljar]`` table of ``.streamlit/secrets.toml`` (``api_url``, ``client_id``,
# ``client_secret``, ``domain``, ``webhook_secret``) or the ``SKILLJAR_*`` variables, with the
# same precedence as Credly's: arguments, then secrets, then the environment.  Skilljar is
# optional: without a client id and secret it is "not configured", which is a value, not an error.

DEFAULT_SKILLJAR_API_URL = "https://api.skilljar.com"
#: the demo's embedded Skilljar (the local emulator) and its public v2 client and webhook secret:
#: in the demo environment, with no Skilljar configured, completions are read from it
DEMO_SKILLJAR_PORT = 8767
DEMO_SKILLJAR_API_URL = f"http://{DEMO_HOST}:{DEMO_SKILLJAR_PORT}"
DEMO_SKILLJAR_CLIENT_ID = "demo-skilljar-client"
DEMO_SKILLJAR_CLIENT_SECRET = "demo-skilljar-secret-not-a-secret"  # noqa: S105 - public demo value
DEMO_SKILLJAR_WEBHOOK_SECRET = "demo-webhook-secret-not-a-secret"  # noqa: S105 - public demo value

_SKILLJAR_ENV_VARS = {
    "api_url": "SKILLJAR_API_URL",
    "client_id": "SKILLJAR_CLIENT_ID",
    "client_secret": "SKILLJAR_CLIENT_SECRET",
    "domain": "SKILLJAR_DOMAIN",
    "webhook_secret": "SKILLJAR_WEBHOOK_SECRET",
}


class SkilljarSettings(BaseModel):
    """What credly_ops needs to read completions from one Skilljar account."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True, extra="forbid")

    #: the API root, without ``/v1`` or ``/v2``
    api_url: str
    client_id: str
    client_secret: SecretStr
    #: read only this training domain's enrollments, when set
    domain: str | None = None
    #: the shared secret a webhook delivery must carry, when webhooks are used
    webhook_secret: SecretStr | None = None

    @property
    def configured(self) -> bool:
        return True

    def secrets(self) -> list[str]:
        """The secret values, for :func:`credly_ops.logs.install_redaction`."""
        values = [self.client_secret.get_secret_value()]
        if self.webhook_secret is not None:
            values.append(self.webhook_secret.get_secret_value())
        return [v for v in values if v]

    def describe(self) -> dict[str, str]:
        """A display-safe summary: the secrets only as masks."""
        webhook = self.webhook_secret.get_secret_value() if self.webhook_secret else ""
        return {
            "skilljar": "configured",
            "api_url": self.api_url,
            "client_id": self.client_id,
            "client_secret": mask_secret(self.client_secret.get_secret_value()),
            "domain": self.domain or "(all domains)",
            "webhook_secret": mask_secret(webhook),
        }


class SkilljarNotConfigured(BaseModel):
    """Skilljar is not set up; ``missing`` names each absent key with its variable."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    missing: tuple[str, ...]

    @property
    def configured(self) -> bool:
        return False

    def secrets(self) -> list[str]:
        return []

    def describe(self) -> dict[str, str]:
        return {"skilljar": f"not configured (missing {' and '.join(self.missing)})"}


def load_skilljar_settings(
    *,
    api_url: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    domain: str | None = None,
    webhook_secret: str | None = None,
    secrets_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> SkilljarSettings | SkilljarNotConfigured:
    """Skilljar's settings (arguments win, then ``[skilljar]`` in secrets, then the environment),
    or what is missing.  A value that is present but unusable is a :class:`ConfigError`."""
    environ = os.environ if environ is None else environ
    section = read_secrets_file(secrets_path).get("skilljar", {})
    if not isinstance(section, dict):
        raise ConfigError("[skilljar] in the secrets file must be a table")
    explicit = {
        "api_url": api_url,
        "client_id": client_id,
        "client_secret": client_secret,
        "domain": domain,
        "webhook_secret": webhook_secret,
    }
    unknown = sorted(set(section) - set(_SKILLJAR_ENV_VARS))
    if unknown:
        raise ConfigError(f"[skilljar] has an unknown key {unknown[0][:40]!r}")

    def pick(key: str) -> str | None:
        for source in (explicit[key], section.get(key), environ.get(_SKILLJAR_ENV_VARS[key])):
            if source is None:
                continue
            if not isinstance(source, str):
                raise ConfigError(f"skilljar {key} must be text")
            if source.strip():
                return source.strip()
        return None

    chosen_id, chosen_secret = pick("client_id"), pick("client_secret")
    if not chosen_id or not chosen_secret:
        missing = tuple(
            f"{key} ({_SKILLJAR_ENV_VARS[key]})"
            for key, value in (("client_id", chosen_id), ("client_secret", chosen_secret))
            if not value
        )
        return SkilljarNotConfigured(missing=missing)
    url = (pick("api_url") or DEFAULT_SKILLJAR_API_URL).rstrip("/")
    if url.endswith(("/v1", "/v2")):
        url = url[:-3]
    if "@" in url:
        raise ConfigError("skilljar api_url must not carry credentials; use client_id/secret")
    if not url.startswith(("https://", "http://")):
        raise ConfigError(f"skilljar api_url must be an http(s) URL; got {url[:60]!r}")
    hook = pick("webhook_secret")
    return SkilljarSettings(
        api_url=url,
        client_id=chosen_id,
        client_secret=SecretStr(chosen_secret),
        domain=pick("domain"),
        webhook_secret=SecretStr(hook) if hook else None,
    )


def demo_skilljar_settings(environ: Mapping[str, str] | None = None) -> SkilljarSettings:
    """The embedded demo Skilljar's settings (public values that open only the local emulator).
    ``SKILLJAR_API_URL`` may move it to another loopback port (two demos side by side, tests)."""
    environ = os.environ if environ is None else environ
    url = (environ.get(_SKILLJAR_ENV_VARS["api_url"]) or DEMO_SKILLJAR_API_URL).strip().rstrip("/")
    host = urlsplit(url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ConfigError(f"the demo Skilljar listens on a loopback address only; got {url[:60]!r}")
    return SkilljarSettings(
        api_url=url,
        client_id=DEMO_SKILLJAR_CLIENT_ID,
        client_secret=SecretStr(DEMO_SKILLJAR_CLIENT_SECRET),
        webhook_secret=SecretStr(DEMO_SKILLJAR_WEBHOOK_SECRET),
    )

"""The gateway's settings: one object, read once from ``GATEWAY_*`` variables and ``.env``."""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
import stat
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from yarl import URL

ENV_PREFIX = "GATEWAY_"
#: The shortest passphrase the database keystore takes: anyone who reads the store can try
#: passphrases offline against it. (The directory keystore keeps its older rule: any.)
MIN_DATABASE_PASSPHRASE_LENGTH: Final = 16

# A PostgreSQL role or schema name we are willing to interpolate into DDL. PostgreSQL itself allows
# more, but the gateway quotes nothing it does not have to: a plain lower-case identifier is enough.
_SQL_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


#: GATEWAY_METRICS_TOKEN's minimum length: a token that cannot be guessed.
METRICS_TOKEN_MIN_LENGTH = 32


class SettingsError(Exception):
    """A setting has an invalid value; the message is one line naming the variable."""


SmtpSecurity = Literal["starttls", "tls", "none"]

# URL scheme -> (how the connection is secured, the port when the URL names none).
_SMTP_SCHEMES: dict[str, tuple[SmtpSecurity, int]] = {
    "smtp": ("starttls", 587),
    "smtps": ("tls", 465),
    "smtp+insecure": ("none", 25),
}


@dataclass(frozen=True, kw_only=True)
class SmtpServer:
    """Where mail goes, parsed once from ``GATEWAY_SMTP_URL``; its repr never shows the password.

    ``security`` is ``starttls`` (``smtp://``: the session must be upgraded with STARTTLS before
    anything else is said, a server that does not offer it is refused), ``tls`` (``smtps://``:
    TLS from the first byte) or ``none`` (``smtp+insecure://``: plain SMTP, for a relay on the
    same host or a test server; it refuses credentials, which would cross the network in clear).
    """

    security: SmtpSecurity
    host: str
    port: int
    username: str | None = None
    password: SecretStr | None = field(default=None, repr=False)


def parse_smtp_url(value: str) -> SmtpServer:
    """Parse an SMTP URL; ``ValueError`` with a message that never repeats the URL or password.

    User and password are percent-decoded (``p%40ss`` is ``p@ss``).
    """
    try:
        url = URL(value)
        port = url.explicit_port
    except ValueError:
        raise ValueError("is not a URL such as smtp://user:password@mail.example.com:587") from None
    scheme = url.scheme.lower()
    if scheme not in _SMTP_SCHEMES:
        raise ValueError(
            "must start with smtp:// (STARTTLS), smtps:// (implicit TLS) or smtp+insecure:// "
            "(plain SMTP, no credentials: a local relay or a test server)"
        )
    security, default_port = _SMTP_SCHEMES[scheme]
    if not url.host:
        raise ValueError("must name the mail server's host")
    if url.path not in ("", "/") or url.query_string or url.fragment:
        raise ValueError("must hold no path, query string or fragment")
    if security == "none" and (url.user or url.password):
        raise ValueError(
            "smtp+insecure:// takes no user or password (they would be sent in clear): "
            "use smtp:// (STARTTLS) or smtps://"
        )
    if (url.user is None) != (url.password is None):
        raise ValueError("must hold both a user and a password, or neither")
    return SmtpServer(
        security=security,
        host=url.host,
        port=port or default_port,
        username=url.user,
        password=SecretStr(url.password) if url.password is not None else None,
    )


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def cores_available() -> int:
    """The cores this process may run on (its CPU affinity, which containers and ``taskset``
    narrow), at most 64: what ``GATEWAY_WORKERS=auto`` means."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(64, cores))


class Settings(BaseSettings):
    """Every setting of the gateway. Field ``foo_bar`` is read from ``GATEWAY_FOO_BAR``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    database_url: str = Field(default="sqlite+aiosqlite:///./gateway.db", repr=False)
    database_schema: str = "gateway"
    keys_dir: str = "./keys"
    signing_alg: Literal["ES256", "EdDSA", "RS256"] = "ES256"
    keys_passphrase: SecretStr | None = None
    # Read once at start-up into keys_passphrase (its trailing newline stripped).
    keys_passphrase_file: str | None = None
    # Where the signing keys live: keys_dir, or the store (docs/keys.md, "Keys in the database").
    keystore: Literal["directory", "database"] = "directory"
    postgrest_notify_url: str | None = Field(default=None, repr=False)
    audience: str | None = None
    jwks_max_age: int = Field(default=300, ge=0, le=86400)
    api_docs: bool = False
    demo: bool = False
    anon_role: str = "anon"
    authenticator_role: str = "authenticator"
    postgrest_schemas: Annotated[list[str], NoDecode] = ["public"]
    upstream_url: str = "http://127.0.0.1:3000"
    proxy_prefix: str = "/rest"
    # supabase-js compatibility: /auth/v1 and the /rest/v1 mount (docs/supabase.md). On by default
    # so supabase-js keeps working; off, both paths are unknown and /rest/v1 is a table again.
    supabase: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    """Granian worker processes; ``auto`` (one per core this process may run on) is resolved
    when the settings are read, so every reader sees a number."""
    issuer: str = "http://127.0.0.1:8000"
    access_token_ttl: int = Field(default=3600, ge=30, le=86400)
    refresh_token_ttl: int = Field(default=2592000, ge=60)
    authenticated_role: str = "authenticated"
    allowed_roles: Annotated[list[str], NoDecode] = ["authenticated"]
    cookie_secure: bool = True
    password_min_length: int = Field(default=8, ge=8, le=256)
    password_hash_workers: int = Field(default_factory=lambda: os.cpu_count() or 2, ge=1, le=64)
    password_hash_niceness: int = Field(default=10, ge=0, le=19)
    trusted_proxies: Annotated[list[str], NoDecode] = []
    refresh_reuse_grace: int = Field(default=10, ge=0, le=120)
    login_max_failures: int = Field(default=5, ge=1, le=1000)
    login_failure_window: int = Field(default=900, ge=1)
    login_lockout: int = Field(default=300, ge=1)
    login_lockout_max: int = Field(default=3600, ge=1)
    login_email_max_failures: int = Field(default=20, ge=1, le=100_000)
    login_known_address_ttl: int = Field(default=30 * 24 * 3600, ge=0)
    auth_rate_limit: int = Field(default=60, ge=1)
    redis_url: str | None = Field(default=None, repr=False)
    cors_origins: Annotated[list[str], NoDecode] = []
    upstream_connect_timeout: float = Field(default=5.0, gt=0, le=120)
    upstream_read_timeout: float = Field(default=60.0, gt=0, le=3600)
    upstream_pool_size: int = Field(default=100, ge=1, le=10000)
    token_cache_size: int = Field(default=10000, ge=0, le=1_000_000)
    revocation_resync: float = Field(default=60.0, ge=1, le=3600)
    proxy_max_body: int = Field(default=10 * 1024 * 1024, ge=1)
    proxy_max_query: int = Field(default=8192, ge=256, le=1024 * 1024)
    body_idle_timeout: float = Field(default=15.0, gt=0, le=600)
    log_level: str = "info"
    log_format: Literal["text", "json"] = "text"
    # GET /metrics: on the main listener with this bearer token, and/or on a listener of its own.
    metrics_token: SecretStr | None = Field(default=None, repr=False)
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"
    # Accounts: who may sign up, the mail that proves an address, and the links in it.
    signup: Literal["closed", "invite", "open"] = "closed"
    require_verified_email: bool = False
    smtp_url: SecretStr | None = None
    smtp_timeout: float = Field(default=10.0, gt=0, le=120)
    mail_from: str | None = None
    link_base_url: str | None = None
    mail_templates: str | None = None
    verify_email_ttl: int = Field(default=24 * 3600, ge=60, le=30 * 24 * 3600)
    password_reset_ttl: int = Field(default=3600, ge=60, le=24 * 3600)
    invitation_ttl: int = Field(default=7 * 24 * 3600, ge=60, le=90 * 24 * 3600)
    dev_mode: bool = False
    # `gateway dev` only: the stack's database, its demo user, the PostgREST binary it runs.
    dev_database_url: str | None = Field(default=None, repr=False)
    dev_email: str = "demo@example.com"
    dev_password: str = Field(default="demo-password", repr=False, min_length=1)
    postgrest_bin: str | None = None
    storage_config: str | None = None
    storage_max_batch: int = Field(default=1000, ge=1, le=10000)
    storage_max_rows: int = Field(default=10000, ge=1, le=100000)

    _split_allowed_roles = field_validator(
        "allowed_roles", "trusted_proxies", "postgrest_schemas", "cors_origins", mode="before"
    )(_split_list)

    @field_validator("workers", mode="before")
    @classmethod
    def _workers(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip().lower()
            if text == "auto":
                return cores_available()
            if not text.isdigit():
                raise ValueError("must be a number of workers (1 to 64) or 'auto'")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "must start with sqlite+aiosqlite:// or postgresql+asyncpg:// "
                "(the gateway's store is async)"
            )
        return value

    @field_validator("database_schema", "authenticated_role", "anon_role", "authenticator_role")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _SQL_IDENTIFIER.match(value):
            raise ValueError("must be a lower-case SQL identifier such as 'authenticated'")
        return value

    @field_validator("allowed_roles", "postgrest_schemas")
    @classmethod
    def _identifiers(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("must name at least one")
        for role in value:
            if not _SQL_IDENTIFIER.match(role):
                raise ValueError(f"{role!r} is not a lower-case SQL identifier")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR network") from None
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin == "*" or not re.fullmatch(r"https?://[^/\s]+", origin):
                raise ValueError(
                    f"{origin!r} is not an origin such as https://app.example.com "
                    "(no path, no wildcard: credentials are never sent to '*')"
                )
        return value

    @field_validator("proxy_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", value):
            raise ValueError("must be a path such as '/rest' (leading slash, no trailing slash)")
        return value

    @field_validator("issuer")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("upstream_url")
    @classmethod
    def _upstream_url(cls, value: str) -> str:
        if value.startswith("unix:"):
            # PostgREST's server-unix-socket: unix:///absolute/path, no host, nothing after it.
            parts = urlsplit(value)
            if parts.netloc or not re.fullmatch(r"(/[^/\x00-\x1f\x7f]+)+", parts.path):
                raise ValueError("a Unix socket is unix:///absolute/path/to/socket")
            if any(segment in (".", "..") for segment in parts.path.split("/")):
                raise ValueError("a Unix socket path may hold no '.' or '..' segment")
            return value
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL, or unix:///path/to/socket")
        return value.rstrip("/")

    @field_validator("upstream_url")
    @classmethod
    def _plain_upstream(cls, value: str) -> str:
        # The proxy builds each upstream URL from this one's scheme, host, port and path;
        # credentials or a query here would be silently dropped or sent to the wrong place.
        parts = urlsplit(value)
        if parts.username is not None or parts.password is not None or parts.query:
            raise ValueError("must hold no user, password or query string")
        if parts.fragment or "#" in value:
            raise ValueError("must hold no fragment")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_installed(cls, value: str | None) -> str | None:
        # Redis is an optional extra: without it a replica would fail in every worker's start-up
        # with a traceback, so refuse here, where the CLI prints one line before serving.
        if value and importlib.util.find_spec("redis") is None:
            raise ValueError("needs the redis package: install postgrest-gateway[redis]")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_smtp_url(value.get_secret_value())
        return value

    @field_validator("mail_from")
    @classmethod
    def _mail_from(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if "\r" in value or "\n" in value:
            raise ValueError("must be one line")
        _, address = parseaddr(value)
        try:
            validate_email(address, check_deliverability=False)
        except EmailNotValidError:
            raise ValueError(
                "must be an address such as accounts@example.com or "
                "'Example <accounts@example.com>'"
            ) from None
        return value

    @field_validator("link_base_url")
    @classmethod
    def _link_base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            url = URL(value)
        except ValueError:
            raise ValueError("is not a URL") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("must be an absolute http:// or https:// URL")
        if url.user is not None or url.password is not None:
            raise ValueError("must hold no user or password")
        if url.query_string or url.fragment or "?" in value or "#" in value:
            raise ValueError("must hold no query string or fragment: the gateway adds ?token=")
        return str(url).rstrip("/")

    @field_validator("mail_templates")
    @classmethod
    def _mail_templates(cls, value: str | None) -> str | None:
        if value is None:
            return None
        folder = Path(value)
        if not folder.is_dir():
            raise ValueError(f"{value!r} is not a folder")
        if not os.access(folder, os.R_OK | os.X_OK):
            raise ValueError(f"the folder {value!r} cannot be read by this user")
        return value

    @field_validator("log_format", mode="before")
    @classmethod
    def _log_format(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        # Never repeated in a message: the message names the rule, not the value.
        if value is None:
            return None
        token = value.get_secret_value()
        if len(token) < METRICS_TOKEN_MIN_LENGTH:
            raise ValueError(
                f"must be at least {METRICS_TOKEN_MIN_LENGTH} characters "
                "(e.g. `openssl rand -hex 32`)"
            )
        if not all(33 <= ord(char) <= 126 for char in token):
            raise ValueError("must be printable ASCII without spaces (it is sent in a header)")
        return value

    @field_validator("metrics_host")
    @classmethod
    def _metrics_host(cls, value: str) -> str:
        value = value.strip()
        if not re.fullmatch(r"[A-Za-z0-9.:_-]{1,253}", value):
            raise ValueError("must be an IP address or a host name, such as 127.0.0.1 or 0.0.0.0")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        value = value.lower()
        if value not in {"debug", "info", "warning", "error"}:
            raise ValueError("must be one of debug, info, warning, error")
        return value

    @model_validator(mode="before")
    @classmethod
    def _passphrase_from_file(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("keys_passphrase_file") is None:
            return data
        if data.get("keys_passphrase") is not None:
            raise ValueError(
                "set GATEWAY_KEYS_PASSPHRASE or GATEWAY_KEYS_PASSPHRASE_FILE, not both"
            )
        return {**data, "keys_passphrase": _read_passphrase(str(data["keys_passphrase_file"]))}

    @model_validator(mode="after")
    def _database_keystore_is_encrypted(self) -> Settings:
        if self.keystore != "database":
            return self
        value = self.keys_passphrase_value
        if not value:
            raise ValueError(
                "GATEWAY_KEYSTORE=database needs GATEWAY_KEYS_PASSPHRASE or "
                "GATEWAY_KEYS_PASSPHRASE_FILE: private keys in the store are always encrypted"
            )
        if len(value) < MIN_DATABASE_PASSPHRASE_LENGTH:
            raise ValueError(
                f"GATEWAY_KEYSTORE=database needs a passphrase of at least "
                f"{MIN_DATABASE_PASSPHRASE_LENGTH} characters (GATEWAY_KEYS_PASSPHRASE or "
                "GATEWAY_KEYS_PASSPHRASE_FILE): it is all that protects the keys in the store"
            )
        return self

    @model_validator(mode="after")
    def _authenticated_role_is_allowed(self) -> Settings:
        if self.authenticated_role not in self.allowed_roles:
            raise ValueError(
                f"GATEWAY_AUTHENTICATED_ROLE {self.authenticated_role!r} is not in "
                "GATEWAY_ALLOWED_ROLES"
            )
        return self

    @model_validator(mode="after")
    def _mail_is_complete(self) -> Settings:
        if self.smtp_url is not None and (self.mail_from is None or self.link_base_url is None):
            raise ValueError(
                "GATEWAY_SMTP_URL needs GATEWAY_MAIL_FROM and GATEWAY_LINK_BASE_URL as well"
            )
        return self

    @model_validator(mode="after")
    def _metrics_port_is_its_own(self) -> Settings:
        if self.metrics_port is not None and self.metrics_port == self.port:
            raise ValueError("GATEWAY_METRICS_PORT must differ from GATEWAY_PORT")
        return self

    @property
    def smtp_server(self) -> SmtpServer | None:
        """``GATEWAY_SMTP_URL`` parsed (validated at start-up), or None: no mail server."""
        if self.smtp_url is None:
            return None
        return parse_smtp_url(self.smtp_url.get_secret_value())

    @property
    def keys_passphrase_value(self) -> str | None:
        """The passphrase (from GATEWAY_KEYS_PASSPHRASE or its file), None when unset or empty."""
        if self.keys_passphrase is None:
            return None
        return self.keys_passphrase.get_secret_value() or None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def notify_url(self) -> str | None:
        """Where ``NOTIFY pgrst`` goes: GATEWAY_POSTGREST_NOTIFY_URL, else a PostgreSQL store."""
        if self.postgrest_notify_url:
            return self.postgrest_notify_url
        return None if self.is_sqlite else self.database_url


def _read_passphrase(path: str) -> SecretStr:
    """The file's text without its trailing newline; the message never holds the content.

    Like ssh with a private key, a file that its group or others may read is refused.
    """
    try:
        with Path(path).open("rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            if mode & 0o077:
                raise ValueError(
                    f"GATEWAY_KEYS_PASSPHRASE_FILE {path!r} is readable or writable by its "
                    f"group or others (mode {stat.S_IMODE(mode):04o}): "
                    f"`chmod 600 {path}` (or 400)"
                )
            text = file.read().decode("utf-8")
    except OSError as exc:
        raise ValueError(
            f"GATEWAY_KEYS_PASSPHRASE_FILE {path!r} cannot be read: "
            f"{exc.strerror or type(exc).__name__}"
        ) from None
    except UnicodeDecodeError:
        raise ValueError(f"GATEWAY_KEYS_PASSPHRASE_FILE {path!r} is not UTF-8 text") from None
    value = text.removesuffix("\n").removesuffix("\r")
    if not value:
        raise ValueError(f"GATEWAY_KEYS_PASSPHRASE_FILE {path!r} is empty")
    return SecretStr(value)


def load_settings(**overrides: Any) -> Settings:
    """Read the settings once; raise :class:`SettingsError` with one line on an invalid value."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    error = exc.errors(include_url=False, include_input=False)[0]
    location = error.get("loc") or ()
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if location:
        variable = ENV_PREFIX + str(location[0]).upper()
        return f"invalid setting {variable}: {message}"
    return f"invalid settings: {message}"

"""Runtime configuration, read once from the environment and validated at start.

Every setting lives here so that a typo in the environment stops the process with one line
naming the setting (see `SettingsError`), instead of surfacing later as a confusing failure
inside a request.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cards_api.db.roles import PREFIX_PATTERN, Roles


class AuthMode(StrEnum):
    """How a request proves which tenant it acts for."""

    API_KEY = "api_key"
    HEADER = "header"


class Pooler(StrEnum):
    """What sits between the API and PostgreSQL."""

    NONE = "none"
    TRANSACTION = "transaction"
    """PgBouncer (or alike) in transaction mode: no session state, no named prepared statements."""


class LogFormat(StrEnum):
    JSON = "json"
    CONSOLE = "console"


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("cards-api", appauthor=False))


class SettingsError(Exception):
    """A setting is invalid; the message is one line naming it."""


class Settings(BaseSettings):
    """Cards API settings. Environment names are `CARDS_<NAME>`, except `DATABASE_URL`."""

    model_config = SettingsConfigDict(
        env_prefix="CARDS_", extra="ignore", frozen=True, populate_by_name=True
    )

    database_url: Annotated[str | None, Field(validation_alias="DATABASE_URL")] = None
    # A direct URL to PostgreSQL when DATABASE_URL goes through a pooler: migrations, the keys
    # CLI and the revocation LISTEN use it (they need a session of their own).
    database_direct_url: str | None = None
    db_pooler: Pooler = Pooler.NONE
    data_dir: Path = Field(default_factory=default_data_dir)
    auth_mode: AuthMode = AuthMode.API_KEY
    idempotency_ttl: Annotated[int, Field(ge=1, le=30 * 86400)] = 86400
    log_level: LogLevel = LogLevel.INFO
    log_format: LogFormat = LogFormat.JSON
    key_cache_ttl: Annotated[float, Field(ge=0, le=300)] = 60.0
    # Requests per second per API key (per tenant in header mode) and process; 0 turns it off.
    rate_limit: Annotated[float, Field(ge=0, le=100_000)] = 500.0
    rate_limit_burst: Annotated[int, Field(ge=1, le=1_000_000)] = 1000
    # Failed authentications per second per client address (and burst), before a 429.
    auth_failure_rate: Annotated[float, Field(ge=0, le=100_000)] = 5.0
    auth_failure_burst: Annotated[int, Field(ge=1, le=1_000_000)] = 50
    # Pool and timeouts: sized for one worker process; each worker opens its own pool.
    pool_min_size: Annotated[int, Field(ge=1, le=100)] = 2
    pool_max_size: Annotated[int, Field(ge=1, le=200)] = 10
    statement_timeout_ms: Annotated[int, Field(ge=100, le=600_000)] = 15_000
    lock_timeout_ms: Annotated[int, Field(ge=100, le=600_000)] = 5_000
    # A request's headers, then its body, must each arrive within this many seconds (408).
    request_read_timeout: Annotated[float, Field(gt=0, le=3600)] = 10.0
    # A second in which the event loop lagged, the GC paused or a pool wait lasted this long
    # is logged as a `stall` line (0: every second; see stalls.py).
    stall_log_ms: Annotated[float, Field(ge=0, le=60_000)] = 50.0
    # Database roles of this deployment: <prefix>_app, _admin, _maintenance (default: cards_<db>).
    db_role_prefix: Annotated[str | None, Field(pattern=PREFIX_PATTERN)] = None
    # The API logs in as <prefix>_app; `migrate` sets this as its password (none: trust/peer).
    database_app_password: SecretStr | None = None
    # Context engine (SPEC v1.1). Without CARDS_EMBEDDINGS_URL the offline default embedder runs.
    embeddings_url: Annotated[str | None, Field(pattern=r"^https?://")] = None
    embeddings_model: str | None = None
    embeddings_api_key: SecretStr | None = None
    embeddings_dimension: Annotated[int | None, Field(ge=1, le=16_000)] = None
    embeddings_timeout: Annotated[float, Field(gt=0, le=120)] = 5.0
    context_ttl: Annotated[int, Field(ge=60, le=3650 * 86400)] = 30 * 86400
    # Cards each API process may hold in search indexes (~1.5 KB each at 256 dimensions, plus
    # title and content; 0: every search runs as SQL). A tenant with more cards than this is
    # always searched by SQL.
    search_index_cards: Annotated[int, Field(ge=0, le=10_000_000)] = 100_000
    # A tenant with fewer live cards is searched by SQL (cheap at that size) rather than copied.
    search_index_min_cards: Annotated[int, Field(ge=1, le=10_000_000)] = 100
    # Bearer token a scraper must send to /metrics; unset: /metrics answers loopback clients only.
    metrics_token: Annotated[SecretStr | None, Field(min_length=16)] = None

    @field_validator("database_url", "database_direct_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql:// or postgres://")
        return value

    @model_validator(mode="after")
    def _remote_embedder_complete(self) -> Settings:
        if self.embeddings_url and (not self.embeddings_model or not self.embeddings_dimension):
            raise ValueError(
                "CARDS_EMBEDDINGS_URL needs CARDS_EMBEDDINGS_MODEL and CARDS_EMBEDDINGS_DIMENSION"
            )
        return self

    def roles(self, dsn: str) -> Roles:
        """This deployment's database roles, for the database at `dsn` (named after the direct
        URL's database when there is one: a pooler's alias may differ)."""
        return Roles.for_database(self.database_direct_url or dsn, self.db_role_prefix)

    def role_settings(self) -> dict[str, str]:
        """What every session of the app role starts with: set on the role by `migrate`, so
        they hold also where a pooler cannot pass them at connect time."""
        return {
            "statement_timeout": str(self.statement_timeout_ms),
            "lock_timeout": str(self.lock_timeout_ms),
            "idle_in_transaction_session_timeout": str(self.statement_timeout_ms * 2),
            "jit": "off",
        }

    def app_password(self) -> str | None:
        secret = self.database_app_password
        return secret.get_secret_value() if secret is not None else None

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


def _env_name(field: str) -> str:
    if field.lower() == "database_url":
        return "DATABASE_URL"
    return f"CARDS_{field.upper()}"


def load_settings() -> Settings:
    """Read the settings, turning the first validation error into one readable line."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        if not first["loc"]:  # a rule across settings: the message names them
            raise SettingsError(f"invalid settings: {message}") from None
        field = str(first["loc"][0])
        raise SettingsError(f"invalid setting {_env_name(field)}: {message}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()

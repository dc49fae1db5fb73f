"""The database roles of one deployment, and the URL the API logs in with.

PostgreSQL role names are cluster-wide. Two deployments sharing a cluster must not share roles,
or one deployment's owner could act through the other's roles. So every deployment names its
own: `<prefix>_app`, `<prefix>_admin`, `<prefix>_maintenance`, where the prefix is
`CARDS_DB_ROLE_PREFIX` or, by default, `cards_` followed by the database's name.

- `<prefix>_app` logs in (the API's pool and its LISTEN connection); it may use the rows of the
  tenant set for the transaction, and purge only through functions granted to it;
- `<prefix>_admin` does not log in (`cards-api keys …` switches to it from the owner); it may
  manage `api_keys` of every tenant;
- `<prefix>_maintenance` does not log in; it owns the purge functions (SECURITY DEFINER) and may
  delete expired rows, nothing else.

The API's login role is not the owner, not a superuser, and a member of nothing: `RESET ROLE`,
`SET ROLE <owner>` or `set_config('role', …)` leave it what it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

MAX_ROLE_CHARS = 63  # PostgreSQL's NAMEDATALEN - 1
_LONGEST_SUFFIX = "_maintenance"
MAX_PREFIX_CHARS = MAX_ROLE_CHARS - len(_LONGEST_SUFFIX)
PREFIX_PATTERN = rf"^[a-z_][a-z0-9_]{{0,{MAX_PREFIX_CHARS - 1}}}$"


@dataclass(frozen=True, slots=True)
class Roles:
    app: str
    admin: str
    maintenance: str

    @classmethod
    def with_prefix(cls, prefix: str) -> Roles:
        if not re.fullmatch(PREFIX_PATTERN, prefix):
            raise ValueError(f"invalid role prefix {prefix!r}")
        return cls(
            app=f"{prefix}_app", admin=f"{prefix}_admin", maintenance=f"{prefix}_maintenance"
        )

    @classmethod
    def for_database(cls, dsn: str, prefix: str | None = None) -> Roles:
        """The configured prefix, or the default derived from the database's name."""
        return cls.with_prefix(prefix or default_prefix(database_name(dsn)))


def database_name(dsn: str) -> str:
    """The database a libpq-style URL connects to (path, `dbname=`, else the user's name)."""
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    name = parts.path.lstrip("/") or (query.get("dbname") or [""])[0]
    return name or parts.username or (query.get("user") or ["postgres"])[0]


def default_prefix(database: str) -> str:
    cleaned = re.sub(r"[^a-z0-9_]", "_", database.lower())
    return f"cards_{cleaned}"[:MAX_PREFIX_CHARS]


def login_url(dsn: str, role: str, password: str | None) -> str:
    """`dsn` with its user (and password) replaced: how the API logs in as `role`."""
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    credentials = quote(role, safe="")
    if password is not None:
        credentials += ":" + quote(password, safe="")
    netloc = f"{credentials}@{host}"
    rest = "&".join(
        f"{quote(k, safe='')}={quote(v, safe='/')}"
        for k, values in query.items()
        if k not in ("user", "password")
        for v in values
    )
    return urlunsplit((parts.scheme, netloc, parts.path, rest, parts.fragment))

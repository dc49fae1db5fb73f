"""Schema migrations through Alembic, configured in code (no alembic.ini to keep in sync).

Migration files live in `cards_api/db/migrations/versions/` with dated names; each is plain SQL.
Alembic (and SQLAlchemy under it) is imported only when migrating: it costs over a second of
start-up, which the `keys` commands and the API workers should not pay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from cards_api.db.roles import Roles

if TYPE_CHECKING:
    from alembic.config import Config

SCRIPT_LOCATION = "cards_api.db:migrations"

# The newest migration this build ships. `/ready` and the CLI compare the database against it;
# a unit test keeps it equal to Alembic's own head, so adding a migration means updating it.
SCHEMA_HEAD: Final = "0011"


def alembic_config(dsn: str | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    if dsn is not None:
        config.attributes["dsn"] = dsn
    return config


def alembic_head() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade(
    dsn: str,
    roles: Roles | None = None,
    app_password: str | None = None,
    *,
    target: str = "head",
    role_settings: dict[str, str] | None = None,
) -> None:
    """Apply every pending migration, as the owner in `dsn`. Blocking: call it before the event
    loop starts.

    `roles` are this deployment's (default: named after the database); with `app_password`, the
    app role's login password is set to it, so the API can log in over a password-checked
    connection.
    """
    from alembic import command

    config = alembic_config(dsn)
    config.attributes["roles"] = roles or Roles.for_database(dsn)
    config.attributes["app_password"] = app_password
    config.attributes["role_settings"] = role_settings or {}
    command.upgrade(config, target)

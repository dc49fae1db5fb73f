"""Schema migrations through Alembic, configured in code (no alembic.ini to keep in sync).

Migration files live in `cards_api/db/migrations/versions/` with dated names; each is plain SQL.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

SCRIPT_LOCATION = "cards_api.db:migrations"


def alembic_config(dsn: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    if dsn is not None:
        config.attributes["dsn"] = dsn
    return config


def head_revision() -> str:
    """The newest migration this code ships; `/ready` compares the database against it."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations found"
    return head


def upgrade(dsn: str) -> None:
    """Apply every pending migration. Blocking: call it before the event loop starts."""
    command.upgrade(alembic_config(dsn), "head")

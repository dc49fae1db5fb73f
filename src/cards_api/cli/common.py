"""What every `cards-api` command shares: the Typer app, one-line failures, settings and the
database (opened and migrated).

Every failure a user can cause (a bad setting, an unreachable database, an unknown key id)
ends with one line on stderr starting `cards-api:` and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NoReturn

import asyncpg
import typer
from rich.console import Console

from cards_api.db import migrate as migrations
from cards_api.db.location import Database, open_database
from cards_api.settings import Settings, SettingsError, load_settings

app = typer.Typer(
    name="cards-api",
    help="Cards API: structured facts for AI content workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

stdout = Console(highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"cards-api: {message}", err=True)
    raise typer.Exit(code)


def load() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        fail(str(exc))


@contextlib.contextmanager
def database_errors() -> Iterator[None]:
    try:
        yield
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        fail(f"database error: {type(exc).__name__}: {exc}".splitlines()[0], code=1)


def open_db(settings: Settings) -> Database:
    with database_errors():
        return open_database(settings)


def migrate_db(database: Database, settings: Settings) -> None:
    with database_errors():
        migrations.upgrade(
            database.dsn,
            settings.roles(database.dsn),
            settings.app_password(),
            role_settings=settings.role_settings(),
        )

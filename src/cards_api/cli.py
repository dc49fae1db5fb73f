"""The `cards-api` command: serve, migrate, manage API keys, import and export cards.

Every failure a user can cause (a bad setting, an unreachable database, an unknown key id)
ends with one line on stderr starting `cards-api:` and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar
from uuid import UUID

import asyncpg
import typer
from rich.console import Console
from rich.table import Table

from cards_api import auth
from cards_api.auth import KeyInfo, Scope
from cards_api.db import migrate as migrations
from cards_api.db.location import Database, open_database
from cards_api.db.pool import connect
from cards_api.db.queries.schema import current_revision
from cards_api.demo import ensure_demo_tenant
from cards_api.logs import configure_logging
from cards_api.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from cards_client import CardsClient

T = TypeVar("T")

app = typer.Typer(
    name="cards-api",
    help="Cards API: structured facts for AI content workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

stdout = Console(highlight=False, soft_wrap=True)


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"cards-api: {message}", err=True)
    raise typer.Exit(code)


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        _fail(str(exc))


@contextlib.contextmanager
def _database_errors() -> Iterator[None]:
    try:
        yield
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        _fail(f"database error: {type(exc).__name__}: {exc}".splitlines()[0], code=1)


def _open(settings: Settings) -> Database:
    with _database_errors():
        return open_database(settings)


def _migrate(database: Database, settings: Settings) -> None:
    with _database_errors():
        migrations.upgrade(database.dsn, settings.roles(database.dsn), settings.app_password())


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8002,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
) -> None:
    """Apply pending migrations, then serve the HTTP API."""
    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    database = _open(settings)
    _migrate(database, settings)
    if database.embedded is not None:
        with _database_errors():
            demo = ensure_demo_tenant(settings.data_dir, database.dsn, settings)
        if demo is not None:
            stdout.print(
                "Demo tenant created. Its key is shown only now; "
                "`cards-api keys create` makes more.\n"
                f"  export CARDS_TENANT_ID={demo.tenant_id}\n"
                f"  export CARDS_API_KEY={demo.key}"
            )
    # Worker processes read their settings from the environment: hand them this database, and
    # a fresh folder where every worker writes its metrics (so counts start from zero and a
    # scrape of any worker sums them all). Both must be set before the app is imported.
    os.environ["DATABASE_URL"] = database.dsn
    metrics_dir = tempfile.mkdtemp(prefix="cards-api-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # read by prometheus_client at import
    try:
        _run_uvicorn(
            settings.model_copy(update={"database_url": database.dsn}), host, port, workers
        )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    # Returning lets the embedded PostgreSQL stop (at exit), after the last request finished.


def _run_uvicorn(settings: Settings, host: str, port: int, workers: int) -> None:
    import uvicorn

    if workers == 1:
        from cards_api.app import create_app

        target: object = create_app(settings)
    else:
        target = "cards_api.app:create_app"
    _exit_cleanly_on_signals()
    with contextlib.suppress(_Shutdown):
        uvicorn.run(
            target,  # type: ignore[arg-type]
            factory=workers > 1,
            workers=workers if workers > 1 else None,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,  # nothing reads the client address; X-Forwarded-* is ignored
            timeout_graceful_shutdown=30,
            loop="uvloop",
            http="cards_api.http_protocol:GuardedHttpToolsProtocol",
        )


class _Shutdown(Exception):
    """Raised by our signal handler once uvicorn has finished its graceful shutdown."""


def _exit_cleanly_on_signals() -> None:
    """uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the handler
    that was installed before it started. With Python's defaults that would kill the process
    (SIGTERM) or print a KeyboardInterrupt traceback (SIGINT), and the embedded PostgreSQL
    would never be stopped. This handler turns the re-raised signal into a normal exit."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Shutdown

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@app.command()
def migrate() -> None:
    """Apply pending migrations and exit."""
    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    database = _open(settings)
    _migrate(database, settings)
    typer.echo(f"database schema at revision {migrations.SCHEMA_HEAD}")


def _run_admin(settings: Settings, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run `work` on a connection as the key-admin role, with the schema up to date."""
    database = _open(settings)
    if database.embedded is not None:
        _migrate(database, settings)

    async def run() -> T:
        conn = await connect(database.dsn, settings, role=settings.roles(database.dsn).admin)
        try:
            if (await current_revision(conn)) != migrations.SCHEMA_HEAD:
                _fail("the database schema is not up to date; run `cards-api migrate` first")
            async with conn.transaction():
                return await work(conn)
        finally:
            await conn.close()

    with _database_errors():
        return asyncio.run(run())


def _key_json(info: KeyInfo) -> dict[str, object]:
    return {
        "id": str(info.id),
        "tenant_id": str(info.tenant_id),
        "name": info.name,
        "scopes": info.scopes,
        "key_hint": info.key_hint,
        "created_at": info.created_at.isoformat().replace("+00:00", "Z"),
        "revoked_at": info.revoked_at.isoformat().replace("+00:00", "Z")
        if info.revoked_at
        else None,
    }


@keys_app.command("create")
def keys_create(
    tenant: Annotated[UUID, typer.Option(help="Tenant the key acts for.")],
    scope: Annotated[
        list[Scope] | None,
        typer.Option(help="A scope to grant; repeat for several (default: all)."),
    ] = None,
    name: Annotated[
        str, typer.Option(help="A label to recognise the key by (at most 200 characters).")
    ] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Create an API key and print it once."""
    if len(name) > 200:
        _fail("--name must be at most 200 characters")
    settings = _settings()
    issued = _run_admin(
        settings,
        lambda conn: auth.issue_key(conn, tenant_id=tenant, scopes=set(scope or ()), name=name),
    )
    info = issued.info
    if as_json:
        payload = {
            "id": str(info.id),
            "tenant_id": str(info.tenant_id),
            "name": info.name,
            "scopes": info.scopes,
            "key": issued.key,
        }
        typer.echo(json.dumps(payload))
        return
    stdout.print(f"Created key {info.id} for tenant {info.tenant_id}")
    stdout.print(f"  scopes: {', '.join(info.scopes)}")
    stdout.print(f"  key:    {issued.key}")
    stdout.print("Store the key now: it is not shown again.")


@keys_app.command("list")
def keys_list(
    tenant: Annotated[UUID, typer.Option(help="Tenant whose keys to list.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List a tenant's keys (never the secret)."""
    settings = _settings()
    infos = _run_admin(settings, lambda conn: auth.list_keys(conn, tenant_id=tenant))
    if as_json:
        typer.echo(json.dumps([_key_json(info) for info in infos]))
        return
    table = Table("id", "name", "scopes", "key ends", "created", "revoked")
    for info in infos:
        table.add_row(
            str(info.id),
            info.name,
            ", ".join(info.scopes),
            f"…{info.key_hint}",
            info.created_at.strftime("%Y-%m-%d %H:%M:%SZ"),
            info.revoked_at.strftime("%Y-%m-%d %H:%M:%SZ") if info.revoked_at else "",
        )
    stdout.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[UUID, typer.Argument(help="Id of the key to revoke.")]) -> None:
    """Revoke a key; it stops working at once."""
    settings = _settings()
    info = _run_admin(settings, lambda conn: auth.revoke_key(conn, key_id=key_id))
    if info is None:
        _fail(f"no active key with id {key_id}", code=1)
    typer.echo(f"Revoked key {info.id} of tenant {info.tenant_id}")


def _client(tenant: UUID) -> CardsClient:
    from cards_client import CardsClient

    try:
        return CardsClient(tenant_id=tenant)
    except ValueError as exc:
        _fail(str(exc))


@contextlib.contextmanager
def _api_errors() -> Iterator[None]:
    from cards_client import CardsError

    try:
        yield
    except CardsError as exc:
        _fail(str(exc), code=1)


@app.command("import")
def import_cards(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="JSON Lines of cards."),
    ],
    tenant: Annotated[UUID, typer.Option(help="Tenant to import into.")],
) -> None:
    """Import cards from JSON Lines through the API at CARDS_URL (key in CARDS_API_KEY).

    Running an import again creates nothing twice. Bad lines are reported and skipped."""
    from cards_api import transfer

    with _client(tenant) as client, _api_errors():
        if sys.stderr.isatty():
            from rich.progress import Progress

            with Progress(console=Console(stderr=True), transient=True) as progress:
                task = progress.add_task(f"importing {file.name}", total=transfer.count_lines(file))
                report = transfer.import_file(
                    client, file, on_lines=lambda n: progress.advance(task, n)
                )
        else:
            report = transfer.import_file(client, file)
    typer.echo(f"imported {file}: {report.summary()}")
    if report.failed:
        raise typer.Exit(1)


@app.command("export")
def export_cards(
    tenant: Annotated[UUID, typer.Option(help="Tenant to export.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
) -> None:
    """Export every live card as JSON Lines through the API at CARDS_URL (key in CARDS_API_KEY)."""
    from cards_api import transfer

    with _client(tenant) as client, _api_errors():
        out = output.open("w", encoding="utf-8") if output is not None else sys.stdout
        try:
            if output is not None and sys.stderr.isatty():
                from rich.progress import Progress, SpinnerColumn, TextColumn

                columns = (SpinnerColumn(), TextColumn("exported {task.completed} cards"))
                with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
                    task = progress.add_task("export", total=None)
                    count = transfer.export_cards(
                        client, out, on_card=lambda: progress.advance(task)
                    )
            else:
                count = transfer.export_cards(client, out)
        finally:
            if output is not None:
                out.close()
    typer.echo(f"exported {count} cards", err=True)


def main() -> None:
    app()

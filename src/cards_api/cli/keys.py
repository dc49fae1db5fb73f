"""`cards-api keys create|list|revoke`: API keys, managed as the deployment's admin role
through the owner's own connection (never through the API)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar
from uuid import UUID

import asyncpg
import typer
from rich.table import Table

from cards_api import auth
from cards_api.auth import KeyInfo, Scope
from cards_api.cli.common import app, database_errors, fail, load, migrate_db, open_db, stdout
from cards_api.db import migrate as migrations
from cards_api.db.pool import connect
from cards_api.db.queries.schema import current_revision
from cards_api.limits import MAX_KEY_NAME_CHARS
from cards_api.settings import Settings

T = TypeVar("T")

keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _run_admin(settings: Settings, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run `work` on a connection as the key-admin role, with the schema up to date."""
    database = open_db(settings)
    if database.embedded is not None:
        migrate_db(database, settings)

    async def run() -> T:
        conn = await connect(database.dsn, settings, role=settings.roles(database.dsn).admin)
        try:
            if (await current_revision(conn)) != migrations.SCHEMA_HEAD:
                fail("the database schema is not up to date; run `cards-api migrate` first")
            async with conn.transaction():
                return await work(conn)
        finally:
            await conn.close()

    with database_errors():
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
        str,
        typer.Option(
            help=f"A label to recognise the key by (at most {MAX_KEY_NAME_CHARS} characters)."
        ),
    ] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Create an API key and print it once."""
    if len(name) > MAX_KEY_NAME_CHARS:
        fail(f"--name must be at most {MAX_KEY_NAME_CHARS} characters")
    settings = load()
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
    settings = load()
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
    settings = load()
    info = _run_admin(settings, lambda conn: auth.revoke_key(conn, key_id=key_id))
    if info is None:
        fail(f"no active key with id {key_id}", code=1)
    typer.echo(f"Revoked key {info.id} of tenant {info.tenant_id}")

"""`cards-api reindex [--tenant UUID]`: embed every card that has no embedding under the
configured embedder (after a change of model, all of them), while the service keeps serving.

It works as the API does (the app role, one short transaction per batch), so it holds no lock a
request would wait on, and it is resumable by construction: what it has stored is no longer
pending, so a run that is stopped and started again goes on where it stopped. It takes each
tenant's embedding lease (`search/leases.py`), waiting while an API process embeds that tenant,
so the two never embed the same cards.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Annotated
from uuid import UUID

import typer
from rich.console import Console
from rich.progress import Progress

from cards_api.cli.common import app, database_errors, fail, load, migrate_db, open_db, stdout


@app.command()
def reindex(
    tenant: Annotated[
        UUID | None, typer.Option(help="Only this tenant's cards (default: every tenant).")
    ] = None,
) -> None:
    """Embed every card still pending under the configured embedder; resumable."""
    # Imported here: they import the metrics, which `serve` must configure first.
    from cards_api.db.pool import connect_leases, create_pool
    from cards_api.search import worker
    from cards_api.search.embedder import EmbedderUnavailable, load_embedder
    from cards_api.search.leases import TenantLeases

    settings = load()
    database = open_db(settings)
    migrate_db(database, settings)
    try:
        embedder = load_embedder(settings)
    except RuntimeError as exc:
        fail(str(exc))

    async def run() -> int:
        pool = await create_pool(database.dsn, settings)
        leases = TenantLeases(lambda: connect_leases(database.dsn, settings))

        async def embed(tenant_id: UUID, on_embedded: Callable[[int], None] | None) -> int:
            async with leases.hold(tenant_id, wait=True):
                return await worker.embed_tenant(pool, embedder, tenant_id, on_embedded=on_embedded)

        try:
            tenants = await worker.tenants_with_pending(pool, embedder)
            if tenant is not None:
                tenants = [t for t in tenants if t == tenant]
            total = await worker.count_pending(pool, embedder, tenants)
            done = 0
            if sys.stderr.isatty():
                with Progress(console=Console(stderr=True), transient=True) as progress:
                    task = progress.add_task(f"embedding with {embedder.name}", total=total)
                    for tenant_id in tenants:
                        done += await embed(tenant_id, lambda n: progress.advance(task, n))
            else:
                for tenant_id in tenants:
                    done += await embed(tenant_id, None)
            return done
        finally:
            await leases.close()
            await pool.close()
            await embedder.close()

    with database_errors():
        try:
            done = asyncio.run(run())
        except EmbedderUnavailable as exc:
            fail(f"the embedder is unavailable: {exc}; run reindex again to resume", code=1)
    stdout.print(f"embedded {done} cards with {embedder.name}")

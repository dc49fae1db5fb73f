"""The ASGI application: `create_app()` wires settings, the pool, routes and error handling."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import sys
from collections.abc import AsyncIterator

import structlog
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from cards_api import __version__, housekeeping, stalls, tenancy
from cards_api.api import cards, context, health, usage
from cards_api.api.direct import DirectRoutes, serve
from cards_api.api.openapi import install_openapi
from cards_api.api.security import POOL_ACQUIRE_TIMEOUT_S
from cards_api.db.embedded import start_embedded
from cards_api.db.migrate import SCHEMA_HEAD
from cards_api.db.pool import connect_leases, connect_listener, create_pool
from cards_api.db.queries.keys import key_tag_secret
from cards_api.keycache import KeyCache, listen_for_revocations
from cards_api.logs import configure_logging
from cards_api.middleware import RequestContextMiddleware
from cards_api.problems import install_error_handlers
from cards_api.ratelimit import RateLimiter
from cards_api.search import tokenizer
from cards_api.search.embedder import load_embedder
from cards_api.search.indexes import SearchIndexes
from cards_api.search.leases import TenantLeases
from cards_api.search.worker import EmbeddingWorker
from cards_api.settings import AuthMode, Settings, get_settings
from cards_api.tenancy import Guards

POOL_CLOSE_TIMEOUT_S = 10.0

log = structlog.get_logger("cards_api.app")

DESCRIPTION = """
Stores each tenant's *cards* (company, audience, voice, insight, …), hands them to AI content
workflows, and records which workflow runs used which cards.

Every `/api/v1` request carries `Authorization: Bearer <key>` and `X-Tenant-ID`. Errors are
`application/problem+json` (RFC 9457) with a `trace_id`.
"""


class CardsApi(FastAPI):
    """FastAPI, with the routes `api/direct.py` can serve answered without its router."""

    direct_routes: DirectRoutes | None = None
    _direct: ASGIApp | None = None

    def serve_directly(self, routes: DirectRoutes, *, read_timeout: float) -> None:
        self.direct_routes = routes
        # The direct path passes the same request middleware as every other request.
        self._direct = RequestContextMiddleware(serve(self), read_timeout=read_timeout)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and self._direct is not None
            and self.direct_routes is not None
            and self.direct_routes.match(scope)
        ):
            await self._direct(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


GIL_SWITCH_INTERVAL_S = 0.0005
"""How long the event loop may keep the GIL while another thread waits for it (Python's default:
5 ms). A search's query embedding ran in a thread (~0.1 ms of work) and, under load, waited
for the busy loop up to the whole interval; at 0.5 ms, S's and C's p99 at half load fell ~10%
(docs/performance.md). Remembered words are now embedded on the loop, but text with new
words, a large batch and a search index being built still run in threads."""

GC_THRESHOLDS = (10_000, 10, 10)
"""The collector's generation thresholds (Python's: 700, 10, 10). A young collection runs each
time tracked objects allocated exceed frees by the first; a request listing 50 cards or ranking
a context's 100 holds hundreds at once, so at 700 a worker under such load collected ~150 times
a second, a full collection every hundredth or so: 17-21 ms of collections a second, single
pauses up to 15 ms. At 10,000: under 0.3 ms a second, pauses up to 3.8 ms, for the same
throughput (docs/performance.md). Garbage in reference cycles waits a little longer; the request
path leaves none (tests/integration/test_transaction.py)."""


def create_app(settings: Settings | None = None) -> CardsApi:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)
    keys = KeyCache(settings.key_cache_ttl)
    guards = Guards(
        keys=keys,
        rate=RateLimiter(settings.rate_limit, settings.rate_limit_burst),
        failures=RateLimiter(
            settings.auth_failure_rate,
            settings.auth_failure_burst,
            who="this client address after failed key look-ups",
        ),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        dsn = settings.database_url or start_embedded(settings.data_dir).dsn
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        embedder = await asyncio.to_thread(load_embedder, settings)
        # Read (and checked) now, not by the first context request: ~0.3 s that would stall
        # every request of this worker.
        await asyncio.to_thread(tokenizer.encoding)
        pool = await create_pool(dsn, settings)
        app.state.pool = pool
        app.state.embedder = embedder
        app.state.search_indexes = indexes = SearchIndexes(
            pool,
            max_cards=settings.search_index_cards,
            min_cards=settings.search_index_min_cards,
        )
        leases = TenantLeases(lambda: connect_leases(dsn, settings))
        app.state.embedding_worker = worker = EmbeddingWorker(pool, embedder, leases=leases)
        async with pool.acquire() as conn:
            guards.key_secret = await key_tag_secret(conn)
        background = [
            asyncio.create_task(housekeeping.purge_forever(pool)),
            asyncio.create_task(worker.run_forever()),
            asyncio.create_task(stalls.monitor_forever(settings.stall_log_ms)),
        ]
        if settings.auth_mode is AuthMode.API_KEY:
            background.append(
                asyncio.create_task(
                    listen_for_revocations(lambda: connect_listener(dsn, settings), keys)
                )
            )
            background.append(
                asyncio.create_task(
                    keys.refresh_forever(
                        functools.partial(
                            tenancy.look_up,
                            pool=pool,
                            keys=keys,
                            acquire_timeout=POOL_ACQUIRE_TIMEOUT_S,
                        )
                    )
                )
            )
        if settings.auth_mode is AuthMode.HEADER:
            log.warning(
                "auth_mode_header",
                detail="CARDS_AUTH_MODE=header: X-Tenant-ID is trusted without an API key; "
                "run only behind a gateway that authenticates callers",
            )
        # Everything alive now lives as long as the process: move it out of the collector's
        # reach, so that full collections during requests walk only request garbage.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await indexes.close()
            await leases.close()
            try:
                await asyncio.wait_for(pool.close(), POOL_CLOSE_TIMEOUT_S)
            except TimeoutError:
                pool.terminate()
            await embedder.close()

    app = CardsApi(
        title="Cards API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.router.redirect_slashes = False  # a stray slash is a 404, not a redirect to follow
    app.state.settings = settings
    app.state.guards = guards
    app.state.schema_head = SCHEMA_HEAD
    install_error_handlers(app)
    app.include_router(health.router)
    # Routers carry their full prefix, so a route's path is its whole template (a metric label).
    api_routers = [cards.router, usage.router, context.router]
    for router in api_routers:
        app.include_router(router)
    app.add_middleware(RequestContextMiddleware, read_timeout=settings.request_read_timeout)
    app.serve_directly(DirectRoutes(api_routers), read_timeout=settings.request_read_timeout)
    install_openapi(app)
    return app

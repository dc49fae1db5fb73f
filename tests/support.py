"""Helpers shared by tests: tenants with keys, card payloads, and database look-ups."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from cards_api import app as app_module
from cards_api import auth
from cards_api.app import create_app
from cards_api.auth import Scope
from cards_api.db.roles import Roles, login_url
from cards_api.search import leases
from cards_api.settings import AuthMode, Settings


@dataclass(frozen=True)
class Tenant:
    id: UUID
    key: str

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", "X-Tenant-ID": str(self.id), **extra}


async def issue_tenant(pool: asyncpg.Pool, scopes: set[Scope] | None = None) -> Tenant:
    tenant_id = uuid.uuid4()
    return Tenant(id=tenant_id, key=await issue_key(pool, tenant_id, scopes))


def issue_tenant_sync(dsn: str) -> Tenant:
    """`issue_tenant` for synchronous tests, on a connection of its own."""

    async def issue() -> Tenant:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
        assert pool is not None
        try:
            return await issue_tenant(pool)
        finally:
            await pool.close()

    return asyncio.run(issue())


SHUTDOWN_TIMEOUT_S = app_module.POOL_CLOSE_TIMEOUT_S + leases.CLOSE_TIMEOUT_S + 15.0
"""How long a test waits for an app's shutdown: past the app's own bounds (its pool's close
waits for connections in use, the leases' connection may take its own while), with room for the
background tasks' ends, rather than asgi-lifespan's default of 5 s, which once failed a
fresh-clone CI run in a test's shutdown after all its assertions had passed (its cause not
found: the integration tests' app shutdowns measured 7-23 ms when timed). A shutdown that hangs
still fails the test."""


def lifespan(app: FastAPI) -> LifespanManager:
    """The app's startup and shutdown, as its server runs them."""
    return LifespanManager(app, shutdown_timeout=SHUTDOWN_TIMEOUT_S)


@contextlib.asynccontextmanager
async def app_and_client_for(
    settings: Settings,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app of its own, started with these settings, and an in-process HTTP client to it."""
    app = create_app(settings)
    async with lifespan(app):
        await until_listening(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cards.test") as http:
            yield app, http


@contextlib.asynccontextmanager
async def client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An app of its own, started with these settings, behind an in-process HTTP client."""
    async with app_and_client_for(settings) as (_app, http):
        yield http


async def until_listening(app: FastAPI) -> None:
    """Wait for the revocation listener (api_key mode), whose absence turns key caching off."""
    if app.state.settings.auth_mode is AuthMode.API_KEY:
        async with asyncio.timeout(10):
            await app.state.guards.keys.wait_listening()


def app_role(database_url: str) -> str:
    """The app role of the deployment the tests migrate (named after the database)."""
    return Roles.for_database(database_url).app


async def connect_as_app(database_url: str) -> asyncpg.Connection:
    """A connection logged in as the API's own role, as the pool logs in."""
    return await asyncpg.connect(login_url(database_url, app_role(database_url), None))


async def issue_key(pool: asyncpg.Pool, tenant_id: UUID, scopes: set[Scope] | None = None) -> str:
    async with pool.acquire() as conn:
        issued = await auth.issue_key(
            conn, tenant_id=tenant_id, scopes=scopes or set(auth.ALL_SCOPES), name="test"
        )
    return issued.key


def card(
    card_type: str = "company",
    title: str = "Acme Corp",
    *,
    content: dict[str, Any] | None = None,
    tags: list[str] | None = None,
    external_ref: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "card_type": card_type,
        "title": title,
        "content": content if content is not None else {"summary": f"{title} summary"},
    }
    if tags is not None:
        body["tags"] = tags
    if external_ref is not None:
        body["external_ref"] = external_ref
    return body


SEED_CARDS = [
    card(
        "company",
        "E2E Test Company",
        content={"summary": "Makes industrial widgets"},
        external_ref="company-profile",
        tags=["onboarding"],
    ),
    card(
        "audience",
        "Tech Decision Makers",
        content={"roles": ["CTO", "VP Engineering"]},
        external_ref="audience-primary",
        tags=["onboarding"],
    ),
    card(
        "voice",
        "Professional",
        content={"tone": "confident, plain English"},
        external_ref="voice",
        tags=["onboarding"],
    ),
    card(
        "insight",
        "Market Leader",
        content={"claim": "Number one in widget reliability"},
        external_ref="insight-leader",
        tags=["onboarding", "positioning"],
    ),
]


async def count_rows(pool: asyncpg.Pool, table: str, tenant_id: UUID) -> int:
    assert table in {"cards", "card_versions", "card_usage", "idempotency_records", "api_keys"}
    async with pool.acquire() as conn:
        value = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id = $1", tenant_id)
    return int(value)

"""`cards-api mcp` over stdio, driven by the MCP SDK's own client against a real `cards-api
serve`: four tools with typed schemas; searching, building a context, reading a card and
recording usage work through the API (its tenancy and scopes apply); API errors come back as tool
errors carrying the problem's title and detail, never a crash or a traceback."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.e2e.conftest import Server, free_port, wait_until
from tests.support import Tenant, card, issue_tenant

pytestmark = pytest.mark.e2e

CARDS_API = str(Path(sys.executable).parent / "cards-api")


def _text(result: object) -> str:
    content = getattr(result, "content", [])
    return "\n".join(getattr(part, "text", "") for part in content)


@pytest.fixture
async def tenant_with_cards(
    server_on_test_database: Server, owner_pool: asyncpg.Pool
) -> tuple[Tenant, list[dict[str, object]]]:
    tenant = await issue_tenant(owner_pool)
    created = httpx.post(
        f"{server_on_test_database.base_url}/api/v1/cards/batch",
        json={
            "cards": [
                card("product", "Widget Pro pricing", content={"price": "49 EUR a month"}),
                card("voice", "Calm voice", content={"tone": "plain and warm"}),
            ]
        },
        headers=tenant.headers(),
        timeout=30,
    )
    return tenant, created.json()["cards"]


@contextlib.asynccontextmanager
async def mcp_session(server: Server, tenant: Tenant) -> AsyncIterator[ClientSession]:
    """`cards-api mcp` over stdio, as an MCP client launches it. (A context manager rather than
    a fixture: the SDK's task groups must be entered and left in the same task.)"""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("CARDS_") and k != "DATABASE_URL"
    }
    env.update(CARDS_URL=server.base_url, CARDS_API_KEY=tenant.key, CARDS_TENANT_ID=str(tenant.id))
    params = StdioServerParameters(command=CARDS_API, args=["mcp"], env=env)
    with open(os.devnull, "w") as quiet:
        async with (
            stdio_client(params, errlog=quiet) as (read, write),
            ClientSession(read, write) as client,
        ):
            await client.initialize()
            yield client


async def test_the_tools_and_their_schemas(
    server_on_test_database: Server, tenant_with_cards: tuple[Tenant, list[dict[str, object]]]
) -> None:
    async with mcp_session(server_on_test_database, tenant_with_cards[0]) as session:
        listed = await session.list_tools()
    tools = {tool.name: tool for tool in listed.tools}
    assert set(tools) == {"search_cards", "build_context", "get_card", "record_usage"}
    for tool in tools.values():
        assert tool.description
    schema = tools["build_context"].input_schema
    assert set(schema["required"]) == {"task", "token_budget"}
    assert schema["properties"]["token_budget"]["minimum"] == 50


async def test_search_context_get_and_usage_through_the_api(
    server_on_test_database: Server, tenant_with_cards: tuple[Tenant, list[dict[str, object]]]
) -> None:
    tenant, cards = tenant_with_cards
    async with mcp_session(server_on_test_database, tenant) as session:
        await _use_every_tool(session, str(cards[0]["id"]))


async def _use_every_tool(session: ClientSession, pricing_id: str) -> None:
    found = await session.call_tool("search_cards", {"query": "how much does it cost", "limit": 1})
    assert not found.is_error
    assert "Widget Pro pricing" in _text(found)
    context = await session.call_tool(
        "build_context",
        {
            "task": "newsletter about pricing",
            "token_budget": 200,
            "workflow_id": "run-7",
            "workflow_type": "premium_newsletter",
        },
    )
    assert not context.is_error
    text = _text(context)
    assert "### Widget Pro pricing" in text
    assert "cl100k_base tokens" in text
    assert "usage events recorded: 2" in text
    got = await session.call_tool("get_card", {"card_id": pricing_id})
    assert json.loads(_text(got))["title"] == "Widget Pro pricing"
    used = await session.call_tool(
        "record_usage",
        {"card_id": pricing_id, "workflow_id": "run-8", "workflow_type": "premium_newsletter"},
    )
    assert "usage_count 2" in _text(used)


async def test_api_errors_are_tool_errors_not_crashes(
    server_on_test_database: Server, tenant_with_cards: tuple[Tenant, list[dict[str, object]]]
) -> None:
    async with mcp_session(server_on_test_database, tenant_with_cards[0]) as session:
        await _fail_politely(session)


async def _fail_politely(session: ClientSession) -> None:
    missing = await session.call_tool("get_card", {"card_id": str(uuid.uuid4())})
    assert missing.is_error
    assert "404 Not found" in _text(missing)
    bad = await session.call_tool(
        "record_usage",
        {"card_id": str(uuid.uuid4()), "workflow_id": "w", "workflow_type": "Not A Slug"},
    )
    assert bad.is_error
    assert "422" in _text(bad)
    assert "workflow_type" in _text(bad)
    for result in (missing, bad):
        assert "Traceback" not in _text(result)
    # The server is still there after the errors.
    again = await session.call_tool("search_cards", {"query": "voice"})
    assert not again.is_error


async def test_streamable_http_serves_the_same_tools(
    server_on_test_database: Server, tenant_with_cards: tuple[Tenant, list[dict[str, object]]]
) -> None:
    from mcp.client.streamable_http import streamable_http_client

    tenant, _ = tenant_with_cards
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("CARDS_") and k != "DATABASE_URL"
    }
    env.update(
        CARDS_URL=server_on_test_database.base_url,
        CARDS_API_KEY=tenant.key,
        CARDS_TENANT_ID=str(tenant.id),
    )
    process = subprocess.Popen(
        [CARDS_API, "mcp", "--http", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/mcp"

        def listening() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return True
            except OSError:
                return False

        wait_until(listening, "the MCP HTTP server's port")
        async with (
            streamable_http_client(url) as (read, write),
            ClientSession(read, write) as client,
        ):
            await client.initialize()
            names = {tool.name for tool in (await client.list_tools()).tools}
            found = await client.call_tool("search_cards", {"query": "voice"})
        assert names == {"search_cards", "build_context", "get_card", "record_usage"}
        assert "Calm voice" in _text(found)
    finally:
        process.terminate()
        process.wait(timeout=30)

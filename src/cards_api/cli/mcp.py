"""`cards-api mcp [--http --port N]`: the MCP server over stdio (default) or Streamable HTTP."""

from __future__ import annotations

from typing import Annotated

import typer

from cards_api.cli.common import app


@app.command()
def mcp(
    http: Annotated[bool, typer.Option("--http", help="Serve Streamable HTTP, not stdio.")] = False,
    host: Annotated[str, typer.Option(help="Address to listen on, with --http.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port, with --http.")] = 8003,
) -> None:
    """Serve Cards API as MCP tools to agents; a client of the API at CARDS_URL."""
    from cards_api.mcp_server import build_server

    server = build_server()
    if http:
        server.run("streamable-http", host=host, port=port)
    else:
        server.run("stdio")

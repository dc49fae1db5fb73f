"""The `cards-api` command: serve, migrate, manage API keys, import and export cards.

One module per job: `serve` (process supervision), `keys` (key management), `transfer`
(import/export), `reindex` (embeddings); `common` holds the app and what they share.
"""

from __future__ import annotations

from cards_api.cli import keys, mcp, reindex, serve, transfer
from cards_api.cli.common import app

__all__ = ["app", "keys", "main", "mcp", "reindex", "serve", "transfer"]


def main() -> None:
    app()

"""Which PostgreSQL the service uses: `DATABASE_URL`, or the embedded one in `CARDS_DATA_DIR`."""

from __future__ import annotations

from dataclasses import dataclass

from cards_api.db.embedded import EmbeddedDatabase, start_embedded
from cards_api.settings import Settings


@dataclass(frozen=True, slots=True)
class Database:
    dsn: str
    """A direct URL, as the owner: migrations, keys, anything needing a session of its own."""
    pool_dsn: str
    """Where the API's pool connects: the same, or a pooler in front (`DATABASE_URL`)."""
    embedded: EmbeddedDatabase | None


def open_database(settings: Settings) -> Database:
    if settings.database_url:
        direct = settings.database_direct_url or settings.database_url
        return Database(dsn=direct, pool_dsn=settings.database_url, embedded=None)
    embedded = start_embedded(settings.data_dir)
    return Database(dsn=embedded.dsn, pool_dsn=embedded.dsn, embedded=embedded)

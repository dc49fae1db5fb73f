"""Which PostgreSQL the service uses: `DATABASE_URL`, or the embedded one in `CARDS_DATA_DIR`."""

from __future__ import annotations

from dataclasses import dataclass

from cards_api.db.embedded import EmbeddedDatabase, start_embedded
from cards_api.settings import Settings


@dataclass(frozen=True, slots=True)
class Database:
    dsn: str
    embedded: EmbeddedDatabase | None


def open_database(settings: Settings) -> Database:
    if settings.database_url:
        return Database(dsn=settings.database_url, embedded=None)
    embedded = start_embedded(settings.data_dir)
    return Database(dsn=embedded.dsn, embedded=embedded)

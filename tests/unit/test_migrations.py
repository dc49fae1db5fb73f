"""The schema head the service checks (`/ready`, CLI) is Alembic's own head, and migration files
carry dated names."""

from __future__ import annotations

import re
from pathlib import Path

from cards_api.db import migrate


def test_schema_head_constant_matches_alembics_head() -> None:
    assert migrate.alembic_head() == migrate.SCHEMA_HEAD


def test_migration_files_have_dated_names() -> None:
    versions = Path(migrate.__file__).parent / "migrations" / "versions"
    names = [p.name for p in versions.glob("*.py")]
    assert names
    assert all(re.fullmatch(r"\d{4}_\d{2}_\d{2}_\d{4}_[a-z0-9_]+\.py", n) for n in names), names

"""The demo tenant an embedded database gets on its first start, like a notebook's token."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from cards_api import auth
from cards_api.db.pool import connect
from cards_api.settings import Settings

MARKER = "demo-tenant.json"


@dataclass(frozen=True, slots=True)
class DemoTenant:
    tenant_id: UUID
    key: str


async def _issue(dsn: str, settings: Settings, tenant_id: UUID) -> str:
    conn = await connect(dsn, settings, role=settings.roles(dsn).admin)
    try:
        issued = await auth.issue_key(
            conn, tenant_id=tenant_id, scopes=set(auth.ALL_SCOPES), name="demo"
        )
    finally:
        await conn.close()
    return issued.key


def ensure_demo_tenant(data_dir: Path, dsn: str, settings: Settings) -> DemoTenant | None:
    """Create the demo tenant and its key once per data folder; None when it exists already."""
    marker = data_dir / MARKER
    if marker.exists():
        return None
    tenant_id = uuid.uuid4()
    key = asyncio.run(_issue(dsn, settings, tenant_id))
    marker.write_text(json.dumps({"tenant_id": str(tenant_id)}) + "\n")
    return DemoTenant(tenant_id=tenant_id, key=key)

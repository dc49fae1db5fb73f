"""Full-text search stays fast while cards are written; an index no query can use is dropped.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

- `cards_tenant_id_search_idx` without `fastupdate`. With it, PostgreSQL appends a new card's
  lexemes to the GIN index's pending list (up to `gin_pending_list_limit`, 4 MB) and every
  search reads that whole list until a vacuum merges it: on the bench database after ~16,000
  cards written in batches (6,818 pending entries, 487 pages) a hybrid search of the 2,000-card
  tenant took 8.6 ms in PostgreSQL, 5.2 once the list was merged. Without it,
  each write updates the index itself; what is pending now is merged here.
- `cards_tenant_id_tags_idx` dropped. A tag filter (`tags && ...`) never used it for the app
  role: `&&` is not LEAKPROOF, so under row-level security PostgreSQL does not make it an index
  condition, and the filter runs over the tenant's cards in the B-tree instead (no scan of the
  index in a whole benchmark run). It only cost every write, and its pending list.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER INDEX cards_tenant_id_search_idx SET (fastupdate = off)")
    op.execute("SELECT gin_clean_pending_list('cards_tenant_id_search_idx')")
    op.execute("DROP INDEX cards_tenant_id_tags_idx")


def downgrade() -> None:
    op.execute(
        "CREATE INDEX cards_tenant_id_tags_idx "
        "ON cards USING gin (tenant_id, tags) WHERE archived_at IS NULL"
    )
    op.execute("ALTER INDEX cards_tenant_id_search_idx RESET (fastupdate)")

"""Leave room in card pages for usage updates.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

Every usage call rewrites its card's row (`usage_count`, `last_used_at`). With full pages the
new row version lands on another page and every index of `cards` (two of them GIN) gets a new
entry; with free space on the page PostgreSQL makes a heap-only (HOT) update that touches no
index. Measured with pgbench on the usage statement: +15% transactions per second, HOT share
of updates from 66% to 80%. Existing pages keep their layout until the table is rewritten.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE cards SET (fillfactor = 70)")


def downgrade() -> None:
    op.execute("ALTER TABLE cards RESET (fillfactor)")

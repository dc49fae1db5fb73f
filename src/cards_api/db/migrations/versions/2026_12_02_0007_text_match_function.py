"""Full-text matches of the current tenant's cards through the GIN index, row-level security kept.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

Under row-level security PostgreSQL applies a query's own conditions only after the policy's,
unless their functions are LEAKPROOF, and the text-search match `@@` is not. So, for the app
role, `search @@ query` could not use the `(tenant_id, search)` GIN index: every live card of the
tenant was read and tested (2,000 cards: ~2 ms of a ~7 ms hybrid search, docs/performance.md).

`cards_text_matches(tsquery)` runs the match as the maintenance role, which reads cards without a
policy qual in the way, and keeps isolation itself: it returns only live cards of the tenant the
transaction is bound to (`cards_current_tenant()`, the policy's own source), nothing when none
is. It is granted to the app role alone. Marking `@@` LEAKPROOF instead would need a superuser
and a change to a built-in that a dump and restore does not keep.
"""

from collections.abc import Sequence

from alembic import context, op

from cards_api.db.roles import Roles

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = "cards_text_matches(tsquery)"


def upgrade() -> None:
    roles: Roles = context.config.attributes["roles"]
    app, maintenance = roles.app, roles.maintenance
    statements = [
        """
        CREATE FUNCTION cards_text_matches(query tsquery)
            RETURNS TABLE (id uuid, search tsvector)
            LANGUAGE sql STABLE
            SECURITY DEFINER
            SET search_path = pg_catalog, public
            AS $$
                SELECT c.id, c.search FROM cards c
                WHERE c.tenant_id = cards_current_tenant()
                  AND c.archived_at IS NULL
                  AND c.search @@ query
            $$
        """,
        f"GRANT CREATE ON SCHEMA public TO {maintenance}",
        f"ALTER FUNCTION {FUNCTION} OWNER TO {maintenance}",
        f"REVOKE CREATE ON SCHEMA public FROM {maintenance}",
        f"REVOKE ALL ON FUNCTION {FUNCTION} FROM PUBLIC",
        f"GRANT EXECUTE ON FUNCTION {FUNCTION} TO {app}",
    ]
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {FUNCTION}")

"""A key look-up that binds its tenant itself: one statement, one round trip.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03

An API process looks a key up when its cache has no entry for it, or, since the cache answers
from an expired entry while the key is looked up again, in the background (`cards_api.keycache`):
with 1,000 tenants and a minute's cache, 30-100 look-ups a second on a busy process. Each was a
short transaction of its own: `BEGIN` with the key's tenant, the `SELECT`, `ROLLBACK`, three round
trips. `cards_active_key` is the `SELECT` as one statement outside any transaction block, bound to
the key's tenant as revision 0010's reads are (`cards_bind_tenant`, SECURITY INVOKER, so
row-level security applies as for any statement of the app role): an active key's hash and
scopes, or no row.
"""

from collections.abc import Sequence

from alembic import context, op

from cards_api.db.roles import Roles

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = "cards_active_key(uuid, bytea)"


def upgrade() -> None:
    roles: Roles = context.config.attributes["roles"]
    op.execute(
        """
        CREATE FUNCTION cards_active_key(tenant uuid, hash bytea)
            RETURNS TABLE (key_hash bytea, scopes text[])
            LANGUAGE plpgsql
            SET plan_cache_mode = force_generic_plan
            AS $$
            BEGIN
                PERFORM cards_bind_tenant(tenant);
                RETURN QUERY
                    SELECT k.key_hash, k.scopes
                    FROM api_keys k
                    WHERE k.tenant_id = tenant AND k.key_hash = hash AND k.revoked_at IS NULL;
            END
            $$
        """
    )
    op.execute(f"REVOKE ALL ON FUNCTION {FUNCTION} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {FUNCTION} TO {roles.app}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {FUNCTION}")

"""Every change that can invalidate an API key notifies the API processes, however it is made.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

API processes cache verified keys (`cards_api.keycache`) and empty the cache on a notice on
`cards_api_key_revoked`. The notice used to be sent by `cards-api keys revoke` alone, so a key
revoked by hand in SQL stayed usable until the cache's TTL ran out. A trigger sends it now for
any revocation, deletion or change of a key's hash, tenant or scopes, inside the changing
transaction (PostgreSQL delivers it at commit, never for a rollback). That is what allows a
cache TTL of a minute instead of seconds: one key look-up per key per minute per process.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION cards_notify_key_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('cards_api_key_revoked', OLD.id::text);
            RETURN NULL;
        END
        $$
        """
    )
    op.execute("REVOKE ALL ON FUNCTION cards_notify_key_change() FROM PUBLIC")
    op.execute(
        """
        CREATE TRIGGER api_keys_notify_change
        AFTER UPDATE OF revoked_at, key_hash, tenant_id, scopes OR DELETE ON api_keys
        FOR EACH ROW EXECUTE FUNCTION cards_notify_key_change()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER api_keys_notify_change ON api_keys")
    op.execute("DROP FUNCTION cards_notify_key_change()")

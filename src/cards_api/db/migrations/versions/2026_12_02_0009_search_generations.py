"""Each tenant's search generation: a number that changes with anything a search could see.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

API processes rank a tenant's cards from a copy in memory (`cards_api.search.index`). A copy is
only used while it is current: the statement that fetches the ranked cards compares, in its own
snapshot, the tenant's generation with the one the copy was loaded at. Triggers stamp the
tenant's row with a fresh number from `search_generation_seq` on every change a ranking depends
on, in the changing transaction (so a rollback stamps nothing, and a write is seen by the next
search however it was made: the API, a migration, or SQL by hand):

- a card inserted or deleted, or updated in its version, archive state, type, tags, title or
  content (not a usage count: usage is recorded far more often than cards change);
- an embedding inserted, updated or deleted.

Numbers come from one sequence, never reused, so a copy can never match a later state by chance.
A tenant without a row (no change since this revision) has generation NULL until its first
change. Writers of one tenant queue on its row until commit; a tenant's batches already queue on
their advisory lock (`db/queries/cards.py`).
"""

from collections.abc import Sequence

from alembic import context, op

from cards_api.db.roles import Roles

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEARCHED = ("version", "archived_at", "card_type", "tags", "title", "content")


def upgrade() -> None:
    roles: Roles = context.config.attributes["roles"]
    app = roles.app
    old = ", ".join(f"OLD.{column}" for column in SEARCHED)
    new = ", ".join(f"NEW.{column}" for column in SEARCHED)
    statements = [
        "CREATE SEQUENCE search_generation_seq",
        """
        CREATE TABLE search_generations (
            tenant_id  uuid   NOT NULL PRIMARY KEY,
            generation bigint NOT NULL
        )
        """,
        "ALTER TABLE search_generations ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE search_generations FORCE ROW LEVEL SECURITY",
        """
        CREATE POLICY search_generations_tenant_isolation ON search_generations
            USING (tenant_id = cards_current_tenant())
            WITH CHECK (tenant_id = cards_current_tenant())
        """,
        f"GRANT SELECT, INSERT, UPDATE ON search_generations TO {app}",
        f"GRANT USAGE ON SEQUENCE search_generation_seq TO {app}",
        """
        CREATE FUNCTION cards_search_changed() RETURNS trigger
        LANGUAGE plpgsql
        SET search_path = pg_catalog, public
        AS $$
        BEGIN
            INSERT INTO search_generations AS g (tenant_id, generation)
            VALUES (CASE TG_OP WHEN 'DELETE' THEN OLD.tenant_id ELSE NEW.tenant_id END,
                    nextval('search_generation_seq'))
            ON CONFLICT (tenant_id) DO UPDATE SET generation = EXCLUDED.generation;
            RETURN NULL;
        END
        $$
        """,
        """
        CREATE TRIGGER cards_search_changed_insert_delete AFTER INSERT OR DELETE ON cards
        FOR EACH ROW EXECUTE FUNCTION cards_search_changed()
        """,
        f"""
        CREATE TRIGGER cards_search_changed_update AFTER UPDATE ON cards
        FOR EACH ROW WHEN (({old}) IS DISTINCT FROM ({new}))
        EXECUTE FUNCTION cards_search_changed()
        """,
        """
        CREATE TRIGGER card_embeddings_search_changed
        AFTER INSERT OR UPDATE OR DELETE ON card_embeddings
        FOR EACH ROW EXECUTE FUNCTION cards_search_changed()
        """,
    ]
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER card_embeddings_search_changed ON card_embeddings")
    op.execute("DROP TRIGGER cards_search_changed_update ON cards")
    op.execute("DROP TRIGGER cards_search_changed_insert_delete ON cards")
    op.execute("DROP FUNCTION cards_search_changed()")
    op.execute("DROP TABLE search_generations")
    op.execute("DROP SEQUENCE search_generation_seq")

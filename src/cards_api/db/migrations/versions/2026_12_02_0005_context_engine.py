"""The context engine: card embeddings (pgvector) and the record of every assembled context.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

- `card_embeddings`: one vector per card and embedder, with the card version it was computed
  from; a card whose current version has no vector under the configured embedder is pending
  (found by text until the background worker or `cards-api reindex` embeds it). The vector
  column has no fixed dimension, so a change of model needs no migration; search is exact
  within the tenant's filtered cards, so a filtered query never comes back short.
- `contexts`: what each `POST /api/v1/context` put into a prompt, kept until `expires_at`
  (`CARDS_CONTEXT_TTL`) for audit.
- Both lead with `tenant_id` and are under forced row-level security like every tenant table.
- `cards_tenants_with_pending_embeddings(text)` tells the background worker which tenants have
  work (ids only, never content); `cards_purge_expired_contexts(int)` deletes expired contexts.
  Both run as the maintenance role and are granted to the app role alone.

`CREATE EXTENSION vector` needs a superuser (pgvector is not a trusted extension): the embedded
database and the Compose image's superuser have it; elsewhere a superuser creates it first.
"""

from collections.abc import Sequence

from alembic import context, op

from cards_api.db.roles import Roles

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("card_embeddings", "contexts")


def upgrade() -> None:
    roles: Roles = context.config.attributes["roles"]
    app, maintenance = roles.app, roles.maintenance
    statements = [
        "CREATE EXTENSION IF NOT EXISTS vector",
        """
        CREATE TABLE card_embeddings (
            tenant_id  uuid        NOT NULL,
            card_id    uuid        NOT NULL,
            embedder   text        NOT NULL,
            version    integer     NOT NULL,
            embedding  vector      NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT card_embeddings_pkey PRIMARY KEY (tenant_id, card_id, embedder),
            CONSTRAINT card_embeddings_tenant_id_card_id_fkey
                FOREIGN KEY (tenant_id, card_id) REFERENCES cards (tenant_id, id),
            CONSTRAINT card_embeddings_embedder_check CHECK (char_length(embedder) <= 200)
        )
        """,
        """
        CREATE TABLE contexts (
            tenant_id     uuid        NOT NULL,
            id            uuid        NOT NULL,
            task          text        NOT NULL,
            token_budget  integer     NOT NULL,
            tokens        integer     NOT NULL,
            tokenizer     text        NOT NULL,
            format        text        NOT NULL,
            cards         jsonb       NOT NULL,
            omitted       jsonb       NOT NULL,
            workflow_id   text,
            workflow_type text,
            created_at    timestamptz NOT NULL DEFAULT now(),
            expires_at    timestamptz NOT NULL,
            CONSTRAINT contexts_pkey PRIMARY KEY (tenant_id, id),
            CONSTRAINT contexts_tokens_check CHECK (tokens <= token_budget)
        )
        """,
        "CREATE INDEX contexts_tenant_id_expires_at_idx ON contexts (tenant_id, expires_at)",
        *(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY" for table in TABLES),
        *(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY" for table in TABLES),
        *(
            f"""
            CREATE POLICY {table}_tenant_isolation ON {table}
                USING (tenant_id = cards_current_tenant())
                WITH CHECK (tenant_id = cards_current_tenant())
            """
            for table in TABLES
        ),
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON card_embeddings TO {app}",
        f"GRANT SELECT, INSERT ON contexts TO {app}",
        # The maintenance role sees which tenants have cards without a current embedding (ids
        # only, through the function below) and deletes expired contexts; nothing else.
        f"GRANT SELECT ON cards, card_embeddings TO {maintenance}",
        f"GRANT SELECT, DELETE ON contexts TO {maintenance}",
        f"CREATE POLICY cards_maintenance_read ON cards FOR SELECT TO {maintenance} USING (true)",
        f"""
        CREATE POLICY card_embeddings_maintenance_read ON card_embeddings FOR SELECT
            TO {maintenance} USING (true)
        """,
        f"""
        CREATE POLICY contexts_purge ON contexts TO {maintenance} USING (expires_at < now())
        """,
        """
        CREATE FUNCTION cards_tenants_with_pending_embeddings(current_embedder text)
            RETURNS SETOF uuid
            LANGUAGE sql STABLE
            SECURITY DEFINER
            SET search_path = pg_catalog, public
            AS $$
                SELECT DISTINCT c.tenant_id FROM cards c
                LEFT JOIN card_embeddings e
                    ON e.tenant_id = c.tenant_id AND e.card_id = c.id
                   AND e.embedder = current_embedder
                WHERE c.archived_at IS NULL AND (e.version IS DISTINCT FROM c.version)
            $$
        """,
        """
        CREATE FUNCTION cards_purge_expired_contexts(max_rows integer)
            RETURNS integer
            LANGUAGE sql
            SECURITY DEFINER
            SET search_path = pg_catalog, public
            AS $$
                WITH gone AS (
                    DELETE FROM contexts
                    WHERE (tenant_id, id) IN (
                        SELECT tenant_id, id FROM contexts WHERE expires_at < now()
                        LIMIT greatest(0, least(max_rows, 10000))
                    )
                    RETURNING 1
                )
                SELECT count(*)::integer FROM gone
            $$
        """,
    ]
    for function in (
        "cards_tenants_with_pending_embeddings(text)",
        "cards_purge_expired_contexts(integer)",
    ):
        statements += [
            f"GRANT CREATE ON SCHEMA public TO {maintenance}",
            f"ALTER FUNCTION {function} OWNER TO {maintenance}",
            f"REVOKE CREATE ON SCHEMA public FROM {maintenance}",
            f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC",
            f"GRANT EXECUTE ON FUNCTION {function} TO {app}",
        ]
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP FUNCTION cards_purge_expired_contexts(integer)")
    op.execute("DROP FUNCTION cards_tenants_with_pending_embeddings(text)")
    op.execute("DROP POLICY cards_maintenance_read ON cards")
    op.execute("DROP TABLE contexts, card_embeddings")

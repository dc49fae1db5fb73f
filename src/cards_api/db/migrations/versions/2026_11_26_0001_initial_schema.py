"""Initial schema: cards, their versions, usage events, idempotency records, API keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Rules this schema keeps (see docs/database.md):

- `tenant_id` leads every primary key, unique constraint, foreign key and index on tenant data,
  so the schema stays valid for Citus with `tenant_id` as the distribution column.
- Row-level security is enabled and FORCE'd on every tenant table: a role that is bound by it
  sees only rows of the tenant set for the current transaction
  (`set_config('cards.tenant_id', …, true)`), and none when no tenant is set.
- The roles and their grants are made by revision 0003, per deployment (`cards_api.db.roles`).
  This revision created fixed, cluster-wide role names until 0003 replaced them; databases
  migrated before that have 0003 move the grants and drop those roles' rights.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CARD_TYPES = (
    "company",
    "audience",
    "voice",
    "insight",
    "product",
    "competitor",
    "topic",
    "example",
)
TENANT_TABLES = ("cards", "card_versions", "card_usage", "idempotency_records", "api_keys")

_card_types_sql = ", ".join(f"'{t}'" for t in CARD_TYPES)

UPGRADE = [
    # GIN indexes that lead with tenant_id need btree operator classes for uuid.
    "CREATE EXTENSION IF NOT EXISTS btree_gin",
    """
    CREATE FUNCTION cards_current_tenant() RETURNS uuid
        LANGUAGE sql STABLE PARALLEL SAFE
        AS $$ SELECT nullif(current_setting('cards.tenant_id', true), '')::uuid $$
    """,
    f"""
    CREATE TABLE cards (
        tenant_id    uuid        NOT NULL,
        id           uuid        NOT NULL,
        card_type    text        NOT NULL,
        title        text        NOT NULL,
        content      jsonb       NOT NULL,
        tags         text[]      NOT NULL DEFAULT '{{}}',
        external_ref text,
        version      integer     NOT NULL DEFAULT 1,
        usage_count  bigint      NOT NULL DEFAULT 0,
        last_used_at timestamptz,
        archived_at  timestamptz,
        created_at   timestamptz NOT NULL DEFAULT now(),
        updated_at   timestamptz NOT NULL DEFAULT now(),
        search       tsvector GENERATED ALWAYS AS (
            setweight(to_tsvector('english'::regconfig, title), 'A')
            || setweight(jsonb_to_tsvector('english'::regconfig, content, '["string"]'), 'B')
        ) STORED,
        CONSTRAINT cards_pkey PRIMARY KEY (tenant_id, id),
        CONSTRAINT cards_tenant_id_card_type_external_ref_key
            UNIQUE (tenant_id, card_type, external_ref),
        CONSTRAINT cards_card_type_check CHECK (card_type IN ({_card_types_sql})),
        CONSTRAINT cards_title_check CHECK (char_length(title) BETWEEN 1 AND 200),
        CONSTRAINT cards_content_check CHECK (jsonb_typeof(content) = 'object'),
        CONSTRAINT cards_tags_check CHECK (cardinality(tags) <= 20),
        CONSTRAINT cards_external_ref_check CHECK (char_length(external_ref) BETWEEN 1 AND 200),
        CONSTRAINT cards_version_check CHECK (version >= 1),
        CONSTRAINT cards_usage_count_check CHECK (usage_count >= 0)
    )
    """,
    """
    CREATE INDEX cards_tenant_id_created_at_id_idx
        ON cards (tenant_id, created_at, id) WHERE archived_at IS NULL
    """,
    """
    CREATE INDEX cards_tenant_id_card_type_created_at_id_idx
        ON cards (tenant_id, card_type, created_at, id) WHERE archived_at IS NULL
    """,
    """
    CREATE INDEX cards_tenant_id_tags_idx
        ON cards USING gin (tenant_id, tags) WHERE archived_at IS NULL
    """,
    """
    CREATE INDEX cards_tenant_id_search_idx
        ON cards USING gin (tenant_id, search) WHERE archived_at IS NULL
    """,
    """
    CREATE TABLE card_versions (
        tenant_id  uuid        NOT NULL,
        card_id    uuid        NOT NULL,
        version    integer     NOT NULL,
        title      text        NOT NULL,
        content    jsonb       NOT NULL,
        tags       text[]      NOT NULL,
        created_at timestamptz NOT NULL,
        CONSTRAINT card_versions_pkey PRIMARY KEY (tenant_id, card_id, version),
        CONSTRAINT card_versions_tenant_id_card_id_fkey
            FOREIGN KEY (tenant_id, card_id) REFERENCES cards (tenant_id, id)
    )
    """,
    # Every version a create, upsert or patch produces is kept, written by the database itself
    # so that no code path can change a card without recording the change.
    """
    CREATE FUNCTION cards_record_version() RETURNS trigger
        LANGUAGE plpgsql
        AS $$
        BEGIN
            INSERT INTO card_versions
                (tenant_id, card_id, version, title, content, tags, created_at)
            VALUES (NEW.tenant_id, NEW.id, NEW.version, NEW.title, NEW.content, NEW.tags,
                    NEW.updated_at);
            RETURN NULL;
        END
        $$
    """,
    """
    CREATE TRIGGER cards_record_version_on_insert
        AFTER INSERT ON cards
        FOR EACH ROW EXECUTE FUNCTION cards_record_version()
    """,
    """
    CREATE TRIGGER cards_record_version_on_update
        AFTER UPDATE ON cards
        FOR EACH ROW WHEN (NEW.version <> OLD.version) EXECUTE FUNCTION cards_record_version()
    """,
    """
    CREATE TABLE card_usage (
        tenant_id     uuid        NOT NULL,
        id            uuid        NOT NULL DEFAULT gen_random_uuid(),
        card_id       uuid        NOT NULL,
        card_type     text        NOT NULL,
        workflow_id   text        NOT NULL,
        workflow_type text        NOT NULL,
        session_id    text,
        created_at    timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT card_usage_pkey PRIMARY KEY (tenant_id, id),
        CONSTRAINT card_usage_tenant_id_card_id_workflow_id_key
            UNIQUE (tenant_id, card_id, workflow_id),
        CONSTRAINT card_usage_tenant_id_card_id_fkey
            FOREIGN KEY (tenant_id, card_id) REFERENCES cards (tenant_id, id),
        CONSTRAINT card_usage_workflow_id_check CHECK (char_length(workflow_id) BETWEEN 1 AND 200),
        CONSTRAINT card_usage_workflow_type_check CHECK (workflow_type ~ '^[a-z0-9_]{1,64}$'),
        CONSTRAINT card_usage_session_id_check CHECK (char_length(session_id) <= 200)
    )
    """,
    """
    CREATE INDEX card_usage_tenant_id_card_id_created_at_id_idx
        ON card_usage (tenant_id, card_id, created_at DESC, id DESC)
    """,
    """
    CREATE INDEX card_usage_tenant_id_created_at_idx ON card_usage (tenant_id, created_at)
    """,
    """
    CREATE TABLE idempotency_records (
        tenant_id       uuid        NOT NULL,
        key             text        NOT NULL,
        fingerprint     bytea       NOT NULL,
        response_status smallint,
        response_body   bytea,
        created_at      timestamptz NOT NULL DEFAULT now(),
        expires_at      timestamptz NOT NULL,
        CONSTRAINT idempotency_records_pkey PRIMARY KEY (tenant_id, key),
        CONSTRAINT idempotency_records_key_check CHECK (char_length(key) BETWEEN 1 AND 255)
    )
    """,
    """
    CREATE INDEX idempotency_records_tenant_id_expires_at_idx
        ON idempotency_records (tenant_id, expires_at)
    """,
    """
    CREATE TABLE api_keys (
        tenant_id  uuid        NOT NULL,
        id         uuid        NOT NULL DEFAULT gen_random_uuid(),
        name       text        NOT NULL DEFAULT '',
        key_hash   bytea       NOT NULL,
        key_hint   text        NOT NULL,
        scopes     text[]      NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz,
        CONSTRAINT api_keys_pkey PRIMARY KEY (tenant_id, id),
        CONSTRAINT api_keys_tenant_id_key_hash_key UNIQUE (tenant_id, key_hash),
        CONSTRAINT api_keys_key_hash_check CHECK (octet_length(key_hash) = 32),
        CONSTRAINT api_keys_name_check CHECK (char_length(name) <= 200),
        CONSTRAINT api_keys_scopes_check CHECK (
            cardinality(scopes) >= 1
            AND scopes <@ ARRAY['cards:read', 'cards:write', 'usage:write']::text[]
        )
    )
    """,
    *(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY" for table in TENANT_TABLES),
    *(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY" for table in TENANT_TABLES),
    *(
        f"""
        CREATE POLICY {table}_tenant_isolation ON {table}
            USING (tenant_id = cards_current_tenant())
            WITH CHECK (tenant_id = cards_current_tenant())
        """
        for table in TENANT_TABLES
    ),
]

DOWNGRADE = [
    "DROP TABLE api_keys, idempotency_records, card_usage, card_versions, cards",
    "DROP FUNCTION cards_record_version()",
    "DROP FUNCTION cards_current_tenant()",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)

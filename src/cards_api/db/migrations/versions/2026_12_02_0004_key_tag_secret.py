"""A secret of the deployment's own, so that API keys carry a tag no outsider can forge.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

Keys used to end in a CRC-32 only: it catches typos, but anyone can compute it, so any
well-formed random key cost a database look-up. Keys issued from here on also carry an
HMAC-SHA256 tag under this secret (`cards_api.auth`); a key whose tag is wrong is refused
without touching the database. The secret is drawn by PostgreSQL's strong random source
(`gen_random_uuid`, two of them: 244 random bits) and readable only by the app and admin roles.
It is not tenant data: no `tenant_id`, no row-level security (a reference table under Citus).
"""

from collections.abc import Sequence

from alembic import context, op

from cards_api.db.roles import Roles

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    roles: Roles = context.config.attributes["roles"]
    op.execute(
        """
        CREATE TABLE deployment_secrets (
            name  text  NOT NULL,
            value bytea NOT NULL,
            CONSTRAINT deployment_secrets_pkey PRIMARY KEY (name),
            CONSTRAINT deployment_secrets_value_check CHECK (octet_length(value) >= 16)
        )
        """
    )
    op.execute(
        """
        INSERT INTO deployment_secrets (name, value)
        VALUES ('key_tag', decode(
            replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'))
        """
    )
    op.execute("REVOKE ALL ON deployment_secrets FROM PUBLIC")
    op.execute(f"GRANT SELECT ON deployment_secrets TO {roles.app}, {roles.admin}")


def downgrade() -> None:
    op.execute("DROP TABLE deployment_secrets")

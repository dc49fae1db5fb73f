"""Roles per deployment; the API logs in as a role that cannot become the owner; purges through
a narrowly granted function.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

Role names are cluster-wide, so fixed names (`cards_app`, …) let two deployments on one cluster
share roles, and the API used to log in as the owner and switch to `cards_app` (which
`RESET ROLE` undid). From here (see `cards_api.db.roles`):

- `<prefix>_app` is a LOGIN role, member of nothing: the API's pool logs in as it;
- `<prefix>_admin` (NOLOGIN) manages API keys; the owner switches to it for `cards-api keys`;
- `<prefix>_maintenance` (NOLOGIN) owns `cards_purge_expired_idempotency(int)`, a SECURITY
  DEFINER function that deletes expired idempotency records and nothing else; only the app
  role may execute it.

A database migrated by an earlier build had its grants on the old fixed roles: they are revoked
here (the roles themselves may serve other databases of the cluster and are left in place).
"""

from collections.abc import Sequence

from alembic import context, op

from cards_api.db.roles import Roles

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("cards", "card_versions", "card_usage", "idempotency_records", "api_keys")
LEGACY_ROLES = ("cards_app", "cards_admin", "cards_maintenance")


def _create_role(name: str, *, login: bool) -> str:
    options = "LOGIN" if login else "NOLOGIN"
    return f"""
    DO $$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') THEN
            CREATE ROLE {name} {options} NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
        ELSE
            ALTER ROLE {name} {options} NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
        END IF;
    END $$
    """


def _revoke_legacy(role: str) -> str:
    tables = ", ".join(TABLES)
    return f"""
    DO $$ BEGIN
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
            REVOKE ALL ON {tables}, alembic_version FROM {role};
            REVOKE ALL ON SCHEMA public FROM {role};
        END IF;
    END $$
    """


def statements(roles: Roles) -> list[str]:
    app, admin, maintenance = roles.app, roles.admin, roles.maintenance
    return [
        "DROP POLICY IF EXISTS api_keys_admin ON api_keys",
        "DROP POLICY IF EXISTS idempotency_records_purge ON idempotency_records",
        *(_revoke_legacy(role) for role in LEGACY_ROLES if role not in (app, admin, maintenance)),
        _create_role(app, login=True),
        _create_role(admin, login=False),
        _create_role(maintenance, login=False),
        # The owner switches to these two (keys CLI; making the purge function theirs).
        f"GRANT {admin}, {maintenance} TO CURRENT_USER",
        f"GRANT USAGE ON SCHEMA public TO {app}, {admin}, {maintenance}",
        f"GRANT SELECT, INSERT, UPDATE ON cards TO {app}",
        f"GRANT SELECT, INSERT ON card_versions, card_usage TO {app}",
        f"GRANT SELECT, INSERT, UPDATE ON idempotency_records TO {app}",
        f"GRANT SELECT ON api_keys TO {app}",
        f"GRANT SELECT ON alembic_version TO {app}, {admin}",
        f"GRANT SELECT, INSERT, UPDATE ON api_keys TO {admin}",
        f"GRANT SELECT, DELETE ON idempotency_records TO {maintenance}",
        f"CREATE POLICY api_keys_admin ON api_keys TO {admin} USING (true) WITH CHECK (true)",
        f"""
        CREATE POLICY idempotency_records_purge ON idempotency_records TO {maintenance}
            USING (expires_at < now())
        """,
        """
        CREATE OR REPLACE FUNCTION cards_purge_expired_idempotency(max_rows integer)
            RETURNS integer
            LANGUAGE sql
            SECURITY DEFINER
            SET search_path = pg_catalog, public
            AS $$
                WITH gone AS (
                    DELETE FROM idempotency_records
                    WHERE (tenant_id, key) IN (
                        SELECT tenant_id, key FROM idempotency_records
                        WHERE expires_at < now()
                        LIMIT greatest(0, least(max_rows, 10000))
                    )
                    RETURNING 1
                )
                SELECT count(*)::integer FROM gone
            $$
        """,
        # A new owner needs CREATE on the schema at the moment it takes the function over.
        f"GRANT CREATE ON SCHEMA public TO {maintenance}",
        f"ALTER FUNCTION cards_purge_expired_idempotency(integer) OWNER TO {maintenance}",
        f"REVOKE CREATE ON SCHEMA public FROM {maintenance}",
        "REVOKE ALL ON FUNCTION cards_purge_expired_idempotency(integer) FROM PUBLIC",
        f"GRANT EXECUTE ON FUNCTION cards_purge_expired_idempotency(integer) TO {app}",
    ]


def upgrade() -> None:
    roles: Roles = context.config.attributes["roles"]
    for statement in statements(roles):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS cards_purge_expired_idempotency(integer)")

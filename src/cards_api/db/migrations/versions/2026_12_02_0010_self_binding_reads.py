"""Reads that bind their tenant themselves: one statement, one round trip, no transaction block.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

A request's transaction is three round trips before any work: `BEGIN` with the tenant, the
statement, `COMMIT`. For a read of one statement the two around it were a fifth of the API's
CPU and of PostgreSQL's for a retrieve by ids (docs/performance.md), and asyncpg cannot send
them together. These functions run the hottest reads as one statement outside any transaction
block: each binds the statement's own transaction to the tenant it is given, exactly as
`BEGIN; SELECT set_config('cards.tenant_id', …, true)` does, and row-level security applies as
for any statement of the app role (they are SECURITY INVOKER). The binding is transaction-local:
PostgreSQL forgets it when the statement's implicit transaction ends, so a pooled connection
carries no tenant into its next use.

`cards_bind_tenant` is the binding itself, and it refuses to bind a transaction that is already
bound to another tenant: called inside a request's transaction, a function can only confirm
that request's tenant, never switch it.

- `cards_by_ids`: live cards among the given ids (and, when given, of any of the types and
  with any of the tags), in creation order: retrieve by ids.
- `cards_ranked`: the ranked cards with their scores, in rank order, only while the tenant's
  search generation is still the given one (revision 0009): a search ranked from an API
  process's copy of the tenant's cards.
- `cards_search_current`: whether the tenant's search generation is still the given one.

Their statements run generic plans (`plan_cache_mode`): PL/pgSQL keeps a statement's plan for
the session, but PostgreSQL's own choice kept planning `id = ANY(…)` anew for each call (a
custom plan costs less than the generic one, which guesses ten ids), ~80 µs a call: pgbench as
the app role, one client, 0.20 ms a retrieve by ids, 0.10 ms with the generic plan, against
0.16 ms for `BEGIN`, the tenant, the statement and `COMMIT`. Every plan here is a primary-key
look-up per id whatever the number of ids.
"""

from collections.abc import Sequence

from alembic import context, op

from cards_api.db.roles import Roles

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CARD_TABLE = """
    id uuid, tenant_id uuid, card_type text, title text, content jsonb, tags text[],
    external_ref text, version integer, usage_count bigint, last_used_at timestamptz,
    created_at timestamptz, updated_at timestamptz
"""
CARD_COLUMNS = """
    c.id, c.tenant_id, c.card_type, c.title, c.content, c.tags, c.external_ref, c.version,
    c.usage_count, c.last_used_at, c.created_at, c.updated_at
"""
FUNCTIONS = (
    "cards_bind_tenant(uuid)",
    "cards_by_ids(uuid, uuid[], text[], text[])",
    "cards_ranked(uuid, uuid[], float8[], bigint)",
    "cards_search_current(uuid, bigint)",
)


def _self_binding(signature: str, returns: str, body: str) -> str:
    """A read that binds its statement to `tenant` first, on generic plans (above)."""
    return f"""
        CREATE FUNCTION {signature} RETURNS {returns}
            LANGUAGE plpgsql
            SET plan_cache_mode = force_generic_plan
            AS $$
            BEGIN
                PERFORM cards_bind_tenant(tenant);
                {body}
            END
            $$
    """


def upgrade() -> None:
    roles: Roles = context.config.attributes["roles"]
    statements = [
        """
        CREATE FUNCTION cards_bind_tenant(tenant uuid) RETURNS void
            LANGUAGE plpgsql
            AS $$
            BEGIN
                IF tenant IS NULL THEN
                    RAISE EXCEPTION 'no tenant to bind';
                END IF;
                IF cards_current_tenant() IS DISTINCT FROM tenant
                   AND cards_current_tenant() IS NOT NULL THEN
                    RAISE EXCEPTION 'the transaction is bound to another tenant';
                END IF;
                PERFORM set_config('cards.tenant_id', tenant::text, true);
            END
            $$
        """,
        _self_binding(
            "cards_by_ids(tenant uuid, wanted uuid[], of_types text[], any_tags text[])",
            f"TABLE ({CARD_TABLE})",
            f"""
            RETURN QUERY
                SELECT {CARD_COLUMNS}
                FROM cards c
                WHERE c.tenant_id = tenant AND c.archived_at IS NULL AND c.id = ANY(wanted)
                  AND (of_types IS NULL OR c.card_type = ANY(of_types))
                  AND (any_tags IS NULL OR c.tags && any_tags)
                ORDER BY c.created_at, c.id;
            """,
        ),
        _self_binding(
            "cards_ranked(tenant uuid, ranked_ids uuid[], ranked_scores float8[],"
            " at_generation bigint)",
            f"TABLE ({CARD_TABLE}, score float8)",
            f"""
            RETURN QUERY
                SELECT {CARD_COLUMNS}, r.score
                FROM unnest(ranked_ids, ranked_scores) WITH ORDINALITY AS r(id, score, n)
                JOIN cards c ON c.tenant_id = tenant AND c.id = r.id AND c.archived_at IS NULL
                WHERE (SELECT g.generation FROM search_generations g
                       WHERE g.tenant_id = tenant) IS NOT DISTINCT FROM at_generation
                ORDER BY r.n;
            """,
        ),
        _self_binding(
            "cards_search_current(tenant uuid, at_generation bigint)",
            "boolean",
            """
            RETURN (SELECT g.generation FROM search_generations g
                    WHERE g.tenant_id = tenant) IS NOT DISTINCT FROM at_generation;
            """,
        ),
    ]
    statements += [f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC" for function in FUNCTIONS]
    statements += [f"GRANT EXECUTE ON FUNCTION {function} TO {roles.app}" for function in FUNCTIONS]
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    for function in reversed(FUNCTIONS):
        op.execute(f"DROP FUNCTION {function}")

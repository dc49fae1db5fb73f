"""The connection type every query takes: a plain connection or one lent by the pool."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

if TYPE_CHECKING:
    from asyncpg import Connection as _Connection
    from asyncpg import Record
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = _Connection[Record] | PoolConnectionProxy[Record]
else:  # asyncpg's classes are generic only in its type stubs
    from asyncpg import Connection as _Connection
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = _Connection | PoolConnectionProxy


class Row(Protocol):
    """A row as read by column name: an `asyncpg.Record`, or a dict holding the same columns
    (a context's candidates taken from a search index instead of the database)."""

    def __getitem__(self, key: str, /) -> Any: ...

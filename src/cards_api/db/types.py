"""The connection type every query takes: a plain connection or one lent by the pool."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from asyncpg import Connection as _Connection
    from asyncpg import Record
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = _Connection[Record] | PoolConnectionProxy[Record]
else:  # asyncpg's classes are generic only in its type stubs
    from asyncpg import Connection as _Connection
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = _Connection | PoolConnectionProxy

"""The connection type every query takes: a plain connection or one lent by the pool."""

from typing import TypeAlias

from asyncpg import Connection as _Connection
from asyncpg import Record
from asyncpg.pool import PoolConnectionProxy

Connection: TypeAlias = _Connection[Record] | PoolConnectionProxy[Record]

"""The zhufu event store: append-only, versioned tables on DuckLake.

Only this package writes tables. Everything else reads through :class:`Warehouse`
or the read-only SQL CLI (``python -m warehouse sql "SELECT …"``).
"""

from warehouse.config import WarehouseConfig
from warehouse.errors import ReadOnlyError, WarehouseError
from warehouse.store import AppendResult, CommitResult, Warehouse

__all__ = [
    "AppendResult",
    "CommitResult",
    "ReadOnlyError",
    "Warehouse",
    "WarehouseConfig",
    "WarehouseError",
]

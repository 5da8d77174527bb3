"""The zhufu event store: append-only, versioned tables on DuckLake.

Only this package writes tables. Everything else reads through :class:`Warehouse`
or the read-only SQL CLI (``python -m warehouse sql "SELECT …"``). Imports are lazy so that
``warehouse.config`` / ``warehouse.ids`` load without DuckDB.
"""

from importlib import import_module

_EXPORTS = {
    "AppendResult": "warehouse.store",
    "CommitResult": "warehouse.store",
    "Warehouse": "warehouse.store",
    "WarehouseConfig": "warehouse.config",
    "ReadOnlyError": "warehouse.errors",
    "WarehouseError": "warehouse.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(name)

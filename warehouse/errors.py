class WarehouseError(RuntimeError):
    """A warehouse operation failed; the message says which table or statement."""


class ReadOnlyError(WarehouseError):
    """A write was attempted through a read-only path (the SQL CLI, an as-of view)."""

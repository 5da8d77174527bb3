"""Read connections that live as long as the process.

Opening a connection costs ~230 ms (load the extensions, attach the catalog); a query on an open
one costs well under a millisecond for ``SELECT 1``. So :class:`ReaderPool` keeps one read-only
connection per kind of read (current, sandboxed, a few ``as_of`` snapshots) and hands each thread
its own cursor on it (a DuckDB connection object is not safe to share between threads).

No refresh after writes is needed: DuckLake reads the catalog's latest snapshot at the start of
every transaction, so an attached catalog sees commits, new tables and compacted files of this
process and of every other one (``tests/test_warehouse_readers.py`` proves it). A query must not
leave a result half-read, though: its transaction, and with it SQLite's read lock on an embedded
catalog, stays open and blocks every writer — so callers fetch results whole.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import duckdb

from warehouse.config import WarehouseConfig
from warehouse.connection import CATALOG, open_connection

# Connections inherited through fork(): never used nor closed in the child (closing would touch
# the parent's SQLite handles and DuckDB's locks), only kept from being garbage-collected.
_ABANDONED: list[object] = []

Key = tuple[int | None, bool]  # (as_of snapshot, sandboxed)


@dataclass
class _Reader:
    con: duckdb.DuckDBPyConnection
    cursors: dict[int, duckdb.DuckDBPyConnection] = field(default_factory=dict)  # thread id -> cursor
    # thread id -> its cursor's ``latest_reads`` checks (table -> snapshot, superseded table empty then)
    latest_checks: dict[int, dict[str, tuple[int, bool]]] = field(default_factory=dict)

    def close(self) -> None:
        for cur in self.cursors.values():
            cur.close()
        self.cursors.clear()
        self.con.close()


class ReaderPool:
    """Cached read-only connections to one warehouse, one cursor per thread.

    ``max_snapshots``: how many ``as_of`` connections stay open (least recently used go first).
    """

    def __init__(self, config: WarehouseConfig, *, max_snapshots: int = 4):
        self.config = config
        self.max_snapshots = max_snapshots
        self._readers: OrderedDict[Key, _Reader] = OrderedDict()
        self._lock = threading.Lock()  # guards the dicts; held for microseconds
        self._opening = threading.Lock()  # one attach at a time: racing threads wait for it, not open more
        self._pid = os.getpid()

    def cursor(self, *, as_of: int | None = None, sandboxed: bool = False) -> duckdb.DuckDBPyConnection:
        """This thread's cursor on the read connection for (``as_of``, ``sandboxed``); do not close it."""
        key: Key = (None if as_of is None else int(as_of), sandboxed)
        thread = threading.get_ident()
        with self._lock:
            self._forget_if_forked()
            reader = self._readers.get(key)
            if reader is not None:
                self._readers.move_to_end(key)
                cur = reader.cursors.get(thread)
                if cur is not None:
                    return cur
        if reader is None:
            reader = self._open(key)
        cur = reader.con.cursor()
        cur.execute(f"USE {CATALOG}")  # a cursor starts in the default database, not the lake
        with self._lock:
            alive = {t.ident for t in threading.enumerate()}
            for ident in [i for i in reader.cursors if i not in alive]:  # cursors of finished threads
                reader.cursors.pop(ident).close()
                reader.latest_checks.pop(ident, None)
            reader.cursors[thread] = cur
        return cur

    def latest_checks(self, *, sandboxed: bool = False) -> dict[str, tuple[int, bool]]:
        """This thread's ``warehouse.latest_reads`` checks for its live cursor (take :meth:`cursor` first)."""
        with self._lock:
            reader = self._readers.get((None, sandboxed))
            if reader is None:  # discarded by another thread meanwhile: checks that last for this read only
                return {}
            return reader.latest_checks.setdefault(threading.get_ident(), {})

    def _open(self, key: Key) -> _Reader:
        # Not under self._lock: an attach takes ~230 ms and must not hold up reads on open connections.
        with self._opening:
            with self._lock:
                reader = self._readers.get(key)
            if reader is not None:
                return reader  # opened by the thread we waited for
            reader = _Reader(open_connection(self.config, read_only=True, snapshot=key[0], sandboxed=key[1]))
            with self._lock:
                self._readers[key] = reader
                self._evict_snapshots()
            return reader

    def discard(self, *, as_of: int | None = None, sandboxed: bool = False) -> None:
        """Drop one cached connection (after an error that may have invalidated it)."""
        with self._lock:
            reader = self._readers.pop((as_of, sandboxed), None)
        if reader is not None:
            try:
                reader.close()
            except duckdb.Error:
                pass

    def forget_snapshots(self) -> None:
        """Drop the ``as_of`` connections (after snapshots were expired); closed once unused."""
        with self._lock:
            for key in [k for k in self._readers if k[0] is not None]:
                del self._readers[key]

    def close(self) -> None:
        """Close every cached connection; the next read opens a new one."""
        with self._lock:
            readers, self._readers = list(self._readers.values()), OrderedDict()
        for reader in readers:
            reader.close()

    def __len__(self) -> int:
        return len(self._readers)

    def _evict_snapshots(self) -> None:
        snapshots = [k for k in self._readers if k[0] is not None]
        for key in snapshots[: max(0, len(snapshots) - self.max_snapshots)]:
            # Not closed: another thread may be reading through it; garbage collection closes it.
            del self._readers[key]

    def _forget_if_forked(self) -> None:
        if os.getpid() != self._pid:
            _ABANDONED.append(self._readers)
            self._readers = OrderedDict()
            self._pid = os.getpid()

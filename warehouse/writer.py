"""The write connection, kept open between commits.

Opening one costs ~160 ms (load the extensions, attach the catalog): a third of a 10k-row commit at 3 M rows
(bench/RESULTS.md, "Superseded rows found from integer columns"), and most of a call-log checkpoint. DuckLake
reads the catalog's latest snapshot when a transaction begins, so a connection kept open sees the commits of
every other process as a new one would (``warehouse.readers`` relies on the same; the four-writer test proves it
for writers). Between commits no transaction is open, so it holds no lock of an embedded catalog; before each
commit one catalog read checks that it still reaches the catalog, else a new one is opened.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from warehouse.commit_index import CommitIndex
from warehouse.config import WarehouseConfig
from warehouse.connection import CATALOG, open_connection

_ABANDONED: list[object] = []  # connections inherited through fork(): never used nor closed in the child


class WriterSlot:
    """One write connection per process and warehouse handle, used by one commit at a time."""

    def __init__(self, config: WarehouseConfig):
        self.config = config
        self._con: duckdb.DuckDBPyConnection | None = None
        self.index = CommitIndex()  # what commits know of the tables, valid while this connection is
        self._lock = threading.Lock()
        self._pid = os.getpid()

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The write connection, for the ``with`` body alone; after an error it is closed, and the next
        commit opens a new one (whatever state the error left it in is not carried over)."""
        with self._lock:
            if os.getpid() != self._pid:
                _ABANDONED.append(self._con)
                self._con, self._pid, self.index = None, os.getpid(), CommitIndex()
            if self._con is not None and not self._alive(self._con):
                self._close()  # gone stale (a PostgreSQL catalog's server closed it, …): open a new one
            if self._con is None:
                self._con = open_connection(self.config)
            try:
                yield self._con
            except BaseException:
                self._close()
                raise

    @staticmethod
    def _alive(con: duckdb.DuckDBPyConnection) -> bool:
        """Whether a kept connection still reaches the catalog (one cheap catalog read, ~1 ms)."""
        try:
            con.execute(f"SELECT id FROM ducklake_current_snapshot('{CATALOG}')").fetchall()
            return True
        except duckdb.Error:
            return False

    def close(self) -> None:
        with self._lock:
            if os.getpid() == self._pid:
                self._close()

    def _close(self) -> None:
        self.index = CommitIndex()
        con, self._con = self._con, None
        if con is not None:
            try:
                con.close()
            except duckdb.Error:
                pass

"""The vector store: LanceDB tables (local directory by default, any LanceDB URI by configuration).

Every write returns the table's Lance version; the asset that wrote it records that version in
the warehouse (``vector_indexes``) beside its own snapshot, so a retrieval can name the exact
index version it searched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import lancedb
import numpy as np
import pyarrow as pa

from warehouse.config import zhufu_home


class VectorStore:
    def __init__(self, uri: str | Path):
        self.uri = str(uri)
        if "://" not in self.uri:
            Path(self.uri).mkdir(parents=True, exist_ok=True)
        self.db = lancedb.connect(self.uri)

    def _names(self) -> set[str]:
        listing = self.db.list_tables()
        names = getattr(listing, "tables", listing)
        return set(names)

    def write(self, name: str, rows: list[dict[str, Any]], vectors: np.ndarray) -> int:
        """Replace table ``name`` with ``rows`` (+ a ``vector`` column); returns its new Lance version."""
        if len(rows) != len(vectors):
            raise ValueError(f"{name}: {len(rows)} rows but {len(vectors)} vectors")
        dim = int(vectors.shape[1]) if len(vectors) else 0
        table = pa.Table.from_pylist(rows)
        table = table.append_column("vector", pa.FixedSizeListArray.from_arrays(
            pa.array(np.asarray(vectors, dtype=np.float32).reshape(-1)), dim))
        tbl = self.db.create_table(name, data=table, mode="overwrite")
        return int(tbl.version)

    def rows(self, name: str, columns: list[str]) -> list[dict[str, Any]] | None:
        """The current rows of ``name`` (only ``columns``), or None when there is no such table."""
        if name not in self._names():
            return None
        return self.db.open_table(name).to_arrow().select(columns).to_pylist()

    def version(self, name: str) -> int | None:
        return int(self.db.open_table(name).version) if name in self._names() else None

    def search(self, name: str, vector: np.ndarray, k: int, *, version: int | None = None) -> list[dict[str, Any]]:
        """The ``k`` nearest rows by cosine distance (``_distance`` column), optionally at a version."""
        tbl = self.db.open_table(name)
        if version is not None and version != tbl.version:
            tbl.checkout(version)
        return tbl.search(np.asarray(vector, dtype=np.float32)).metric("cosine").limit(k).to_list()

    def count(self, name: str) -> int:
        return int(self.db.open_table(name).count_rows())


class VectorStoreResource(dg.ConfigurableResource):
    """LanceDB; a local directory by default ($ZHUFU_HOME/lancedb), any LanceDB URI otherwise."""

    uri: str | None = None

    def get(self) -> VectorStore:
        return VectorStore(self.uri or zhufu_home() / "lancedb")

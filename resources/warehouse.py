"""WarehouseResource: the Dagster handle on the event store.

``record`` is how every asset ends: it commits the asset's events as one DuckLake snapshot and
returns the ``MaterializeResult`` with rows added / total, the snapshot id, a preview and a
data version derived from the snapshot that last changed the asset.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from warehouse import CommitResult, Warehouse, WarehouseConfig
from warehouse.config import zhufu_home
from warehouse.schema import Event

PREVIEW_ROWS = 8
_PREVIEW_CHARS = 60

# One Warehouse per location per process: it is migrated (or found migrated) once, not on every
# get() — sensor ticks and readers would otherwise queue behind writers for the write lock — and
# its read connections live as long as the process (closed at exit), not as long as one run or
# sensor tick: reopening costs ~230 ms, a read on an open one well under a millisecond.
_WAREHOUSES: dict[WarehouseConfig, Warehouse] = {}
_WAREHOUSES_LOCK = threading.Lock()


def close_warehouses() -> None:
    """Close the read connections of every Warehouse this process holds (they reopen on demand)."""
    with _WAREHOUSES_LOCK:
        warehouses = list(_WAREHOUSES.values())
    for wh in warehouses:
        wh.close()


atexit.register(close_warehouses)


def markdown_preview(events: Sequence[Event], limit: int = PREVIEW_ROWS) -> str:
    """A small markdown table of the first events (long text cut), for the Dagster UI."""
    if not events:
        return "_no rows_"
    rows = [e.model_dump(mode="json") for e in events[:limit]]
    cols = list(rows[0])

    def cell(v: Any) -> str:
        s = str(v).replace("|", "\\|").replace("\n", " ")
        return s if len(s) <= _PREVIEW_CHARS else s[: _PREVIEW_CHARS - 1] + "…"

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r[c]) for c in cols) + " |" for r in rows]
    if len(events) > limit:
        lines.append(f"\n_… {len(events) - limit} more_")
    return "\n".join(lines)


class WarehouseResource(dg.ConfigurableResource):
    """The DuckLake warehouse. Defaults to the embedded one under $ZHUFU_HOME."""

    home: str | None = Field(default=None, description="Embedded warehouse home (default $ZHUFU_HOME or ./.zhufu)")
    catalog: str | None = Field(
        default=None, description="DuckLake catalog, e.g. 'postgres:dbname=zhufu host=…' (default: embedded SQLite)"
    )
    data_path: str | None = Field(default=None, description="Parquet data path, e.g. 's3://bucket/zhufu/'")

    def exports_dir(self) -> Path:
        """Where file exports (e.g. TRL JSONL) go: $ZHUFU_HOME/exports by default."""
        return Path(self.home).expanduser().resolve() / "exports" if self.home else zhufu_home() / "exports"

    def write_export(self, name: str, data: bytes) -> Path:
        """Write a file export atomically (temporary file, then rename); returns its path."""
        path = self.exports_dir() / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return path

    def warehouse_config(self) -> WarehouseConfig:
        """The location: this resource's catalog / data_path, else $ZHUFU_CATALOG / $ZHUFU_DATA_PATH / home."""
        base = WarehouseConfig.from_env(self.home)
        return WarehouseConfig.at(self.catalog or base.catalog, self.data_path or base.data_path,
                                  base.lock_dir if not self.catalog else None)

    def get(self) -> Warehouse:
        """The warehouse, built and migrated once per location and process."""
        config = self.warehouse_config()
        with _WAREHOUSES_LOCK:
            wh = _WAREHOUSES.get(config)
            if wh is None:
                wh = Warehouse(config)
                wh.migrate()  # takes the write lock only if a migration is pending
                _WAREHOUSES[config] = wh
        return wh

    def record(
        self,
        context: dg.AssetExecutionContext,
        events: Iterable[Event],
        *,
        main_table: str,
        metadata: dict[str, Any] | None = None,
    ) -> dg.MaterializeResult:
        """Commit ``events`` for the running asset as one snapshot; build its MaterializeResult."""
        events = list(events)
        key = context.asset_key.to_user_string()
        partition = context.partition_key if context.has_partition_key else None
        code_version = context.assets_def.code_versions_by_key.get(context.asset_key)
        wh = self.get()
        with wh.batch(run_id=context.run_id, asset_key=key, partition_key=partition,
                      code_version=code_version) as wb:
            wb.touch(main_table)
            wb.append(events)
        result: CommitResult = wb.result  # type: ignore[attr-defined]
        main = result.tables[main_table]
        new = [e for e in events if e.TABLE == main_table]
        meta: dict[str, Any] = {
            "rows_added": dg.MetadataValue.int(main.added),
            "rows_total": dg.MetadataValue.int(main.total),
            "rows_offered": dg.MetadataValue.int(main.offered),
            "snapshot_id": dg.MetadataValue.int(result.snapshot_id),
            "table": dg.MetadataValue.text(main_table),
            "preview": dg.MetadataValue.md(markdown_preview(new)),
        }
        for table, r in result.tables.items():
            if table != main_table:
                meta[f"{table}_rows_added"] = dg.MetadataValue.int(r.added)
        meta.update(metadata or {})
        context.log.info(
            f"{key}: +{main.added} rows to {main_table} ({main.total} total), snapshot {result.snapshot_id}"
        )
        return dg.MaterializeResult(metadata=meta, data_version=dg.DataVersion(result.data_version))

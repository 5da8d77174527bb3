"""Where the warehouse lives.

Embedded default: a SQLite DuckLake catalog and Parquet data under ``$ZHUFU_HOME/lake``
(``ZHUFU_HOME`` defaults to ``./.zhufu``). SQLite admits several writer processes, which
Dagster's multiprocess executor needs; a DuckDB-file catalog would admit only one.

Scale-out is configuration only:
  ZHUFU_CATALOG="postgres:dbname=zhufu host=db user=zhufu"   (any DuckLake catalog string)
  ZHUFU_DATA_PATH="s3://bucket/zhufu/"                         (any DuckDB-readable path)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def zhufu_home() -> Path:
    return Path(os.environ.get("ZHUFU_HOME", ".zhufu")).expanduser().resolve()


@dataclass(frozen=True)
class WarehouseConfig:
    catalog: str
    data_path: str
    # Directory for the inter-process write lock; None for remote catalogs, whose own
    # transaction conflicts are retried instead.
    lock_dir: Path | None

    @classmethod
    def embedded(cls, home: str | Path | None = None) -> WarehouseConfig:
        root = Path(home).expanduser().resolve() if home else zhufu_home()
        lake = root / "lake"
        return cls(
            catalog=f"sqlite:{lake / 'catalog.sqlite'}",
            data_path=str(lake / "data") + "/",
            lock_dir=lake,
        )

    @classmethod
    def from_env(cls, home: str | Path | None = None) -> WarehouseConfig:
        """The embedded default, overridden by ZHUFU_CATALOG / ZHUFU_DATA_PATH when set."""
        base = cls.embedded(home)
        catalog = os.environ.get("ZHUFU_CATALOG") or base.catalog
        data_path = os.environ.get("ZHUFU_DATA_PATH") or base.data_path
        lock_dir = base.lock_dir if catalog.startswith("sqlite:") or catalog == base.catalog else None
        return cls(catalog=catalog, data_path=data_path, lock_dir=lock_dir)

    def is_local(self) -> bool:
        return self.lock_dir is not None

    def describe(self) -> str:
        """Human-readable location, with any password in a catalog string masked."""
        parts = [p if not p.lower().startswith("password=") else "password=***" for p in self.catalog.split()]
        return f"catalog {' '.join(parts)} · data {self.data_path}"

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
import re
from dataclasses import dataclass
from pathlib import Path

MASK = "***"
# libpq-style ``password=secret`` / ``password = 'se cret'`` and URL userinfo ``scheme://user:secret@host``.
_KEYWORD_SECRET = re.compile(r"""(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s'"]+)""", re.IGNORECASE)
_URL_SECRET = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)([^@\s/]+)(@)", re.IGNORECASE)


def _secrets_in(location: str) -> list[str]:
    """The password values written in a catalog string or data path."""
    found = [m.group(2).strip("'\"") for m in _KEYWORD_SECRET.finditer(location)]
    found += [m.group(2) for m in _URL_SECRET.finditer(location)]
    return [s for s in found if len(s) >= 4 and s != MASK]  # shorter: masked only where formatted


def redact_location(text: str, *locations: str) -> str:
    """``text`` with every password of ``locations`` (wherever it appears, e.g. echoed inside an
    error message) and every ``password=…`` / URL ``user:password@`` masked."""
    for secret in sorted({s for loc in locations for s in _secrets_in(loc)}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _KEYWORD_SECRET.sub(lambda m: m.group(1) + MASK, text)
    return _URL_SECRET.sub(lambda m: m.group(1) + MASK + m.group(3), text)


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

    def redact(self, text: str) -> str:
        """``text`` (an error message, a log line) with the passwords of this location masked."""
        return redact_location(text, self.catalog, self.data_path)

    def describe(self) -> str:
        """Human-readable location, with any password in the catalog string or data path masked."""
        return self.redact(f"catalog {self.catalog} · data {self.data_path}")

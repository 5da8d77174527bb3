"""Where the warehouse lives.

Embedded default: a SQLite DuckLake catalog and Parquet data under ``$ZHUFU_HOME/lake``
(``ZHUFU_HOME`` defaults to ``./.zhufu``). SQLite admits several writer processes, which
Dagster's multiprocess executor needs; a DuckDB-file catalog would admit only one.

Scale-out:
  ZHUFU_CATALOG="postgres:dbname=zhufu host=db user=zhufu"   (any DuckLake catalog string)
  ZHUFU_DATA_PATH="s3://bucket/zhufu/"                         (any DuckDB-readable path)
  ZHUFU_S3_ENDPOINT=host:port  ZHUFU_S3_KEY_ID / ZHUFU_S3_SECRET (else AWS_ACCESS_KEY_ID /
  AWS_SECRET_ACCESS_KEY)  ZHUFU_S3_REGION (us-east-1)  ZHUFU_S3_URL_STYLE (path | vhost)
  ZHUFU_S3_USE_SSL (1)   — an S3-compatible store (MinIO, SeaweedFS, moto; AWS without an endpoint).
Both are exercised by tests/test_warehouse_remote.py against a real PostgreSQL and S3 server.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
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
    s3: S3Settings | None = None

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
    def at(cls, catalog: str, data_path: str, lock_dir: Path | None) -> WarehouseConfig:
        """A location; when its data is on S3, the endpoint and keys come from the environment (ZHUFU_S3_*)."""
        return cls(catalog=catalog, data_path=data_path, lock_dir=lock_dir, s3=S3Settings.for_path(data_path))

    @classmethod
    def from_env(cls, home: str | Path | None = None) -> WarehouseConfig:
        """The embedded default, overridden by ZHUFU_CATALOG / ZHUFU_DATA_PATH when set."""
        base = cls.embedded(home)
        catalog = os.environ.get("ZHUFU_CATALOG") or base.catalog
        data_path = os.environ.get("ZHUFU_DATA_PATH") or base.data_path
        lock_dir = base.lock_dir if catalog.startswith("sqlite:") or catalog == base.catalog else None
        return cls.at(catalog, data_path, lock_dir)

    def is_local(self) -> bool:
        """The data lives in a local directory (created on first use)."""
        return "://" not in self.data_path

    def redact(self, text: str) -> str:
        """``text`` (an error message, a log line) with the passwords of this location masked."""
        text = redact_location(text, self.catalog, self.data_path)
        if self.s3 and self.s3.secret and len(self.s3.secret) >= 4:
            text = text.replace(self.s3.secret, MASK)
        return text

    def describe(self) -> str:
        """Human-readable location, with any password in the catalog string or data path masked."""
        return self.redact(f"catalog {self.catalog} · data {self.data_path}")


@dataclass(frozen=True)
class S3Settings:
    """An S3-compatible object store for the data path (the DuckDB secret the connection creates)."""

    endpoint: str | None = None  # host:port; None = AWS
    key_id: str | None = None
    secret: str | None = field(default=None, repr=False)  # never printed
    region: str = "us-east-1"
    url_style: str = "vhost"
    use_ssl: bool = True

    @classmethod
    def for_path(cls, data_path: str) -> S3Settings | None:
        """The environment's settings when ``data_path`` is on S3 (credentials come from the environment only)."""
        return cls.from_env() if data_path.startswith("s3://") else None

    @classmethod
    def from_env(cls) -> S3Settings:
        env = os.environ.get
        return cls(endpoint=env("ZHUFU_S3_ENDPOINT") or None,
                   key_id=env("ZHUFU_S3_KEY_ID") or env("AWS_ACCESS_KEY_ID") or None,
                   secret=env("ZHUFU_S3_SECRET") or env("AWS_SECRET_ACCESS_KEY") or None,
                   region=env("ZHUFU_S3_REGION") or env("AWS_REGION") or "us-east-1",
                   url_style=env("ZHUFU_S3_URL_STYLE") or ("path" if env("ZHUFU_S3_ENDPOINT") else "vhost"),
                   use_ssl=(env("ZHUFU_S3_USE_SSL") or "1") not in ("0", "false", "no"))

    def secret_sql(self) -> str:
        """``CREATE SECRET`` for DuckDB's httpfs (values quoted; the statement itself is never logged)."""
        q = lambda v: "'" + str(v).replace("'", "''") + "'"  # noqa: E731
        parts = ["TYPE s3", f"REGION {q(self.region)}", f"URL_STYLE {q(self.url_style)}",
                 f"USE_SSL {'true' if self.use_ssl else 'false'}"]
        if self.endpoint:
            parts.append(f"ENDPOINT {q(self.endpoint)}")
        if self.key_id:
            parts += [f"KEY_ID {q(self.key_id)}", f"SECRET {q(self.secret or '')}"]
        return f"CREATE OR REPLACE SECRET zhufu_s3 ({', '.join(parts)})"

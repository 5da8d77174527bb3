"""Opening DuckDB connections to the DuckLake catalog, offline, with retries.

The DuckLake, SQLite, PostgreSQL and httpfs extensions ship inside the PyPI packages
``duckdb-ext-*``; DuckDB is pointed at that directory and never downloads anything.
"""

from __future__ import annotations

import fcntl
import os
import random
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import duckdb

from warehouse.config import WarehouseConfig
from warehouse.errors import WarehouseError

CATALOG = "lake"
T = TypeVar("T")

# Messages of errors that a retry can cure: SQLite's writer lock and DuckLake's optimistic
# concurrency conflicts between processes committing at the same time.
_TRANSIENT = ("database is locked", "conflict", "busy", "Failed to commit DuckLake transaction")


def extension_directory() -> str:
    for base in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]):
        path = Path(base) / "duckdb_ext" / "extensions"
        if path.is_dir():
            return str(path)
    raise WarehouseError(
        "DuckLake extension not found: install duckdb-ext-ducklake==1.4.4.20260205 and "
        "duckdb-ext-sqlite==1.4.4.20260205 (pip install -e .)"
    )


def is_transient(exc: BaseException) -> bool:
    text = str(exc)
    return any(marker.lower() in text.lower() for marker in _TRANSIENT)


def is_init_race(exc: BaseException) -> bool:
    """Another process created the same fresh catalog's metadata tables first (a server catalog has
    no file lock to serialize it): attaching again finds them."""
    text = str(exc)
    return "Failed to initialize DuckLake" in text and ("already exists" in text or "duplicate key" in text)


def with_retries(fn: Callable[[], T], *, attempts: int = 40, base_delay: float = 0.02,
                 transient: Callable[[BaseException], bool] = is_transient) -> T:
    """Call ``fn``; on a transient catalog error back off (exponential, jittered) and retry."""
    for attempt in range(attempts):
        try:
            return fn()
        except duckdb.Error as exc:
            if not transient(exc) or attempt == attempts - 1:
                raise
            time.sleep(min(1.0, base_delay * 2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """End ``con``'s failed transaction. After a failed COMMIT DuckDB has ended it already, and a ROLLBACK's
    "no transaction is active" would replace the commit's error — the conflict a retry would cure."""
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass


def sandbox(con: duckdb.DuckDBPyConnection, config: WarehouseConfig) -> None:
    """Confine ``con`` (the lake already attached) to reading the lake: no other file (read_csv,
    read_text, COPY … TO, ATTACH of a file), no extension INSTALL/LOAD, and no SET that undoes it."""
    con.execute("SET allowed_directories = ?", [[config.data_path]])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


_WAL_CATALOGS: set[str] = set()  # SQLite catalogs this process found in write-ahead-log mode
_SET_WAL = """
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=0)
try:
    print(con.execute("PRAGMA journal_mode=WAL").fetchone()[0])
except sqlite3.OperationalError as exc:  # another connection is in a transaction: try again at the next open
    print(exc)
con.close()
"""


def sqlite_catalog_path(config: WarehouseConfig) -> Path | None:
    return Path(config.catalog.removeprefix("sqlite:")) if config.catalog.startswith("sqlite:") else None


def ensure_wal(path: Path) -> bool:
    """Put an embedded SQLite catalog in write-ahead-log mode (kept in the file, so done once); returns
    whether it is in that mode.

    Why: in SQLite's default rollback-journal mode, a catalog transaction that outgrows SQLite's page cache
    spills pages to the database file, which takes an exclusive lock; the sqlite extension scans the table a
    DELETE reads on a second, read-only handle, which holds a shared lock meanwhile — so every spill waits out
    the 5 s busy timeout. Measured: the maintenance job's ``ducklake_cleanup_old_files`` of 16,666 merged-away
    files at 3 M rows took 326 s (hours at 10 M: the "hang" of bench/RESULTS.md); in WAL mode, where neither
    spills nor commits need an exclusive lock and readers never block the writer, 1.0 s.

    The mode is read from the file header (bytes 18–19 are 2 in WAL mode); it is changed in a subprocess,
    because a second SQLite library in this process closing the file would drop the POSIX locks that the
    extension's own handles hold on it.
    """
    key = str(path)
    if key in _WAL_CATALOGS:
        return True
    try:
        with open(path, "rb") as f:
            header = f.read(20)
    except FileNotFoundError:
        header = b""
    if len(header) < 20 or header[18:20] != b"\x02\x02":
        if header and not header.startswith(b"SQLite format 3"):
            return False  # not a SQLite file: let the attach report it
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-c", _SET_WAL, key], capture_output=True, timeout=60, check=False)
        with open(path, "rb") as f:
            if f.read(20)[18:20] != b"\x02\x02":
                return False
    _WAL_CATALOGS.add(key)
    return True


def open_connection(
    config: WarehouseConfig, *, read_only: bool = False, snapshot: int | None = None, sandboxed: bool = False
) -> duckdb.DuckDBPyConnection:
    """A connection with the lake attached as ``lake`` and selected (``USE lake``).

    ``sandboxed``: read-only, and the connection can reach no file but the lake (:func:`sandbox`).
    """
    if config.is_local():
        Path(config.data_path).mkdir(parents=True, exist_ok=True)
    read_only = read_only or snapshot is not None or sandboxed
    if (catalog_file := sqlite_catalog_path(config)) is not None and (not read_only or catalog_file.exists()):
        ensure_wal(catalog_file)
    options = [f"DATA_PATH '{config.data_path}'"]
    if read_only:
        options.append("READ_ONLY")
    if snapshot is not None:
        options.append(f"SNAPSHOT_VERSION {int(snapshot)}")

    def attach() -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(
            config={
                "extension_directory": extension_directory(),
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
            }
        )
        try:
            con.execute("LOAD sqlite; LOAD ducklake;")
            if config.catalog.startswith("postgres:"):
                con.execute("LOAD postgres")
            if not config.is_local():
                con.execute("LOAD httpfs")
                if config.s3 is not None:
                    con.execute(config.s3.secret_sql())
            con.execute(f"ATTACH 'ducklake:{config.catalog}' AS {CATALOG} ({', '.join(options)})")
            con.execute(f"USE {CATALOG}")
            if sandboxed:
                sandbox(con, config)
        except BaseException:
            con.close()
            raise
        return con

    try:
        return with_retries(attach, transient=lambda e: is_transient(e) or is_init_race(e))
    except duckdb.Error as exc:
        # DuckDB echoes the catalog string (and its password) in attach errors: mask it, and do not
        # chain the original, whose traceback would print it unmasked.
        raise WarehouseError(f"cannot open the warehouse ({config.describe()}): {config.redact(str(exc))}") from None


@contextmanager
def masked_errors(config: WarehouseConfig) -> Iterator[None]:
    """Re-raise a DuckDB error whose message names a password of ``config`` with it masked."""
    try:
        yield
    except duckdb.Error as exc:
        text = str(exc)
        if config.redact(text) == text:
            raise
        raise type(exc)(config.redact(text)) from None


@contextmanager
def write_lock(config: WarehouseConfig) -> Iterator[None]:
    """Serialize writers of an embedded (SQLite) catalog across processes.

    DuckLake appends from concurrent processes would otherwise both pass the
    "id not yet stored" check and store an event twice.
    """
    if config.lock_dir is None:
        yield
        return
    config.lock_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(config.lock_dir / ".write.lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

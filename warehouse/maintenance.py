"""Keeping the lake tidy: merge small files, expire old snapshots, delete files nothing needs.

Every materialization is a snapshot and writes its own small Parquet files, so a long-lived
warehouse accumulates thousands of both. :func:`maintain` runs DuckLake's own maintenance
functions (ducklake extension 1.4.4.20260205; signatures read from ``duckdb_functions()``):

* first, the rows commits recorded in ``<table>_superseded`` (projection rows a later row of their key
  replaced; ``<table>_latest`` already leaves them out) are deleted from ``<table>_current`` and that table
  is emptied, one DELETE per table in one snapshot — what every correcting commit would otherwise pay;
* ``ducklake_merge_adjacent_files(catalog)`` — one file where there were many; the merged file
  remembers which snapshot added which rows, so time travel and change feeds are unchanged;
* ``ducklake_rewrite_data_files(catalog, delete_threshold => …)`` — files with deleted rows (those
  the fold above deleted from the ``<table>_current`` projections) rewritten without
  them, then merged again;
* ``ducklake_expire_snapshots(catalog, versions => [...])`` — snapshots older than the retention,
  except the lineage ones: every snapshot a registered model was trained on
  (``models.input_snapshots``) or an evaluation read its labels at (``calibrations.snapshot``)
  stays readable with ``AT (VERSION => n)`` / ``as_of``;
* ``ducklake_cleanup_old_files`` / ``ducklake_delete_orphaned_files(catalog, older_than => …)`` —
  delete the files merged away or only expired snapshots used, and files no snapshot knows
  (aborted writes), once they are older than a grace period: a read that started before the
  merge may still be scanning them;
* last, this writer's in-memory commit index (``warehouse.commit_index``) does the merges its commits left
  for between commits, so that a commit's own work stays flat as the tables grow.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from warehouse.connection import CATALOG, masked_errors, rollback, with_retries, write_lock
from warehouse.schema import EVENT_MODELS, projection_table, superseded_table
from warehouse.store import Warehouse

_META = f"__ducklake_metadata_{CATALOG}"  # the catalog database DuckLake attaches beside the lake

# Where lineage points at snapshots: table -> SQL over all its rows (corrections included) that
# yields the snapshot ids. Add a row here when a new table records a snapshot it read.
LINEAGE_SNAPSHOTS: dict[str, str] = {
    "models": "SELECT TRY_CAST(unnest(json_extract(input_snapshots, '$.*')) AS BIGINT) FROM models",
    "calibrations": "SELECT snapshot FROM calibrations",
}


@dataclass(frozen=True)
class MaintenancePolicy:
    snapshot_retention: dt.timedelta = dt.timedelta(days=7)
    # Files scheduled for deletion (or orphaned) are deleted once older than this.
    file_grace: dt.timedelta = dt.timedelta(hours=1)
    # Rewrite a file once this share of its rows is deleted (0: any deleted row).
    rewrite_delete_threshold: float = 0.0


@dataclass(frozen=True)
class FileStats:
    live_files: int  # data files the current snapshot reads
    tracked_files: int  # data + delete files some snapshot still reads
    tracked_bytes: int
    scheduled_files: int  # no longer read, waiting for the grace period to pass
    snapshots: int
    disk_files: int | None  # Parquet files under the data path (embedded lake only)
    disk_bytes: int | None


@dataclass(frozen=True)
class MaintenanceReport:
    before: FileStats
    after: FileStats
    expired_snapshots: list[int]
    pinned_snapshots: list[int]  # lineage snapshots older than the retention, kept
    deleted_files: int
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per phase, in order
    folded_rows: dict[str, int] = field(default_factory=dict)  # superseded projection rows deleted, per table

    def as_dict(self) -> dict:
        return asdict(self)


def lineage_snapshots(con: duckdb.DuckDBPyConnection) -> set[int]:
    """Every snapshot id a registered model or evaluation points to."""
    pinned: set[int] = set()
    for sql in LINEAGE_SNAPSHOTS.values():
        pinned.update(int(v) for (v,) in con.execute(sql).fetchall() if v is not None)
    return pinned


def file_stats(con: duckdb.DuckDBPyConnection, data_path: str, *, local: bool) -> FileStats:
    live, tracked, tracked_bytes = con.execute(
        f"SELECT count(*) FILTER (WHERE end_snapshot IS NULL), count(*), coalesce(sum(file_size_bytes), 0) "
        f"FROM {_META}.ducklake_data_file").fetchone()
    deletes, delete_bytes = con.execute(
        f"SELECT count(*), coalesce(sum(file_size_bytes), 0) FROM {_META}.ducklake_delete_file").fetchone()
    (scheduled,) = con.execute(f"SELECT count(*) FROM {_META}.ducklake_files_scheduled_for_deletion").fetchone()
    (snapshots,) = con.execute(f"SELECT count(*) FROM ducklake_snapshots('{CATALOG}')").fetchone()
    disk_files = disk_bytes = None
    if local:
        paths = [p for p in Path(data_path).rglob("*.parquet") if p.is_file()]
        disk_files, disk_bytes = len(paths), sum(p.stat().st_size for p in paths)
    return FileStats(int(live), int(tracked + deletes), int(tracked_bytes + delete_bytes), int(scheduled),
                     int(snapshots), disk_files, disk_bytes)


def expirable_snapshots(con: duckdb.DuckDBPyConnection, cutoff: dt.datetime, pinned: set[int]) -> list[int]:
    """Snapshots committed before ``cutoff``, except ``pinned`` ones and the current one."""
    rows = con.execute(
        f"SELECT snapshot_id FROM ducklake_snapshots('{CATALOG}') WHERE snapshot_time < ? "
        f"AND snapshot_id < (SELECT max(snapshot_id) FROM ducklake_snapshots('{CATALOG}')) ORDER BY snapshot_id",
        [cutoff]).fetchall()
    return [int(s) for (s,) in rows if int(s) not in pinned]


def maintain(wh: Warehouse, policy: MaintenancePolicy | None = None) -> MaintenanceReport:
    """Merge, expire and clean up as described in the module docstring; one writer at a time."""
    policy = policy or MaintenancePolicy()
    wh.migrate()
    now = dt.datetime.now(dt.UTC)
    cutoff = now - policy.snapshot_retention
    local = wh.config.is_local()
    seconds: dict[str, float] = {}

    @contextmanager
    def phase(name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        seconds[name] = round(time.perf_counter() - start, 3)

    # The warehouse's own write connection, under the write lock like a commit: a second read-write
    # connection in the same process is one more holder of the embedded catalog's SQLite locks.
    with masked_errors(wh.config), write_lock(wh.config), wh.writer.connection() as con:
        with phase("stats before"):
            before = file_stats(con, wh.config.data_path, local=local)
        with phase("fold superseded"):
            folded = with_retries(lambda: _fold_superseded(con))
        merge = f"CALL ducklake_merge_adjacent_files('{CATALOG}')"
        with phase("merge"):
            with_retries(lambda: con.execute(merge).fetchall())
        with phase("rewrite deletes"):
            with_retries(lambda: con.execute(f"CALL ducklake_rewrite_data_files('{CATALOG}', delete_threshold => ?)",
                                             [policy.rewrite_delete_threshold]).fetchall())
        with phase("merge rewritten"):
            with_retries(lambda: con.execute(merge).fetchall())  # the rewritten files with the rest
        with phase("expire snapshots"):
            pinned = lineage_snapshots(con)
            expired = expirable_snapshots(con, cutoff, pinned)
            if expired:
                with_retries(lambda: con.execute(
                    f"CALL ducklake_expire_snapshots('{CATALOG}', versions => ?::UBIGINT[])", [expired]).fetchall())
        grace_cutoff = dt.datetime.now(dt.UTC) - policy.file_grace  # after the merge scheduled its files
        with phase("delete old files"):
            deleted = _cleanup_old_files(con, grace_cutoff)
        with phase("delete orphaned files"):
            deleted += _delete_orphaned_files(con, grace_cutoff, local=local)
        with phase("stats after"):
            old_pins = sorted(pinned & set(_snapshots_before(con, cutoff)))
            after = file_stats(con, wh.config.data_path, local=local)
        with phase("compact commit index"):  # this writer's in-memory index: the merges its commits left
            wh.writer.index.compact()
    wh.readers.forget_snapshots()  # a connection pinned to an expired snapshot cannot read any more
    return MaintenanceReport(before, after, expired, old_pins, deleted, seconds, folded)


def fold(wh: Warehouse) -> dict[str, int]:
    """The maintenance job's first phase alone: delete the projection rows recorded as superseded and empty
    ``<table>_superseded``; per table the rows deleted ({} when there were none: no snapshot is made).

    Cheap next to the whole job (0.2–0.6 s at 10 M verdicts with 1,000–10,000 superseded rows, bench/RESULTS.md) and
    what makes ``<table>_latest`` read the bare projection again (``warehouse.latest_reads``: no anti join
    while nothing is superseded), so the ``warehouse_fold_sensor`` runs it soon after any commit that
    superseded rows. The commit index is told, so the next commit need not count the projection again."""
    wh.migrate()
    with masked_errors(wh.config), write_lock(wh.config), wh.writer.connection() as con:
        before = wh.writer.index.snapshot(con)
        folded = with_retries(lambda: _fold_superseded(con))
        if folded:
            wh.writer.index.folded(con, before)
        wh.writer.index.compact()  # between commits, as the maintenance job does
    return folded


# per table, the projection rows recorded as superseded and not yet folded
_SUPERSEDED_COUNTS = " UNION ALL ".join(f"SELECT '{m.TABLE}' AS t, count(*) AS n FROM {superseded_table(m.TABLE)}"
                                        for m in EVENT_MODELS)


def superseded_rows(wh: Warehouse) -> dict[str, int]:
    """Per table, the projection rows recorded as superseded and not yet folded (tables with none left out)."""
    return {t: int(n) for t, n in wh.sql(_SUPERSEDED_COUNTS).rows() if n}


def _fold_superseded(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Delete every projection's superseded rows and empty ``<table>_superseded``, in one snapshot; per table the
    rows deleted (tables with none are left alone)."""
    counts = {t: int(n) for t, n in con.execute(_SUPERSEDED_COUNTS).fetchall() if n}
    if not counts:
        return {}
    con.execute("BEGIN")
    try:
        for table in counts:
            sup = superseded_table(table)
            con.execute(f"DELETE FROM {projection_table(table)} WHERE rowid IN (SELECT rid FROM {sup})")
            con.execute(f"DELETE FROM {sup}")
        con.execute(f"CALL {CATALOG}.set_commit_message('zhufu', ?, extra_info => ?)",
                    ["maintenance: superseded projection rows deleted", json.dumps({"folded_rows": counts})])
        con.execute("COMMIT")
    except BaseException:
        rollback(con)  # a failed COMMIT's conflict must reach with_retries
        raise
    return counts


def _cleanup_old_files(con: duckdb.DuckDBPyConnection, cutoff: dt.datetime) -> int:
    """Delete the files scheduled for deletion before ``cutoff``.

    With the SQLite catalog, ducklake 1.4.4.20260205 compares ``older_than`` with the stored
    ``schedule_start`` text at day granularity: a file scheduled a minute ago passes a one-hour
    grace period (measured: 24 of 24 merged-away files). So the set is decided here from the catalog
    rows, and the extension is asked only in ways whose dry run deletes nothing else.
    """
    rows = con.execute(f"SELECT path, schedule_start FROM {_META}.ducklake_files_scheduled_for_deletion").fetchall()
    due = {Path(path).name for path, start in rows if _as_utc(start) < cutoff}
    if not due:
        return 0
    if len(due) == len(rows):
        return len(with_retries(lambda: con.execute(
            f"CALL ducklake_cleanup_old_files('{CATALOG}', cleanup_all => true)").fetchall()))
    # Some are due, some not: the day before the cutoff's is safe under either comparison.
    day_start = dt.datetime.combine(cutoff.date(), dt.time(), tzinfo=dt.UTC) - dt.timedelta(microseconds=1)
    call = f"CALL ducklake_cleanup_old_files('{CATALOG}', older_than => ?::TIMESTAMPTZ, dry_run => {{}})"
    would = {Path(p).name for (p,) in con.execute(call.format("true"), [day_start]).fetchall()}
    if not would or not would <= due:
        return 0
    return len(with_retries(lambda: con.execute(call.format("false"), [day_start]).fetchall()))


def _delete_orphaned_files(con: duckdb.DuckDBPyConnection, cutoff: dt.datetime, *, local: bool) -> int:
    """Delete files no snapshot knows (aborted writes) once older than ``cutoff``, checked by a dry run."""
    call = f"CALL ducklake_delete_orphaned_files('{CATALOG}', older_than => ?::TIMESTAMPTZ, dry_run => {{}})"
    would = [p for (p,) in con.execute(call.format("true"), [cutoff]).fetchall()]
    if not would:
        return 0
    if local and any(dt.datetime.fromtimestamp(Path(p).stat().st_mtime, dt.UTC) >= cutoff
                     for p in would if Path(p).exists()):
        return 0  # the same comparison problem as above: leave them for a later run
    return len(with_retries(lambda: con.execute(call.format("false"), [cutoff]).fetchall()))


def _as_utc(value: object) -> dt.datetime:
    """Catalog timestamps come back as datetimes or as text like ``2026-11-27 02:24:47.47+00``."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    text = str(value).strip()
    if re.search(r"[+-]\d{2}$", text):
        text += ":00"
    parsed = dt.datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _snapshots_before(con: duckdb.DuckDBPyConnection, cutoff: dt.datetime) -> list[int]:
    rows = con.execute(f"SELECT snapshot_id FROM ducklake_snapshots('{CATALOG}') WHERE snapshot_time < ?", [cutoff])
    return [int(s) for (s,) in rows.fetchall()]

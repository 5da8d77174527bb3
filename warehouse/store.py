"""The Warehouse: append events, commit one snapshot per materialization, read any version."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from warehouse import commit_index, latest_reads
from warehouse.commit_index import CommitIndex, TableIndex, TableWrites
from warehouse.config import WarehouseConfig
from warehouse.connection import CATALOG, masked_errors, open_connection, rollback, with_retries, write_lock
from warehouse.errors import WarehouseError
from warehouse.migrations import MIGRATIONS, apply_once, ensure_ledger
from warehouse.readers import ReaderPool
from warehouse.schema import (
    ID_HASH,
    ID_HASH_SQL,
    ID_LO,
    ID_LO_SQL,
    KEY_DIGITS,
    KEY_HASH,
    KEY_HASH_SQL,
    KEY_LO,
    KEY_LO_SQL,
    MODELS_BY_TABLE,
    NEWEST_PER_KEY,
    Event,
    MaterializationRow,
    Provenance,
    id_index_table,
    live_projection_sql,
    projection_table,
    superseded_table,
    table_columns,
)
from warehouse.writer import WriterSlot

_ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "JSON": pa.string(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "TIMESTAMP WITH TIME ZONE": pa.timestamp("us", tz="UTC"),
    "VARCHAR[]": pa.list_(pa.string()),
    "DOUBLE[]": pa.list_(pa.float64()),
}


def _arrow_table(table: str, rows: Sequence[dict[str, Any]]) -> pa.Table:
    cols = table_columns(MODELS_BY_TABLE[table])
    schema = pa.schema([(name, _ARROW_TYPES[typ]) for name, typ in cols])
    json_cols = {name for name, typ in cols if typ == "JSON"}
    data = {
        name: [
            (json.dumps(r[name], ensure_ascii=False) if r[name] is not None else None)
            if name in json_cols
            else r[name]
            for r in rows
        ]
        for name, _ in cols
    }
    return pa.table(data, schema=schema)


def _require_content_hashes(table: str, rows: pa.Table, column: str) -> None:
    """Ids and keys are compared as two integers, which equal the string only at ``KEY_DIGITS`` digits
    (``Event.event_id`` / ``event_key``): refuse anything else rather than compare it wrongly."""
    if not pc.all(pc.equal(pc.utf8_length(rows.column(column)), KEY_DIGITS)).as_py():
        raise WarehouseError(f"{table}: an event {column} is not a {KEY_DIGITS}-digit content hash (schema.Event)")


def _anti_join_stored_ids(table: str, alias: str) -> str:
    """``ANTI JOIN`` of ``alias`` (with the id's two integers) against the ids stored in ``<table>_ids``."""
    return (f"ANTI JOIN {id_index_table(table)} i "
            f"ON i.{ID_HASH} = {alias}.{ID_HASH} AND i.{ID_LO} = {alias}.{ID_LO}")


def _append_new(con: duckdb.DuckDBPyConnection, table: str, staged: pa.Table,
                index: TableIndex | None = None) -> tuple[int, TableWrites | None]:
    """Insert the rows of ``staged`` whose id is not stored yet, record their ids in ``<table>_ids``, and bring the
    table's current-state projection up to date — all in the caller's transaction; returns the number of rows
    added and, with an ``index``, what was written for it. Without one, the stored ids are looked up in SQL by the
    id's two integers; with one, only the ids whose prefix the index holds are (a re-run, a collision)."""
    _require_content_hashes(table, staged, "id")
    names = ["_staged"]
    con.register("_staged", staged)
    try:
        if index is None:
            new = con.execute(f"WITH s AS (SELECT *, {ID_HASH_SQL} AS {ID_HASH}, {ID_LO_SQL} AS {ID_LO} FROM _staged) "
                              f"SELECT s.* FROM s {_anti_join_stored_ids(table, 's')} "
                              "QUALIFY row_number() OVER (PARTITION BY s.id) = 1").fetch_arrow_table()
        else:
            batch = con.execute(f"SELECT *, {ID_HASH_SQL} AS {ID_HASH}, {ID_LO_SQL} AS {ID_LO} FROM _staged "
                                "QUALIFY row_number() OVER (PARTITION BY id) = 1").fetch_arrow_table()
            known = index.ids.contains(batch.column(ID_HASH).to_numpy())
            new = batch.filter(pa.array(~known))
            if known.any():
                con.register("_known", batch.filter(pa.array(known)))
                names.append("_known")
                unseen = con.execute(f"SELECT k.* FROM _known k {_anti_join_stored_ids(table, 'k')}").fetch_arrow_table()
                new = pa.concat_tables([new, unseen])
    finally:
        for name in names:
            con.unregister(name)
    if new.num_rows == 0:
        return 0, None
    con.register("_new", new.drop_columns([ID_HASH, ID_LO]))
    con.register("_new_ids", new.select([ID_HASH, ID_LO]))
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _new")
        con.execute(f"INSERT INTO {id_index_table(table)} BY NAME SELECT * FROM _new_ids")
        # commit() migrates first, so every table has its projection and id index
        superseded = _project(con, table, index)
    finally:
        con.unregister("_new")
        con.unregister("_new_ids")
    writes = None
    if index is not None:
        writes = TableWrites(new_ids=new.column(ID_HASH).to_numpy(),
                             superseded_keys=superseded.column(KEY_HASH).to_numpy(),
                             superseded_rowids=superseded.column("rid").to_numpy())
    return new.num_rows, writes


def _touched_from_index(index: TableIndex, newest: pa.Table) -> pa.Table:
    """The projection rows whose key prefix a batch key has (row id, key, created_at), from the index."""
    found = index.rows.find(np.unique(newest.column(KEY_HASH).to_numpy()))
    return pa.table({"rid": found["rowid"], KEY_HASH: found["key"], KEY_LO: found[KEY_LO],
                     "created_at": pa.array(found["created_us"], pa.timestamp("us", tz="UTC"))})


def _project(con: duckdb.DuckDBPyConnection, table: str, index: TableIndex | None = None) -> pa.Table:
    """Replace in ``<table>_current`` every key's row by the newest of the rows in ``_new``, when it is
    newer (the order of ``schema.NEWEST_PER_KEY``): the read model ``<table>_latest`` reads. Returns the
    superseded rows (row id, key as two integers).

    The rows a batch touches are found and judged from the projection's integer columns alone — the key as
    (``key_hash``, ``key_lo``), the timestamp and the row id — never its key or id strings, which cost a
    commit three times as much to read at 1 M rows (bench/RESULTS.md, "Superseded rows found from integer
    columns"); with an ``index`` (``warehouse.commit_index``) they are not read at all. Only a tie in
    timestamp reads the stored rows' ids. Those the batch supersedes are recorded in ``<table>_superseded``
    (row id and key), which ``<table>_latest`` leaves out until the maintenance job deletes them: a DELETE by
    row id here read every file of the projection on every correcting commit."""
    proj = projection_table(table)
    newest = con.execute(f"SELECT *, {KEY_HASH_SQL} AS {KEY_HASH}, {KEY_LO_SQL} AS {KEY_LO} FROM _new "
                         f"{NEWEST_PER_KEY}").fetch_arrow_table()
    _require_content_hashes(table, newest, "key")
    con.register("_newest", newest)
    names = ["_newest"]
    try:
        if index is None:
            touched = con.execute(f"SELECT p.rowid AS rid, p.{KEY_HASH}, p.{KEY_LO}, p.created_at "
                                  f"FROM {live_projection_sql(table)} "
                                  f"WHERE p.{KEY_HASH} IN (SELECT {KEY_HASH} FROM _newest)").fetch_arrow_table()
        else:
            touched = _touched_from_index(index, newest)
        con.register("_touched", touched)
        names.append("_touched")
        matched = con.execute(
            f"SELECT c.rid, c.{KEY_HASH}, c.{KEY_LO}, n.created_at > c.created_at AS newer, "
            f"n.created_at = c.created_at AS tie, n.id AS new_id FROM _touched c JOIN _newest n "
            f"ON n.{KEY_HASH} = c.{KEY_HASH} AND n.{KEY_LO} = c.{KEY_LO}").fetch_arrow_table()
        con.register("_matched", matched)
        names.append("_matched")
        rule = "m.newer"
        if pc.any(matched.column("tie")).as_py():  # same timestamp: the smaller id is the newer (NEWEST_PER_KEY)
            stored = con.execute(f"SELECT rowid AS rid, id FROM {proj} "
                                 "WHERE rowid IN (SELECT rid FROM _matched WHERE tie)").fetch_arrow_table()
            con.register("_stored", stored)
            names.append("_stored")
            rule = "m.newer OR (m.tie AND m.new_id < (SELECT s.id FROM _stored s WHERE s.rid = m.rid))"
        superseded = con.execute(f"SELECT m.rid, m.{KEY_HASH}, m.{KEY_LO} FROM _matched m WHERE {rule}").fetch_arrow_table()
        con.register("_superseded", superseded)
        names.append("_superseded")
        if superseded.num_rows:
            con.execute(f"INSERT INTO {superseded_table(table)} SELECT rid, {KEY_HASH}, {KEY_LO} FROM _superseded")
        # a key whose stored row is at least as new as the batch's keeps it
        con.execute(f"INSERT INTO {proj} BY NAME SELECT n.* FROM _newest n ANTI JOIN "
                    f"(SELECT {KEY_HASH}, {KEY_LO} FROM _matched EXCEPT SELECT {KEY_HASH}, {KEY_LO} FROM _superseded) c "
                    f"ON c.{KEY_HASH} = n.{KEY_HASH} AND c.{KEY_LO} = n.{KEY_LO}")
        return superseded
    finally:
        for name in names:
            con.unregister(name)


@dataclass(frozen=True)
class AppendResult:
    table: str
    offered: int
    added: int
    total: int


@dataclass(frozen=True)
class CommitResult:
    snapshot_id: int
    run_id: str
    asset_key: str
    partition_key: str | None
    tables: dict[str, AppendResult]
    data_version: str

    @property
    def rows_added(self) -> int:
        return sum(r.added for r in self.tables.values())


@dataclass
class WriteBatch:
    """Events gathered during one materialization; committed together as one snapshot."""

    provenance: Provenance
    events: dict[str, list[Event]] = field(default_factory=lambda: defaultdict(list))

    def append(self, events: Iterable[Event]) -> None:
        for event in events:
            self.events[event.TABLE].append(event)

    def touch(self, table: str) -> None:
        """Report ``table`` in the commit result even when no event goes to it."""
        self.events.setdefault(table, [])


class Warehouse:
    """Handle on one DuckLake warehouse. Cheap to create; reads go through connections cached for
    the life of the handle (:class:`~warehouse.readers.ReaderPool`), commits through one write
    connection it keeps (:class:`~warehouse.writer.WriterSlot`)."""

    def __init__(self, config: WarehouseConfig | None = None):
        self.config = config or WarehouseConfig.from_env()
        self._migrated = False
        self.readers = ReaderPool(self.config)
        self.writer = WriterSlot(self.config)

    def close(self) -> None:
        """Close the cached connections (a later read or commit opens new ones)."""
        self.readers.close()
        self.writer.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "_migrated": self._migrated}  # connections do not travel

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"])  # type: ignore[misc]
        self._migrated = state["_migrated"]

    # ------------------------------------------------------------------ schema

    def _pending_migrations(self) -> bool:
        """Whether a migration is not yet applied, asked over the cached read connection (no lock)."""
        try:
            con = self.readers.cursor()
        except WarehouseError:
            return True  # no catalog yet
        try:
            done = {v for (v,) in con.execute("SELECT version FROM schema_migrations").fetchall()}
        except duckdb.Error:
            return True  # no ledger yet
        return any(m.version not in done for m in MIGRATIONS)

    def migrate(self) -> list[int]:
        """Apply pending migrations; returns the versions applied now. When none is pending this
        takes no write lock, so readers never queue behind writers for it."""
        if not self._pending_migrations():
            self._migrated = True
            return []
        applied_now: list[int] = []
        with masked_errors(self.config), write_lock(self.config):
            con = open_connection(self.config)
            try:
                with_retries(lambda: ensure_ledger(con))
                done = {v for (v,) in con.execute("SELECT version FROM schema_migrations").fetchall()}
                for m in MIGRATIONS:
                    if m.version not in done and with_retries(lambda m=m: apply_once(con, m)):
                        applied_now.append(m.version)
            finally:
                con.close()
        self._migrated = True
        return applied_now

    def _ensure_schema(self) -> None:
        if not self._migrated:
            self.migrate()

    # ------------------------------------------------------------------ writes

    @contextmanager
    def batch(
        self,
        *,
        run_id: str,
        asset_key: str,
        partition_key: str | None = None,
        code_version: str | None = None,
    ) -> Iterator[WriteBatch]:
        """Gather events in the ``with`` body; on exit commit them as one DuckLake snapshot.

        Nothing is written if the body raises. The commit result is at ``batch.result``.
        """
        prov = Provenance(
            run_id=run_id,
            asset_key=asset_key,
            partition_key=partition_key,
            code_version=code_version,
            created_at=dt.datetime.now(dt.UTC),
        )
        wb = WriteBatch(provenance=prov)
        yield wb
        wb.result = self.commit(wb)  # type: ignore[attr-defined]

    def append(self, events: Iterable[Event], *, run_id: str = "manual", asset_key: str = "manual",
               partition_key: str | None = None) -> CommitResult:
        """Append events as one snapshot (convenience for notebooks and tests)."""
        with self.batch(run_id=run_id, asset_key=asset_key, partition_key=partition_key) as wb:
            wb.append(events)
        return wb.result  # type: ignore[attr-defined]

    def commit(self, wb: WriteBatch) -> CommitResult:
        self._ensure_schema()
        prov = wb.provenance
        token = uuid.uuid4().hex
        prov_row = prov.model_dump()
        rows_by_table = {t: [e.row(prov_row) for e in evs] for t, evs in wb.events.items()}
        for table in rows_by_table:
            if table not in MODELS_BY_TABLE:
                raise WarehouseError(f"unknown table {table!r}")

        with masked_errors(self.config), write_lock(self.config), self.writer.connection() as con:
            # the commit index is exact only where the lock keeps other commits out until this one lands
            index = self.writer.index if self.config.lock_dir is not None and commit_index.enabled() else None
            results = with_retries(lambda: self._commit_once(con, wb, rows_by_table, token, index))
            snapshot_id = self._committed_snapshot(con, token)
            if any(r.added for r in results.values()):  # this commit added rows: it is the data version
                data_version = f"snapshot-{snapshot_id}"
            else:
                data_version = self._data_version(con, prov.asset_key, prov.partition_key)
        return CommitResult(
            snapshot_id=int(snapshot_id),
            run_id=prov.run_id,
            asset_key=prov.asset_key,
            partition_key=prov.partition_key,
            tables=results,
            data_version=data_version,
        )

    def _commit_once(
        self,
        con: duckdb.DuckDBPyConnection,
        wb: WriteBatch,
        rows_by_table: dict[str, list[dict[str, Any]]],
        token: str,
        index: CommitIndex | None = None,
    ) -> dict[str, AppendResult]:
        prov = wb.provenance
        tables = [*rows_by_table, MaterializationRow.TABLE]
        indexes: dict[str, TableIndex] = {}
        if index is not None:  # brought to the current snapshot before the transaction (a failed read aborts one)
            before = index.snapshot(con)
            indexes = {t: ti for t in tables if (ti := index.get(con, t, before)) is not None}
        writes: dict[str, TableWrites] = {}

        def append(table: str, rows: pa.Table) -> int:
            added, w = _append_new(con, table, rows, indexes.get(table))
            if w is not None:
                writes[table] = w
            return added

        con.execute("BEGIN")
        try:
            if self.config.lock_dir is None:  # no inter-process lock: a conflict on this row serializes commits
                con.execute("UPDATE write_token SET n = n + 1")
            results: dict[str, AppendResult] = {}
            for table, rows in rows_by_table.items():
                added = append(table, _arrow_table(table, rows)) if rows else 0
                if table in indexes:  # one id per stored row: no count(*), whose cost grows with the files
                    total = len(indexes[table].ids) + added
                else:
                    total = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                results[table] = AppendResult(table, len(rows), int(added), int(total))
            rows_added = {t: r.added for t, r in results.items()}
            # The materialization itself is an event, so every materialization is a snapshot.
            mat = MaterializationRow(write_token=token, rows_added=rows_added)
            append(mat.TABLE, _arrow_table(mat.TABLE, [mat.row(prov)]))
            partition = f"[{prov.partition_key}]" if prov.partition_key else ""
            message = f"{prov.asset_key}{partition} run {prov.run_id}: +{sum(rows_added.values())} rows"
            extra = {
                "write": token,
                "run_id": prov.run_id,
                "asset_key": prov.asset_key,
                "partition_key": prov.partition_key,
                "code_version": prov.code_version,
                "rows_added": rows_added,
                "rows_added_total": sum(rows_added.values()),
            }
            con.execute(
                f"CALL {CATALOG}.set_commit_message('zhufu', ?, extra_info => ?)",
                [message, json.dumps(extra, ensure_ascii=False)],
            )
            con.execute("COMMIT")
        except BaseException:
            rollback(con)
            raise
        if index is not None:
            index.committed(con, before, writes)
        return results

    def _committed_snapshot(self, con: duckdb.DuckDBPyConnection, token: str) -> int:
        """The snapshot the commit tagged ``token`` created. Under the inter-process write lock (embedded
        catalogs) nothing can have landed since, so it is the current one — one catalog row, where the search
        by token reads every snapshot's commit info (~9 ms at 136 snapshots, growing with every commit)."""
        if self.config.lock_dir is not None:
            return int(con.execute(f"SELECT id FROM ducklake_current_snapshot('{CATALOG}')").fetchall()[0][0])
        return int(con.execute(
            f"SELECT max(snapshot_id) FROM {CATALOG}.snapshots() "
            "WHERE json_extract_string(commit_extra_info, '$.write') = ?",
            [token],
        ).fetchall()[0][0])

    @staticmethod
    def _data_version(con: duckdb.DuckDBPyConnection, asset_key: str, partition_key: str | None) -> str:
        """The snapshot in which this asset (partition) last added rows, itself or through its
        ``<asset>/checkpoint`` commits: unchanged data, same version. A search over every snapshot, made only
        when the commit itself added no rows."""
        row = con.execute(
            f"SELECT max(snapshot_id) FROM {CATALOG}.snapshots() "
            "WHERE json_extract_string(commit_extra_info, '$.asset_key') IN (?, ? || '/checkpoint') "
            "AND coalesce(json_extract_string(commit_extra_info, '$.partition_key'), '') = ? "
            "AND CAST(json_extract(commit_extra_info, '$.rows_added_total') AS BIGINT) > 0",
            [asset_key, asset_key, partition_key or ""],
        ).fetchall()[0]
        return f"snapshot-{row[0]}" if row and row[0] is not None else "empty"

    # ------------------------------------------------------------------ reads

    def connect(self, *, as_of: int | None = None, sandboxed: bool = False) -> duckdb.DuckDBPyConnection:
        """A new read-only connection (optionally at snapshot ``as_of``) of your own; close it when
        done. :meth:`sql` reuses cached ones instead.

        ``sandboxed``: it can read the lake and no other file, load no extension and change no
        setting — for SQL typed by a user (the CLI).
        """
        self._ensure_schema()
        return open_connection(self.config, read_only=True, snapshot=as_of, sandboxed=sandboxed)

    def sql(self, query: str, params: Sequence[Any] | None = None, *, as_of: int | None = None,
            sandboxed: bool = False) -> pl.DataFrame:
        """Run a read query on this thread's cached connection; ``as_of`` reads the whole warehouse
        as of that snapshot; ``sandboxed`` as in :meth:`connect`."""
        self._ensure_schema()

        latest = latest_reads.tables_read(query) if as_of is None else []

        def run() -> pl.DataFrame:
            con = self.readers.cursor(as_of=as_of, sandboxed=sandboxed)
            try:
                if latest:  # <table>_latest without its superseded-row join while there is nothing to join
                    return latest_reads.read(con, self.readers.latest_checks(sandboxed=sandboxed), latest, query,
                                             params)
                return con.execute(query, params or []).pl()  # fetched whole: no transaction left open
            except duckdb.FatalException:
                self.readers.discard(as_of=as_of, sandboxed=sandboxed)  # invalidated: reopen on retry
                raise

        with masked_errors(self.config):
            try:
                return with_retries(run)
            except duckdb.FatalException:
                return run()

    def count(self, table: str) -> int:
        return int(self.sql(f"SELECT count(*) AS n FROM {table}")["n"][0])

    def current_snapshot(self) -> int:
        return int(self.sql(f"SELECT id FROM ducklake_current_snapshot('{CATALOG}')")["id"][0])

    def snapshots(self) -> pl.DataFrame:
        """Every snapshot with its run, asset and rows added (from the commit's extra info)."""
        return self.sql(
            f"""
            SELECT snapshot_id, snapshot_time, commit_message,
                   json_extract_string(commit_extra_info, '$.run_id') AS run_id,
                   json_extract_string(commit_extra_info, '$.asset_key') AS asset_key,
                   json_extract_string(commit_extra_info, '$.partition_key') AS partition_key,
                   CAST(json_extract(commit_extra_info, '$.rows_added_total') AS BIGINT) AS rows_added
            FROM {CATALOG}.snapshots() ORDER BY snapshot_id
            """
        )

    def at_version(self, table: str, snapshot: int) -> pl.DataFrame:
        """Time travel: ``table`` as it was at ``snapshot``."""
        return self.sql(f"SELECT * FROM {table} AT (VERSION => {int(snapshot)})")

    def changes(self, table: str, start_snapshot: int, end_snapshot: int | None = None) -> pl.DataFrame:
        """The change feed of ``table`` between two snapshots (inclusive); default end: now."""
        end = self.current_snapshot() if end_snapshot is None else int(end_snapshot)
        if start_snapshot > end:
            return self.sql(f"SELECT * FROM {CATALOG}.table_changes('{table}', {end}, {end}) LIMIT 0")
        return self.sql(f"SELECT * FROM {CATALOG}.table_changes('{table}', {int(start_snapshot)}, {end})")

    def tables(self) -> list[str]:
        return sorted(MODELS_BY_TABLE)

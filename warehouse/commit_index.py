"""What a commit must know about a table, kept in memory so that it need not read the table (issue 15).

A commit asks two questions of every table it appends to: which of the batch's event ids are stored already
(``<table>_ids``), and which live rows of the current-state projection (``<table>_current`` without the rows in
``<table>_superseded``) the batch's keys touch, with their row ids. Answered in SQL, each is a scan of a column of random 60-bit integers that neither compresses
nor prunes: ~14 ms per million rows each, most of a 10k-row commit at 10 M rows (bench/RESULTS.md, "One write
connection per handle, and 10 M rows again"). Here they are answered by binary search in sorted arrays of the
integer prefixes held by the writer (16–32 bytes a row), built once per process and then kept at the catalog's
snapshot:

- after this writer's own commit, from what it wrote (the ids it added, the rows it superseded, and the row ids
  DuckLake gave the rows it inserted, read back from that one snapshot's file);
- after anybody else's (another process, maintenance, a migration), from DuckLake's change feed, then checked
  against the tables' row counts; any doubt — an error, a count that differs — rebuilds from a full read.

The arrays are log-structured (``SortedRuns``): a commit appends its keys as a new sorted run and merges only
small runs; the larger merges, and the membership filter's resizing, wait for ``CommitIndex.compact``, which the
maintenance job and the fold call between commits — so a commit's own work does not grow with the table.

Used only under the inter-process write lock (embedded catalogs), where no commit can land between the refresh
and the commit. A server catalog without that lock keeps the SQL path (``warehouse.store``).
An id prefix found here is only a candidate: the exact SQL check decides (a re-run, or a prefix collision).

On by default; ``ZHUFU_COMMIT_INDEX=0`` turns it off (the SQL path answers). It was off for a while: its first
10 M-row bench run seemed to hang after its last commit. That was the maintenance job's file cleanup in SQLite's
rollback-journal mode, waiting out the busy timeout page by page (``warehouse.connection.ensure_wal``), not this
index.
"""


from __future__ import annotations

import os
from dataclasses import dataclass, field

import duckdb
import numpy as np

from warehouse.connection import CATALOG
from warehouse.schema import (
    ID_HASH,
    KEY_HASH,
    KEY_LO,
    id_index_table,
    live_projection_sql,
    projection_table,
    superseded_table,
)

ENV = "ZHUFU_COMMIT_INDEX"  # "0" turns it off
_GROWTH = 2  # a run is merged with the next younger one once it is at most this many times its size
# A commit merges runs only while the result stays this small; the larger merges wait for ``compact`` (the
# maintenance job and the fold call it between commits). With every merge on the commit path a 10 k-row commit
# copied each row once more each time the table doubled — its in-memory work grew 125 → 162 ms from 0 to 10 M rows
# (bench/RESULTS.md, "A membership filter in front of the commit index"); with the cap it copies a row at most
# log2(cap / batch) times.
_COMMIT_MERGE_LIMIT = 1 << 19
_MAX_RUNS = 16  # more runs than this and ``add`` compacts anyway: a writer that never sees maintenance
_FILTER_BITS_PER_KEY = 16  # the membership filter's size when (re)built: ~6% of absent keys pass it (one hash)
_FILTER_MIN_BITS_PER_KEY = 8  # a commit rebuilds it only below this (~12% pass); ``compact`` below 16
_FILTER_MIN_BITS = 1 << 16
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: any key distribution spreads over the filter


def enabled() -> bool:
    return os.environ.get(ENV, "1") != "0"


def _spans(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The positions ``lo[i]:hi[i]`` for every i, concatenated (vectorised ``np.arange`` per span)."""
    lens = hi - lo
    if len(lens) == 0:
        return np.zeros(0, dtype=np.intp)
    ends = np.cumsum(lens)
    return np.repeat(lo - (ends - lens), lens) + np.arange(ends[-1])


@dataclass
class SortedRuns:
    """int64 keys with int64 payload columns, as a few runs each sorted by key; deletions mark entries dead."""

    payload: tuple[str, ...] = ()
    runs: list[dict[str, np.ndarray]] = field(default_factory=list)
    live: int = 0  # live entries, kept by add and delete
    merge_limit: int = _COMMIT_MERGE_LIMIT
    # A one-hash bit filter over every key added (a deletion leaves its bit set: absent keys may pass, present
    # ones always do). Lookups search the runs only for the keys that pass it: a commit's new ids and most of
    # its keys are absent, and each binary search into a run of millions costs cache misses — without it the
    # two lookups of a 10 k-row commit grew 5.3 → 25.9 ms from 0 to 10 M rows, with it 2.6 → 5.4
    # (bench.commit_index_ops).
    _bits: np.ndarray = field(default_factory=lambda: np.zeros(_FILTER_MIN_BITS // 8, dtype=np.uint8))

    def __len__(self) -> int:
        return self.live

    def _slots(self, keys: np.ndarray) -> np.ndarray:
        shift = np.uint64(64 - (len(self._bits) * 8).bit_length() + 1)
        return (np.asarray(keys, dtype=np.int64).view(np.uint64) * _GOLDEN) >> shift

    def _mark(self, keys: np.ndarray) -> None:
        h = self._slots(keys)
        np.bitwise_or.at(self._bits, h >> np.uint64(3), np.left_shift(1, h & np.uint64(7)).astype(np.uint8))

    def may_contain(self, keys: np.ndarray) -> np.ndarray:
        """Per key: False where no entry was ever added with it (True: maybe)."""
        h = self._slots(keys)
        return ((self._bits[h >> np.uint64(3)] >> (h & np.uint64(7)).astype(np.uint8)) & 1).astype(bool)

    def _grow_filter(self, min_bits_per_key: int) -> None:
        """Rebuilt from the live keys at ≥ 16 bits a key once it has fewer than ``min_bits_per_key``."""
        bits = len(self._bits) * 8
        if self.live * min_bits_per_key <= bits:
            return
        while self.live * _FILTER_BITS_PER_KEY > bits:
            bits *= 2
        self._bits = np.zeros(bits // 8, dtype=np.uint8)
        for run in self.runs:
            self._mark(run["key"][~run["dead"]])

    def add(self, key: np.ndarray, **cols: np.ndarray) -> None:
        if len(key) == 0:
            return
        order = np.argsort(key, kind="stable")
        run = {"key": np.asarray(key, dtype=np.int64)[order], "dead": np.zeros(len(key), dtype=bool)}
        run.update({c: np.asarray(cols[c], dtype=np.int64)[order] for c in self.payload})
        self.runs.append(run)
        self.live += len(key)
        self._mark(run["key"])
        self._grow_filter(_FILTER_MIN_BITS_PER_KEY)
        # Runs halve in size from oldest to newest (a binary counter), up to ``merge_limit``: a lookup visits
        # O(log n) runs plus the few large ones left for ``compact``.
        while (len(self.runs) > 1 and len(self.runs[-2]["key"]) <= _GROWTH * len(self.runs[-1]["key"])
               and len(self.runs[-2]["key"]) + len(self.runs[-1]["key"]) <= self.merge_limit):
            self.runs[-2:] = [self._merge(self.runs[-2:])]
        if len(self.runs) > _MAX_RUNS:
            self.compact()

    def compact(self) -> int:
        """The merges ``add`` left: until every run is more than twice the next younger one (dead entries
        dropped); the filter rebuilt if below 16 bits a key. Returns the entries copied."""
        copied = 0
        while True:
            sizes = [len(r["key"]) for r in self.runs]
            pairs = [i for i in range(len(sizes) - 1) if sizes[i] <= _GROWTH * sizes[i + 1]]
            if not pairs:
                break
            i = pairs[-1]
            self.runs[i:i + 2] = [self._merge(self.runs[i:i + 2])]
            copied += sizes[i] + sizes[i + 1]
        self._grow_filter(_FILTER_BITS_PER_KEY)
        return copied

    def _merge(self, runs: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        live = [~r["dead"] for r in runs]
        key = np.concatenate([r["key"][m] for r, m in zip(runs, live, strict=True)])
        order = np.argsort(key, kind="stable")  # timsort: runs already sorted merge in linear time (measured
        # against a searchsorted-and-scatter merge: as fast or faster at every size)
        out = {"key": key[order], "dead": np.zeros(len(key), dtype=bool)}
        for c in self.payload:
            out[c] = np.concatenate([r[c][m] for r, m in zip(runs, live, strict=True)])[order]
        return out

    @staticmethod
    def _ranges(run: dict[str, np.ndarray], sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per key (ascending: each search starts where the last ended — random probes into a run of millions
        missed the cache), the slice of ``run`` holding it (empty when absent)."""
        return np.searchsorted(run["key"], sorted_keys, "left"), np.searchsorted(run["key"], sorted_keys, "right")

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """Per key: whether a live entry has it."""
        keys = np.asarray(keys, dtype=np.int64)
        found = np.zeros(len(keys), dtype=bool)
        maybe = np.flatnonzero(self.may_contain(keys))
        maybe = maybe[np.argsort(keys[maybe])]
        sk = keys[maybe]
        for run in self.runs:
            lo, hi = self._ranges(run, sk)
            hit = np.flatnonzero(hi > lo)
            lens = (hi - lo)[hit]
            owner = np.repeat(maybe[hit], lens)
            found[owner[~run["dead"][_spans(lo[hit], hi[hit])]]] = True
        return found

    def find(self, keys: np.ndarray) -> dict[str, np.ndarray]:
        """The live entries whose key is in ``keys``: key and payload columns."""
        keys = np.asarray(keys, dtype=np.int64)
        keys = np.sort(keys[self.may_contain(keys)])
        cols: dict[str, list[np.ndarray]] = {c: [] for c in ("key", *self.payload)}
        for run in self.runs:
            lo, hi = self._ranges(run, keys)
            hit = hi > lo
            if not hit.any():
                continue
            pos = _spans(lo[hit], hi[hit])
            pos = pos[~run["dead"][pos]]
            for c in cols:
                cols[c].append(run[c][pos])
        return {c: (np.concatenate(v) if v else np.zeros(0, dtype=np.int64)) for c, v in cols.items()}

    def delete(self, keys: np.ndarray, rowids: np.ndarray) -> None:
        """Mark dead the live entries with these (key, rowid) pairs; payload column ``rowid`` required."""
        keys, rowids = np.asarray(keys, dtype=np.int64), np.asarray(rowids, dtype=np.int64)
        order = np.argsort(keys)
        sk, sr = keys[order], rowids[order]
        for run in self.runs:
            lo, hi = self._ranges(run, sk)
            hit = np.flatnonzero(hi > lo)
            pos = _spans(lo[hit], hi[hit])
            wanted = np.repeat(sr[hit], (hi - lo)[hit])
            pos = np.unique(pos[(run["rowid"][pos] == wanted) & ~run["dead"][pos]])
            run["dead"][pos] = True
            self.live -= len(pos)


@dataclass
class TableIndex:
    """One table's stored id prefixes and its projection's rows (key prefix → key low part, row id, created_at
    in µs), exact at ``snapshot``."""

    table: str
    snapshot: int
    ids: SortedRuns
    rows: SortedRuns


def _snapshot(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute(f"SELECT id FROM ducklake_current_snapshot('{CATALOG}')").fetchall()[0][0])


def _inserting_runs(con: duckdb.DuckDBPyConnection, start: int, end: int) -> list[tuple[int, int]]:
    """The runs of consecutive snapshots in ``start..end`` that inserted rows. The maintenance job's compactions
    are left out: DuckLake's insertion feed reports every row of a file that ``ducklake_rewrite_data_files``
    rewrote as inserted at the rewrite (same row ids), which made the first commit after maintenance at 8 M rows
    read 9 M rows back, fail the count check and rebuild — 12 s (bench/RESULTS.md, issue 15)."""
    rows = con.execute(f"SELECT snapshot_id, map_contains(changes, 'tables_inserted_into') FROM {CATALOG}.snapshots() "
                       "WHERE snapshot_id BETWEEN ? AND ? ORDER BY snapshot_id", [start, end]).fetchall()
    runs: list[list[int]] = []
    for snapshot, inserts in rows:
        if not inserts:
            continue
        if runs and runs[-1][1] == snapshot - 1:
            runs[-1][1] = snapshot
        else:
            runs.append([snapshot, snapshot])
    return [(a, b) for a, b in runs]


def _numpy(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in con.execute(sql).fetchnumpy().items()}


def _row_columns(alias: str = "") -> str:
    """The projection columns the index keeps, of the table or alias ``alias`` (``alias.``) when given."""
    p = f"{alias}." if alias else ""
    return f"{p}rowid AS rowid, {p}{KEY_HASH}, {p}{KEY_LO}, epoch_us({p}created_at) AS created_us"


def _add_rows(rows: SortedRuns, r: dict[str, np.ndarray], where: np.ndarray | slice = slice(None)) -> None:
    """Add projection rows read with ``_row_columns`` (those at ``where``)."""
    rows.add(r[KEY_HASH][where], **{c: r[c][where] for c in rows.payload})


class CommitIndex:
    """The per-handle indexes of the tables this writer commits to (``WriterSlot`` owns one per connection)."""

    def __init__(self) -> None:
        self.tables: dict[str, TableIndex] = {}
        self.rebuilds = 0  # full reads, for tests and benches

    @staticmethod
    def snapshot(con: duckdb.DuckDBPyConnection) -> int:
        """The catalog's current snapshot, at which ``get`` is asked (outside a transaction, under the lock)."""
        return _snapshot(con)

    def get(self, con: duckdb.DuckDBPyConnection, table: str, now: int) -> TableIndex | None:
        """The table's index at snapshot ``now``: kept, caught up, or rebuilt; None where the table has no id
        index or projection to read (a warehouse mid-migration: the SQL path answers)."""
        ti = self.tables.get(table)
        if ti is not None and ti.snapshot != now:
            try:
                self._catch_up(con, ti, now)
                ok = self._counts_match(con, ti)
            except duckdb.Error:
                ok = False
            if not ok:
                ti = None
        if ti is None:
            try:
                ti = self._build(con, table, now)
            except duckdb.CatalogException:
                self.tables.pop(table, None)
                return None
        self.tables[table] = ti
        return ti

    def _build(self, con: duckdb.DuckDBPyConnection, table: str, snapshot: int) -> TableIndex:
        self.rebuilds += 1
        at = f"AT (VERSION => {snapshot})"
        ids = SortedRuns()
        ids.add(_numpy(con, f"SELECT {ID_HASH} FROM {id_index_table(table)} {at}")[ID_HASH])
        rows = SortedRuns(payload=(KEY_LO, "rowid", "created_us"))
        _add_rows(rows, _numpy(con, f"SELECT {_row_columns('p')} FROM {live_projection_sql(table, 'p', at)}"))
        return TableIndex(table, snapshot, ids, rows)

    def _catch_up(self, con: duckdb.DuckDBPyConnection, ti: TableIndex, now: int) -> None:
        """Apply the commits after ``ti.snapshot`` from DuckLake's change feeds: the projection's inserted rows
        are added; its rows recorded as superseded are removed, after the additions (a row may be both within
        the range). Only snapshots that inserted rows are read (``_inserting_runs``)."""
        runs = _inserting_runs(con, ti.snapshot + 1, now)

        def inserted(table: str, columns: str) -> dict[str, np.ndarray]:
            parts = [_numpy(con, f"SELECT {columns} FROM ducklake_table_insertions('{CATALOG}', 'main', "
                                 f"'{table}', {a}, {b})") for a, b in runs]
            if not parts:
                return _numpy(con, f"SELECT {columns} FROM {table} LIMIT 0")
            return {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}

        new_ids = inserted(id_index_table(ti.table), ID_HASH)[ID_HASH]
        ins = inserted(projection_table(ti.table), _row_columns())
        sup = inserted(superseded_table(ti.table), f"rid, {KEY_HASH}")
        _add_rows(ti.rows, ins)
        # The projection's own deletes are not read: only maintenance deletes from it, and only rows already
        # recorded as superseded (dead here once their insertion into <table>_superseded is applied). Reading
        # them (ducklake_table_changes) cost the first commit after maintenance ~1 s at 600 k rows — the deleted
        # rows are read back from their files — and that feed over-reports (ducklake 1.4.4: 9,498 for 7,098
        # deleted), which had made every catch-up across maintenance rebuild. The count check still guards.
        ti.rows.delete(sup[KEY_HASH], sup["rid"])
        ti.ids.add(new_ids)
        ti.snapshot = now

    @staticmethod
    def _counts_match(con: duckdb.DuckDBPyConnection, ti: TableIndex) -> bool:
        at = f"AT (VERSION => {ti.snapshot})"
        n_ids = con.execute(f"SELECT count(*) FROM {id_index_table(ti.table)} {at}").fetchall()[0][0]
        n_rows = con.execute(f"SELECT count(*) FROM {live_projection_sql(ti.table, at=at)}").fetchall()[0][0]
        return n_ids == len(ti.ids) and n_rows == len(ti.rows)

    def committed(self, con: duckdb.DuckDBPyConnection, before: int, writes: dict[str, TableWrites]) -> None:
        """After this writer's commit: apply what it wrote if its snapshot directly follows ``before`` (else the
        next ``get`` reads the change feed). Never raises: the commit has landed; on any error the index is
        dropped and rebuilt when next needed."""
        try:
            now = _snapshot(con)
            if now != before + 1:
                return
            for table, ti in self.tables.items():
                if ti.snapshot != before:
                    continue
                w = writes.get(table)
                if w is not None:
                    ti.ids.add(w.new_ids)
                    ti.rows.delete(w.superseded_keys, w.superseded_rowids)
                    # the row ids DuckLake gave the projection's new rows, from this snapshot's file
                    _add_rows(ti.rows, _numpy(con, f"SELECT {_row_columns()} FROM ducklake_table_insertions("
                                                   f"'{CATALOG}', 'main', '{projection_table(table)}', {now}, {now})"))
                ti.snapshot = now
        except Exception:  # noqa: BLE001 — an index in doubt is rebuilt, never trusted
            self.forget()

    def folded(self, con: duckdb.DuckDBPyConnection, before: int) -> None:
        """After this writer folded the superseded rows (``warehouse.maintenance.fold``) in the snapshot after
        ``before``: the fold deletes only rows the index already dropped when their supersession was recorded,
        and inserts nothing, so an index at ``before`` is exact at the new snapshot — the catch-up and its count
        check (a full count of the projection: ~0.1 s at 10 M rows) are skipped. Never raises."""
        try:
            now = _snapshot(con)
            if now != before + 1:
                return  # another commit landed in between: the next get() catches up from the change feed
            for ti in self.tables.values():
                if ti.snapshot == before:
                    ti.snapshot = now
        except Exception:  # noqa: BLE001 — an index in doubt is rebuilt, never trusted
            self.forget()

    def compact(self) -> int:
        """The index merges a commit leaves undone (``SortedRuns.compact``), for the maintenance job and the fold
        to run between commits; returns the entries copied."""
        return sum(ti.ids.compact() + ti.rows.compact() for ti in self.tables.values())

    def forget(self) -> None:
        self.tables.clear()


@dataclass
class TableWrites:
    """What one commit wrote to a table, for ``CommitIndex.committed``."""

    new_ids: np.ndarray
    superseded_keys: np.ndarray
    superseded_rowids: np.ndarray

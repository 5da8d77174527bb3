"""Reads of ``<table>_latest`` that skip the superseded-row join while there is nothing to skip.

``<table>_latest`` is the projection ``<table>_current`` without the rows listed in ``<table>_superseded``
(``schema.projection_view_sql``). That anti join is by row id, and once the maintenance job has merged the
projection's files their row ids are a stored column: reading it cost a label count over ``verdicts_latest`` at 3 M
rows 57 ms against 25 ms over the projection alone, with ``verdicts_superseded`` empty (bench/RESULTS.md, issue 15).
Switching the lake's view itself is a schema change that stops DuckLake from merging files across it, so the
switch happens per read connection instead: when ``<table>_superseded`` is empty at the snapshot a query reads,
a temporary view of the same name over the bare projection shadows the lake's view (DuckDB resolves a name in
the temp catalog first). The check, the shadow and the query run in one transaction — one snapshot — so a
commit landing in between cannot make a superseded row visible; the count runs once per snapshot.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import duckdb
import polars as pl

from warehouse.connection import CATALOG, rollback
from warehouse.schema import MODELS_BY_TABLE, PROJECTION_INTERNAL, projection_table, superseded_table

_LATEST = re.compile(r"\b([a-z][a-z0-9_]*?)_latest\b", re.IGNORECASE)


def tables_read(query: str) -> list[str]:
    """The event tables whose ``<table>_latest`` view ``query`` names (a superset is harmless: a check)."""
    return sorted({m.lower() for m in _LATEST.findall(query)} & MODELS_BY_TABLE.keys())


def shadow_sql(table: str) -> str:
    """The temporary ``<table>_latest``: the projection's rows as the lake's view shows them when nothing is
    superseded (same columns, same order; a projection from before migration 17 or 19 lacks some internal ones)."""
    internal = ", ".join(f"'{c}'" for c in PROJECTION_INTERNAL)
    return (f"CREATE OR REPLACE TEMP VIEW {table}_latest AS "
            f"SELECT COLUMNS(c -> c NOT IN ({internal})) FROM {CATALOG}.{projection_table(table)}")


def read(cur: duckdb.DuckDBPyConnection, empty: dict[str, tuple[int, bool]], tables: Sequence[str], query: str,
         params: Sequence[Any] | None) -> pl.DataFrame:
    """Run ``query`` on ``cur`` (a live read cursor) with each of ``tables``' ``_latest`` shadowed while its
    superseded table is empty. ``empty``: this cursor's table → (snapshot, whether it was empty then), so the
    check runs once per snapshot. The shadows are dropped before the transaction ends: none outlives its check.
    Where the check itself fails (a warehouse mid-migration, without ``<table>_superseded``), the lake's view
    answers."""
    cur.execute("BEGIN")
    try:
        snapshot = int(cur.execute(f"SELECT id FROM ducklake_current_snapshot('{CATALOG}')").fetchone()[0])
        try:
            if stale := [t for t in tables if empty.get(t, (None, False))[0] != snapshot]:
                for t, n in cur.execute(" UNION ALL ".join(
                        f"SELECT '{t}', (SELECT count(*) FROM {CATALOG}.{superseded_table(t)})" for t in stale
                )).fetchall():
                    empty[t] = (snapshot, n == 0)
            shadowed = [t for t in tables if empty[t][1]]
            for t in shadowed:
                cur.execute(shadow_sql(t))
        except duckdb.Error:
            rollback(cur)
            for t in tables:
                empty[t] = (snapshot, False)
            return cur.execute(query, params or []).pl()
        out = cur.execute(query, params or []).pl()
        for t in shadowed:
            cur.execute(f"DROP VIEW temp.main.{t}_latest")
        cur.execute("COMMIT")
    except BaseException:
        rollback(cur)  # the shadows' DDL goes with it
        raise
    return out

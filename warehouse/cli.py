"""Read-only SQL over the warehouse.

    python -m warehouse sql "SELECT count(*) FROM prompts"
    python -m warehouse sql --as-of 7 --format csv "SELECT * FROM verdicts_latest"
    python -m warehouse snapshots
    python -m warehouse tables
"""

from __future__ import annotations

import argparse
import sys

import duckdb
import polars as pl

from warehouse.config import WarehouseConfig
from warehouse.errors import ReadOnlyError, WarehouseError
from warehouse.store import Warehouse

# Statement types that only read. Everything else (INSERT, CREATE, COPY … TO, ATTACH, SET …)
# is refused before it runs, and so is an EXPLAIN [ANALYZE] of anything but a SELECT (ANALYZE
# runs it). Behind that, the lake is attached READ_ONLY and the connection is sandboxed: no file
# but the lake's, no extension, no SET (see warehouse.connection.sandbox).
_READ_TYPES = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


def _explained(statement: str) -> str:
    """The statement that ``EXPLAIN [ANALYZE] [(options)] <statement>`` wraps (comments skipped)."""
    starts = [pos for pos, _ in duckdb.tokenize(statement)]

    def word(i: int) -> str:
        return statement[starts[i]:].split(None, 1)[0].upper() if i < len(starts) else ""

    i = 1 if word(0) == "EXPLAIN" else 0
    if word(i) in ("ANALYZE", "ANALYSE"):
        i += 1
    if word(i).startswith("("):  # EXPLAIN (FORMAT json) …: skip to the matching parenthesis
        depth = 0
        while i < len(starts):
            tok = statement[starts[i]]
            depth += (tok == "(") - (tok == ")")
            i += 1
            if depth == 0:
                break
    return statement[starts[i]:] if i < len(starts) else ""


def _refuse(kind: str) -> ReadOnlyError:
    return ReadOnlyError(
        f"refused: the SQL CLI is read-only and got a {kind} statement. "
        "Tables are written only by materializing assets (dagster / make demo)."
    )


def check_read_only(query: str) -> None:
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise WarehouseError(f"cannot parse SQL: {exc}") from exc
    if not statements:
        raise WarehouseError("no SQL statement given")
    for st in statements:
        if st.type not in _READ_TYPES:
            raise _refuse(st.type.name)
        if st.type == duckdb.StatementType.EXPLAIN:
            try:
                inner = duckdb.extract_statements(_explained(st.query))
            except duckdb.Error:
                inner = []
            if len(inner) != 1 or inner[0].type != duckdb.StatementType.SELECT:
                raise _refuse(f"EXPLAIN of a {inner[0].type.name if len(inner) == 1 else 'non-SELECT'}")


def _render(df: pl.DataFrame, fmt: str) -> str:
    if fmt == "csv":
        return df.write_csv()
    if fmt == "json":
        return df.write_json()
    with pl.Config(
        tbl_rows=200, tbl_cols=30, fmt_str_lengths=60, tbl_width_chars=200, tbl_hide_dataframe_shape=False
    ):
        return str(df)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m warehouse",
        description="Read-only access to the zhufu event store (DuckLake). "
        "Location: $ZHUFU_HOME (default ./.zhufu), or $ZHUFU_CATALOG / $ZHUFU_DATA_PATH.",
    )
    parser.add_argument("--home", help="warehouse home directory (default: $ZHUFU_HOME or ./.zhufu)")
    sub = parser.add_subparsers(dest="command", required=True)
    p_sql = sub.add_parser("sql", help="run a read-only SQL query")
    p_sql.add_argument("query", help='e.g. "SELECT count(*) FROM prompts"')
    p_sql.add_argument("--as-of", type=int, metavar="SNAPSHOT", help="read the warehouse as of this snapshot id")
    p_sql.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p_snap = sub.add_parser("snapshots", help="list snapshots with their run, asset and rows added")
    p_snap.add_argument("--format", choices=("table", "csv", "json"), default="table")
    sub.add_parser("tables", help="list tables with their row counts")
    args = parser.parse_args(argv)

    wh = Warehouse(WarehouseConfig.from_env(args.home))
    try:
        if args.command == "sql":
            check_read_only(args.query)
            out = _render(wh.sql(args.query, as_of=args.as_of, sandboxed=True), args.format)
        elif args.command == "snapshots":
            out = _render(wh.snapshots(), args.format)
        else:
            counts = [(t, wh.count(t)) for t in wh.tables()]
            out = _render(pl.DataFrame(counts, schema=["table", "rows"], orient="row"), "table")
    except WarehouseError as exc:
        print(f"error: {wh.config.redact(str(exc))}", file=sys.stderr)
        return 2
    except duckdb.Error as exc:
        print(f"error: {type(exc).__name__}: {wh.config.redact(str(exc))}", file=sys.stderr)
        return 1
    print(out.rstrip("\n"))
    return 0

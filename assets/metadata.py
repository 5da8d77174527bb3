"""Materialization metadata the Dagster UI renders as tables rather than markdown text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg

_TYPES = {bool: "bool", int: "int", float: "float"}


def records_table(records: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> dg.TableMetadataValue:
    """``records`` (dicts) as a ``MetadataValue.table``: column types from the first non-null value, lists
    and other values as text, floats rounded to 4 places, missing values left empty."""
    columns = list(columns or (records[0] if records else []))

    def kind(col: str) -> str:
        value = next((r.get(col) for r in records if r.get(col) is not None), None)
        return _TYPES.get(type(value), "string")

    kinds = {c: kind(c) for c in columns}

    def cell(col: str, value: Any) -> Any:
        if value is None:
            return None
        if kinds[col] == "float":
            return round(float(value), 4)
        if kinds[col] == "string":
            return value if isinstance(value, str) else str(value)
        return value

    rows = [dg.TableRecord({c: cell(c, r.get(c)) for c in columns}) for r in records]
    schema = dg.TableSchema(columns=[dg.TableColumn(c, kinds[c]) for c in columns])
    return dg.MetadataValue.table(records=rows, schema=schema)

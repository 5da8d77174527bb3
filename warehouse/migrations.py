"""Versioned, re-runnable schema migrations.

Each migration is idempotent (``IF NOT EXISTS`` / ``OR REPLACE``) and recorded in
``schema_migrations``; ``migrate`` applies the ones not yet recorded, each in its own
DuckLake snapshot. Add a migration by appending to ``MIGRATIONS`` — never edit an old one's
meaning (adding a column to a row model needs a new ``ALTER TABLE … ADD COLUMN IF NOT EXISTS``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import duckdb

from warehouse.schema import (
    EVENT_MODELS,
    AgreementRow,
    Event,
    PolicyEvaluationRow,
    PromotionRow,
    VectorIndexRow,
    create_table_sql,
    latest_view_sql,
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[duckdb.DuckDBPyConnection], None]


def _v1_event_tables(con: duckdb.DuckDBPyConnection) -> None:
    for model in EVENT_MODELS:
        con.execute(create_table_sql(model))


def _v2_latest_views(con: duckdb.DuckDBPyConnection) -> None:
    for model in EVENT_MODELS:
        con.execute(latest_view_sql(model))


def _new_table(model: type[Event]) -> Callable[[duckdb.DuckDBPyConnection], None]:
    def apply(con: duckdb.DuckDBPyConnection) -> None:
        con.execute(create_table_sql(model))
        con.execute(latest_view_sql(model))

    return apply


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "event tables", _v1_event_tables),
    Migration(2, "*_latest views (newest row per entity key)", _v2_latest_views),
    Migration(3, "vector_indexes: LanceDB versions beside warehouse snapshots", _new_table(VectorIndexRow)),
    Migration(4, "agreement_metrics: automatic labellers against human labels", _new_table(AgreementRow)),
    Migration(5, "policy_evaluations: policies on held-out prompts", _new_table(PolicyEvaluationRow)),
    Migration(10, "promotions: the gate between a trained model and its use downstream", _new_table(PromotionRow)),
)

LEDGER_SQL = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(version BIGINT, name VARCHAR, applied_at TIMESTAMP WITH TIME ZONE)"
)

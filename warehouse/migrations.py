"""Versioned, re-runnable schema migrations.

Each migration is idempotent (``IF NOT EXISTS`` / ``OR REPLACE``) and recorded in
``schema_migrations``; ``migrate`` applies the ones not yet recorded, each in its own
DuckLake snapshot. Add a migration by appending to ``MIGRATIONS`` — never edit an old one's
meaning (adding a column to a row model needs a new ``ALTER TABLE … ADD COLUMN IF NOT EXISTS``).

Since migration 13 every table has a current-state projection ``<table>_current`` behind its
``<table>_latest`` view: a new table needs :func:`_new_projected_table`, a new column
:func:`_add_projected_columns` (both change the table and its projection). Since migration 22 a commit
records the projection rows it replaces in ``<table>_superseded`` and ``<table>_latest`` leaves them out.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import duckdb

from warehouse.connection import CATALOG, rollback
from warehouse.schema import (
    EVENT_MODELS,
    KEY_HASH,
    KEY_HASH_SQL,
    KEY_LO,
    KEY_LO_SQL,
    PROJECTION_INTERNAL,
    AdversarialExampleRow,
    AgreementRow,
    AxialGroupRow,
    CalibrationRow,
    CriteriaScoreRow,
    CriteriaTotalRow,
    CriterionRow,
    Event,
    JudgePrincipleRow,
    JudgeScoreRow,
    OpenCodeRow,
    PolicyEvaluationRow,
    PreferencePairRow,
    PromotionRow,
    PromptMembershipRow,
    PromptRow,
    ReflectionRow,
    SaturationRow,
    ScenarioExampleRow,
    VectorIndexRow,
    VerdictRow,
    create_table_sql,
    id_index_sql,
    latest_view_sql,
    projection_sql,
    projection_table,
    projection_view_sql,
    superseded_sql,
    superseded_table,
    table_columns,
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
        con.execute(id_index_sql(model))

    return apply


def _add_columns(model: type[Event], names: tuple[str, ...]) -> Callable[[duckdb.DuckDBPyConnection], None]:
    """New columns of an existing table (NULL in old rows); its ``_latest`` view re-created over them."""
    types = dict(table_columns(model))

    def apply(con: duckdb.DuckDBPyConnection) -> None:
        for name in names:
            con.execute(f"ALTER TABLE {model.TABLE} ADD COLUMN IF NOT EXISTS {name} {types[name]}")
        con.execute(latest_view_sql(model))

    return apply


def _v13_projections(con: duckdb.DuckDBPyConnection) -> None:
    for model in EVENT_MODELS:
        for sql in projection_sql(model):
            con.execute(sql)


def _new_projected_table(model: type[Event]) -> Callable[[duckdb.DuckDBPyConnection], None]:
    def apply(con: duckdb.DuckDBPyConnection) -> None:
        con.execute(create_table_sql(model))
        con.execute(id_index_sql(model))
        for sql in projection_sql(model):
            con.execute(sql)

    return apply


def _add_projected_columns(model: type[Event], names: tuple[str, ...]) -> Callable[[duckdb.DuckDBPyConnection], None]:
    types = dict(table_columns(model))

    def apply(con: duckdb.DuckDBPyConnection) -> None:
        for table in (model.TABLE, projection_table(model.TABLE)):
            for name in names:
                con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {types[name]}")
        _latest_over_projection(con, model.TABLE)

    return apply


def _latest_over_projection(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Re-create ``<table>_latest`` without the internal columns its projection has so far (one built before
    migration 17 has none, before 19 only key_hash)."""
    cols = {r[0] for r in con.execute(f"DESCRIBE {projection_table(table)}").fetchall()}
    superseded = bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND table_name = ?",
                                  [CATALOG, superseded_table(table)]).fetchall()[0][0])
    con.execute(projection_view_sql(table, [c for c in PROJECTION_INTERNAL if c in cols], superseded=superseded))


def _v22_superseded_rows(con: duckdb.DuckDBPyConnection) -> None:
    for model in EVENT_MODELS:
        con.execute(superseded_sql(model.TABLE))
        _latest_over_projection(con, model.TABLE)


# Every batch's prompts: the batch a prompt was first recorded under (``prompts.batch``, also all a
# warehouse written before ``prompt_memberships`` has) and every batch that repeated it.
BATCH_PROMPTS_VIEW_SQL = """
CREATE OR REPLACE VIEW batch_prompts AS
SELECT m.batch, p.id AS prompt_id, p.text
FROM (SELECT batch, id AS prompt_id FROM prompts UNION SELECT batch, prompt_id FROM prompt_memberships) m
JOIN prompts p ON p.id = m.prompt_id
"""


def _v12_prompt_memberships(con: duckdb.DuckDBPyConnection) -> None:
    _new_table(PromptMembershipRow)(con)
    con.execute(BATCH_PROMPTS_VIEW_SQL)


def _v14_writer_r1(con: duckdb.DuckDBPyConnection) -> None:
    _add_projected_columns(PromptRow, ("scenario",))(con)
    _add_projected_columns(CriterionRow, (
        "version", "workflow_id", "description", "rubric", "dimension_weight", "source", "active", "supersedes",
        "concepts", "model", "agent_version", "error", "llm_call_id"))(con)
    for model in (ScenarioExampleRow, OpenCodeRow, AxialGroupRow, SaturationRow, CriteriaScoreRow, CriteriaTotalRow):
        _new_projected_table(model)(con)


def _projection_integer(name: str, sql: str) -> Callable[[duckdb.DuckDBPyConnection], None]:
    """Add the integer column ``name`` (computed by ``sql`` from the key) to every projection, fill it, and keep
    it out of ``<table>_latest`` (migrations 17 and 19)."""
    def apply(con: duckdb.DuckDBPyConnection) -> None:
        for model in EVENT_MODELS:
            proj = projection_table(model.TABLE)
            con.execute(f"ALTER TABLE {proj} ADD COLUMN IF NOT EXISTS {name} BIGINT")
            con.execute(f"UPDATE {proj} SET {name} = {sql} WHERE {name} IS NULL")
            _latest_over_projection(con, model.TABLE)

    return apply


WRITE_TOKEN_SQL = (
    "CREATE TABLE IF NOT EXISTS write_token (n BIGINT)",
    "INSERT INTO write_token SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM write_token)",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "event tables", _v1_event_tables),
    Migration(2, "*_latest views (newest row per entity key)", _v2_latest_views),
    Migration(3, "vector_indexes: LanceDB versions beside warehouse snapshots", _new_table(VectorIndexRow)),
    Migration(4, "agreement_metrics: automatic labellers against human labels", _new_table(AgreementRow)),
    Migration(5, "policy_evaluations: policies on held-out prompts", _new_table(PolicyEvaluationRow)),
    Migration(6, "scores beside labels: verdicts and judge_scores carry P(是), threshold, calibration",
              lambda con: [_add_columns(VerdictRow, ("score", "threshold", "calibration_id"))(con),
                           _add_columns(JudgeScoreRow, ("threshold", "calibration_id", "judge_model"))(con)]),
    Migration(7, "calibrations and adversarial_examples", lambda con: [_new_table(CalibrationRow)(con),
                                                                       _new_table(AdversarialExampleRow)(con)]),
    Migration(8, "agreement AUC; policy evaluation with standard errors, evaluator and pairwise wins",
              lambda con: [_add_columns(AgreementRow, ("auc",))(con), _add_columns(PolicyEvaluationRow, (
                  "reward_se", "judge_score_mean", "judge_score_se", "evaluator_model_id", "evaluator_mean",
                  "evaluator_se", "evaluator_gain_vs_sft", "evaluator_gain_vs_sft_se", "length_explained_gain",
                  "win_rate_vs_sft", "win_rate_ci", "win_rate_len_matched", "repeat_rate"))(con)]),
    Migration(9, "judge_principles: held-out AUC, threshold and judge model per iteration",
              _add_columns(JudgePrincipleRow, ("heldout_auc", "threshold", "judge_model"))),
    Migration(10, "promotions: the gate between a trained model and its use downstream", _new_table(PromotionRow)),
    Migration(11, "preference_pairs: the policy that wrote the pair", _add_columns(PreferencePairRow, ("policy_model",))),
    Migration(12, "prompt_memberships and the batch_prompts view: every batch's prompts, repeated ones included",
              _v12_prompt_memberships),
    Migration(13, "current-state projections: <table>_latest reads <table>_current, kept by every commit",
              _v13_projections),
    Migration(14, "Writer-R1: prompts.scenario, scenario_examples, Grounded-Theory coding tables (gt_open_codes, "
              "gt_axial_groups, gt_saturation), versioned criteria, criteria_scores and criteria_totals",
              _v14_writer_r1),
    Migration(15, "reflections: MRPO inference-mode rounds (draft, critique, revision, criteria scores, memory used)",
              _new_projected_table(ReflectionRow)),
    Migration(16, "write_token: one row that every commit to a catalog without a local write lock updates, so two "
              "concurrent commits conflict and one retries (DuckLake lets concurrent appends both commit, and an "
              "event could be stored twice)", lambda con: [con.execute(sql) for sql in WRITE_TOKEN_SQL]),
    Migration(17, "projections keep an integer prefix of the key (key_hash), so a commit finds the rows it supersedes "
              "without joining every key string", _projection_integer(KEY_HASH, KEY_HASH_SQL)),
    Migration(18, "reflections: what a revision's acceptance asked for, and the judge's overall P(是) of draft and revision",
              _add_projected_columns(ReflectionRow, ("accept_by", "draft_overall", "revision_overall"))),
    Migration(19, "projections keep the rest of the key as an integer too (key_lo): a commit decides what a batch "
              "supersedes from integer columns alone", _projection_integer(KEY_LO, KEY_LO_SQL)),
    Migration(20, "<table>_ids: every table's event ids as integers, so a commit drops events already stored without "
              "reading every id string", lambda con: [con.execute(id_index_sql(m)) for m in EVENT_MODELS]),
    Migration(21, "reflections: how many revisions a round sampled (its revision is the best of them)",
              _add_projected_columns(ReflectionRow, ("revisions_sampled",))),
    Migration(22, "<table>_superseded: a commit records the projection rows it replaces instead of deleting them (a "
              "DELETE by row id read every file of the projection); <table>_latest leaves them out, maintenance "
              "deletes them", _v22_superseded_rows),
    Migration(23, "reflections: acceptance by a reward model (its length-neutral score of draft and revision, its id)",
              _add_projected_columns(ReflectionRow, ("draft_reward", "revision_reward", "reward_model"))),
)

LEDGER_SQL = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(version BIGINT, name VARCHAR, applied_at TIMESTAMP WITH TIME ZONE)"
)
# One row that every migration's transaction updates. On a server catalog no file lock serializes
# processes, and two that find the same migration pending would both apply it (DuckLake lets their
# inserts into the ledger both commit); deleting from the same table is a DuckLake conflict, so the
# second commit fails, and its retry finds the migration recorded.
GUARD_TABLE = "schema_migrations_guard"


def ensure_ledger(con: duckdb.DuckDBPyConnection) -> None:
    """The ledger and its guard row (a no-op, and no snapshot, when both exist)."""
    con.execute("BEGIN")
    try:
        con.execute(LEDGER_SQL)
        con.execute(f"CREATE TABLE IF NOT EXISTS {GUARD_TABLE} (n BIGINT)")
        con.execute(f"INSERT INTO {GUARD_TABLE} SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM {GUARD_TABLE})")
        con.execute("COMMIT")
    except BaseException:
        rollback(con)
        raise


def apply_once(con: duckdb.DuckDBPyConnection, m: Migration) -> bool:
    """Apply ``m`` and record it in one snapshot, unless the ledger already holds it (another process
    applied it since we looked); True when this call applied it. A conflict raises (retry it)."""
    con.execute("BEGIN")
    try:
        if con.execute("SELECT count(*) FROM schema_migrations WHERE version = ?", [m.version]).fetchone()[0]:
            con.execute("ROLLBACK")
            return False
        con.execute(f"UPDATE {GUARD_TABLE} SET n = n + 1")
        m.apply(con)
        con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [m.version, m.name])
        con.execute(f"CALL {CATALOG}.set_commit_message('zhufu', ?, extra_info => ?)",
                    [f"migration {m.version}: {m.name}", json.dumps({"migration": m.version})])
        con.execute("COMMIT")
        return True
    except BaseException:
        rollback(con)
        raise

"""``<table>_latest`` reads a current-state projection kept by every commit, and answers exactly what
"newest row per key over the whole history" answers — now and as of any earlier snapshot."""

from __future__ import annotations

import datetime as dt
import random
from typing import ClassVar

import warehouse.store as store
from warehouse.connection import open_connection
from warehouse.maintenance import MaintenancePolicy, maintain
from warehouse.migrations import MIGRATIONS, _add_projected_columns, _new_projected_table
from warehouse.schema import (
    EVENT_MODELS,
    KEY_HASH,
    KEY_LO,
    NEWEST_PER_KEY,
    Event,
    HumanLabelRow,
    ModelRow,
    VerdictRow,
    id_index_table,
    projection_table,
)


def _verdict(candidate: str, label: int, reason: str = "r") -> VerdictRow:
    return VerdictRow(candidate_id=candidate, stage="judge", label=label, reason=reason, agent_version="1")


def _recomputed(wh, table: str, as_of: int | None = None) -> set[tuple]:
    return set(wh.sql(f"SELECT * FROM {table} {NEWEST_PER_KEY}", as_of=as_of).rows())


def _latest(wh, table: str, as_of: int | None = None) -> set[tuple]:
    return set(wh.sql(f"SELECT * FROM {table}_latest", as_of=as_of).rows())


def test_latest_reads_a_projection_equal_to_the_newest_row_per_key(wh):
    rng = random.Random(0)
    snapshots = []
    for commit in range(6):
        # corrections of earlier candidates, several rows for one key in one commit (same created_at:
        # the smallest id wins), and re-offered events that are already stored
        events = [_verdict(f"c{rng.randrange(12)}", rng.randrange(2), f"理由 {commit}-{i}") for i in range(10)]
        snapshots.append(wh.append(events + events[:3], asset_key="verdicts").snapshot_id)
        assert _latest(wh, "verdicts") == _recomputed(wh, "verdicts")
    assert wh.count("verdicts") > wh.sql("SELECT count(*) AS n FROM verdicts_latest")["n"][0]
    view = wh.sql("SELECT sql FROM duckdb_views() WHERE view_name = 'verdicts_latest'")["sql"][0]
    assert "verdicts_current" in view and "row_number" not in view
    for s in snapshots[:-1]:  # time travel: the projection as it was
        assert _latest(wh, "verdicts", as_of=s) == _recomputed(wh, "verdicts", as_of=s)


def test_an_older_correction_does_not_replace_a_newer_row(wh):
    wh.append([HumanLabelRow(prompt="p", response="r", label=1, source="t", source_ref="a")])
    newest = wh.sql("SELECT * FROM human_labels_latest")
    # the same key with an earlier created_at (a late-arriving event): the projection keeps the newer one
    with wh.batch(run_id="late", asset_key="human_labels") as b:
        b.provenance = b.provenance.model_copy(update={"created_at": newest["created_at"][0].replace(year=2000)})
        b.append([HumanLabelRow(prompt="p", response="r", label=0, source="t", source_ref="a")])
    assert wh.count("human_labels") == 2
    assert wh.sql("SELECT label FROM human_labels_latest")["label"].to_list() == [1]
    assert _latest(wh, "human_labels") == _recomputed(wh, "human_labels")


def test_a_correction_with_the_same_timestamp_is_decided_by_the_smaller_id_across_commits(wh):
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rows = [_verdict("a", 0, f"理由 {i}") for i in range(6)]
    ids = sorted(rows, key=lambda r: r.event_id())
    for r in (ids[2], ids[4], ids[0], ids[5]):  # a smaller id replaces the stored row, a larger one does not
        with wh.batch(run_id=f"tie-{r.reason}", asset_key="verdicts") as b:
            b.provenance = b.provenance.model_copy(update={"created_at": when})
            b.append([r])
    assert wh.sql("SELECT id FROM verdicts_latest")["id"].to_list() == [ids[0].event_id()]
    assert _latest(wh, "verdicts") == _recomputed(wh, "verdicts")


def _append_as_before_projections(con, table: str, staged, index=None) -> tuple[int, None]:
    """The commit of the code before migration 13: id dedup over the id strings, no projection, no id index."""
    con.register("_staged", staged)
    try:
        new = con.execute(f"SELECT s.* FROM _staged s WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE t.id = s.id) "
                          "QUALIFY row_number() OVER (PARTITION BY s.id) = 1").fetch_arrow_table()
    finally:
        con.unregister("_staged")
    con.register("_new", new)
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _new")
    finally:
        con.unregister("_new")
    return new.num_rows, None


def test_a_warehouse_from_before_projections_gets_them_built_from_its_history(wh, monkeypatch):
    with monkeypatch.context() as old_code:  # the code before migration 13: no projections to keep
        old_code.setattr(store, "MIGRATIONS", MIGRATIONS[:12])
        old_code.setattr(store, "_append_new", _append_as_before_projections)
        wh.append([_verdict("a", 0), _verdict("b", 1)])
        wh.append([_verdict("a", 1, "改判")])
    before = _recomputed(wh, "verdicts")
    wh._migrated = False
    assert wh.migrate() == [m.version for m in MIGRATIONS[12:]]  # 13 and any later ones
    assert _latest(wh, "verdicts") == before and len(before) == 2
    wh.append([_verdict("b", 0, "改判")])  # and the new code keeps it from then on
    assert _latest(wh, "verdicts") == _recomputed(wh, "verdicts")


def test_projections_from_before_the_integer_key_columns_get_them_and_keep_answering_the_same(wh):
    wh.append([_verdict("a", 0), _verdict("b", 1)])
    wh.append([_verdict("a", 1, "改判")])
    con = open_connection(wh.config)
    try:  # the state migration 16 left: projections without key_hash and key_lo, views over all their columns
        for model in EVENT_MODELS:
            proj = projection_table(model.TABLE)
            # then, commits deleted the rows they superseded (migration 22 records them instead)
            con.execute(f"DELETE FROM {proj} WHERE rowid IN (SELECT rid FROM {model.TABLE}_superseded)")
            con.execute(f"DELETE FROM {model.TABLE}_superseded")
            con.execute(f"ALTER TABLE {proj} DROP COLUMN {KEY_HASH}")
            con.execute(f"ALTER TABLE {proj} DROP COLUMN {KEY_LO}")
            con.execute(f"CREATE OR REPLACE VIEW {model.TABLE}_latest AS SELECT * FROM {proj}")
        con.execute("DELETE FROM schema_migrations WHERE version IN (17, 19)")
    finally:
        con.close()
    before = _latest(wh, "verdicts")
    wh._migrated = False
    assert wh.migrate() == [17, 19]
    assert _latest(wh, "verdicts") == before == _recomputed(wh, "verdicts")
    columns = wh.sql("SELECT * FROM verdicts_latest").columns
    assert KEY_HASH not in columns and KEY_LO not in columns
    assert wh.sql(f"SELECT count(*) AS n FROM verdicts_current WHERE {KEY_HASH} IS NULL OR {KEY_LO} IS NULL")["n"][0] == 0
    wh.append([_verdict("b", 0, "改判"), _verdict("c", 1)])  # commits find superseded rows by the integer key
    assert _latest(wh, "verdicts") == _recomputed(wh, "verdicts") and len(_latest(wh, "verdicts")) == 3


class _Scratch(Event):
    TABLE: ClassVar[str] = "scratch"
    KEY_FIELDS: ClassVar[tuple[str, ...]] = ("k",)
    k: str


class _ScratchV2(_Scratch):
    extra: int | None = None


def test_migration_helpers_change_a_table_and_its_projection_together(wh):
    wh.migrate()
    con = open_connection(wh.config)
    try:
        _new_projected_table(_Scratch)(con)
        _add_projected_columns(_ScratchV2, ("extra",))(con)
        for name in ("scratch", "scratch_current", "scratch_latest"):
            cols = [r[0] for r in con.execute(f"DESCRIBE {name}").fetchall()]
            assert "extra" in cols and "k" in cols, name
    finally:
        con.close()


def test_maintenance_compacts_a_projection_and_keeps_it_right_at_lineage_snapshots(wh):
    rng = random.Random(1)
    snapshots = [wh.append([_verdict(f"c{rng.randrange(20)}", rng.randrange(2), f"{c}-{i}") for i in range(15)],
                           asset_key="verdicts").snapshot_id for c in range(8)]
    lineage = snapshots[3]
    wh.append([ModelRow(model_id="m", kind="reward", base="b", hyperparams={}, metrics={}, artifact_path="-",
                        input_snapshots={"verdicts": lineage})], asset_key="models")
    expected = _recomputed(wh, "verdicts", as_of=lineage)
    maintain(wh, MaintenancePolicy(snapshot_retention=dt.timedelta(0), file_grace=dt.timedelta(0)))
    files = wh.sql("SELECT count(*) AS n, count(delete_file) AS deletes "
                   "FROM ducklake_list_files('lake', 'verdicts_current')").row(0, named=True)
    assert files == {"n": 1, "deletes": 0}
    assert _latest(wh, "verdicts") == _recomputed(wh, "verdicts")
    assert _latest(wh, "verdicts", as_of=lineage) == expected


def test_a_warehouse_from_before_the_id_index_gets_it_from_its_rows_and_still_drops_stored_events(wh):
    events = [_verdict("a", 0), _verdict("b", 1)]
    wh.append(events)
    con = open_connection(wh.config)
    try:  # the state migration 19 left: no <table>_ids
        for model in EVENT_MODELS:
            con.execute(f"DROP TABLE {id_index_table(model.TABLE)}")
        con.execute("DELETE FROM schema_migrations WHERE version = 20")
    finally:
        con.close()
    wh._migrated = False
    assert wh.migrate() == [20]
    assert wh.sql(f"SELECT count(*) AS n FROM {id_index_table('verdicts')}")["n"][0] == 2
    again = wh.append(events + [_verdict("c", 1)])
    assert again.tables["verdicts"].added == 1 and wh.count("verdicts") == 3
    assert _latest(wh, "verdicts") == _recomputed(wh, "verdicts")


def test_a_correction_records_the_row_it_supersedes_and_maintenance_deletes_it(wh):
    wh.append([_verdict("a", 0), _verdict("b", 1)])
    old = wh.sql("SELECT rowid AS rid FROM verdicts_current WHERE candidate_id = 'a'")["rid"][0]
    corrected = wh.append([_verdict("a", 1, "改判")]).snapshot_id
    # no DELETE at commit time: the old row stays in the projection, recorded as superseded
    assert wh.count("verdicts_current") == 3
    assert wh.sql("SELECT rid FROM verdicts_superseded")["rid"].to_list() == [old]
    assert _latest(wh, "verdicts") == _recomputed(wh, "verdicts") and len(_latest(wh, "verdicts")) == 2
    wh.append([_verdict("a", 0, "再改判"), _verdict("c", 1)])  # a superseded row is never superseded again
    assert wh.count("verdicts_superseded") == 2 and _latest(wh, "verdicts") == _recomputed(wh, "verdicts")
    report = maintain(wh, MaintenancePolicy(snapshot_retention=dt.timedelta(days=1)))
    assert report.folded_rows == {"verdicts": 2}
    assert wh.count("verdicts_current") == 3 and wh.count("verdicts_superseded") == 0
    assert _latest(wh, "verdicts") == _recomputed(wh, "verdicts")
    assert _latest(wh, "verdicts", as_of=corrected) == _recomputed(wh, "verdicts", as_of=corrected)
    assert maintain(wh).folded_rows == {}  # nothing left to fold


def test_a_warehouse_from_before_superseded_rows_gets_their_tables_and_keeps_answering_the_same(wh):
    wh.append([_verdict("a", 0), _verdict("b", 1)])
    con = open_connection(wh.config)
    try:  # the state migration 21 left: commits deleted superseded rows, views read the whole projection
        for model in EVENT_MODELS:
            con.execute(f"DROP TABLE {model.TABLE}_superseded")
            con.execute(f"CREATE OR REPLACE VIEW {model.TABLE}_latest AS SELECT * EXCLUDE ({KEY_HASH}, {KEY_LO}) "
                        f"FROM {projection_table(model.TABLE)}")
        con.execute("DELETE FROM schema_migrations WHERE version = 22")
    finally:
        con.close()
    before = _latest(wh, "verdicts")
    wh._migrated = False
    assert wh.migrate() == [22]
    assert _latest(wh, "verdicts") == before == _recomputed(wh, "verdicts")
    wh.append([_verdict("a", 1, "改判")])
    assert wh.count("verdicts_superseded") == 1 and _latest(wh, "verdicts") == _recomputed(wh, "verdicts")

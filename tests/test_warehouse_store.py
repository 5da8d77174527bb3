"""The event store: idempotent appends, one snapshot per batch, time travel, change feed, latest views."""

import datetime as dt

import pytest

from warehouse.migrations import MIGRATIONS
from warehouse.schema import EVENT_MODELS, HumanLabelRow, PromptRow, table_columns


def _prompts(n, batch="b"):
    return [PromptRow(text=f"给朋友的生日祝福 {i}", source="test", source_ref=f"t.txt:line {i}", batch=batch)
            for i in range(n)]


def test_appending_the_same_events_twice_stores_them_once(wh):
    first = wh.append(_prompts(5), run_id="r1", asset_key="prompts")
    again = wh.append(_prompts(5) + _prompts(5), run_id="r2", asset_key="prompts")
    assert first.tables["prompts"].added == 5
    assert again.tables["prompts"].added == 0
    assert wh.count("prompts") == 5


def test_duplicates_within_one_batch_are_stored_once(wh):
    res = wh.append(_prompts(3) * 3)
    assert res.tables["prompts"].added == 3 and wh.count("prompts") == 3


def test_same_prompt_from_another_source_is_the_same_event(wh):
    wh.append(_prompts(1, batch="a"))
    res = wh.append(_prompts(1, batch="b"))
    assert res.tables["prompts"].added == 0


def test_each_batch_is_one_snapshot_naming_run_and_asset(wh):
    wh.migrate()
    before = wh.current_snapshot()
    with wh.batch(run_id="run-42", asset_key="prompts", partition_key="builtin") as b:
        b.append(_prompts(3))
        b.append([HumanLabelRow(prompt="p", response="r", label=1, source="t", source_ref="x")])
    assert wh.current_snapshot() == before + 1 == b.result.snapshot_id
    snap = wh.snapshots().filter(snapshot_id=b.result.snapshot_id).row(0, named=True)
    assert snap["run_id"] == "run-42" and snap["asset_key"] == "prompts" and snap["partition_key"] == "builtin"
    assert snap["rows_added"] == 4
    assert "prompts[builtin]" in snap["commit_message"]


def test_a_materialization_that_adds_nothing_is_still_a_snapshot_and_keeps_its_data_version(wh):
    first = wh.append(_prompts(2), asset_key="prompts", partition_key="p")
    second = wh.append(_prompts(2), asset_key="prompts", partition_key="p")
    assert second.snapshot_id == first.snapshot_id + 1
    assert second.data_version == first.data_version == f"snapshot-{first.snapshot_id}"
    third = wh.append(_prompts(3), asset_key="prompts", partition_key="p")
    assert third.data_version == f"snapshot-{third.snapshot_id}"


def test_nothing_is_written_when_the_batch_body_raises(wh):
    wh.migrate()
    before = wh.current_snapshot()
    with pytest.raises(RuntimeError):
        with wh.batch(run_id="r", asset_key="prompts") as b:
            b.append(_prompts(2))
            raise RuntimeError("boom")
    assert wh.current_snapshot() == before and wh.count("prompts") == 0


def test_time_travel_reads_a_table_as_of_an_earlier_snapshot(wh):
    s1 = wh.append(_prompts(2)).snapshot_id
    wh.append(_prompts(5))
    assert wh.at_version("prompts", s1).height == 2
    assert wh.sql("SELECT count(*) AS n FROM prompts", as_of=s1)["n"][0] == 2
    assert wh.count("prompts") == 5


def test_change_feed_lists_inserts_since_a_snapshot(wh):
    s1 = wh.append(_prompts(2)).snapshot_id
    s2 = wh.append(_prompts(4)).snapshot_id
    feed = wh.changes("prompts", s1 + 1)
    assert feed.height == 2 and set(feed["change_type"]) == {"insert"}
    assert set(feed["snapshot_id"]) == {s2}
    assert wh.changes("prompts", s2 + 1).height == 0


def test_a_correction_is_a_new_row_and_latest_view_shows_it(wh):
    wh.append([HumanLabelRow(prompt="中秋祝福", response="月圆人团圆", label=0, source="t", source_ref="a")])
    wh.append([HumanLabelRow(prompt="中秋祝福", response="月圆人团圆", label=1, source="t", source_ref="a")])
    assert wh.count("human_labels") == 2
    latest = wh.sql("SELECT label FROM human_labels_latest")
    assert latest["label"].to_list() == [1]


def test_migrations_are_recorded_and_rerunnable(wh):
    assert wh.migrate() == [m.version for m in MIGRATIONS]
    assert wh.migrate() == []
    done = wh.sql("SELECT version FROM schema_migrations ORDER BY version")["version"].to_list()
    assert done == [m.version for m in MIGRATIONS]


def migration_applied_meanwhile_by_another_writer(wh) -> None:
    """Two writers find migration 99 pending at once; the second's transaction commits inside the
    first's. The first's commit must fail and its retry skip the migration, although the migration
    only inserts rows (DuckLake lets concurrent inserts commit). Also the remote-catalog test's check."""
    from warehouse.connection import open_connection, with_retries
    from warehouse.migrations import Migration, apply_once

    wh.migrate()
    first, second = open_connection(wh.config), open_connection(wh.config)
    second.execute("CREATE TABLE IF NOT EXISTS seen (who VARCHAR)")
    plain = Migration(99, "a data-only migration", lambda con: con.execute("INSERT INTO seen VALUES ('x')"))

    def racing(con):
        con.execute("INSERT INTO seen VALUES ('x')")
        assert apply_once(second, plain)  # the other writer applies and commits 99 meanwhile

    try:
        assert with_retries(lambda: apply_once(first, Migration(99, plain.name, racing))) is False
    finally:
        first.close(), second.close()
    assert wh.sql("SELECT count(*) AS n FROM schema_migrations WHERE version = 99")["n"][0] == 1
    assert wh.sql("SELECT count(*) AS n FROM seen")["n"][0] == 1


def test_a_migration_another_writer_applies_meanwhile_is_applied_once(wh):
    migration_applied_meanwhile_by_another_writer(wh)  # on SQLite the catalog's own lock makes the conflict


def test_every_table_matches_its_row_model(wh):
    wh.migrate()
    for model in EVENT_MODELS:
        cols = wh.sql(f"DESCRIBE {model.TABLE}")["column_name"].to_list()
        assert cols == [c for c, _ in table_columns(model)], model.TABLE
        assert wh.sql(f"SELECT count(*) AS n FROM {model.TABLE}_latest")["n"][0] == 0


def test_provenance_columns_are_filled(wh):
    with wh.batch(run_id="run-7", asset_key="prompts", partition_key="b", code_version="3") as b:
        b.append(_prompts(1))
    row = wh.sql("SELECT run_id, asset_key, partition_key, code_version, created_at FROM prompts").row(0, named=True)
    assert row["run_id"] == "run-7" and row["asset_key"] == "prompts" and row["code_version"] == "3"
    assert row["created_at"] is not None


def test_a_row_carries_the_same_id_and_key_as_the_event_with_a_provenance_or_its_dump():
    from warehouse.schema import Event, PromptRow, Provenance, VerdictRow

    prov = Provenance(run_id="r", asset_key="a", created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    events: list[Event] = [PromptRow(text="春节祝福", source="builtin", source_ref="f:1", batch="b"),  # ID_FIELDS
                           VerdictRow(candidate_id="c", stage="judge", label=1, reason="好", agent_version="v")]  # whole content
    for e in events:
        for p in (prov, prov.model_dump()):
            row = e.row(p)
            assert (row["id"], row["key"], row["run_id"]) == (e.event_id(), e.event_key(), "r")


def test_content_ids_never_change_between_versions():
    """Ids decide what a re-run stores: a faster encoder must hash the same canonical JSON (pinned from
    ``json.dumps(..., ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)``)."""
    from warehouse.ids import canonical_json, content_id

    value = {"candidate_id": "c", "stage": "judge", "label": 1, "reason": "好", "score": 0.25,
             "meta": {"b": [1, None], "a": "春"}}
    assert content_id("verdicts", value) == "a03f5a72beeffca2b09c3b3f"
    assert canonical_json(["t", dt.datetime(2026, 1, 1, tzinfo=dt.UTC), 1e16]) == '["t","2026-01-01 00:00:00+00:00",1e+16]'

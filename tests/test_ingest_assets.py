"""Prompt and seed-data assets through dg.materialize: metadata, idempotence, quarantine, failures."""

import dagster as dg
import pytest

from assets.ingest import human_labels, prompts, seed_preference_pairs, seed_sft_examples
from assets.partitions import prompt_batches
from resources import DatasetsResource, WarehouseResource
from resources.datasets import inbox_partition_key
from warehouse import Warehouse, WarehouseConfig

ALL = [prompts, seed_sft_examples, seed_preference_pairs, human_labels]


def _materialize(instance, selection, resources, partition=None, raise_on_error=True):
    return dg.materialize(ALL, selection=selection, instance=instance, resources=resources,
                          partition_key=partition, raise_on_error=raise_on_error)


def _mat(result, key):
    (m,) = result.asset_materializations_for_node(key)
    return m


@pytest.fixture
def setup(zhufu_home, tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    resources = {"warehouse": WarehouseResource(), "datasets": DatasetsResource(inbox_dir=str(inbox))}
    return instance, resources, inbox, Warehouse(WarehouseConfig.embedded(zhufu_home))


def test_builtin_prompts_materialize_with_metadata_and_rematerialize_adds_nothing(setup):
    instance, resources, _, wh = setup
    instance.add_dynamic_partitions(prompt_batches.name, ["builtin"])
    first = _mat(_materialize(instance, [prompts], resources, "builtin"), "prompts")
    assert first.metadata["rows_added"].value >= 60
    assert first.metadata["rows_total"].value == first.metadata["rows_added"].value
    assert "|" in first.metadata["preview"].value
    assert first.metadata["quarantined"].value == 0
    second = _mat(_materialize(instance, [prompts], resources, "builtin"), "prompts")
    assert second.metadata["rows_added"].value == 0
    assert second.tags["dagster/data_version"] == first.tags["dagster/data_version"]
    assert second.metadata["snapshot_id"].value == first.metadata["snapshot_id"].value + 1
    assert wh.count("prompts") == first.metadata["rows_added"].value
    snaps = wh.snapshots().filter(asset_key="prompts")
    assert snaps.height == 2 and set(snaps["partition_key"]) == {"builtin"}


def test_an_inbox_batch_counts_its_quarantined_lines(setup):
    instance, resources, inbox, wh = setup
    (inbox / "week 1.txt").write_bytes("毕业祝福\n\n同学聚会祝福\n毕业祝福\n".encode() + b"\xff\n")
    key = inbox_partition_key("week 1.txt")
    instance.add_dynamic_partitions(prompt_batches.name, [key])
    m = _mat(_materialize(instance, [prompts], resources, key), "prompts")
    assert m.metadata["rows_added"].value == 2
    assert m.metadata["quarantined"].value == 3
    assert m.metadata["quarantine_rows_added"].value == 3
    reasons = wh.sql("SELECT location, reason FROM quarantine ORDER BY location").rows()
    assert reasons == [("line 2", "empty prompt"), ("line 4", "duplicate of line 1"),
                       ("line 5", "invalid UTF-8 at byte 0 of the line")]


def test_an_unreadable_batch_fails_the_run_naming_the_file(setup):
    instance, resources, inbox, wh = setup
    (inbox / "broken.parquet").write_bytes(b"this is not parquet")
    key = "inbox-broken.parquet"
    instance.add_dynamic_partitions(prompt_batches.name, [key])
    result = _materialize(instance, [prompts], resources, key, raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "broken.parquet as Parquet" in failure.step_failure_data.user_failure_data.description
    assert wh.count("prompts") == 0


def test_seed_assets_from_the_builtin_sample(setup):
    instance, resources, _, wh = setup
    result = _materialize(instance, [seed_sft_examples, seed_preference_pairs, human_labels], resources)
    assert _mat(result, "human_labels").metadata["rows_added"].value >= 48
    assert wh.sql("SELECT count(DISTINCT label) AS n FROM human_labels")["n"][0] == 2
    assert wh.count("seed_sft_examples") >= 36 and wh.count("seed_preference_pairs") >= 10


def test_seed_assets_read_the_paper_data_when_configured(setup, paper_data):
    instance, resources, _, wh = setup
    resources = {**resources, "datasets": DatasetsResource(seed_data_dir=str(paper_data))}
    result = _materialize(instance, [human_labels, seed_preference_pairs], resources)
    labels = _mat(result, "human_labels")
    assert labels.metadata["quarantined"].value == 3  # the paper's eval file repeats 3 items
    sources = dict(wh.sql("SELECT source, count(*) FROM human_labels GROUP BY source").rows())
    assert sources["igniting-eval-dev"] == 997
    pairs = dict(wh.sql("SELECT source, count(*) FROM seed_preference_pairs GROUP BY source").rows())
    assert pairs["igniting-pairs-dev"] > 700 and pairs["igniting-pairs-train"] > 6000

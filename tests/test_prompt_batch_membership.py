"""A prompt is stored once, by its text, but belongs to every batch that contains it: a batch that
repeats a prompt first recorded under another batch gets candidates for it too, without a second
prompt row and without doubled candidates, and retrievals for it at the current exemplar index."""

import dagster as dg
import pytest

from assets import ingest, path_a
from assets.partitions import prompt_batches
from resources import DatasetsResource, EmbedderResource, LLMResource, VectorStoreResource, WarehouseResource
from resources.datasets import inbox_partition_key
from warehouse.ids import content_id
from warehouse.schema import SeedSftRow

ASSETS = [ingest.prompts, ingest.seed_sft_examples, ingest.seed_preference_pairs, path_a.candidates,
          path_a.exemplar_index, path_a.retrievals]


@pytest.fixture
def env(zhufu_home, tiny_model_dir, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "week1.txt").write_text("毕业祝福\n同学聚会祝福\n", encoding="utf-8")
    (inbox / "week2.txt").write_text("同学聚会祝福\n中秋祝福\n", encoding="utf-8")  # repeats one of week 1
    warehouse = WarehouseResource()
    resources = {"warehouse": warehouse, "datasets": DatasetsResource(inbox_dir=str(inbox)),
                 "llm": LLMResource(warehouse=warehouse, model=str(tiny_model_dir), batch_size=8),
                 "embedder": EmbedderResource(), "vectors": VectorStoreResource()}
    instance = dg.DagsterInstance.ephemeral()
    keys = [inbox_partition_key("week1.txt"), inbox_partition_key("week2.txt")]
    instance.add_dynamic_partitions(prompt_batches.name, keys)
    return resources, instance, warehouse.get(), keys


def _run(env, asset, batch=None, **config):
    resources, instance, _, _ = env
    res = dg.materialize(ASSETS, selection=[asset], partition_key=batch, instance=instance, resources=resources,
                         run_config={"ops": {asset.key.path[-1]: {"config": config}}} if config else None)
    return res.asset_materializations_for_node(asset.key.path[-1])[0].metadata


def _pid(text):
    return content_id("prompts", "id", text)


def test_a_batch_gets_candidates_for_a_prompt_first_recorded_under_another_batch(env):
    _, _, wh, (week1, week2) = env
    _run(env, ingest.prompts, week1)
    second = _run(env, ingest.prompts, week2)
    assert second["rows_added"].value == 1 and second["batch_prompts"].value == 2
    assert wh.count("prompts") == 3  # the repeated prompt is stored once, under the batch that first brought it
    assert wh.sql("SELECT batch FROM prompts WHERE text = '同学聚会祝福'")["batch"].to_list() == [week1]
    members = wh.sql("SELECT batch, text FROM batch_prompts ORDER BY batch, text").rows()
    assert members == sorted([(week1, "毕业祝福"), (week1, "同学聚会祝福"), (week2, "同学聚会祝福"), (week2, "中秋祝福")])

    cfg = {"k": 1, "max_new_tokens": 8}
    _run(env, path_a.candidates, week1, **cfg)
    assert wh.count("candidates") == 2
    # the same policy and seed: the repeated prompt is covered by the candidate already stored (its model
    # call answered from the call log), not by a second row
    same = _run(env, path_a.candidates, week2, **cfg)
    assert same["prompts"].value == 2 and same["llm_model_calls"].value == 1 and same["rows_added"].value == 1
    per_prompt = dict(wh.sql("SELECT prompt_id, count(*) FROM candidates GROUP BY ALL").rows())
    assert per_prompt == {_pid("毕业祝福"): 1, _pid("同学聚会祝福"): 1, _pid("中秋祝福"): 1}

    # another sampling seed (as another policy would): new candidates for both of week 2's prompts
    c2 = _run(env, path_a.candidates, week2, seed=1, **cfg)
    assert c2["prompts"].value == 2 and c2["rows_added"].value == 2
    in_week2 = set(wh.sql("SELECT prompt_id FROM candidates WHERE partition_key = ? AND seed = 1",
                          [week2])["prompt_id"])
    assert in_week2 == {_pid("同学聚会祝福"), _pid("中秋祝福")}  # before: only the prompt new in week 2

    again = _run(env, path_a.candidates, week2, seed=1, **cfg)
    assert again["rows_added"].value == 0 and again["llm_model_calls"].value == 0
    _run(env, ingest.prompts, week2)  # re-ingesting adds no prompt and no membership
    assert wh.count("prompts") == 3 and wh.count("prompt_memberships") == 4


def test_a_batch_gets_retrievals_for_a_prompt_first_recorded_under_another_batch(env):
    _, _, wh, (week1, week2) = env
    _run(env, ingest.prompts, week1)
    _run(env, ingest.prompts, week2)
    for seed in (ingest.seed_sft_examples, ingest.seed_preference_pairs, path_a.exemplar_index):
        _run(env, seed)
    cfg = {"k": 1, "max_new_tokens": 8}
    _run(env, path_a.candidates, week1, **cfg)
    _run(env, path_a.candidates, week2, seed=1, **cfg)  # new candidates in week 2 for both of its prompts
    first = _run(env, path_a.retrievals, week1)
    v1 = first["lance_version"].value
    assert wh.sql("SELECT count(*) FROM retrievals_latest WHERE index_version = ?", [str(v1)]).item() == 2

    # the exemplar index changes (a new exemplar); week 2 is then retrieved at the new version
    wh.append([SeedSftRow(prompt="新年祝福", response="新年快乐，万事如意！", source="test", source_ref="t:1")],
              asset_key="seed_sft_examples")
    _run(env, path_a.exemplar_index)
    v2 = path_a.current_index_version(WarehouseResource())
    assert v2 != v1
    second = _run(env, path_a.retrievals, week2)
    assert second["lance_version"].value == v2 and second["rows_added"].value == 2
    at_v2 = set(wh.sql("SELECT prompt_id FROM retrievals_latest WHERE index_version = ?", [str(v2)])["prompt_id"])
    assert at_v2 == {_pid("同学聚会祝福"), _pid("中秋祝福")}  # before: only the prompt new in week 2

    # the agents judge every week-2 candidate, the repeated prompt's included, with exemplars
    items, df = path_a._items(WarehouseResource(), week2)
    assert set(df["prompt_id"]) == {_pid("同学聚会祝福"), _pid("中秋祝福")}
    assert items and all(it.exemplars for it in items)

"""A prompt in an evaluation batch never trains a policy, even when a train batch brought it first.

The paper's GRPO train and test files share prompts. A prompt is stored once, under the batch that
first brought it (``prompts.batch``); when the train batch is ingested first, that is the train
batch, so the evaluation split reads batch membership (``batch_prompts``) instead."""

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from assets import ingest
from assets.partitions import prompt_batches
from assets.training import EVAL_BATCHES, policy_prompts
from resources import DatasetsResource, WarehouseResource

TRAIN, TEST = "igniting-grpo-train", "igniting-grpo-test"
SHARED = "给老师的教师节祝福"


def _parquet(path, texts):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"prompt": texts}), path)


def test_a_test_prompt_first_ingested_in_the_train_batch_never_trains_a_policy(zhufu_home, tmp_path):
    assert TEST in EVAL_BATCHES and TRAIN not in EVAL_BATCHES
    seed = tmp_path / "igniting"
    _parquet(seed / "grpo" / "train.parquet", [SHARED] + [f"训练题{i}" for i in range(20)])
    _parquet(seed / "grpo" / "test.parquet", [SHARED] + [f"测试题{i}" for i in range(5)])
    warehouse = WarehouseResource()
    resources = {"warehouse": warehouse,
                 "datasets": DatasetsResource(inbox_dir=str(tmp_path / "inbox"), seed_data_dir=str(seed))}
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(prompt_batches.name, [TRAIN, TEST])
    for batch in (TRAIN, TEST):  # the train batch first: the shared prompt is recorded under it
        dg.materialize([ingest.prompts], partition_key=batch, instance=instance, resources=resources)
    wh = warehouse.get()
    assert wh.sql("SELECT batch FROM prompts WHERE text = ?", [SHARED])["batch"].to_list() == [TRAIN]
    assert wh.count("prompts") == 26

    # no hash share: only batch membership decides (the shared prompt is not held out by chance)
    train = {r["text"] for r in policy_prompts(warehouse, 0.0, False)}
    held = {r["text"] for r in policy_prompts(warehouse, 0.0, True)}
    assert SHARED not in train and SHARED in held
    assert held == {SHARED} | {f"测试题{i}" for i in range(5)}
    assert train == {f"训练题{i}" for i in range(20)}

    # with the usual hash share too (grpo_policy's training prompts and policy_evaluation's held-out
    # prompts both come from policy_prompts): disjoint, every test prompt held out, at a snapshot as well
    snap = wh.current_snapshot()
    train = {r["text"] for r in policy_prompts(warehouse, 0.1, False, snap)}
    held_rows = policy_prompts(warehouse, 0.1, True, snap)
    held = {r["text"] for r in held_rows}
    assert not train & held and SHARED in held and {f"测试题{i}" for i in range(5)} <= held
    assert train | held == set(wh.sql("SELECT text FROM prompts")["text"])
    assert all(set(r) == {"id", "text", "batch"} for r in held_rows)

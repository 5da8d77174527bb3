"""The trained judge through Dagster on a tiny real model: it trains, registers and is the judge
Path B and the calibration use; adversarial negatives enter the next judge's training data; and
evaluation data never trains a judge, a reward model or a policy."""

import dagster as dg
import pytest

from agents import judging
from assets import agreement, ingest, path_a, path_b, policy_eval, training
from assets import judging as judging_assets
from assets.training import _reward_data, policy_prompts
from resources import (
    DatasetsResource,
    EmbedderResource,
    LLMResource,
    TrainingResource,
    VectorStoreResource,
    WarehouseResource,
)
from training import artifacts
from warehouse.registry import latest_model
from warehouse.schema import AdversarialExampleRow, HumanLabelRow, PromptRow, SeedPairRow

ASSETS = dg.load_assets_from_modules([ingest, judging_assets, path_a, path_b, agreement, training, policy_eval])
JUDGE = {"max_steps": 1, "batch_size": 4, "max_pairs": 2, "max_eval_labels": 4, "principle_ablations": False}


def _resources(tmp_path, tiny_model_dir):
    warehouse = WarehouseResource()
    return warehouse, {"warehouse": warehouse, "datasets": DatasetsResource(inbox_dir=str(tmp_path / "inbox")),
                       "llm": LLMResource(warehouse=warehouse, model=str(tiny_model_dir), batch_size=8),
                       "embedder": EmbedderResource(), "vectors": VectorStoreResource(),
                       "training": TrainingResource(base_model=str(tiny_model_dir)),
                       "pipes_client": dg.PipesSubprocessClient()}


def _run(resources, keys, config=None):
    return dg.materialize(ASSETS, selection=[dg.AssetKey(k) for k in keys], resources=resources,
                          run_config={"ops": {k: {"config": v} for k, v in (config or {}).items()}})


def test_judge_model_trains_registers_and_is_the_judge_path_b_and_calibration_use(zhufu_home, tmp_path,
                                                                                 tiny_model_dir):
    warehouse, resources = _resources(tmp_path, tiny_model_dir)
    _run(resources, ["seed_sft_examples", "seed_preference_pairs", "human_labels"])
    res = _run(resources, ["judge_model"], config={"judge_model": JUDGE})
    meta = res.asset_materializations_for_node("judge_model")[0].metadata
    wh = warehouse.get()
    judge = latest_model(wh, "judge")
    assert judge and judge["model_id"] == meta["model_id"].value and artifacts.is_complete(judge["artifact_path"])
    assert "auc" in judge["metrics"]["eval"] and "length_auc" in judge["metrics"]["eval"]
    assert meta["training_rows_by_source"].value["human_labels"] > 0

    _run(resources, ["judge_principles"], config={"judge_principles": {
        "iterations": 1, "generated_per_iteration": 1, "real_per_iteration": 2, "heldout_size": 4,
        "calibration_size": 4, "retrain_judge": False}})
    used = set(wh.sql("SELECT judge_model FROM judge_principles_latest")["judge_model"])
    assert used == {judge["model_id"]}
    assert wh.sql("SELECT count(*) FROM adversarial_examples").item() >= 0  # recorded with their `fooled` flag

    _run(resources, ["judge_calibration"], config={"judge_calibration": {"max_items": 6, "path_a": False}})
    cal = wh.sql("SELECT evaluator, model, threshold, n FROM calibrations_latest").rows(named=True)
    assert [c["evaluator"] for c in cal] == ["path_b/judge"]
    assert cal[0]["model"] == judge["model_id"] and cal[0]["n"] == 6


def test_an_adversarial_negative_from_iteration_k_is_in_the_next_judges_training_data(wh, zhufu_home):
    warehouse = WarehouseResource()
    wh.append([HumanLabelRow(prompt=f"需求{i}", response=f"祝福{i}", label=i % 2, source="builtin",
                             source_ref=f"t:{i}") for i in range(20)], asset_key="human_labels")
    wh.append([AdversarialExampleRow(loop_id="L", iteration=1, prompt="需求", greeting="骗过裁判的祝福",
                                     flaws="套话", detector_model="judge-0", score=0.9, threshold=0.5, fooled=True),
               AdversarialExampleRow(loop_id="L", iteration=1, prompt="需求", greeting="被识破的祝福",
                                     flaws="套话", detector_model="judge-0", score=0.1, threshold=0.5, fooled=False)],
              asset_key="judge_principles/checkpoint")
    rows = judging_assets.judge_training_rows(warehouse)
    adv = [r for r in rows if r["source"] == "adversarial"]
    assert [(r["response"], r["label"]) for r in adv] == [("骗过裁判的祝福", 0)]  # only what fooled the judge
    assert all(isinstance(r["principles"], list) for r in rows)
    assert len({tuple(r["principles"]) for r in rows}) > 1  # the principle text varies across rows


def test_evaluation_data_never_trains_a_judge_a_reward_model_or_a_policy(wh, zhufu_home):
    warehouse = WarehouseResource()
    wh.append([HumanLabelRow(prompt="评测需求", response=f"评测祝福{i}", label=i % 2, source="igniting-eval-dev",
                             source_ref=f"e:{i}") for i in range(10)]
              + [HumanLabelRow(prompt=f"需求{i}", response=f"祝福{i}", label=i % 2, source="builtin",
                               source_ref=f"b:{i}") for i in range(30)], asset_key="human_labels")
    wh.append([SeedPairRow(prompt="p", chosen=f"好{i}", rejected=f"差{i}", source="igniting-pairs-dev",
                           source_ref=f"d:{i}") for i in range(10)]
              + [SeedPairRow(prompt="p", chosen=f"训练好{i}", rejected=f"训练差{i}", source="igniting-pairs-train",
                             source_ref=f"t:{i}") for i in range(40)], asset_key="seed_preference_pairs")
    wh.append([PromptRow(text=f"测试题{i}", source="igniting-grpo-test", source_ref=f"x:{i}", batch="igniting-grpo-test")
               for i in range(10)] + [PromptRow(text=f"训练题{i}", source="igniting-grpo-train", source_ref=f"y:{i}",
                                               batch="igniting-grpo-train") for i in range(40)], asset_key="prompts")
    banned = judging_assets.evaluation_texts(warehouse)
    _, _, evaluation = judging_assets.labelled_splits(warehouse)
    assert {e.response for e in evaluation} <= banned and "评测祝福0" in banned and "好0" in banned

    judge_rows = judging_assets.judge_training_rows(warehouse)
    assert judge_rows and not {r["response"] for r in judge_rows} & banned

    class Cfg:
        data, heldout_fraction, max_eval_labels = "seed", 0.1, 0
    snap = wh.current_snapshot()
    halves = [_reward_data(warehouse, snap, Cfg, h) for h in (0, 1)]
    trained = [{(r["chosen"], r["rejected"]) for r in d["train"]} for d in halves]
    assert trained[0] and trained[1] and not trained[0] & trained[1]  # the evaluator's pairs are disjoint
    assert not {x for t in trained for pair in t for x in pair} & banned

    train_prompts = {r["text"] for r in policy_prompts(warehouse, 0.1, False)}
    held = {r["text"] for r in policy_prompts(warehouse, 0.1, True)}
    assert not train_prompts & held and {f"测试题{i}" for i in range(10)} <= held
    assert judging.FOREIGN_PRINCIPLES  # the ablation has something to read


def test_a_judge_initialised_from_the_sft_model_records_it_as_its_base(zhufu_home, tmp_path, tiny_model_dir):
    warehouse, resources = _resources(tmp_path, tiny_model_dir)
    _run(resources, ["seed_sft_examples", "seed_preference_pairs", "human_labels"])
    with pytest.raises(dg.Failure, match="materialize sft_model"):
        _run(resources, ["judge_model"], config={"judge_model": {**JUDGE, "init_from": "sft"}})
    _run(resources, ["sft_model"], config={"sft_model": {"max_steps": 1, "batch_size": 2, "max_examples": 4}})
    sft = latest_model(warehouse.get(), "sft")
    res = _run(resources, ["judge_model"], config={"judge_model": {**JUDGE, "init_from": "sft"}})
    judge = latest_model(warehouse.get(), "judge")
    assert judge["base"] == sft["model_id"] == res.asset_materializations_for_node("judge_model")[0].metadata["base"].value
    assert judge["hyperparams"]["init_from"] == "sft"

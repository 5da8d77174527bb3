"""Path B on real models: one short adversarial run on the embedded SmolLM2, its agreement table
and learning curve, and judge scores on candidates (tiny model, for speed)."""

import dagster as dg

from assets import agreement, ingest, judging, path_a, path_b
from assets.partitions import prompt_batches
from resources import (
    DatasetsResource,
    EmbedderResource,
    LLMResource,
    TrainingResource,
    VectorStoreResource,
    WarehouseResource,
)

ASSETS = dg.load_assets_from_modules([ingest, judging, path_a, path_b, agreement])


def _resources(model, tmp_path):
    warehouse = WarehouseResource()
    return {"warehouse": warehouse, "datasets": DatasetsResource(inbox_dir=str(tmp_path / "inbox")),
            "llm": LLMResource(warehouse=warehouse, model=str(model), batch_size=8),
            "embedder": EmbedderResource(), "vectors": VectorStoreResource(),
            "training": TrainingResource(base_model=str(model)), "pipes_client": dg.PipesSubprocessClient()}


def _run(resources, instance, keys, partition=None, config=None):
    return dg.materialize(ASSETS, selection=[dg.AssetKey(k) for k in keys], resources=resources, instance=instance,
                          partition_key=partition, run_config={"ops": {k: {"config": v} for k, v in (config or {}).items()}})


def test_one_real_adversarial_run_on_the_embedded_model(zhufu_home, tmp_path, embedded_model_dir):
    resources = _resources(embedded_model_dir, tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    _run(resources, instance, ["human_labels"])
    res = _run(resources, instance, ["judge_principles", "judge_agreement"], config={
        "judge_principles": {"iterations": 1, "generated_per_iteration": 2, "real_per_iteration": 2, "heldout_size": 3,
                             "calibration_size": 4, "retrain_judge": False},
        "judge_agreement": {"sample_size": 3}})
    assert res.success
    wh = resources["warehouse"].get()
    its = wh.sql("SELECT iteration, len(s_d) AS n, heldout_accuracy, heldout_auc, threshold FROM judge_principles_latest "
                 "ORDER BY iteration")
    assert its["iteration"].to_list() == [0, 1] and all(1 <= n <= 10 for n in its["n"])
    assert its["heldout_accuracy"].null_count() == 0 and its["threshold"].null_count() == 0
    rows = wh.sql("SELECT variant, subset, n + parse_failures AS items FROM agreement_metrics WHERE evaluator = 'path_b'")
    assert set(rows["variant"]) == {"iteration-0", "iteration-1"}
    assert set(rows.filter(rows["subset"] == "all")["items"]) == {3}
    meta = res.asset_materializations_for_node("judge_agreement")[0].metadata
    assert meta["learning_curve"].value.startswith("![learning curve](data:image/png;base64,")
    with open(meta["learning_curve_png"].path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_judge_scores_use_the_chosen_principles(zhufu_home, tmp_path, tiny_model_dir):
    resources = _resources(tiny_model_dir, tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(prompt_batches.name, ["builtin"])
    _run(resources, instance, ["human_labels", "seed_sft_examples", "seed_preference_pairs", "exemplar_index"])
    _run(resources, instance, ["judge_principles"], config={"judge_principles": {
        "iterations": 0, "heldout_size": 2, "calibration_size": 4, "retrain_judge": False}})
    _run(resources, instance, ["prompts", "candidates", "judge_scores"], "builtin",
         config={"candidates": {"max_prompts": 2, "k": 2, "max_new_tokens": 16}})
    wh = resources["warehouse"].get()
    scores = wh.sql("SELECT s.label, s.score, s.principles_id, p.iteration FROM judge_scores s "
                    "JOIN judge_principles p ON p.id = s.principles_id")
    assert scores.height == wh.count("candidates") > 0
    assert set(scores["iteration"]) == {0}
    assert scores["label"].null_count() == 0 and 0 <= scores["score"].min() <= scores["score"].max() <= 1

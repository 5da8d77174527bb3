"""Training assets through dg.materialize, each trainer launched through Dagster Pipes on a tiny
real model: the registry gets a row per complete artifact with its input snapshot, unchanged
inputs retrain nothing, candidates come from the SFT model, and the policies are evaluated."""

import dagster as dg

from assets import agreement, ingest, judging, path_a, path_b, policy_eval, training
from assets.partitions import prompt_batches
from resources import (
    DatasetsResource,
    EmbedderResource,
    LLMResource,
    TrainingResource,
    VectorStoreResource,
    WarehouseResource,
)
from training import artifacts
from warehouse.schema import ReflectionRow

ASSETS = dg.load_assets_from_modules([ingest, judging, path_a, path_b, agreement, training, policy_eval])
SMALL = {"max_steps": 1, "batch_size": 2, "max_length": 256}


def _run(resources, instance, keys, partition=None, config=None):
    return dg.materialize(ASSETS, selection=[dg.AssetKey(k) for k in keys], resources=resources, instance=instance,
                          partition_key=partition,
                          run_config={"ops": {k: {"config": v} for k, v in (config or {}).items()}})


def _meta(result, key):
    return result.asset_materializations_for_node(key)[0].metadata


def test_sft_reward_grpo_and_evaluation_register_models_with_lineage(zhufu_home, tmp_path, tiny_model_dir):
    warehouse = WarehouseResource()
    resources = {"warehouse": warehouse, "datasets": DatasetsResource(inbox_dir=str(tmp_path / "inbox")),
                 "llm": LLMResource(warehouse=warehouse, model=str(tiny_model_dir), batch_size=8),
                 "embedder": EmbedderResource(), "vectors": VectorStoreResource(),
                 "training": TrainingResource(base_model=str(tiny_model_dir)),
                 "pipes_client": dg.PipesSubprocessClient()}
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(prompt_batches.name, ["builtin"])
    wh = warehouse.get()
    _run(resources, instance, ["seed_sft_examples", "seed_preference_pairs", "human_labels"])
    _run(resources, instance, ["prompts"], "builtin")

    first = _run(resources, instance, ["sft_model"], config={"sft_model": SMALL})
    meta = _meta(first, "sft_model")
    sft_id = meta["model_id"].value
    row = wh.sql("SELECT kind, input_snapshots, artifact_path FROM models WHERE model_id = ?", [sft_id]).row(0)
    assert row[0] == "sft" and '"train"' in row[1] and artifacts.is_complete(row[2])
    assert meta["pipes_metric_messages"].value >= 1  # the trainer's metrics arrived over Pipes
    again = _run(resources, instance, ["sft_model"], config={"sft_model": SMALL})
    assert _meta(again, "sft_model")["model_id"].value == sft_id
    assert _meta(again, "sft_model")["rows_added"].value == 0  # same data and settings: nothing retrained

    rm = _run(resources, instance, ["reward_model"], config={"reward_model": {
        **SMALL, "engine": "fast", "max_eval_labels": 8, "heldout_fraction": 0.3}})
    rm_meta = _meta(rm, "reward_model")
    assert rm_meta["metrics"].value["eval_pairs"]["pairs"] > 0
    assert "length_pair_acc" in rm_meta["metrics"].value["eval_pairs"]

    grpo = _run(resources, instance, ["grpo_policy"], config={"grpo_policy": {
        "max_steps": 1, "batch_size": 2, "num_generations": 2, "max_completion_length": 8, "max_prompts": 4}})
    g = _meta(grpo, "grpo_policy")
    hp = wh.sql("SELECT base, hyperparams FROM models WHERE model_id = ?", [g["model_id"].value]).row(0)
    assert hp[0] == sft_id and rm_meta["model_id"].value in hp[1]

    # MRPO: a cold start on the reflection memory (one accepted revision recorded here), GRPO with replay
    wh.append([ReflectionRow(
        chain_id="c1", round=1, scenario="greeting", prompt="给老师写一句教师节祝福", draft="老师好", draft_id="d",
        draft_total=0.1, draft_scores={}, weakest=[], critique="写出老师的一个具体细节", critique_source="agent",
        revision="老师，您批改作业的红笔写满了耐心，祝您节日快乐。", revision_id="r", revision_status="ok",
        revision_total=0.4, gain=0.3, accepted=True, criteria_version="v", writer_model="w", critic_model="c",
        judge_model="j", agent_version="test")])
    mrpo = _run(resources, instance, ["mrpo_policy"], config={"mrpo_policy": {
        "reward": "reward_model", "max_steps": 1, "batch_size": 2, "num_generations": 2, "max_completion_length": 8,
        "max_prompts": 4, "cold_start_steps": 1, "replay_weight": 0.5}})
    m = _meta(mrpo, "mrpo_policy")
    kind, hp, metrics = wh.sql("SELECT kind, hyperparams, metrics FROM models_latest WHERE model_id = ?",
                               [m["model_id"].value]).row(0)
    assert kind == "mrpo" and '"revisions":1' in hp.replace(" ", "") and m["memory_rows"].value == 1
    assert '"cold_start_losses"' in metrics

    evaluator = _run(resources, instance, ["evaluator_model"], config={"evaluator_model": {
        **SMALL, "engine": "fast", "max_eval_labels": 8, "heldout_fraction": 0.3}})
    assert _meta(evaluator, "evaluator_model")["model_id"].value.startswith("evaluator-")
    ev = _run(resources, instance, ["policy_evaluation"], config={"policy_evaluation": {
        "max_prompts": 3, "max_new_tokens": 8, "with_judge": False, "heldout_fraction": 0.2}})
    assert ev.success
    meta = _meta(ev, "policy_evaluation")
    assert [r.data["model_kind"] for r in meta["policy_table"].records] == ["base", "sft", "grpo(reward_model)",
                                                                            "mrpo(reward_model)"]
    assert "data:image/png;base64," in meta["evaluator_distribution"].value
    rows = wh.sql("SELECT model_kind, n, reward_mean, evaluator_mean, evaluator_se, win_rate_vs_sft "
                  "FROM policy_evaluations ORDER BY model_kind").rows()
    assert [r[0] for r in rows] == ["base", "grpo(reward_model)", "mrpo(reward_model)", "sft"]
    assert all(r[1] == 3 and r[2] is not None and r[3] is not None and r[4] is not None for r in rows)
    assert rows[1][5] is not None  # the GRPO policy is compared with SFT prompt by prompt

    _run(resources, instance, ["candidates"], "builtin", config={"candidates": {"max_prompts": 1, "k": 1,
                                                                                "max_new_tokens": 8}})
    assert set(wh.sql("SELECT policy_model FROM candidates")["policy_model"]) == {sft_id}

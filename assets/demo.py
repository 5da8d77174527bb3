"""``make demo``: materialize the whole asset graph on the embedded default, then show the data.

    python -m assets.demo [--batches builtin igniting-queries …]

Runs are recorded in the Dagster instance at $DAGSTER_HOME, so they show up in `make ui`.
"""

from __future__ import annotations

import argparse
import os

import dagster as dg

from assets.demo_progress import DemoProgress
from assets.partitions import prompt_batches
from definitions import defs
from resources.datasets import DatasetsResource
from warehouse import Warehouse, WarehouseConfig

EXAMPLE_QUERIES = (
    ("Are labelled-good greetings just longer? (the length bias, DESIGN.md)",
     "SELECT label, count(*) AS n, round(avg(length(response)), 1) AS mean_chars FROM human_labels_latest "
     "GROUP BY label ORDER BY label"),
    ("What did the multi-agent labeller decide? (Path A: P(是) and the calibrated threshold)",
     "SELECT v.label, round(v.score, 3) AS p_yes, round(v.threshold, 3) AS threshold, left(c.text, 30) AS candidate "
     "FROM verdicts_latest v JOIN candidates c ON c.id = v.candidate_id WHERE v.stage = 'reflect' "
     "ORDER BY v.score DESC"),
    ("Rejection sampling: the preference pairs it made",
     "SELECT left(chosen, 30) AS chosen, left(rejected, 30) AS rejected FROM preference_pairs_latest"),
    ("The judges' thresholds, calibrated on human labels that are not evaluation data",
     "SELECT evaluator, n, round(threshold, 4) AS threshold, accuracy, round(auc, 3) AS auc, positive_rate, "
     "human_positive_rate FROM calibrations_latest ORDER BY created_at DESC LIMIT 3"),
    ("How well do the automatic labellers agree with the human labels, beside the length baseline?",
     "SELECT evaluator, variant, subset, n, round(auc, 3) AS auc, round(accuracy, 3) AS acc, round(kappa, 3) AS kappa, "
     "round(positive_rate, 2) AS pos_rate, round(length_auc, 3) AS length_auc FROM agreement_metrics_latest "
     "ORDER BY evaluator, variant, subset"),
    ("Which models were trained, from which warehouse snapshot? (the registry)",
     "SELECT model_id, kind, base, input_snapshots, artifact_path FROM models_latest ORDER BY created_at"),
    ("Writer-R1: criteria per scenario from the Grounded-Theory agents (dimension → criterion, weight; "
     "source = agent, or fallback when the model's answer was unusable and the coded concepts were used)",
     "SELECT task_type AS scenario, dimension, criterion, round(weight, 2) AS weight, source, left(rubric[5], 24) "
     "AS level_5 FROM criteria_latest WHERE coalesce(active, true) ORDER BY task_type, weight DESC"),
    ("Writer-R1 reflection (MRPO inference mode): per round, the criteria total going in and after, and what was "
     "accepted (critique_source = scores: the critic's answer was unusable, the rubric spoke instead)",
     "SELECT scenario, round, round(draft_total, 4) AS draft_total, round(revision_total, 4) AS revision_total, "
     "accepted, critique_source, revision_status, left(critique, 24) AS critique, left(coalesce(revision, ''), 24) "
     "AS revision FROM reflections_latest ORDER BY scenario, chain_id, round"),
    ("How do the policies compare on held-out prompts? (independent evaluator and judge, ± standard error; "
     "beyond_length = the gain over SFT that the change in length does not explain; win rates judged both orders, "
     "also on output pairs of similar length)",
     "SELECT model_kind, n, round(evaluator_mean, 3) AS evaluator, round(evaluator_se, 3) AS se, "
     "round(judge_score_mean, 3) AS judge_p, round(judge_score_se, 3) AS judge_se, judge_excellence_rate, "
     "round(mean_chars, 1) AS chars, round(evaluator_gain_vs_sft, 3) AS gain_vs_sft, "
     "round(evaluator_gain_vs_sft - length_explained_gain, 3) AS beyond_length, "
     "round(win_rate_vs_sft, 2) AS win_rate, round(win_rate_len_matched, 2) AS win_similar_len "
     "FROM policy_evaluations_latest ORDER BY created_at"),
)


def _instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()


def _run_config(selection: list[dg.AssetKey], overrides: dict[str, dict]) -> dict:
    names = {k.to_user_string() for k in selection}
    return {"ops": {name: {"config": cfg} for name, cfg in overrides.items() if name in names}}


def materialize_all(batches: list[str] | None = None, instance: dg.DagsterInstance | None = None,
                    overrides: dict[str, dict] | None = None) -> list[str]:
    """Materialize every asset: unpartitioned sources, then each prompt batch, then what needs all batches."""
    instance = instance or _instance()
    overrides = overrides or {}
    datasets = DatasetsResource.from_env()
    batches = batches or [*datasets.standing_batches(), *datasets.inbox_files()]
    instance.add_dynamic_partitions(prompt_batches.name, batches)
    graph = defs.resolve_asset_graph()
    keys = list(graph.toposorted_asset_keys)
    partitioned = [k for k in keys if graph.get(k).partitions_def is not None]
    # unpartitioned assets downstream of a partitioned one wait for every batch
    after = [k for k in keys if k not in partitioned
             and any(a in partitioned for a in graph.get_ancestor_asset_keys(k))]
    before = [k for k in keys if k not in partitioned and k not in after]
    assets = list(defs.assets or [])
    resources = defs.resources or {}
    failures = []

    def run(selection: list[dg.AssetKey], partition: str | None, label: str) -> None:
        if not selection:
            return
        print(f"\n=== materializing {label}: {', '.join(k.to_user_string() for k in selection)}", flush=True)
        res = dg.materialize(assets, selection=selection, partition_key=partition, instance=instance,
                             resources=resources, run_config=_run_config(selection, overrides), raise_on_error=False)
        if not res.success:
            failures.append(label)

    planned = [k.to_user_string() for k in [*before, *partitioned * len(batches), *after]]
    with DemoProgress(instance, planned):
        run(before, None, "sources")
        for batch in batches:
            run(partitioned, batch, f"batch {batch}")
        run(after, None, "cross-batch assets")
    return failures


def show(wh: Warehouse) -> None:
    print(f"\nThe data lives in the DuckLake warehouse: {wh.config.describe()}")
    print("Query it read-only with:  .venv/bin/python -m warehouse sql \"SELECT …\"  (--as-of SNAPSHOT for time travel)\n")
    import polars as pl

    for question, sql in EXAMPLE_QUERIES:
        print(f"-- {question}\n{sql}")
        with pl.Config(tbl_cols=12, tbl_width_chars=160, fmt_str_lengths=40):  # every column: none hidden as …
            print(wh.sql(sql))
        print()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m assets.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", nargs="*", help="prompt batches to materialize (default: all known)")
    parser.add_argument("--prompts", type=int, default=3, help="prompts per batch that get candidates (0 = all)")
    parser.add_argument("--k", type=int, default=3, help="candidates per prompt")
    parser.add_argument("--agreement-sample", type=int, default=6,
                        help="evaluation-split human labels for labeler_agreement and judge_agreement, and "
                        "calibration-split labels for judge_calibration (half good, half flawed where possible)")
    parser.add_argument("--train-steps", type=int, default=1, help="optimizer steps for SFT and the reward models")
    parser.add_argument("--judge-steps", type=int, default=1, help="optimizer steps for the judge")
    parser.add_argument("--grpo-steps", type=int, default=1, help="GRPO steps (one: the loop end to end; CPU steps do "
                        "not move a policy)")
    parser.add_argument("--eval-prompts", type=int, default=32, help="held-out prompts for policy_evaluation")
    args = parser.parse_args()
    # Small on purpose: the embedded default on a CPU. Full runs are Dagster run configs.
    # One step of two: every trainer runs end to end (data, step, eval, artifact, registry) in seconds on a
    # CPU, where each step's cost is its tokens (~10 s for a judge step); what the models learn in a step or
    # two is not the point here (the judge and SFT start from GPU-trained warm starts).
    small_rm = {"max_steps": args.train_steps, "batch_size": 2, "max_eval_labels": args.agreement_sample}
    # One exemplar instead of three: the retrieved exemplars are most of a Path A prompt (~160 of the ~450
    # tokens each debater reads per item, measured in the demo's call log), and CPU time is prefill.
    exemplars = {"k_final": 1}
    overrides = {
        "candidates": {"max_prompts": args.prompts, "k": args.k, "max_new_tokens": 96},
        "retrievals": exemplars,
        # LoRA on top of the warm starts: small-batch full-weight steps overwrite what the GPU taught them
        # (Adam's first step moves every weight by ~lr), LoRA steps only nudge it
        "judge_model": {"max_steps": args.judge_steps, "batch_size": 2, "max_pairs": 8, "lora": True,
                        "max_eval_labels": args.agreement_sample, "principle_ablations": False,
                        "rule_eval": False},
        "judge_principles": {"iterations": 1, "generated_per_iteration": 1, "real_per_iteration": 4,
                             "heldout_size": args.agreement_sample, "calibration_size": args.agreement_sample,
                             "retrain_judge": False},
        "judge_calibration": {"max_items": args.agreement_sample, **exemplars},
        # four evaluation items, not six: the debate is most of this asset's ~55 s, and a 6-item AUC says no more
        "labeler_agreement": {"sample_size": min(4, args.agreement_sample), "ablations": False, **exemplars},
        "judge_agreement": {"sample_size": args.agreement_sample},
        "sft_model": {"max_steps": args.train_steps, "batch_size": 2, "lora": True},
        "reward_model": small_rm,
        "evaluator_model": small_rm,
        # 40% of the 80 built-in prompts are held out, so the comparison has >= 32 prompts
        "grpo_policy": {"max_steps": args.grpo_steps, "batch_size": 4, "num_generations": 2, "learning_rate": 5e-6,
                        "max_completion_length": 48, "max_prompts": 16, "heldout_fraction": 0.4},
        # MRPO: the same GRPO budget on the criteria reward, with the reflection memory replayed (no cold start)
        "mrpo_policy": {"max_steps": args.grpo_steps, "batch_size": 4, "num_generations": 2, "learning_rate": 5e-6,
                        "max_completion_length": 48, "max_prompts": 16, "heldout_fraction": 0.4},
        # one held-out prompt per scenario, two rounds (the second reads the first's lessons), short answers
        "reflections": {"prompts_per_scenario": 1, "rounds": 2, "draft_tokens": 64, "critique_tokens": 48,
                        "revision_tokens": 64},
        # the hand-written-principles ablation is a paper-data measurement (bench/criteria_gain.py)
        "criteria_agreement": {"principles_ablation": False},
        # compared by the independent evaluator and the judge; the training RM's own score (another ~30 s of
        # prefill on 2 cores) is for full runs
        "policy_evaluation": {"max_prompts": args.eval_prompts, "max_new_tokens": 40, "heldout_fraction": 0.4,
                              "with_reward_model": False},
    }
    failures = materialize_all(args.batches, overrides=overrides)
    show(Warehouse(WarehouseConfig.from_env()))
    if failures:
        print(f"FAILED: {failures}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

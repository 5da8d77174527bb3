"""Does the trained judge discriminate, beyond length, and do its principles matter? (issue 11, on a GPU)

    python -m bench.judge_gain --model /tmp/smollm2_hf --data $SEED_DATA [--variants pointwise pairwise2]

Trains zhufu's principle-conditioned 是/否 judge (training/judge.py) on the paper's training pairs
(chosen → 是, rejected → 否; never the dev sets), each row with a varied principle list, then reports
on `evaluation_dev.jsonl` (AUC, 30–49-char band AUC) and `reward_pairs_dev.json` (pair accuracy,
length-matched) with the evaluation principles (the initial S_D), and the ablations: no principles,
shuffled principles, another task's principles; and principle following (the good greetings under a
checkable must-have / must-not word rule: does the score follow the rule?). A quarter of the training
pairs add one such rule row (``--rule-share``). The zero-shot model and the length baseline beside it.
Run it in the same call as ../shared/anchors/judge_baseline.py and compare.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

from agents import judge as path_a_judge
from agents.judging import FOREIGN_PRINCIPLES, pair_rows
from agents.principles import INITIAL_S_D
from bench.paper_data import labels as read_labels
from bench.paper_data import pairs as read_pairs
from training import judge
from training.config import JudgeRunConfig
from training.data import write_jsonl
from training.reporting import Reporter

VARIANTS = {  # name -> (epochs, pairwise weight, learning rate)
    "pointwise": (1.0, 0.0, 5e-5),
    "pairwise": (1.0, 1.0, 5e-5),
    "pairwise2": (2.0, 1.0, 5e-5),
}


def judge_rows(pairs: list[dict], seed: int = 0, rule_share: float = 0.25) -> list[dict]:
    """The asset's row builder (``agents.judging.pair_rows``) on the paper's training pairs."""
    return pair_rows(pairs, [list(INITIAL_S_D), list(path_a_judge.PRINCIPLES)], random.Random(seed),
                     rule_share=rule_share)


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.judge_gain", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--variants", nargs="*", default=["pointwise", "pairwise"], choices=list(VARIANTS))
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--rule-share", type=float, default=0.25,
                   help="share of pairs whose chosen greeting also trains under a checkable rule (0 = none)")
    p.add_argument("--zero-shot", action="store_true", help="also evaluate the untrained model")
    p.add_argument("--out", help="write the results as JSON here")
    a = p.parse_args()
    data = Path(a.data)
    work = Path(tempfile.mkdtemp(prefix="judge-gain-"))
    write_jsonl(work / "train.jsonl", judge_rows(read_pairs(data / "reward_pairs_train.json"), rule_share=a.rule_share))
    write_jsonl(work / "labels.jsonl", read_labels(data / "evaluation_dev.jsonl"))
    write_jsonl(work / "pairs.jsonl", read_pairs(data / "reward_pairs_dev.json"))
    results = {}
    for name in a.variants:
        epochs, pw, lr = VARIANTS[name]
        cfg = JudgeRunConfig(base_model=a.model, output_dir=str(work / name), train_file=str(work / "train.jsonl"),
                             eval_labels_file=str(work / "labels.jsonl"), eval_pairs_file=str(work / "pairs.jsonl"),
                             eval_principles=list(INITIAL_S_D), foreign_principles=FOREIGN_PRINCIPLES,
                             num_epochs=epochs, pairwise_weight=pw, learning_rate=lr, batch_size=a.batch_size,
                             eval_before=a.zero_shot and not results, logging_steps=50)
        t0 = time.time()
        results[name] = judge.train(cfg, Reporter())
        results[name]["wall_s"] = round(time.time() - t0, 1)
    table = []
    for name, m in results.items():
        for variant in ("eval", "no_principles", "shuffled_principles", "foreign_principles"):
            r = m.get(variant) or {}
            table.append([name, variant, r.get("auc"), r.get("band_auc"), r.get("pair_acc"),
                          r.get("pair_acc_len_matched"), r.get("length_auc"), r.get("length_band_auc"),
                          r.get("length_pair_acc_len_matched"), m["train_s"]])
        if m.get("before"):
            r = m["before"]["eval"]
            table.append(["zero-shot", "eval", r.get("auc"), r.get("band_auc"), r.get("pair_acc"),
                          r.get("pair_acc_len_matched"), r.get("length_auc"), r.get("length_band_auc"),
                          r.get("length_pair_acc_len_matched"), None])
    print(tabulate(table, headers=["judge", "principles", "AUC", "band AUC", "pair acc", "len-matched acc",
                                   "length AUC", "length band AUC", "length len-matched", "train s"]))
    rules = [[name, r.get("n"), r.get("kept_share"), r.get("auc_with_rule"), r.get("auc_without_rule"),
              r.get("accuracy_with_rule")] for name, m in results.items() for r in [m.get("rules") or {}]]
    rules += [["zero-shot", r.get("n"), r.get("kept_share"), r.get("auc_with_rule"), r.get("auc_without_rule"),
               r.get("accuracy_with_rule")] for m in results.values() if m.get("before")
              for r in [m["before"].get("rules") or {}]]
    print("\nPrinciple following: good greetings of evaluation_dev under a checkable rule they keep or break")
    print(tabulate(rules, headers=["judge", "n", "kept share", "AUC with rule", "AUC without rule", "acc with rule"]))
    if a.out:
        Path(a.out).write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

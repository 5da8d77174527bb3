"""Does the trained judge discriminate, beyond length, and do its principles matter? (issue 11, on a GPU)

    python -m bench.judge_gain --model /tmp/smollm2_hf --data $SEED_DATA [--variants pointwise pairwise2]

Trains zhufu's principle-conditioned 是/否 judge (training/judge.py) on the paper's training pairs
(chosen → 是, rejected → 否; never the dev sets), each row with a varied principle list, then reports
on `evaluation_dev.jsonl` (AUC, 30–49-char band AUC) and `reward_pairs_dev.json` (pair accuracy,
length-matched) with the evaluation principles (the initial S_D), and the ablations: no principles,
shuffled principles, another task's principles; and principle following (the good greetings under a
checkable rule — a must-have / must-not word, or an at-most / at-least character count — that they keep
or break: does the score follow the rule?). Variants differ in epochs, the pairwise term and extra rows:
rule rows (the chosen greeting under a rule, labelled by it) and degraded negatives (``VARIANTS``).
The zero-shot model and the length baseline beside it.
Run it in the same call as ../shared/anchors/judge_baseline.py and compare.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from tabulate import tabulate

from agents.judging import FOREIGN_PRINCIPLES
from agents.principles import INITIAL_S_D
from bench.paper_data import labels as read_labels
from bench.paper_data import pairs as read_pairs
from training import judge
from training.config import JudgeRunConfig
from training.data import write_jsonl
from training.paper_data import judge_rows
from training.reporting import Reporter


@dataclass(frozen=True)
class Variant:
    epochs: float
    pairwise_weight: float
    learning_rate: float = 5e-5
    rule_share: float = 0.0  # share of pairs whose chosen greeting also trains under a checkable rule
    rule_kind: str = "word"
    degraded_share: float = 0.0  # share of chosen greetings that also train as a degraded negative
    ema_decay: float = 0.0  # evaluate an exponential moving average of the weights (0 = the last step's)
    matched_repeat: int = 0  # more copies of each training pair of similar lengths

    def rows_key(self) -> tuple:
        return (self.rule_share, self.rule_kind, self.degraded_share, self.matched_repeat)


VARIANTS = {
    "pointwise": Variant(1.0, 0.0),
    "pairwise": Variant(1.0, 1.0),
    "pairwise2": Variant(2.0, 1.0),
    # + a length rule (at most / at least N characters) for half the pairs: a principle the text decides
    "pairwise2_len": Variant(2.0, 1.0, rule_share=0.5, rule_kind="length"),
    # + degraded negatives (a clause said three times, shuffled characters, cut mid-clause), as the warm start
    "pairwise2_deg": Variant(2.0, 1.0, degraded_share=0.15),
    "pairwise2_len_deg": Variant(2.0, 1.0, rule_share=0.5, rule_kind="length", degraded_share=0.15),
    # the default recipe, read through a moving average of its weights over roughly the last 200 steps
    "pairwise2_len_ema": Variant(2.0, 1.0, rule_share=0.5, rule_kind="length", ema_decay=0.995),
    # the default recipe with the pairs length cannot decide (~8% of the paper's) seen 3 / 5 times as often
    "pairwise2_len_m2": Variant(2.0, 1.0, rule_share=0.5, rule_kind="length", matched_repeat=2),
    "pairwise2_len_m4": Variant(2.0, 1.0, rule_share=0.5, rule_kind="length", matched_repeat=4),
    # the default recipe trained a third epoch, or with the pairwise (Bradley–Terry) term weighted 3x
    "pairwise3_len": Variant(3.0, 1.0, rule_share=0.5, rule_kind="length"),
    "pairwise2_len_pw3": Variant(2.0, 3.0, rule_share=0.5, rule_kind="length"),
}


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.judge_gain", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--variants", nargs="*", default=["pointwise", "pairwise"], choices=list(VARIANTS))
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--word-rule-share", type=float, default=0.0,
                   help="add word-rule rows (must-have / must-not word) for this share of pairs to every variant "
                        "that has no rule rows of its own (0 = none; 0.25 taught nothing at 135M, bench/RESULTS.md)")
    p.add_argument("--seed", type=int, default=0, help="training seed (row order, principle lists, rule rows)")
    p.add_argument("--gradient-checkpointing", action="store_true",
                   help="recompute activations (~1/10 of the memory, ~1.3x the time): several runs on one GPU")
    p.add_argument("--zero-shot", action="store_true", help="also evaluate the untrained model")
    p.add_argument("--out", help="write the results as JSON here")
    a = p.parse_args()
    data = Path(a.data)
    work = Path(tempfile.mkdtemp(prefix="judge-gain-"))
    train_pairs = read_pairs(data / "reward_pairs_train.json")
    write_jsonl(work / "labels.jsonl", read_labels(data / "evaluation_dev.jsonl"))
    write_jsonl(work / "pairs.jsonl", read_pairs(data / "reward_pairs_dev.json"))
    results = {}
    for name in a.variants:
        v = VARIANTS[name]
        if not v.rule_share and a.word_rule_share:
            v = replace(v, rule_share=a.word_rule_share, rule_kind="word")
        train_file = work / "train-{}-{}-{}-{}.jsonl".format(*v.rows_key())
        if not train_file.exists():
            write_jsonl(train_file, judge_rows(train_pairs, seed=a.seed, rule_share=v.rule_share,
                                               rule_kind=v.rule_kind, degraded_share=v.degraded_share,
                                               matched_repeat=v.matched_repeat))
        cfg = JudgeRunConfig(base_model=a.model, output_dir=str(work / name), train_file=str(train_file),
                             eval_labels_file=str(work / "labels.jsonl"), eval_pairs_file=str(work / "pairs.jsonl"),
                             eval_principles=list(INITIAL_S_D), foreign_principles=FOREIGN_PRINCIPLES,
                             num_epochs=v.epochs, pairwise_weight=v.pairwise_weight, learning_rate=v.learning_rate,
                             ema_decay=v.ema_decay, batch_size=a.batch_size, seed=a.seed,
                             gradient_checkpointing=a.gradient_checkpointing,
                             eval_before=a.zero_shot and not results, logging_steps=50, keep_scores=True)
        t0 = time.time()
        results[name] = judge.train(cfg, Reporter())
        results[name]["wall_s"] = round(time.time() - t0, 1)
        results[name]["variant"] = {**asdict(v), "seed": a.seed}
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
    rules = []
    for name, m in [*results.items(), *[("zero-shot", m["before"]) for m in results.values() if m.get("before")]]:
        for key, kind in (("rules", "word"), ("rules_length", "length")):
            r = m.get(key) or {}
            rules.append([name, kind, r.get("n"), r.get("kept_share"), r.get("auc_with_rule"),
                          r.get("auc_without_rule"), r.get("accuracy_with_rule")])
    print("\nPrinciple following: good greetings of evaluation_dev under a checkable rule they keep or break")
    print(tabulate(rules, headers=["judge", "rule", "n", "kept share", "AUC with rule", "AUC without rule",
                                   "acc with rule"]))
    if a.out:
        Path(a.out).write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

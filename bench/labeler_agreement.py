"""Path A's labeller against the paper's human labels, with the trained judge (issue 11, on a GPU)

    python -m bench.labeler_agreement --model /tmp/smollm2_hf --data $SEED_DATA --judge /root/keep/gain/judge

`evaluation_dev.jsonl` is split by a hash of each item (``agents.principles.split_examples``): the
calibration split fits the thresholds of the judge and reflect stages, the evaluation split is
reported. The Positive and Negative agents (the base SmolLM2, JSON-constrained) debate each item;
the trained judge scores it with the debate (judge), without it (audit), and reflect = their mean.
Retrieval is off here (no LanceDB / embedder on the GPU machine): the no_retrieval variant of the
asset. Reports AUC, accuracy, kappa and positive rate beside the human rate and the length baseline.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tabulate import tabulate


def main() -> int:
    from agents import judging, labeler
    from agents.common import Item
    from agents.labeler import Ablation
    from agents.principles import Example, split_examples
    from bench.paper_data import labels as read_labels
    from resources.llm.local import LocalBackend
    from resources.llm.runtime import LLMRuntime
    from training.metrics import labeller_report
    from warehouse.ids import content_id

    p = argparse.ArgumentParser(prog="python -m bench.labeler_agreement", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="the agents' model (debate)")
    p.add_argument("--judge", required=True, help="a trained judge artifact (training/judge.py)")
    p.add_argument("--data", required=True)
    p.add_argument("--max-items", type=int, default=300, help="per split")
    p.add_argument("--out")
    a = p.parse_args()
    rows = read_labels(Path(a.data) / "evaluation_dev.jsonl")
    examples = [Example(content_id(r["prompt"], r["response"]), r["prompt"], r["response"], r["label"]) for r in rows]
    _, calib, evaluation = split_examples(examples, 0)
    calib, evaluation = calib[: a.max_items], evaluation[: a.max_items]
    agents = LLMRuntime(LocalBackend(a.model, batch_size=64, progress=False))
    judge = LLMRuntime(LocalBackend(a.judge, batch_size=64, progress=False))
    ablation = Ablation(retrieval=False)
    scored = {}
    t0 = time.time()
    for name, split in (("calibration", calib), ("evaluation", evaluation)):
        items = [Item(e.item_id, e.prompt, e.response) for e in split]
        pos, neg = labeler.debate_points(agents, items, use_exemplars=False)
        scored[name] = labeler.score(judge, items, pos, neg, ablation)
        print(f"{name}: {len(items)} items, debate ok {sum(x is not None for x in pos + neg)}/{2 * len(items)}, "
              f"{time.time() - t0:.0f}s", flush=True)
    report, cals = [], {}
    truth = [e.label for e in evaluation]
    lengths = [len(e.response) for e in evaluation]
    for variant, key in (("judge (with debate)", "judge"), ("audit (no debate)", "audit"), ("reflect", "final")):
        cal = judging.calibrate([getattr(s, key) for s in scored["calibration"]], [e.label for e in calib])
        cals[variant] = cal.as_dict()
        ps = [getattr(s, key) for s in scored["evaluation"]]
        for r in labeller_report([cal.label(x) for x in ps], truth, lengths, scores=ps):
            report.append({"variant": variant, "threshold": round(cal.threshold, 4), **r})
    cols = ["variant", "subset", "n", "threshold", "auc", "accuracy", "kappa", "positive_rate", "length_auc",
            "length_accuracy", "length_kappa"]
    print(tabulate([[r.get(c) for c in cols] for r in report], headers=cols, floatfmt=".4f"))
    print(f"human positive rate (evaluation split): {sum(truth) / len(truth):.4f}")
    if a.out:
        Path(a.out).write_text(json.dumps({"report": report, "calibrations": cals,
                                           "human_positive_rate": sum(truth) / len(truth)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Several trained judges as one: the mean of their margins, scored like one judge (issue 11, no GPU).

    python -m bench.judge_ensemble --data $SEED_DATA run_s0.json run_s1.json run_s2.json [--variant pairwise2_len]

Reads ``bench.judge_gain --out`` JSONs (each keeps every evaluation item's margin under the evaluation
principles, ``eval.scores``), checks they scored the same items as ``--data``'s dev files, and prints
each run and the ensemble (mean margin per item) on AUC, 30–49-character band AUC, pair accuracy and
length-matched pair accuracy — the question being whether averaging seeds (or recipes) lifts the
length-matched accuracy that no single run reaches reliably.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tabulate import tabulate

from bench.paper_data import labels as read_labels
from bench.paper_data import pairs as read_pairs
from training.rm_eval import evaluate_labels, evaluate_pairs

COLUMNS = ("auc", "band_auc", "pair_acc", "pair_acc_len_matched")


def load_scores(path: str, variant: str | None = None) -> tuple[str, dict[str, list[float]]]:
    """(name, {labels, chosen, rejected}) of one run: ``variant`` or the file's only variant."""
    results = json.loads(Path(path).read_text(encoding="utf-8"))
    names = [variant] if variant else list(results)
    if len(names) != 1 or names[0] not in results:
        raise SystemExit(f"{path}: name one of its variants with --variant ({', '.join(results)})")
    scores = (results[names[0]].get("eval") or {}).get("scores")
    if not scores:
        raise SystemExit(f"{path}: no per-item scores (run bench.judge_gain at or after keep_scores)")
    return f"{Path(path).stem}:{names[0]}", scores


def score_sets(scores: dict[str, list[float]], labels: list[dict], pairs: list[dict]) -> dict:
    """The judge metrics of precomputed margins, in the order ``judge_gain`` scored the items."""
    for key, n in (("labels", len(labels)), ("chosen", len(pairs)), ("rejected", len(pairs))):
        if len(scores.get(key, [])) != n:
            raise SystemExit(f"{key}: {len(scores.get(key, []))} scores for {n} items — another data set?")
    pair_scores = iter([scores["chosen"], scores["rejected"]])
    return {**evaluate_labels(lambda ps, rs: scores["labels"], labels),
            **evaluate_pairs(lambda ps, rs: next(pair_scores), pairs)}


def mean_scores(runs: Sequence[dict[str, list[float]]]) -> dict[str, list[float]]:
    return {k: np.mean([r[k] for r in runs], axis=0).round(4).tolist() for k in ("labels", "chosen", "rejected")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.judge_ensemble", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="bench.judge_gain --out JSON files")
    p.add_argument("--data", required=True, help="the paper's data directory (evaluation_dev.jsonl, reward_pairs_dev.json)")
    p.add_argument("--variant", help="the variant to read from each file (default: the file's only one)")
    p.add_argument("--out", help="write the table as JSON here")
    a = p.parse_args(argv)
    labels = read_labels(Path(a.data) / "evaluation_dev.jsonl")
    pairs = read_pairs(Path(a.data) / "reward_pairs_dev.json")
    runs = [load_scores(path, a.variant) for path in a.runs]
    rows = [{"judge": name, **score_sets(s, labels, pairs)} for name, s in runs]
    if len(runs) > 1:
        rows.append({"judge": f"mean of {len(runs)} margins", **score_sets(mean_scores([s for _, s in runs]), labels,
                                                                           pairs)})
    table = [[r["judge"], *(r.get(c) for c in COLUMNS)] for r in rows]
    print(tabulate(table, headers=["judge", "AUC", "band AUC", "pair acc", f"len-matched acc (n={rows[0]['len_matched_n']})"]))
    if a.out:
        Path(a.out).write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

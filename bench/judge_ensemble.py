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
    """(name, {labels, chosen, rejected}) of one run: ``FILE:VARIANT``, else ``variant`` or the file's only one."""
    if not Path(path).exists() and ":" in path:
        path, variant = path.rsplit(":", 1)
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


KEYS = ("labels", "chosen", "rejected")


def standardized(run: dict[str, list[float]]) -> dict[str, list[float]]:
    """A run's scores as z-scores over all its items, so runs on different scales (a judge's margin, a
    log-likelihood) can be averaged."""
    allv = np.concatenate([np.asarray(run[k], float) for k in KEYS])
    mu, sd = allv.mean(), allv.std() or 1.0
    return {k: ((np.asarray(run[k], float) - mu) / sd).tolist() for k in KEYS}


def mean_scores(runs: Sequence[dict[str, list[float]]], weights: Sequence[float] | None = None) -> dict[str, list[float]]:
    w = np.asarray(weights if weights is not None else [1.0] * len(runs), float)
    return {k: (np.tensordot(w / w.sum(), np.asarray([r[k] for r in runs], float), axes=1)).round(4).tolist()
            for k in KEYS}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.judge_ensemble", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="bench.judge_gain (or bench.likelihood_judge) --out JSON files; "
                                           "FILE:VARIANT picks one variant of a file")
    p.add_argument("--data", required=True, help="the paper's data directory (evaluation_dev.jsonl, reward_pairs_dev.json)")
    p.add_argument("--variant", help="the variant to read from each file (default: the file's only one)")
    p.add_argument("--standardize", action="store_true",
                   help="z-score each run's scores over all its items before averaging (runs on different scales)")
    p.add_argument("--weights", type=float, nargs="*", help="one weight per run for the mean (default: equal)")
    p.add_argument("--out", help="write the table as JSON here")
    a = p.parse_args(argv)
    if a.weights and len(a.weights) != len(a.runs):
        raise SystemExit(f"--weights: {len(a.weights)} weights for {len(a.runs)} runs")
    labels = read_labels(Path(a.data) / "evaluation_dev.jsonl")
    pairs = read_pairs(Path(a.data) / "reward_pairs_dev.json")
    runs = [load_scores(path, a.variant) for path in a.runs]
    if a.standardize:
        runs = [(name, standardized(s)) for name, s in runs]
    rows = [{"judge": name, **score_sets(s, labels, pairs)} for name, s in runs]
    if len(runs) > 1:
        what = f"{'weighted ' if a.weights else ''}mean of {len(runs)} {'z-scores' if a.standardize else 'margins'}"
        rows.append({"judge": what,
                     **score_sets(mean_scores([s for _, s in runs], a.weights), labels, pairs)})
    table = [[r["judge"], *(r.get(c) for c in COLUMNS)] for r in rows]
    print(tabulate(table, headers=["judge", "AUC", "band AUC", "pair acc", f"len-matched acc (n={rows[0]['len_matched_n']})"]))
    if a.out:
        Path(a.out).write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How good is a reward model, beside the length baseline (DESIGN.md)?

Pair accuracy on all held-out pairs and on length-matched ones (lengths within 20%); AUC on the
labelled evaluation set and on its 30–49-character band; the same for "longer wins". Also the
score threshold that best separates good from bad labelled items, so the policy evaluation can
report an excellence rate by the reward model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from training.metrics import auc, in_band, length_matched, pair_accuracy

Scorer = Callable[[Sequence[str], Sequence[str]], list[float]]


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def evaluate_pairs(score: Scorer, rows: list[dict]) -> dict:
    prompts = [r["prompt"] for r in rows]
    chosen, rejected = [r["chosen"] for r in rows], [r["rejected"] for r in rows]
    c, rj = score(prompts, chosen), score(prompts, rejected)
    matched = length_matched(chosen, rejected)
    idx = [i for i, m in enumerate(matched) if m]
    lc, lr = [len(x) for x in chosen], [len(x) for x in rejected]
    return {
        "pair_acc": _r(pair_accuracy(c, rj)), "pairs": len(rows),
        "pair_acc_len_matched": _r(pair_accuracy([c[i] for i in idx], [rj[i] for i in idx])), "len_matched_n": len(idx),
        "length_pair_acc": _r(pair_accuracy(lc, lr)),
        "length_pair_acc_len_matched": _r(pair_accuracy([lc[i] for i in idx], [lr[i] for i in idx])),
    }


def best_threshold(scores: Sequence[float], labels: Sequence[int]) -> float | None:
    s, y = np.asarray(scores, float), np.asarray(labels, int)
    if len(s) == 0:
        return None
    cands = np.unique(s)
    accs = [((s >= t).astype(int) == y).mean() for t in cands]
    return float(cands[int(np.argmax(accs))])


def evaluate_labels(score: Scorer, rows: list[dict]) -> dict:
    s = score([r["prompt"] for r in rows], [r["response"] for r in rows])
    y = [int(r["label"]) for r in rows]
    lens = [len(r["response"]) for r in rows]
    band = [i for i, n in enumerate(lens) if in_band(n)]
    return {
        "auc": _r(auc(s, y)), "labelled": len(rows), "length_auc": _r(auc(lens, y)),
        "band_auc": _r(auc([s[i] for i in band], [y[i] for i in band])), "band_n": len(band),
        "length_band_auc": _r(auc([lens[i] for i in band], [y[i] for i in band])),
        "threshold": best_threshold(s, y),
    }

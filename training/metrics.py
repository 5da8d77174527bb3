"""Agreement and ranking metrics, always beside the length baseline (DESIGN.md: the seed data is
strongly length-biased, so a figure means little unless it beats "the longer one is better").

Pure Python + NumPy so that every asset, bench and notebook computes them the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

BAND = (30, 49)  # response lengths (characters) where the seed labels are mixed


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based), ties share their mean rank."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=float)
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    x, y = np.asarray(a, float), np.asarray(b, float)
    if len(x) < 2:
        return None
    rx, ry = _ranks(x), _ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


def auc(scores: Sequence[float], labels: Sequence[int]) -> float | None:
    """ROC AUC by the rank-sum formula (ties count half)."""
    s, y = np.asarray(scores, float), np.asarray(labels, int)
    pos, neg = int((y == 1).sum()), int((y == 0).sum())
    if pos == 0 or neg == 0:
        return None
    r = _ranks(s)
    return float((r[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


@dataclass(frozen=True)
class Agreement:
    n: int
    accuracy: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    kappa: float | None
    spearman: float | None
    positive_rate: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def agreement(pred: Sequence[int], truth: Sequence[int]) -> Agreement:
    """Binary agreement of predictions with human labels (Cohen's kappa for chance correction)."""
    p, t = np.asarray(pred, int), np.asarray(truth, int)
    n = len(p)
    if n == 0:
        return Agreement(0, None, None, None, None, None, None, None)
    tp = int(((p == 1) & (t == 1)).sum())
    fp = int(((p == 1) & (t == 0)).sum())
    fn = int(((p == 0) & (t == 1)).sum())
    acc = float((p == t).mean())
    prec = tp / (tp + fp) if tp + fp else None
    rec = tp / (tp + fn) if tp + fn else None
    f1 = 2 * prec * rec / (prec + rec) if prec and rec else (0.0 if prec is not None and rec is not None else None)
    pe = p.mean() * t.mean() + (1 - p.mean()) * (1 - t.mean())
    kappa = float((acc - pe) / (1 - pe)) if pe < 1 else None
    return Agreement(n, acc, prec, rec, f1, kappa, spearman(p, t), float(p.mean()))


def length_baseline(lengths: Sequence[int], truth: Sequence[int]) -> tuple[Agreement, float | None, int | None]:
    """"Longer is better": predict 1 iff length >= t, with t chosen to maximise accuracy on these
    very items (an optimistic baseline). Returns its agreement, the length AUC and t."""
    lens, t = np.asarray(lengths, int), np.asarray(truth, int)
    if len(lens) == 0:
        return agreement([], []), None, None
    best_t, best_acc = None, -1.0
    for thr in sorted(set(lens.tolist())) + [int(lens.max()) + 1]:
        acc = float(((lens >= thr).astype(int) == t).mean())
        if acc > best_acc:
            best_t, best_acc = thr, acc
    return agreement((lens >= best_t).astype(int), t), auc(lens, t), best_t


def in_band(length: int, band: tuple[int, int] = BAND) -> bool:
    return band[0] <= length <= band[1]


def pair_accuracy(chosen_scores: Sequence[float], rejected_scores: Sequence[float]) -> float | None:
    c, r = np.asarray(chosen_scores, float), np.asarray(rejected_scores, float)
    return float((c > r).mean()) if len(c) else None


def similar_lengths(a: int, b: int, tolerance: float = 0.2) -> bool:
    """Two lengths that differ by at most ``tolerance`` of the longer one."""
    return abs(a - b) <= tolerance * max(a, b, 1)


def length_matched(chosen: Sequence[str], rejected: Sequence[str], tolerance: float = 0.2) -> list[bool]:
    """Pairs whose lengths differ by at most ``tolerance`` of the longer one."""
    return [similar_lengths(len(a), len(b), tolerance) for a, b in zip(chosen, rejected, strict=True)]


def distinct_n(texts: Sequence[str], n: int = 2) -> float | None:
    """Distinct character n-grams over all n-grams (diversity of a policy's outputs)."""
    grams = [t[i : i + n] for t in texts for i in range(max(0, len(t) - n + 1))]
    return len(set(grams)) / len(grams) if grams else None


def labeller_report(pred: Sequence[int | None], truth: Sequence[int], lengths: Sequence[int],
                    scores: Sequence[float | None] | None = None) -> list[dict]:
    """Agreement of a labeller with human labels on all items and on the 30–49-character band,
    each beside the length baseline fitted on the same items; with ``scores`` (P(是)), also the
    AUC of the score. ``None`` predictions (failed calls) are counted as failures and left out."""
    rows = []
    for subset, keep in (("all", lambda n: True), (f"band_{BAND[0]}_{BAND[1]}", in_band)):
        idx = [i for i, n in enumerate(lengths) if keep(n)]
        ok = [i for i in idx if pred[i] is not None]
        ag = agreement([pred[i] for i in ok], [truth[i] for i in ok])
        base, length_auc, _ = length_baseline([lengths[i] for i in ok], [truth[i] for i in ok])
        rows.append({"subset": subset, **ag.as_dict(), "parse_failures": len(idx) - len(ok),
                     "length_accuracy": base.accuracy, "length_kappa": base.kappa, "length_auc": length_auc,
                     "auc": auc([scores[i] for i in ok], [truth[i] for i in ok]) if scores is not None else None})
    return rows


def _cell(v) -> str:
    return "–" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def markdown_table(rows: Sequence[dict], cols: Sequence[str], fmt=_cell) -> str:
    """A markdown table of ``cols`` from dict rows (for Dagster metadata); missing values show "–"."""
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def report_markdown(rows: list[dict], keys: Sequence[str] = ("variant", "subset")) -> str:
    """A markdown table of labeller reports (for Dagster metadata)."""
    return markdown_table(rows, [*keys, "n", "parse_failures", "auc", "accuracy", "f1", "kappa", "positive_rate",
                                 "length_auc", "length_accuracy"])


def self_bleu(texts: Sequence[str], max_n: int = 4) -> float | None:
    """Mean character BLEU of each text against all the others (higher = less diverse)."""
    from collections import Counter

    texts = [t for t in texts if t]
    if len(texts) < 2:
        return None

    def grams(t: str, n: int) -> Counter:
        return Counter(t[i : i + n] for i in range(len(t) - n + 1))

    scores = []
    for i, hyp in enumerate(texts):
        refs = [t for j, t in enumerate(texts) if j != i]
        logp = 0.0
        for n in range(1, max_n + 1):
            h = grams(hyp, n)
            total = sum(h.values())
            if total == 0:
                logp += np.log(1e-9)
                continue
            best: Counter = Counter()
            for r in refs:
                best |= grams(r, n)
            clipped = sum(min(c, best[g]) for g, c in h.items())
            logp += np.log(max(clipped, 1e-9) / total)
        closest = min((len(r) for r in refs), key=lambda L: (abs(L - len(hyp)), L))
        bp = 1.0 if len(hyp) > closest else float(np.exp(1 - closest / max(len(hyp), 1)))
        scores.append(bp * float(np.exp(logp / max_n)))
    return float(np.mean(scores))


def length_adjusted_gain(scores_before: Sequence[float], scores_after: Sequence[float],
                         len_before: Sequence[int], len_after: Sequence[int]) -> dict:
    """How much of a score gain is explained by outputs getting longer: regress score on length
    over both sets, then report the raw gain, the part the length change predicts, and the rest."""
    s = np.asarray(list(scores_before) + list(scores_after), float)
    L = np.asarray(list(len_before) + list(len_after), float)
    slope = float(np.polyfit(L, s, 1)[0]) if len(set(L.tolist())) > 1 else 0.0
    gain = float(np.mean(scores_after) - np.mean(scores_before))
    dlen = float(np.mean(len_after) - np.mean(len_before))
    return {"gain": gain, "length_change": dlen, "slope_per_char": slope, "explained_by_length": slope * dlen,
            "gain_beyond_length": gain - slope * dlen}


def mean_se(xs: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and its standard error (sample standard deviation / sqrt n)."""
    a = np.asarray(list(xs), float)
    if not len(a):
        return None, None
    return float(a.mean()), float(a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else None


def wilson_interval(wins: float, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """95% Wilson score interval of a win rate (ties counted as half a win)."""
    if n <= 0:
        return None
    p = wins / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def paired_comparison(new: Sequence[float], ref: Sequence[float], new_len: Sequence[int],
                      ref_len: Sequence[int], tolerance: float = 0.2) -> dict:
    """``new`` against ``ref`` on the same prompts: the mean per-prompt gain with its standard error,
    how much of it the length change explains (``length_adjusted_gain``), the win rate (ties half)
    with a 95% interval, and the win rate on output pairs of similar length."""
    d = np.asarray(new, float) - np.asarray(ref, float)
    gain, se = mean_se(d.tolist())
    adj = length_adjusted_gain(ref, new, ref_len, new_len)
    wins = float(np.sum(d > 0) + 0.5 * np.sum(d == 0))
    matched = [i for i, (a, b) in enumerate(zip(new_len, ref_len, strict=True)) if similar_lengths(a, b, tolerance)]
    mw = float(sum(1.0 if d[i] > 0 else 0.5 if d[i] == 0 else 0.0 for i in matched))
    return {"gain": gain, "gain_se": se, "explained_by_length": adj["explained_by_length"],
            "gain_beyond_length": adj["gain_beyond_length"], "win_rate": wins / len(d) if len(d) else None,
            "win_rate_ci": wilson_interval(wins, len(d)), "len_matched_n": len(matched),
            "win_rate_len_matched": mw / len(matched) if matched else None}


def repeated_share(text: str, n: int = 4) -> float:
    """Share of a text's characters inside a phrase of ``n`` characters (no punctuation) that occurs
    more than once: 0 for a greeting that never repeats itself, near 1 for 如星辰般闪耀，如星辰般闪耀…"""
    if len(text) < 2 * n:
        return 0.0
    grams: dict[str, list[int]] = {}
    for i in range(len(text) - n + 1):
        g = text[i : i + n]
        if g.strip() and not any(c in _PUNCT for c in g):
            grams.setdefault(g, []).append(i)
    covered = set()
    for starts in grams.values():
        if len(starts) > 1:
            for i in starts:
                covered.update(range(i, i + n))
    return len(covered) / len(text)


_PUNCT = set("，。！？、；：,.!?;: \n“”‘’\"'（）()")


def repeat_rate(texts: Sequence[str], min_chars: int = 4) -> float | None:
    """Share of texts that repeat a phrase of at least ``min_chars`` characters (如星辰般闪耀，如星辰般闪耀)."""
    if not texts:
        return None

    def repeats(t: str) -> bool:
        return any(t.find(t[i : i + min_chars], i + min_chars) >= 0 for i in range(len(t) - 2 * min_chars + 1)
                   if t[i : i + min_chars].strip() and not any(c in "，。！？、 " for c in t[i : i + min_chars]))

    return sum(repeats(t) for t in texts) / len(texts)

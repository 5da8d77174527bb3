"""The paper's files (DESIGN.md) as plain rows for the trainers: preference pairs, labelled greetings,
SFT examples. The warehouse's ingest reads the same files with quarantine (``resources.readers``); these
are for the GPU builds and benches, which read the files directly."""

from __future__ import annotations

import json
import random
from pathlib import Path


def pairs(path: Path) -> list[dict]:
    """reward_pairs_*.json → {prompt, chosen, rejected}."""
    return [{"prompt": r["conversations"][0]["value"], "chosen": r["chosen"]["value"],
             "rejected": r["rejected"]["value"]} for r in json.loads(path.read_text(encoding="utf-8"))]


def labels(path: Path) -> list[dict]:
    """evaluation_dev.jsonl → {prompt, response, label}."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [{"prompt": r["query"], "response": r["response"], "label": int(r["label"])} for r in rows]


def sft(path: Path) -> list[dict]:
    """sft.json's instruction (+ input) → {prompt, response}, as ``resources.readers.read_sft_json`` joins them."""
    out = []
    for r in json.loads(path.read_text(encoding="utf-8")):
        prompt = r["instruction"] + (f"\n{r['input']}" if str(r.get("input") or "").strip() else "")
        if prompt.strip() and str(r.get("output") or "").strip():
            out.append({"prompt": prompt, "response": r["output"]})
    return out


def judge_rows(pairs: list[dict], seed: int = 0, *, rule_share: float = 0.0, rule_kind: str = "word",
               degraded_share: float = 0.0, matched_repeat: int = 0) -> list[dict]:
    """The judge's training rows from the paper's pairs, built as the ``judge_model`` asset builds them
    (``agents.judging.pair_rows``: chosen → 是 / rejected → 否 kept together for the pairwise term, varied
    principle lists from the initial S_D and Path A's principles), optionally with checkable-rule rows
    for ``rule_share`` of the pairs, degraded copies of ``degraded_share`` of the chosen greetings, and
    ``matched_repeat`` more copies of each pair of similar lengths."""
    from agents import judge as path_a_judge
    from agents.judging import degraded_rows, pair_rows
    from agents.principles import INITIAL_S_D

    rng = random.Random(seed)
    pool = [list(INITIAL_S_D), list(path_a_judge.PRINCIPLES)]
    rows = pair_rows(pairs, pool, rng, rule_share=rule_share, rule_kind=rule_kind, matched_repeat=matched_repeat)
    if degraded_share:
        rows += degraded_rows([{"prompt": p["prompt"], "response": p["chosen"]} for p in pairs], pool, rng,
                              degraded_share)
    return rows

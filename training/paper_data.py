"""The paper's files (DESIGN.md) as plain rows for the trainers: preference pairs, labelled greetings,
SFT examples. The warehouse's ingest reads the same files with quarantine (``resources.readers``); these
are for the GPU builds and benches, which read the files directly."""

from __future__ import annotations

import json
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

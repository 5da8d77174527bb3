"""The paper's files (DESIGN.md) as the training library's JSONL inputs, for the GPU benches."""

from __future__ import annotations

import json
from pathlib import Path

from training.data import write_jsonl


def pairs(path: Path) -> list[dict]:
    return [{"prompt": r["conversations"][0]["value"], "chosen": r["chosen"]["value"],
             "rejected": r["rejected"]["value"]} for r in json.loads(path.read_text(encoding="utf-8"))]


def labels(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [{"prompt": r["query"], "response": r["response"], "label": int(r["label"])} for r in rows]


def export(data_dir: str | Path, out: str | Path) -> dict[str, Path]:
    """reward_pairs_train/dev.json and evaluation_dev.jsonl → train.jsonl, dev.jsonl, labels.jsonl."""
    data_dir, out = Path(data_dir), Path(out)
    files = {"train": out / "train.jsonl", "dev": out / "dev.jsonl", "labels": out / "labels.jsonl"}
    write_jsonl(files["train"], pairs(data_dir / "reward_pairs_train.json"))
    write_jsonl(files["dev"], pairs(data_dir / "reward_pairs_dev.json"))
    write_jsonl(files["labels"], labels(data_dir / "evaluation_dev.jsonl"))
    return files

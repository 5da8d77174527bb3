"""The paper's files (DESIGN.md) as the training library's JSONL inputs, for the GPU benches."""

from __future__ import annotations

from pathlib import Path

from training.data import write_jsonl
from training.paper_data import labels, pairs

__all__ = ["export", "labels", "pairs"]


def export(data_dir: str | Path, out: str | Path) -> dict[str, Path]:
    """reward_pairs_train/dev.json and evaluation_dev.jsonl → train.jsonl, dev.jsonl, labels.jsonl."""
    data_dir, out = Path(data_dir), Path(out)
    files = {"train": out / "train.jsonl", "dev": out / "dev.jsonl", "labels": out / "labels.jsonl"}
    write_jsonl(files["train"], pairs(data_dir / "reward_pairs_train.json"))
    write_jsonl(files["dev"], pairs(data_dir / "reward_pairs_dev.json"))
    write_jsonl(files["labels"], labels(data_dir / "evaluation_dev.jsonl"))
    return files

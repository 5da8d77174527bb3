"""Training inputs: JSONL files the assets export from warehouse snapshots (or a person writes).

Errors name the file and line. Rows become TRL's conversational formats.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agents.policy import messages as policy_messages


class DataError(ValueError):
    pass


def read_jsonl(path: str | Path, required: Iterable[str]) -> list[dict[str, Any]]:
    path = Path(path)
    required = tuple(required)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    rows = []
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{n}: invalid UTF-8 ({e.reason})") from None
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{n}: broken JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{n}: expected a JSON object")
            missing = [k for k in required if k not in row or row[k] is None]
            if missing:
                raise DataError(f"{path}:{n}: missing {', '.join(missing)}")
            rows.append(row)
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write ``rows`` to a temporary file renamed over ``path``: a process reading ``path`` meanwhile (another
    stage preparing the same inputs) sees the old file or the new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    n = 0
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return n


def user(prompt: str) -> list[dict[str, str]]:
    """The policy's chat for a request (``agents.policy.messages``): the one format the candidates asset samples with and SFT, the reward models, GRPO and the policy
    evaluation train and score on, so a trained policy is always asked the way it was taught."""
    return policy_messages(prompt)


def assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def sft_records(rows: list[dict]) -> list[dict]:
    """Conversational prompt–completion: the loss falls on the greeting only."""
    return [{"prompt": user(r["prompt"]), "completion": assistant(r["response"])} for r in rows]


def pair_records(rows: list[dict]) -> list[dict]:
    return [{"prompt": user(r["prompt"]), "chosen": assistant(r["chosen"]), "rejected": assistant(r["rejected"])}
            for r in rows]


def prompt_records(rows: list[dict]) -> list[dict]:
    return [{"prompt": user(r["prompt"])} for r in rows]

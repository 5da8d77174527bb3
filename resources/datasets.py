"""DatasetsResource: where prompts and seed data come from.

* the built-in sample (``resources/sample/``, written by this project) — always;
* the Igniting paper's published data, when ``seed_data_dir`` (env ``ZHUFU_SEED_DATA``) points
  at a directory with its files (any subset of them);
* the inbox: every ``.txt`` / ``.jsonl`` / ``.parquet`` file dropped into ``inbox_dir`` becomes a
  prompt batch (a dynamic partition of ``prompts``). Hidden files and any other suffix (such as
  ``.part``, for a file still being written) are not prompt files.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import dagster as dg
from pydantic import Field

from resources.readers import (
    SAMPLE_DIR,
    IngestError,
    Parsed,
    read_builtin_greetings,
    read_labels_jsonl,
    read_pairs_json,
    read_prompts,
    read_sft_json,
)
from warehouse.config import zhufu_home
from warehouse.schema import HumanLabelRow, PromptRow, SeedPairRow, SeedSftRow

BUILTIN_BATCH = "builtin"
INBOX_PREFIX = "inbox-"
INBOX_SUFFIXES = (".txt", ".jsonl", ".parquet")

# Paper files, relative to seed_data_dir: partition key or source name -> file.
PAPER_PROMPT_BATCHES = {
    "igniting-queries": "queries.txt",
    "igniting-grpo-train": "grpo/train.parquet",
    "igniting-grpo-test": "grpo/test.parquet",
}
PAPER_SFT = {"igniting-sft": "sft.json"}
PAPER_PAIRS = {"igniting-pairs-train": "reward_pairs_train.json", "igniting-pairs-dev": "reward_pairs_dev.json"}
PAPER_LABELS = {"igniting-eval-dev": "evaluation_dev.jsonl"}


def inbox_partition_key(filename: str) -> str:
    """A Dagster-safe partition key for an inbox file name, one per name: a name that had to be
    changed gets a short hash of the original, so "week 1.txt" and "week_1.txt" (or 春节.txt and
    中秋.txt) stay two batches ("inbox-week_1.txt-<hash>" and "inbox-week_1.txt")."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", filename)
    if safe != filename:
        safe += "-" + hashlib.blake2b(os.fsencode(filename), digest_size=4).hexdigest()
    return INBOX_PREFIX + safe


def _merge(parts: list[Parsed]) -> Parsed:
    out: Parsed = Parsed()
    for p in parts:
        out.rows.extend(p.rows)
        out.quarantined.extend(p.quarantined)
    return out


class DatasetsResource(dg.ConfigurableResource):
    """Reads every input file of zhufu; assets never open files themselves."""

    seed_data_dir: str | None = Field(
        default=None, description="Directory with the Igniting paper's data (env ZHUFU_SEED_DATA). Optional."
    )
    inbox_dir: str | None = Field(default=None, description="Prompt inbox directory (default $ZHUFU_HOME/inbox).")

    @classmethod
    def from_env(cls) -> DatasetsResource:
        return cls(seed_data_dir=os.environ.get("ZHUFU_SEED_DATA") or None,
                   inbox_dir=os.environ.get("ZHUFU_INBOX") or None)

    # ------------------------------------------------------------- locations

    def inbox(self) -> Path:
        path = Path(self.inbox_dir).expanduser() if self.inbox_dir else zhufu_home() / "inbox"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _paper_file(self, rel: str) -> Path | None:
        if not self.seed_data_dir:
            return None
        path = Path(self.seed_data_dir).expanduser() / rel
        return path if path.is_file() else None

    def inbox_files(self) -> dict[str, Path]:
        """Partition key -> file, for every prompt file in the inbox."""
        files = sorted(p for p in self.inbox().iterdir()
                       if p.is_file() and p.suffix.lower() in INBOX_SUFFIXES and not p.name.startswith("."))
        return {inbox_partition_key(p.name): p for p in files}

    def standing_batches(self) -> list[str]:
        """Prompt batches that exist without the inbox: the built-in sample and the paper's files."""
        return [BUILTIN_BATCH] + [k for k, rel in PAPER_PROMPT_BATCHES.items() if self._paper_file(rel)]

    def batch_file(self, batch: str) -> Path:
        if batch == BUILTIN_BATCH:
            return SAMPLE_DIR / "prompts.jsonl"
        if batch in PAPER_PROMPT_BATCHES:
            path = self._paper_file(PAPER_PROMPT_BATCHES[batch])
            if path is None:
                raise IngestError(
                    f"prompt batch {batch!r} needs {PAPER_PROMPT_BATCHES[batch]} under seed_data_dir "
                    f"({self.seed_data_dir or 'not set: export ZHUFU_SEED_DATA'})"
                )
            return path
        path = self.inbox_files().get(batch)
        if path is None:
            raise IngestError(f"prompt batch {batch!r}: no such file in the inbox {self.inbox()}")
        return path

    # ------------------------------------------------------------- reading

    def prompt_batch(self, batch: str) -> Parsed[PromptRow]:
        source = batch if not batch.startswith(INBOX_PREFIX) else f"inbox:{self.batch_file(batch).name}"
        return read_prompts(self.batch_file(batch), source=source, batch=batch)

    def sft_examples(self) -> Parsed[SeedSftRow]:
        parts: list[Parsed] = [read_builtin_greetings().sft]
        parts += [read_sft_json(p, source=s) for s, rel in PAPER_SFT.items() if (p := self._paper_file(rel))]
        return _merge(parts)

    def preference_pairs(self) -> Parsed[SeedPairRow]:
        parts: list[Parsed] = [read_builtin_greetings().pairs]
        parts += [read_pairs_json(p, source=s) for s, rel in PAPER_PAIRS.items() if (p := self._paper_file(rel))]
        return _merge(parts)

    def human_labels(self) -> Parsed[HumanLabelRow]:
        parts: list[Parsed] = [read_builtin_greetings().labels]
        parts += [read_labels_jsonl(p, source=s) for s, rel in PAPER_LABELS.items() if (p := self._paper_file(rel))]
        return _merge(parts)

"""The reflection memory: accepted revisions (prompt, critique, draft → revision, gain) as a vector
table, searched by prompt similarity within a scenario (``agents.reflection.MemoryIndex``).

The warehouse's ``reflections`` events are the record; this table is rebuilt from them (after every
round), so it never holds what the warehouse does not, and a lost LanceDB directory is rebuilt on the
next run. Embedder and store are protocols, as in ``agents.retrieval``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from agents.reflection import Lesson

TABLE = "reflection_memory"


class _Embedder(Protocol):
    model_id: str

    def passages(self, texts: list[str]) -> np.ndarray: ...

    def queries(self, texts: list[str]) -> np.ndarray: ...


class _Store(Protocol):
    uri: str

    def write(self, name: str, rows: list[dict[str, Any]], vectors: np.ndarray) -> int: ...

    def search(self, name: str, vector: np.ndarray, k: int, *, version: int | None = None) -> list[dict[str, Any]]: ...


class LanceMemory:
    def __init__(self, embedder: _Embedder, store: _Store, table: str = TABLE):
        self.embedder, self.store, self.table = embedder, store, table
        self.version: int | None = None
        self.size = 0

    def rebuild(self, accepted: Sequence[dict[str, Any]]) -> int | None:
        """Replace the table with ``accepted`` reflection rows (``reflections`` columns: id, chain_id,
        scenario, prompt, critique, draft, revision, gain); returns its Lance version (None: empty)."""
        rows = [{"memory_id": r["id"], "chain_id": r["chain_id"], "scenario": r["scenario"], "prompt": r["prompt"],
                 "critique": r["critique"], "draft": r["draft"], "revision": r["revision"], "gain": float(r["gain"])}
                for r in accepted if r.get("revision") and (r.get("gain") or 0) > 0]
        self.size = len(rows)
        if not rows:
            self.version = None
            return None
        self.version = self.store.write(self.table, rows, self.embedder.passages([r["prompt"] for r in rows]))
        return self.version

    def lessons(self, scenario: str, prompts: Sequence[str], k: int, own_chains: Sequence[str]) -> list[list[Lesson]]:
        """Up to ``k`` lessons per prompt: the nearest accepted revisions of the same scenario, from
        other chains (a chain does not learn from itself), best gain first among equally near ones."""
        if self.version is None or k <= 0 or not prompts:
            return [[] for _ in prompts]
        vectors = self.embedder.queries(list(prompts))
        out = []
        for v, own in zip(vectors, own_chains, strict=True):
            hits = self.store.search(self.table, v, min(self.size, 4 * k + 4), version=self.version)
            keep = [h for h in hits if h["scenario"] == scenario and h["chain_id"] != own]
            keep.sort(key=lambda h: (round(float(h.get("_distance", 0.0)), 3), -h["gain"]))
            out.append([Lesson(memory_id=h["memory_id"], prompt=h["prompt"], critique=h["critique"], draft=h["draft"],
                               revision=h["revision"], gain=h["gain"]) for h in keep[:k]])
        return out

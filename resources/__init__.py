"""Dagster resources: configured handles on the warehouse, datasets, models and stores.

Imports are lazy so that the plain libraries below (``resources.llm``, ``resources.model_store``)
load without Dagster, e.g. on a bare GPU box.
"""

from importlib import import_module

_EXPORTS = {
    "DatasetsResource": "resources.datasets",
    "EmbedderResource": "resources.embeddings",
    "LLMResource": "resources.llm_resource",
    "TrainingResource": "resources.training",
    "VectorStoreResource": "resources.vectors",
    "WarehouseResource": "resources.warehouse",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(name)

"""Dagster resources: configured handles on the warehouse, datasets, models and stores."""

from resources.datasets import DatasetsResource
from resources.embeddings import EmbedderResource
from resources.llm_resource import LLMResource
from resources.vectors import VectorStoreResource
from resources.warehouse import WarehouseResource

__all__ = ["DatasetsResource", "EmbedderResource", "LLMResource", "VectorStoreResource", "WarehouseResource"]

"""Dagster resources: configured handles on the warehouse, datasets, models and stores."""

from resources.datasets import DatasetsResource
from resources.warehouse import WarehouseResource

__all__ = ["DatasetsResource", "WarehouseResource"]

"""The zhufu code location: every asset, check, resource, sensor and job, wired in one place.

    dagster dev -w workspace.yaml        # UI on http://127.0.0.1:3000
"""

from __future__ import annotations

import dagster as dg

from assets import agreement, ingest, path_a, path_b
from resources import DatasetsResource, EmbedderResource, LLMResource, VectorStoreResource, WarehouseResource
from sensors.inbox import inbox_sensor

all_assets = dg.load_assets_from_modules([ingest, path_a, path_b, agreement])

seed_data_job = dg.define_asset_job(
    "seed_data_job",
    selection=dg.AssetSelection.assets(ingest.seed_sft_examples, ingest.seed_preference_pairs, ingest.human_labels),
    description="Ingest the seed data (SFT examples, preference pairs, human labels).",
)

warehouse = WarehouseResource()

defs = dg.Definitions(
    assets=all_assets,
    resources={
        "warehouse": warehouse,
        "datasets": DatasetsResource.from_env(),
        "llm": LLMResource.from_env(warehouse),
        "embedder": EmbedderResource(),
        "vectors": VectorStoreResource(),
    },
    sensors=[inbox_sensor],
    jobs=[seed_data_job],
)

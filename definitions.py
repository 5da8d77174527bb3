"""The zhufu code location: every asset, check, resource, sensor and job, wired in one place.

    dagster dev -w workspace.yaml        # UI on http://127.0.0.1:3000
"""

from __future__ import annotations

import dagster as dg

from assets import (
    agreement,
    criteria,
    ingest,
    judging,
    maintenance,
    path_a,
    path_b,
    policy_eval,
    reflections,
    training,
)
from resources import (
    DatasetsResource,
    EmbedderResource,
    LLMResource,
    TrainingResource,
    VectorStoreResource,
    WarehouseResource,
)
from resources.launch import pipes_client_from_env
from sensors.inbox import inbox_sensor
from sensors.retraining import (
    RetrainingPolicy,
    grpo_job,
    preference_data_sensor,
    reward_model_job,
    reward_signal_sensor,
)

all_assets = dg.load_assets_from_modules(
    [ingest, judging, path_a, path_b, agreement, training, policy_eval, maintenance, criteria, reflections])

seed_data_job = dg.define_asset_job(
    "seed_data_job",
    selection=dg.AssetSelection.assets(ingest.seed_sft_examples, ingest.seed_preference_pairs, ingest.human_labels),
    description="Ingest the seed data (SFT examples, preference pairs, human labels).",
    # steps of well under a second: a process per step (the default executor) would spend ~20 s each
    # importing the code location
    executor_def=dg.in_process_executor,
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
        "training": TrainingResource(),
        # training runs out of process: a local subprocess, or a Ray job when ZHUFU_RAY_ADDRESS is set
        "pipes_client": pipes_client_from_env(),
        "retraining": RetrainingPolicy(),
    },
    sensors=[inbox_sensor, preference_data_sensor, reward_signal_sensor, maintenance.warehouse_fold_sensor],
    jobs=[seed_data_job, reward_model_job, grpo_job, maintenance.warehouse_maintenance_job,
          maintenance.warehouse_fold_job],
    schedules=[maintenance.warehouse_maintenance_schedule],
)
